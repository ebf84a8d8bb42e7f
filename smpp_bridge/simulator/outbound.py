"""What the simulator owes the ESMEs: each deliver_sm it must send (a receipt or an MO part,
an ``Outbound``, which settles itself when answered) and each account's run-time state with
its store of those waiting for a receiving bind (store and forward)."""

from __future__ import annotations

import enum
from collections import deque
from typing import TYPE_CHECKING, Final, Literal

from ..codec.pdus import DeliverSm, Pdu
from ..errors import SessionClosedError
from . import ledger as _ledger
from .behaviours import TokenBucket
from .config import Account, resolve_status
from .stats import Counters

if TYPE_CHECKING:
    from .smsc import SmscSession


class Kind(enum.StrEnum):
    """What an ``Outbound`` carries. A StrEnum: callers (tests) still pass the plain strings."""

    RECEIPT = "receipt"
    INTERMEDIATE = "intermediate"
    MO = "mo"


# The plain strings, as callers outside the simulator (tests) still pass them.
KindName = Literal["receipt", "intermediate", "mo"]
# Read once: an Enum member read through its class costs a lookup per receipt.
_RECEIPT: Final = Kind.RECEIPT
_MO: Final = Kind.MO
_RECEIVES: Final = frozenset({"rx", "trx"})
_ACKED: Final = _ledger.ACKED


class AccountState:
    """An account at run time: its config, counters, binds, and its store: receipts and MO
    parts waiting for a receiving bind with room (in order; returned ones in front)."""

    def __init__(self, config: Account, counters: Counters) -> None:
        self.config = config
        self.counters = counters
        self.sessions: list[SmscSession] = []
        self.receivers: list[SmscSession] = []
        self.store: deque[Outbound] = deque()
        self._next = 0
        self.window_status = resolve_status(config.window_status)
        self.bucket = (
            TokenBucket(config.tps, config.tps_burst or max(1.0, config.tps))
            if config.tps is not None
            else None
        )

    @property
    def system_id(self) -> str:
        return self.config.system_id

    def attach(self, session: SmscSession) -> None:
        self.sessions.append(session)
        if session.bind_type in _RECEIVES:
            self.receivers.append(session)

    def detach(self, session: SmscSession) -> None:
        if session in self.sessions:
            self.sessions.remove(session)
        if session in self.receivers:
            self.receivers.remove(session)

    def receiver(self) -> SmscSession | None:
        """The next bound RX/TRX bind, round robin; None when the account has none."""
        receivers = self.receivers
        for _ in range(len(receivers)):
            self._next = (self._next + 1) % len(receivers)
            session = receivers[self._next]
            if session.can_receive:
                return session
        return None

    def ready_receiver(self, exclude: SmscSession | None = None) -> SmscSession | None:
        """A receiving bind (other than ``exclude``) that can start a deliver_sm at once."""
        receivers = self.receivers
        n = len(receivers)
        if n == 1:
            session = receivers[0]
            return session if session is not exclude and session.ready else None
        for _ in range(n):
            self._next = (self._next + 1) % n
            session = receivers[self._next]
            if session is not exclude and session.ready:
                return session
        return None

    def pump(self) -> None:
        """Let every receiving bind take what it has room for from the store."""
        for session in list(self.receivers):
            if not self.store:
                return
            session.drain()


class Outbound:
    """One deliver_sm the simulator owes an ESME (a receipt or an MO part), until it is
    acknowledged or given up. It is its own completion callback (no closure per message)."""

    __slots__ = (
        "account",
        "attempts",
        "avoid",
        "born",
        "dropped",
        "entry",
        "kind",
        "origin",
        "pdu",
        "sent",
        "session",
        "stat",
    )

    def __init__(  # noqa: PLR0917 - built per receipt: positional is cheaper
        self,
        pdu: DeliverSm,
        kind: Kind | KindName,
        stat: str,
        account: AccountState,
        origin: SmscSession | None,
        entry: int = -1,
        avoid: bool = False,
    ) -> None:
        self.pdu = pdu
        self.kind = kind
        self.stat = stat
        self.account = account
        # The submitting bind: the receipt goes to it first (or, with ``avoid``, to another
        # receiving bind first); once routed the preference is spent.
        self.origin = origin
        self.avoid = avoid
        self.entry = entry  # the ledger row of a final receipt, else -1
        self.session: SmscSession | None = None
        self.attempts = 0
        self.sent = False
        self.dropped = False  # its connection closed before its deliver_sm_resp
        self.born = 0.0  # when it first came due (set when a store expiry is configured)

    def __call__(self, request: Pdu, response: Pdu | None, error: BaseException | None) -> None:
        session = self.session
        assert session is not None
        self.session = None
        if response is not None:
            status = response.command_status
            if status == 0:
                counters = self.account.counters
                kind = self.kind
                if kind == _RECEIPT:
                    counters.dlrs_acked += 1
                    if self.entry >= 0:
                        ledger = session.sim.stats.ledger
                        if ledger is not None:
                            ledger.settle(self.entry, _ACKED)
                elif kind == _MO:
                    counters.mo_acked += 1
            else:
                session.sim.refused(self, status)
        elif isinstance(error, SessionClosedError):
            # The connection dropped with it unanswered: back to the front of the store.
            self.dropped = True
            if session.closed:
                session.sim.put_back(self.account, [self])
            else:
                session.returned.append(self)
            return
        else:
            # No deliver_sm_resp in time on a live session: a transient refusal.
            session.sim.refused(self, None)
        session.drain()


__all__ = ["AccountState", "Kind", "KindName", "Outbound"]
