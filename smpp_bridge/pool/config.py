"""What a pool is configured with and what it is asked to send: ``AccountConfig`` (one SMSC
account), ``PoolConfig`` (the accounts and the pool-wide timers) and ``OutboundMessage``."""

from __future__ import annotations

from typing import Literal

import msgspec

from ..codec.pdus import SubmitSm
from ..codec.segment import Concat
from .classify import StatusPolicy

UnknownPolicy = Literal["retry", "report"]


class AccountConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One SMSC account: where, who, how many binds, and the limits that apply.

    ``transient`` and ``permanent`` override what a response's command_status means for this
    account's SMSC (numbers or ``ESME_...`` names; see ``classify.StatusPolicy``): retried
    with backoff up to ``max_retries``, or failed at once with its code. E.g.
    ``permanent = ["ESME_RSUBMITFAIL"]`` for a vendor whose "submit failed" is final,
    ``transient = [0x400]`` for a vendor "try later", ``transient = [0x58]`` to retry
    ESME_RTHROTTLED without slowing down.
    """

    name: str
    system_id: str
    password: str = ""
    host: str = "127.0.0.1"
    port: int = 2775
    system_type: str = ""
    bind_type: Literal["tx", "rx", "trx"] = "trx"
    binds: int = 1
    window: int = 10
    tls: bool = False
    profile: str = "spec"
    concat: Concat = "udh8"
    tps: float | None = None  # for the whole account
    bind_tps: float | None = None  # for each bind
    response_timeout: float = 30.0
    enquire_link_interval: float | None = 30.0
    max_retries: int = 5
    unknown_outcome: UnknownPolicy = "retry"
    message_id_mode: str = "auto"
    transient: tuple[int | str, ...] = ()
    permanent: tuple[int | str, ...] = ()

    def __post_init__(self) -> None:
        if self.binds < 1 or self.window < 1:
            raise ValueError(f"account {self.name!r}: binds and window must be at least 1")
        for name in ("tps", "bind_tps"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"account {self.name!r}: {name} must be positive")
        try:
            self.status_policy()
        except ValueError as exc:
            raise ValueError(f"account {self.name!r}: {exc}") from None

    def status_policy(self) -> StatusPolicy:
        """The defaults with this account's overrides."""
        return StatusPolicy.overriding(transient=self.transient, permanent=self.permanent)


class PoolConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The pool's accounts and the timers that apply to all of them (seconds): how long a
    receipt waits for its mapping (``unmatched_after``) and a multipart MO for its parts,
    how long correlations and tombstones live, and the reconnect and retry backoffs."""

    accounts: tuple[AccountConfig, ...]
    unmatched_after: float = 120.0  # a receipt with no mapping this long is published unmatched
    inbound_timeout: float = 120.0  # a concatenated MO missing parts this long is published
    opt_out_keywords: tuple[str, ...] = ("STOP", "BAJA", "UNSUBSCRIBE", "STOPALL", "CANCEL")
    correlation_ttl: float = 7 * 86400.0
    # How long a settled part's tombstone stays in the store (with ``forget_settled``): a
    # receipt the SMSC sends again within it is recognised as a repeat.
    settled_ttl: float = 86400.0
    reconnect_base: float = 0.5
    reconnect_cap: float = 30.0
    retry_base: float = 0.2
    retry_cap: float = 10.0


class OutboundMessage(msgspec.Struct, kw_only=True):
    """One message a user asked to send (segmented into parts by the pool)."""

    id: str
    source: str
    destination: str
    text: str
    client_id: str | None = None
    encoding: str = "auto"
    request_dlr: bool = True
    max_parts: int = 255
    account: str | None = None
    template: SubmitSm | None = None


__all__ = ["AccountConfig", "OutboundMessage", "PoolConfig", "UnknownPolicy"]
