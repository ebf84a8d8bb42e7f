"""The simulator's behaviours as typed, validated objects: built in Python or loaded from TOML.

Every knob is a field of a frozen ``msgspec.Struct``; ``SimulatorConfig`` groups them. A TOML file
has the same shape (tables named like the fields). Unknown keys are refused with the key's path
(``faults.drop_response_probabilty``), because a misspelt fault that silently does nothing makes
a test pass for the wrong reason. ``validate`` runs the same checks on an object built in Python,
where a wrong type would otherwise go unnoticed until the simulator trips over it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, TypeAlias

import msgspec

from ..codec.constants import CommandStatus
from ..configfile import config_error, read_toml
from ..errors import ConfigError

BindType = Literal["tx", "rx", "trx"]
# A command_status by name ("ESME_RTHROTTLED") or number (0x58).
Status: TypeAlias = int | str
FinalStat = Literal["DELIVRD", "UNDELIV", "EXPIRED", "REJECTD", "DELETED", "ACCEPTD", "UNKNOWN"]
IntermediateStat = Literal["ENROUTE", "ACCEPTD"]
IdFormat = Literal["decimal", "hex", "uuid"]


def resolve_status(value: Status) -> int:
    """A command_status number from a name (``ESME_RTHROTTLED``) or a number."""
    if isinstance(value, int):
        if not 0 <= value <= 0xFFFFFFFF:
            raise ValueError(f"command_status {value} is outside 0..0xFFFFFFFF")
        return value
    try:
        return int(CommandStatus[value])
    except KeyError:
        raise ValueError(f"unknown command_status name {value!r}") from None


class _Struct(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base of every config struct: immutable, keyword-only, unknown keys refused."""


# ------------------------------------------------------------------ distributions


class Fixed(_Struct, frozen=True, tag="fixed", tag_field="dist"):
    """Always ``value`` seconds."""

    value: float = 0.0

    def __post_init__(self) -> None:
        if self.value < 0:
            raise ValueError("value must not be negative")


class Uniform(_Struct, frozen=True, tag="uniform", tag_field="dist"):
    """Uniform between ``low`` and ``high`` seconds."""

    low: float
    high: float

    def __post_init__(self) -> None:
        if not 0 <= self.low <= self.high:
            raise ValueError("need 0 <= low <= high")


class Exponential(_Struct, frozen=True, tag="exponential", tag_field="dist"):
    """Exponential with mean ``mean`` seconds, cut at ``max`` (long tails stall tests)."""

    mean: float
    max: float | None = None

    def __post_init__(self) -> None:
        if self.mean <= 0:
            raise ValueError("mean must be positive")
        if self.max is not None and self.max < 0:
            raise ValueError("max must not be negative")


class Normal(_Struct, frozen=True, tag="normal", tag_field="dist"):
    """Normal with ``mean`` and ``stddev`` seconds, clipped at 0."""

    mean: float
    stddev: float

    def __post_init__(self) -> None:
        if self.mean < 0 or self.stddev < 0:
            raise ValueError("mean and stddev must not be negative")


# A plain number is a fixed delay in seconds.
Distribution: TypeAlias = float | Fixed | Uniform | Exponential | Normal


def _check_distribution(value: Distribution, name: str) -> None:
    if isinstance(value, int | float) and value < 0:
        raise ValueError(f"{name} must not be negative")


def _check_probability(value: float, name: str) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be within 0..1")


# ------------------------------------------------------------------ sections


class ServerConfig(_Struct, frozen=True):
    """How the SMSC presents itself and treats every session."""

    system_id: str = "SMPPSIM"
    # Accept any system_id and password (an unknown system_id gets an account with defaults).
    accept_any: bool = False
    # Answer to a bind beyond an account's max_binds: ESME_RALYBND or ESME_RBINDFAIL.
    bind_limit_status: Status = "ESME_RALYBND"
    # Our own window: deliver_sm (receipts, MO) in flight per bind, the rest waits in order.
    window: int = 10
    response_timeout: float = 30.0
    enquire_link_interval: float | None = None
    # Close a connection that sent no bind within this many seconds (the spec's
    # session_init_timer; typical 10-30 s). None: never.
    session_init_timeout: float | None = 30.0
    inactivity_timeout: float | None = None
    # Abuse limits: failed binds are answered after ``failed_bind_delay`` seconds, and the
    # connection is closed after its ``max_failed_binds``-th failed bind (None: never).
    failed_bind_delay: float = 0.5
    max_failed_binds: int | None = 3
    # Refusal log lines (refused binds, connections closed before a bind): at most one per
    # reason per this many seconds, then one line with the count suppressed meanwhile.
    refusal_log_interval: float = 1.0
    # Send sc_interface_version (0x34) in bind responses to v3.4+ ESMEs.
    sc_interface_version: int | None = 0x34
    # Write each PDU in its own send (as some SMSCs do) instead of one send per batch.
    write_per_pdu: bool = False

    def __post_init__(self) -> None:
        if not 1 <= len(self.system_id) <= 15:
            raise ValueError("system_id must be 1..15 characters")
        status = resolve_status(self.bind_limit_status)
        if status not in (CommandStatus.ESME_RALYBND, CommandStatus.ESME_RBINDFAIL):
            raise ValueError("bind_limit_status must be ESME_RALYBND or ESME_RBINDFAIL")
        if self.window < 1:
            raise ValueError("window must be at least 1")
        if self.response_timeout <= 0:
            raise ValueError("response_timeout must be positive")
        for name in ("enquire_link_interval", "session_init_timeout", "inactivity_timeout"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be positive when set")
        if self.failed_bind_delay < 0:
            raise ValueError("failed_bind_delay must not be negative")
        if self.max_failed_binds is not None and self.max_failed_binds < 1:
            raise ValueError("max_failed_binds must be at least 1 when set")
        if self.refusal_log_interval < 0:
            raise ValueError("refusal_log_interval must not be negative")
        if self.sc_interface_version is not None and not 0 <= self.sc_interface_version <= 255:
            raise ValueError("sc_interface_version must fit in one octet")


class Account(_Struct, frozen=True):
    """One ESME account: credentials and the limits enforced on its binds."""

    system_id: str
    password: str = ""
    max_binds: int | None = None
    bind_types: tuple[BindType, ...] = ("tx", "rx", "trx")
    # Submits per second over all binds of the account (token bucket); None = unlimited.
    tps: float | None = None
    # Bucket size: how many submits may arrive at once after a quiet spell (default: tps, ≥ 1).
    tps_burst: float | None = None
    # Requests a bind may have outstanding (received, response not yet written); None = any.
    window: int | None = None
    window_status: Status = "ESME_RTHROTTLED"

    def __post_init__(self) -> None:
        if not 1 <= len(self.system_id) <= 15:
            raise ValueError("system_id must be 1..15 characters")
        if len(self.password) > 8:
            raise ValueError("password must be at most 8 characters")
        if self.max_binds is not None and self.max_binds < 1:
            raise ValueError("max_binds must be at least 1 when set")
        if not self.bind_types:
            raise ValueError("bind_types must not be empty")
        if self.tps is not None and self.tps <= 0:
            raise ValueError("tps must be positive when set")
        if self.tps_burst is not None and self.tps_burst < 1:
            raise ValueError("tps_burst must be at least 1")
        if self.window is not None and self.window < 1:
            raise ValueError("window must be at least 1 when set")
        status = resolve_status(self.window_status)
        if status not in (CommandStatus.ESME_RTHROTTLED, CommandStatus.ESME_RMSGQFUL):
            raise ValueError("window_status must be ESME_RTHROTTLED or ESME_RMSGQFUL")


class MessageIds(_Struct, frozen=True):
    """How message ids look. Real SMSCs may write the same id differently in the receipt
    (hex in submit_sm_resp, decimal in the receipt text); ``receipt_format`` does that."""

    format: IdFormat = "decimal"
    receipt_format: IdFormat | None = None  # None: same as ``format``
    width: int = 0  # zero-pad decimal/hex ids to this many digits
    receipt_width: int | None = None  # None: same as ``width``
    uppercase: bool = False  # hex digits in upper case
    start: int = 1  # the first decimal/hex id

    def __post_init__(self) -> None:
        for name in ("width", "receipt_width"):
            value = getattr(self, name)
            if value is not None and not 0 <= value <= 64:
                raise ValueError(f"{name} must be within 0..64")
        if self.start < 0:
            raise ValueError("start must not be negative")


class SubmitBehaviour(_Struct, frozen=True):
    """How submit_sm (and data_sm, submit_multi) are answered."""

    latency: Distribution = 0.0
    message_id: MessageIds = msgspec.field(default_factory=MessageIds)

    def __post_init__(self) -> None:
        _check_distribution(self.latency, "latency")


class Outcome(_Struct, frozen=True):
    """One final receipt outcome and its relative weight."""

    stat: FinalStat
    weight: float = 1.0
    err: int = 0  # the receipt's err: field, and the network_error_code TLV's error code

    def __post_init__(self) -> None:
        if self.weight < 0:
            raise ValueError("weight must not be negative")
        if not 0 <= self.err <= 999:
            raise ValueError("err must be within 0..999")


def _default_outcomes() -> tuple[Outcome, ...]:
    return (Outcome(stat="DELIVRD"),)


class Receipts(_Struct, frozen=True):
    """Delivery receipts, sent when a submit's registered_delivery asks for them."""

    enabled: bool = True
    delay: Distribution = 0.0
    outcomes: tuple[Outcome, ...] = msgspec.field(default_factory=_default_outcomes)
    # Intermediate notifications sent before the final receipt (esm_class 0x20).
    intermediate: tuple[IntermediateStat, ...] = ()
    intermediate_delay: Distribution = 0.0
    # "requested": only when registered_delivery has the 0x10 bit; "always": regardless.
    intermediate_when: Literal["requested", "always"] = "requested"
    # Receipt text variants.
    key_case: Literal["lower", "upper"] = "lower"
    text_key: Literal["text", "Text"] = "text"
    date_key: Literal["space", "underscore"] = "space"
    date_digits: Literal[10, 12] = 10
    include_text: bool = True
    # receipted_message_id, message_state and network_error_code TLVs.
    tlvs: bool = True
    # Where a receipt goes. Whatever the choice, a receipt no bind can take now is stored for
    # its system_id (store and forward) and goes to the next receiving bind:
    # "any": any RX/TRX bind of the system_id, round robin;
    # "same": the bind that submitted while it can receive (else as "any");
    # "other": a receiving bind other than the one that submitted when there is one.
    route: Literal["any", "same", "other"] = "any"
    data_coding: int = 0
    # A deliver_sm the ESME refuses with a transient status (or leaves unanswered on a live
    # session) is tried again after retry_interval, up to max_attempts in all; one refused with
    # a status of ``permanent_statuses`` is given up at once (``deliver_failures``). A
    # deliver_sm whose connection dropped before its deliver_sm_resp goes back to the front of
    # the system_id's store, without counting as an attempt. MO messages follow the same rules.
    max_attempts: int = 3
    retry_interval: float = 5.0
    permanent_statuses: tuple[Status, ...] = ("ESME_RX_P_APPN", "ESME_RX_R_APPN")
    # Stored receipts and MO parts older than this (seconds since they came due) are given up
    # (``dlrs_expired``, ``dlrs_lost``); None: kept for ever.
    store_expiry: float | None = None
    # At most this many stored per system_id; beyond, new ones are given up
    # (``store_overflows``, ``dlrs_lost``).
    store_limit: int = 1_000_000

    def __post_init__(self) -> None:
        _check_distribution(self.delay, "delay")
        _check_distribution(self.intermediate_delay, "intermediate_delay")
        if not self.outcomes:
            raise ValueError("outcomes must not be empty")
        if sum(o.weight for o in self.outcomes) <= 0:
            raise ValueError("outcome weights must not all be zero")
        if self.data_coding not in (0, 1, 3):
            raise ValueError("data_coding must be 0 (GSM7), 1 (ASCII) or 3 (Latin-1)")
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.retry_interval < 0:
            raise ValueError("retry_interval must not be negative")
        for status in self.permanent_statuses:
            resolve_status(status)
        if self.store_expiry is not None and self.store_expiry <= 0:
            raise ValueError("store_expiry must be positive when set")
        if self.store_limit < 0:
            raise ValueError("store_limit must not be negative")


def _default_texts() -> tuple[str, ...]:
    return ("Hello from the SMSC simulator",)


class MobileOriginated(_Struct, frozen=True):
    """MO traffic: inbound messages sent to every RX/TRX bind."""

    rate: float = 0.0  # messages per second per receiving bind; 0 = none
    count: int | None = None  # messages per bind, then stop; None = no limit
    arrivals: Literal["fixed", "exponential"] = "fixed"
    texts: tuple[str, ...] = msgspec.field(default_factory=_default_texts)
    source_addr: str = "34600000000"
    destination_addr: str = "ACME"
    encoding: str = "auto"
    concat: Literal["udh8", "udh16", "sar", "payload"] = "udh8"
    profile: str = "default"  # the encoding profile (see codec.text.profile_named)

    def __post_init__(self) -> None:
        if self.rate < 0:
            raise ValueError("rate must not be negative")
        if self.count is not None and self.count < 0:
            raise ValueError("count must not be negative")
        if not self.texts:
            raise ValueError("texts must not be empty")


class QueueFullBursts(_Struct, frozen=True):
    """Periods when every submit is refused (ESME_RMSGQFUL by default).

    Each period of ``every`` submits (or seconds, by ``unit``) ends with ``length`` refused.
    """

    every: float
    length: float
    unit: Literal["submits", "seconds"] = "submits"
    status: Status = "ESME_RMSGQFUL"

    def __post_init__(self) -> None:
        if self.every <= 0 or not 0 < self.length <= self.every:
            raise ValueError("need every > 0 and 0 < length <= every")
        resolve_status(self.status)


class Faults(_Struct, frozen=True):
    """Misbehaviour on purpose, per connection. PDU counts are requests from the ESME that
    reach the simulator (binds, submits, queries — not enquire_link or unbind, which the
    session answers by itself), counted per connection from 1.

    ``drop_at_submit = N``: at the N-th submit (submit_sm, data_sm or submit_multi) of a
    connection, counted from 1 on each connection (so with reconnecting clients: a drop at every
    N-th submit of every connection), the simulator stops answering on that connection: the
    N-th submit and every request after it are ignored (not answered, not accepted, counted in
    ``ignored_after_drop``); the answers produced before it are flushed, then the socket is
    half-closed (FIN). ``drop_mode = "close"`` destroys it ``drop_linger`` seconds later;
    ``"half_close"`` keeps reading (and ignoring) until the peer closes. deliver_sm_resp that
    arrive meanwhile still count; receipts of accepted submits are still owed (stored, sent on
    the next receiving bind), and deliver_sm left unanswered are sent again.
    """

    close_after_pdus: int | None = None
    drop_at_submit: int | None = None
    drop_mode: Literal["close", "half_close"] = "close"
    drop_linger: float = 0.5
    stall_after_pdus: int | None = None
    stall_for: float | None = None  # None: stalled until the simulator stops
    drop_response_probability: float = 0.0
    delay_response_probability: float = 0.0
    delay_response: Distribution = 1.0
    garble_after_pdus: int | None = None
    # "command_id": an unknown command_id (answered by generic_nack); "length": a
    # command_length below 16 (framing lost); "body": a deliver_sm whose body does not decode.
    garble: Literal["command_id", "length", "body"] = "command_id"
    receipt_before_resp: bool = False
    # congestion_state TLV (0..99) on every submit_sm_resp; "auto" derives it from the window.
    congestion_state: int | Literal["auto"] | None = None
    queue_full: QueueFullBursts | None = None

    def __post_init__(self) -> None:
        for name in (
            "close_after_pdus",
            "stall_after_pdus",
            "garble_after_pdus",
            "drop_at_submit",
        ):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1 when set")
        if self.drop_linger < 0:
            raise ValueError("drop_linger must not be negative")
        if self.stall_for is not None and self.stall_for <= 0:
            raise ValueError("stall_for must be positive when set")
        _check_probability(self.drop_response_probability, "drop_response_probability")
        _check_probability(self.delay_response_probability, "delay_response_probability")
        _check_distribution(self.delay_response, "delay_response")
        if isinstance(self.congestion_state, int) and not 0 <= self.congestion_state <= 99:
            raise ValueError("congestion_state must be within 0..99")

    @property
    def counts_pdus(self) -> bool:
        """Whether a fault fires at a PDU count (the fast path skips the checks otherwise)."""
        return (
            self.close_after_pdus is not None
            or self.stall_after_pdus is not None
            or self.garble_after_pdus is not None
            or self.drop_at_submit is not None
        )


class Chaos(_Struct, frozen=True):
    """A seeded mix of every misbehaviour, decided per submit and per receipt from ``seed``
    alone (the same seed makes the same decisions for the same sequence of submits).

    Per submit (counted over the whole simulator, ignored submits of dropping connections
    excepted), at most one of: a connection drop (``drop``; a ``half_close_share`` of them in
    the half-close variant), a stall of the connection (``stall``, for ``stall_for`` seconds),
    a throttling burst (``throttle``: the next ``burst_length`` submits refused with
    ESME_RTHROTTLED), a queue-full burst (``queue_full``: likewise with ESME_RMSGQFUL), an SMSC
    restart (``restart``: every connection closed at once, new ones refused for
    ``restart_pause`` seconds; stored and scheduled receipts survive). Rates are probabilities
    per submit. Per receipt (each final or intermediate of an accepted message): sent before the
    submit_sm_resp (``receipt_before_resp``), on another receiving bind of the system_id
    (``receipt_other_bind``), or right after the response on the same bind
    (``receipt_same_bind``), else as configured in ``receipts``. With ``message_ids`` the
    rendering of ids (decimal or hex, in the response and in the receipt) is drawn from the
    seed once per run. No message is lost: every accepted submit asking for a receipt gets it
    (store and forward), unless ``receipts.store_expiry`` passes.

    With the defaults, the daemon's pool (2 binds, window 100, its default reconnect backoff)
    gets 10 000 messages and their receipts through in 5-13 s on a laptop-class machine
    (well under the 30-40 s budget), meeting about 4 drops, 1-2 restarts, 2-3 stalls and 10
    bursts on the way.
    """

    seed: int = 0
    drop: float = 1 / 2500
    half_close_share: float = 0.5
    stall: float = 1 / 5000
    stall_for: Distribution = msgspec.field(default_factory=lambda: Uniform(low=0.2, high=1.0))
    throttle: float = 1 / 1500
    queue_full: float = 1 / 3000
    burst_length: tuple[int, int] = (10, 60)
    restart: float = 1 / 6000
    restart_pause: Distribution = msgspec.field(default_factory=lambda: Uniform(low=0.2, high=1.0))
    receipt_before_resp: float = 0.05
    receipt_other_bind: float = 0.2
    receipt_same_bind: float = 0.2
    message_ids: bool = True

    def __post_init__(self) -> None:
        for name in (
            "drop",
            "half_close_share",
            "stall",
            "throttle",
            "queue_full",
            "restart",
            "receipt_before_resp",
            "receipt_other_bind",
            "receipt_same_bind",
        ):
            _check_probability(getattr(self, name), name)
        if self.drop + self.stall + self.throttle + self.queue_full + self.restart > 1:
            raise ValueError("the per-submit rates must add up to at most 1")
        if self.receipt_before_resp + self.receipt_other_bind + self.receipt_same_bind > 1:
            raise ValueError("the per-receipt rates must add up to at most 1")
        low, high = self.burst_length
        if not 1 <= low <= high:
            raise ValueError("burst_length must be [low, high] with 1 <= low <= high")
        _check_distribution(self.stall_for, "stall_for")
        _check_distribution(self.restart_pause, "restart_pause")


class LedgerConfig(_Struct, frozen=True):
    """The per-message ledger (see ``simulator/ledger.py`` for the file format)."""

    enabled: bool = False  # keep it in memory (``sim.stats.ledger``)
    path: str | None = None  # write it here when the simulator stops (implies enabled)

    @property
    def on(self) -> bool:
        return self.enabled or self.path is not None


class SimulatorConfig(_Struct, frozen=True):
    """Everything the simulator does. All sections have defaults: ``SimulatorConfig()`` is an
    SMSC that accepts nobody until given accounts (or ``server.accept_any``)."""

    seed: int | None = None  # seeds every random choice; None: different on every run
    server: ServerConfig = msgspec.field(default_factory=ServerConfig)
    accounts: tuple[Account, ...] = ()
    submit: SubmitBehaviour = msgspec.field(default_factory=SubmitBehaviour)
    receipts: Receipts = msgspec.field(default_factory=Receipts)
    mo: MobileOriginated = msgspec.field(default_factory=MobileOriginated)
    faults: Faults = msgspec.field(default_factory=Faults)
    chaos: Chaos | None = None
    ledger: LedgerConfig = msgspec.field(default_factory=LedgerConfig)

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for account in self.accounts:
            if account.system_id in seen:
                raise ValueError(f"duplicate account system_id {account.system_id!r}")
            seen.add(account.system_id)


# ------------------------------------------------------------------ loading and checking


def config_from_dict(data: dict[str, Any]) -> SimulatorConfig:
    """A ``SimulatorConfig`` from plain data (parsed TOML or JSON); ``ConfigError`` if invalid."""
    try:
        return msgspec.convert(data, SimulatorConfig)
    except msgspec.ValidationError as exc:
        raise config_error(exc) from None


def load_config(path: str | Path) -> SimulatorConfig:
    """Read a TOML file into a ``SimulatorConfig``; ``ConfigError`` if it is invalid."""
    return config_from_dict(read_toml(path))


def validate(config: SimulatorConfig) -> SimulatorConfig:
    """Check an object built in Python as strictly as a file (types included)."""
    if not isinstance(config, SimulatorConfig):
        raise ConfigError(f"expected a SimulatorConfig, got {type(config).__name__}")
    try:
        data = msgspec.to_builtins(config)
    except TypeError as exc:
        raise ConfigError(str(exc)) from None
    return config_from_dict(data)


__all__ = [
    "Account",
    "BindType",
    "Chaos",
    "ConfigError",
    "Distribution",
    "Exponential",
    "Faults",
    "Fixed",
    "LedgerConfig",
    "MessageIds",
    "MobileOriginated",
    "Normal",
    "Outcome",
    "QueueFullBursts",
    "Receipts",
    "ServerConfig",
    "SimulatorConfig",
    "SubmitBehaviour",
    "Uniform",
    "config_from_dict",
    "load_config",
    "resolve_status",
    "validate",
]
