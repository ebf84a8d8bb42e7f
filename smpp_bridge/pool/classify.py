"""What a non-zero command_status (or a failed bind) means for the pool: retry, slow down,
rebind, or give up.

Two pure classifiers, both following the retry guidance of the fact sheet (section 5.1):

* ``classify_status`` for responses to submit_sm / data_sm / submit_multi: OK, BACKPRESSURE
  (retry after backoff and slow down), TRANSIENT (retry with backoff up to a cap), SESSION
  (rebind, then retry) or PERMANENT (fail with the code). Which codes are transient is a
  per-account matter (some vendors answer ESME_RSUBMITFAIL for permanent rejections), so the
  sets live in a ``StatusPolicy``.
* ``classify_bind_failure`` for a bind that did not come up: AUTH (stop and report loudly),
  BUSY (back off long), NETWORK (normal backoff) or PROTOCOL (anything else).

No I/O and no clock: the pool decides with these, then acts.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

from ..codec.constants import CommandStatus as S
from ..errors import CommandStatusError, LocalProtocolError

__all__ = [
    "DEFAULT_BACKPRESSURE",
    "DEFAULT_BIND_POLICY",
    "DEFAULT_NETWORK_ERRORS",
    "DEFAULT_POLICY",
    "DEFAULT_TRANSIENT",
    "BindFailureClass",
    "BindFailurePolicy",
    "StatusClass",
    "StatusPolicy",
    "classify_bind_failure",
    "classify_status",
    "resolve_status",
]


class StatusClass(StrEnum):
    """What to do with a response's command_status."""

    OK = "ok"
    BACKPRESSURE = "backpressure"  # retry after backoff; reduce rate and window
    TRANSIENT = "transient"  # retry with exponential backoff, up to a cap
    SESSION = "session"  # the session is broken: rebind, then retry
    PERMANENT = "permanent"  # do not retry; report the code


class BindFailureClass(StrEnum):
    """What to do when a bind fails."""

    AUTH = "auth"  # stop this bind and report loudly; retrying cannot help and may lock us out
    BUSY = "busy"  # the SMSC is up but refuses more of us now: back off long
    NETWORK = "network"  # connection-level trouble: retry with normal backoff
    PROTOCOL = "protocol"  # anything else: the SMSC answered something we did not expect


#: Back-pressure: the SMSC is fine but we are too fast (sheet 5.1, "transient: back-pressure").
DEFAULT_BACKPRESSURE: Final[frozenset[int]] = frozenset({S.ESME_RTHROTTLED, S.ESME_RMSGQFUL})

#: Server trouble worth retrying (sheet 5.1, "transient: server trouble"), plus ESME_RX_T_APPN,
#: whose very meaning is "temporary, retry later".
DEFAULT_TRANSIENT: Final[frozenset[int]] = frozenset(
    {
        S.ESME_RSYSERR,
        S.ESME_RUNKNOWNERR,
        S.ESME_RSUBMITFAIL,
        S.ESME_RSERTYPUNAVAIL,
        S.ESME_RX_T_APPN,
    }
)

# generic_nack statuses that, on a PDU we encoded ourselves and believe valid, mean the peer
# lost framing or our session is confused, not that the PDU is wrong.
_NACK_SESSION: Final = frozenset({S.ESME_RINVCMDLEN, S.ESME_RINVCMDID})

# delivery_failure_reason (0x0425) values that make ESME_RDELIVERYFAILURE worth retrying:
# 0 destination unavailable, 3 temporary network error (1 and 2 are permanent).
_TRANSIENT_DELIVERY_FAILURE: Final = frozenset({0, 3})


@dataclass(frozen=True, slots=True)
class StatusPolicy:
    """Which command_status values are back-pressure and which are transient, per account.

    Precedence: 0 is OK; a generic_nack with ESME_RINVCMDLEN/ESME_RINVCMDID is SESSION; then
    ``backpressure``, then ``transient``; then ESME_RINVBNDSTS is SESSION; everything else,
    vendor codes (0x400–0x4FF) included, is PERMANENT. Both sets may hold vendor codes.
    """

    backpressure: frozenset[int] = DEFAULT_BACKPRESSURE
    transient: frozenset[int] = DEFAULT_TRANSIENT

    def __post_init__(self) -> None:
        if 0 in self.backpressure or 0 in self.transient:
            raise ValueError("command_status 0 (ESME_ROK) cannot be an error class")
        both = self.backpressure & self.transient
        if both:
            codes = ", ".join(f"0x{c:X}" for c in sorted(both))
            raise ValueError(f"codes both back-pressure and transient: {codes}")

    def with_permanent(self, *codes: int) -> StatusPolicy:
        """This policy with ``codes`` removed from both sets (e.g. a vendor whose
        ESME_RSUBMITFAIL is final)."""
        drop = frozenset(int(c) for c in codes)
        return StatusPolicy(self.backpressure - drop, self.transient - drop)

    def with_transient(self, *codes: int) -> StatusPolicy:
        """This policy with ``codes`` added to the transient set (e.g. a vendor "try later")."""
        add = frozenset(int(c) for c in codes)
        return StatusPolicy(self.backpressure - add, self.transient | add)

    def with_backpressure(self, *codes: int) -> StatusPolicy:
        """This policy with ``codes`` added to the back-pressure set (e.g. a vendor
        "throttled")."""
        add = frozenset(int(c) for c in codes)
        return StatusPolicy(self.backpressure | add, self.transient - add)

    @classmethod
    def overriding(
        cls,
        *,
        transient: Iterable[int | str] = (),
        permanent: Iterable[int | str] = (),
        backpressure: Iterable[int | str] = (),
        base: StatusPolicy | None = None,
    ) -> StatusPolicy:
        """``base`` (default: the defaults) with an account's overrides: codes (numbers or
        ``ESME_...`` names) moved to back-pressure, transient or permanent. A code listed
        under two of them is refused (``ValueError``)."""
        lists = {
            "transient": {resolve_status(c) for c in transient},
            "permanent": {resolve_status(c) for c in permanent},
            "backpressure": {resolve_status(c) for c in backpressure},
        }
        names = list(lists)
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                both = lists[a] & lists[b]
                if both:
                    codes = ", ".join(f"0x{c:X}" for c in sorted(both))
                    raise ValueError(f"command_status listed as both {a} and {b}: {codes}")
        if 0 in lists["permanent"]:
            raise ValueError("command_status 0 (ESME_ROK) cannot be an error class")
        policy = base if base is not None else DEFAULT_POLICY
        if lists["backpressure"]:
            policy = policy.with_backpressure(*lists["backpressure"])
        if lists["transient"]:
            policy = policy.with_transient(*lists["transient"])
        if lists["permanent"]:
            policy = policy.with_permanent(*lists["permanent"])
        return policy

    def classify(
        self, status: int, *, nack: bool = False, delivery_failure_reason: int | None = None
    ) -> StatusClass:
        """See ``classify_status``."""
        if status == 0:
            return StatusClass.OK
        if nack and status in _NACK_SESSION:
            return StatusClass.SESSION
        if status in self.backpressure:
            return StatusClass.BACKPRESSURE
        if status in self.transient:
            return StatusClass.TRANSIENT
        if status == S.ESME_RINVBNDSTS:
            return StatusClass.SESSION
        if (
            status == S.ESME_RDELIVERYFAILURE
            and delivery_failure_reason in _TRANSIENT_DELIVERY_FAILURE
        ):
            return StatusClass.TRANSIENT
        return StatusClass.PERMANENT


DEFAULT_POLICY: Final = StatusPolicy()


def resolve_status(value: int | str) -> int:
    """A command_status from a number or a name (``"ESME_RSUBMITFAIL"``, any case; a string
    of digits or ``0x``-hex is read as a number)."""
    if isinstance(value, bool):
        raise ValueError(f"not a command_status: {value!r}")
    if isinstance(value, int):
        number = value
    else:
        text = value.strip()
        try:
            number = int(text, 0)
        except ValueError:
            try:
                number = int(S[text.upper()])
            except KeyError:
                raise ValueError(f"unknown command_status {value!r}") from None
    if not 0 <= number <= 0xFFFFFFFF:
        raise ValueError(f"command_status {value!r} is outside 0..0xFFFFFFFF")
    return number


def classify_status(
    status: int,
    *,
    nack: bool = False,
    delivery_failure_reason: int | None = None,
    policy: StatusPolicy = DEFAULT_POLICY,
) -> StatusClass:
    """The class of a response's ``command_status``.

    ``nack``: the status came in a generic_nack for a PDU we sent (ESME_RINVCMDLEN and
    ESME_RINVCMDID then mean "rebind": our PDUs are built by our own encoder, so the peer has
    lost framing or state; in a regular response they stay PERMANENT, e.g. an unsupported
    operation). ``delivery_failure_reason``: the TLV of a data_sm_resp, which decides whether
    ESME_RDELIVERYFAILURE is transient (0, 3) or permanent (1, 2, absent).
    """
    return policy.classify(status, nack=nack, delivery_failure_reason=delivery_failure_reason)


# ---------------------------------------------------------------------------------------------
# Bind failures

#: Credentials or the account itself are wrong: retrying cannot succeed and repeated failed
#: logins get accounts locked at some SMSCs. v5.0 0x100/0x101/0x103 say "not authorised".
DEFAULT_AUTH_STATUSES: Final[frozenset[int]] = frozenset(
    {
        S.ESME_RINVPASWD,
        S.ESME_RINVSYSID,
        S.ESME_RINVSYSTYP,
        S.ESME_RSERTYPUNAUTH,
        S.ESME_RPROHIBITED,
        S.ESME_RSERTYPDENIED,
    }
)

#: The SMSC is up but will not take this bind now. ESME_RBINDFAIL is here, not in AUTH: it is
#: the generic "bind failed" that SMSCs (our simulator among them) also return for "too many
#: binds" — typically our own previous session still counted after a crash or a network cut.
#: Stopping on it would turn that minute-long condition into an outage needing an operator; a
#: long backoff never hammers and heals by itself. Wrong credentials normally come as
#: ESME_RINVPASWD/ESME_RINVSYSID; for a vendor that hides them behind ESME_RBINDFAIL, move it
#: with ``BindFailurePolicy(auth=..., busy=...)``.
DEFAULT_BUSY_STATUSES: Final[frozenset[int]] = frozenset(
    {S.ESME_RALYBND, S.ESME_RBINDFAIL, S.ESME_RMSGQFUL, S.ESME_RTHROTTLED}
)

#: Connection-level failures. OSError covers refused/reset connections, DNS failures and TLS
#: errors (ssl.SSLError is an OSError); TimeoutError covers connect/bind timeouts; EOFError a
#: peer closing mid-read. The pool adds its transport's own types (anyio's EndOfStream and
#: BrokenResourceError, the driver's SessionClosedError and ResponseTimeoutError) through
#: ``BindFailurePolicy.network_errors``: this module stays free of anyio.
DEFAULT_NETWORK_ERRORS: Final[tuple[type[BaseException], ...]] = (
    OSError,
    TimeoutError,
    EOFError,
)

# When an exception group carries several failures, the most cautious reading wins.
_SEVERITY: Final = (
    BindFailureClass.AUTH,
    BindFailureClass.BUSY,
    BindFailureClass.PROTOCOL,
    BindFailureClass.NETWORK,
)


@dataclass(frozen=True, slots=True)
class BindFailurePolicy:
    """Which bind statuses are AUTH or BUSY, and which exceptions are network failures."""

    auth: frozenset[int] = DEFAULT_AUTH_STATUSES
    busy: frozenset[int] = DEFAULT_BUSY_STATUSES
    network_errors: tuple[type[BaseException], ...] = field(default=DEFAULT_NETWORK_ERRORS)

    def __post_init__(self) -> None:
        both = self.auth & self.busy
        if both:
            codes = ", ".join(f"0x{c:X}" for c in sorted(both))
            raise ValueError(f"codes both auth and busy: {codes}")

    def with_network_errors(self, *types: type[BaseException]) -> BindFailurePolicy:
        """This policy also counting ``types`` as network failures."""
        return BindFailurePolicy(self.auth, self.busy, (*self.network_errors, *types))

    def classify(self, status: int | None, error: BaseException | None) -> BindFailureClass:
        """See ``classify_bind_failure``."""
        if status is None and isinstance(error, CommandStatusError):
            status = error.command_status
        if status is not None and status != 0:
            if status in self.auth:
                return BindFailureClass.AUTH
            if status in self.busy:
                return BindFailureClass.BUSY
            return BindFailureClass.PROTOCOL
        if error is None:
            # A "failure" with neither an error status nor an exception: the bind response
            # said OK yet the pool gave up on it, so something disagrees with the protocol.
            return BindFailureClass.PROTOCOL
        if isinstance(error, BaseExceptionGroup):
            found = {self.classify(None, leaf) for leaf in _leaves(error)}
            return next(c for c in _SEVERITY if c in found)
        if isinstance(error, LocalProtocolError):
            # Our own bind cannot be encoded (system_id over 15 or password over 8
            # characters...): a configuration error that no retry can fix, so it stops the
            # bind and is reported like bad credentials.
            return BindFailureClass.AUTH
        if isinstance(error, self.network_errors):
            return BindFailureClass.NETWORK
        return BindFailureClass.PROTOCOL


def _leaves(group: BaseExceptionGroup[BaseException]) -> Iterator[BaseException]:
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            yield from _leaves(exc)
        else:
            yield exc


DEFAULT_BIND_POLICY: Final = BindFailurePolicy()


def classify_bind_failure(
    status: int | None,
    error: BaseException | None,
    *,
    policy: BindFailurePolicy = DEFAULT_BIND_POLICY,
    network_errors: Collection[type[BaseException]] = (),
) -> BindFailureClass:
    """The class of a failed bind, from the bind response's ``command_status`` (None when no
    response came) and/or the exception that ended the attempt.

    A non-zero status decides (taken from a ``CommandStatusError`` when ``status`` is None):
    AUTH for bad credentials/system_type/authorisation, BUSY for "already bound", "bind
    failed", queue full and throttled, PROTOCOL for any other status (ESME_RINVCMDID here
    means the SMSC lacks this bind type: fall back from bind_transceiver to TX + RX).
    Without a status: a ``LocalProtocolError`` (our bind cannot be encoded) is AUTH, an
    exception of ``policy.network_errors`` or ``network_errors`` is NETWORK, anything else is
    PROTOCOL; in an exception group the most cautious leaf class wins.
    """
    if network_errors:
        policy = policy.with_network_errors(*network_errors)
    return policy.classify(status, error)
