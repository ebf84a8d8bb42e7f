"""One simulated SMSC connection: the same sans-IO ``Connection`` and ``Driver`` as the client,
in the SMSC role, with the behaviours of the config.

Requests are answered inline, in the driver's reader, as each received batch is dispatched: no
task and no event per message, and the driver sends every answer of a batch in one write. A
response that must wait (latency, a delay fault) or never come (a drop) is taken over with
``DEFERRED`` and, if due, sent later by the simulator's one scheduler task. Receipts and MO
messages go out as deliver_sm through the session's own window. What no bind can take now waits
in its system_id's store (``AccountState.store``, store and forward) and goes to whichever
receiving bind has room; a deliver_sm left unanswered when its connection closed goes back to the
front of that store. What must go to one bind (MO parts, receipts for the same bind) and does not
fit its window waits in order in the session's ``pending``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

import anyio
import anyio.abc

from ..codec.constants import INTERFACE_VERSION_34, CommandStatus
from ..codec.pdus import (
    BindReceiver,
    BindTransceiver,
    BindTransmitter,
    CancelBroadcastSm,
    CancelSm,
    DataSm,
    DataSmResp,
    Pdu,
    QueryBroadcastSm,
    QuerySm,
    ReplaceSm,
    SmeAddress,
    SubmitMulti,
    SubmitMultiResp,
    SubmitSm,
    SubmitSmResp,
)
from ..codec.pdus import BroadcastSm as BroadcastSmPdu
from ..codec.tlv import Tag, Tlv
from ..driver.driver import DEFERRED, Deferred, Driver
from ..errors import LocalProtocolError, SessionClosedError, WindowFull
from ..session import Connection, Role, State
from . import ledger as _ledger
from .config import BindType
from .faults import SessionFaults
from .outbound import AccountState, Kind, Outbound
from .receipts import ReceiptPlanning
from .stream import SessionStream

if TYPE_CHECKING:
    from .server import Simulator

S = CommandStatus

_Answer = Pdu | Deferred | None  # what an inline handler returns (see Driver)

_BIND_TYPES: Final[dict[type[Pdu], BindType]] = {
    BindTransmitter: "tx",
    BindReceiver: "rx",
    BindTransceiver: "trx",
}
_RECEIVES: Final = frozenset({"rx", "trx"})
_MESSAGE_PAYLOAD: Final = int(Tag.message_payload)
# What the simulator answers to the requests it does not carry out (it keeps no message store).
_NOT_SUPPORTED: Final[dict[type[Pdu], int]] = {
    QuerySm: S.ESME_RQUERYFAIL,
    CancelSm: S.ESME_RCANCELFAIL,
    ReplaceSm: S.ESME_RREPLACEFAIL,
    BroadcastSmPdu: S.ESME_RBCASTFAIL,
    QueryBroadcastSm: S.ESME_RBCASTQUERYFAIL,
    CancelBroadcastSm: S.ESME_RBCASTCANCELFAIL,
}
# Read once: an Enum member read through its class costs a lookup per receipt.
_BOUND_TRX: Final = State.BOUND_TRX
_BOUND_RX: Final = State.BOUND_RX
_RECEIPT: Final = Kind.RECEIPT
_INTERMEDIATE: Final = Kind.INTERMEDIATE
_MO: Final = Kind.MO


class SmscSession(SessionFaults, ReceiptPlanning):
    """The simulator's side of one connection. ``run()`` serves it until it ends."""

    def __init__(self, sim: Simulator, stream: anyio.abc.ByteStream) -> None:
        self.sim = sim
        self.stream = SessionStream(stream)
        self.conn = Connection(Role.SMSC, sim.session_config, now=anyio.current_time())
        self.driver = Driver(
            self.stream,
            self.conn,
            inline_handler=self._inline,
            write_per_pdu=sim.config.server.write_per_pdu,
        )
        self.account: AccountState | None = None
        self.counters = sim.stats.unbound
        self.bind_type: BindType | None = None
        self.closed = False
        self.pending: deque[Outbound] = deque()
        # deliver_sm whose connection closed unanswered, in send order, until ``_finish``
        # puts them back in front of the store.
        self.returned: list[Outbound] = []
        self.pdus = 0  # requests seen (the fault counters count these)
        self.submits_seen = 0  # submits that reached the submit faults (drop_at_submit)
        self.received = 0  # requests that expect an answer counted by the window
        self._tg: anyio.abc.TaskGroup | None = None
        self._aborting = False
        self._dropping = False  # a drop fault fired: nothing more is answered
        self._failed_binds = 0
        self._held: list[Pdu] = []  # requests that arrived during a stall
        self._mo_sent = 0
        faults = sim.config.faults
        self._faulty = faults.counts_pdus or sim.chaos is not None
        self._ledger = sim.stats.ledger
        self._window: int | None = None
        self._window_status = int(S.ESME_RTHROTTLED)
        self._limited = False  # set at bind: a window, a TPS limit or queue-full bursts
        # Copied from the simulator so the hot path reads them from one place.
        self._immediate = sim.responses_immediate
        self._receipts_on = sim.receipts_on
        self._resp_tlvs = sim.congestion_tlvs
        self._receipt_tlvs = sim.receipt_tlvs
        # True while the scheduler (not the driver's reader) runs our handlers: see _queue.
        self._outside_reader = False
        self._next_id = sim.ids.next
        self._format_id = sim.ids.for_response
        self._handlers: dict[type[Pdu], Callable[[Any], _Answer]] = {
            SubmitSm: self._submit_sm,
            DataSm: self._data_sm,
            SubmitMulti: self._submit_multi,
            BindTransmitter: self._bind,
            BindReceiver: self._bind,
            BindTransceiver: self._bind,
        }

    # ------------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        try:
            # A task group of its own: a drop fault's half-close and linger live and die
            # with the connection.
            async with anyio.create_task_group() as tg:
                self._tg = tg
                await self.driver.run()
                tg.cancel_scope.cancel()
        finally:
            self._tg = None
            self._finish()

    def _finish(self) -> None:
        self.closed = True
        self.stream.resume()
        sim = self.sim
        account = self.account
        counters = self.counters
        counters.protocol_errors += self.driver.protocol_errors + self.driver.unexpected
        reason = self.driver.closed_reason or "cancelled"
        if account is not None:
            account.detach(self)
            counters.binds -= 1
            sim.log_event("closed", system_id=account.system_id, bind=self.bind_type, reason=reason)
            # Sent and unanswered first (in send order), then what never left: in front of
            # everything stored since, for the next receiving bind.
            back = self.returned + list(self.pending)
            self.returned = []
            self.pending.clear()
            if back:
                sim.put_back(account, back)
        else:
            if reason == "no bind within the session init timeout":
                counters.session_init_timeouts += 1
            sim.log_refusal("closed before bind", reason, reason=reason)

    def abort(self, reason: str) -> None:
        """Drop the connection now, without unbind and without answering what is pending."""
        self._aborting = True
        self.driver.close(reason)
        if self._tg is not None:
            self._tg.cancel_scope.cancel()

    # ------------------------------------------------------------------ requests

    def _inline(self, pdu: Pdu) -> _Answer:
        self.pdus += 1
        if self._faulty:
            taken = self._fault(pdu)
            if taken is not None:
                return taken
        # Keyed by type: the handler for a PDU class, found in one dictionary lookup.
        handler = self._handlers.get(type(pdu))
        if handler is not None:
            return handler(pdu)
        return self._other(pdu)

    def _other(self, pdu: Pdu) -> _Answer:
        if pdu.response_type is None:
            return DEFERRED
        self.received += 1
        status = _NOT_SUPPORTED.get(type(pdu), S.ESME_RINVCMDID)
        return self._respond(pdu.response(status))

    def _respond(self, resp: Pdu) -> Pdu | Deferred:
        if self._immediate:
            self.stream.queued += 1
            return resp
        return self._respond_later(resp)

    def _respond_later(self, resp: Pdu) -> Pdu | Deferred:
        """Latency and the drop/delay faults: answer now, later, or never."""
        sim = self.sim
        faults = sim.config.faults
        rnd = sim.fault_random
        if faults.drop_response_probability and rnd() < faults.drop_response_probability:
            self.counters.responses_dropped += 1
            self.stream.queued += 1  # never coming: no longer outstanding for the window
            return DEFERRED
        delay = sim.latency()
        if faults.delay_response_probability and rnd() < faults.delay_response_probability:
            self.counters.responses_delayed += 1
            delay += sim.delay_response()
        if delay > 0:
            sim.scheduler.call_at(self.stream.now + delay, self._send_response, resp)
            return DEFERRED
        self.stream.queued += 1
        return resp

    def _queue(self, pdu: Pdu) -> None:
        """Queue a PDU ahead of what the current handler returns.

        In the reader the driver writes whatever is queued once the batch is dispatched; from
        the scheduler the writer must be woken, which ``send_pdu`` does.
        """
        if self._outside_reader:
            self.driver.send_pdu(pdu)
        else:
            self.conn.send(pdu)

    def _send_response(self, resp: Pdu) -> None:
        if self.closed or self.driver.closed:
            return
        self.stream.queued += 1
        self.driver.send_pdu(resp)

    def _admit(self) -> int:
        """0 if a submit may be accepted now, else the command_status refusing it."""
        window = self._window
        stream = self.stream
        if window is not None and self.received - stream.written > window:
            return self._window_status
        sim = self.sim
        if sim.bursts is not None:
            status = sim.burst_status(self.counters.submits, stream.now)
            if status:
                return status
        account = self.account
        assert account is not None  # the session only lets submits through when bound
        bucket = account.bucket
        if bucket is not None and not bucket.take(stream.now):
            return S.ESME_RTHROTTLED
        return 0

    def _reject(self, pdu: Pdu, status: int) -> _Answer:
        rejected = self.counters.rejected
        rejected[status] = rejected.get(status, 0) + 1
        return self._respond(pdu.response(status, tlvs=self._congestion()))

    def refuse(self, pdu: Pdu, status: int) -> _Answer:
        """Count a submission and refuse it with ``status`` (chaos bursts)."""
        self.counters.submits += 1
        self.received += 1
        return self._reject(pdu, status)

    def _congestion(self) -> tuple[Tlv, ...]:
        tlvs = self._resp_tlvs
        if tlvs is None:
            outstanding = self.received - self.stream.written
            level = min(99, outstanding * 100 // (self._window or self.sim.config.server.window))
            return (Tlv(Tag.congestion_state, bytes((level,))),)
        return tlvs

    def _count_and_admit(self) -> int:
        """Count a submission and admit it: 0, or the status to reject it with."""
        self.counters.submits += 1
        self.received += 1
        return self._admit() if self._limited else 0

    def _accept_id(self) -> tuple[int, str]:
        """Count an accepted submission; its number and message_id."""
        self.counters.accepted += 1
        number = self._next_id()
        return number, self._format_id(number)

    def _submit_sm(self, pdu: SubmitSm) -> _Answer:
        # The hot path: every line here is paid per message, so it inlines
        # ``_count_and_admit`` and ``_accept_id`` (which data_sm and submit_multi share).
        counters = self.counters
        counters.submits += 1
        self.received += 1
        if self._limited:
            status = self._admit()
            if status:
                return self._reject(pdu, status)
        number = self._next_id()
        message_id = self._format_id(number)
        counters.accepted += 1
        tlvs = self._resp_tlvs
        resp = SubmitSmResp(
            pdu.sequence_number, 0, message_id, tlvs if tlvs is not None else self._congestion()
        )
        ledger = self._ledger
        entry = -1 if ledger is None else self._record(ledger, pdu, number, pdu.destination_addr)
        if pdu.registered_delivery and self._receipts_on:
            dest = (pdu.dest_addr_ton, pdu.dest_addr_npi, pdu.destination_addr)
            outs, before = self._plan_receipts(pdu, number, message_id, dest, entry)
            if outs:
                return self._respond_with_receipts(resp, outs, before)
        if self._immediate:
            self.stream.queued += 1
            return resp
        return self._respond_later(resp)

    def _record(
        self, ledger: _ledger.Ledger, pdu: SubmitSm | DataSm | SubmitMulti, number: int, dest: str
    ) -> int:
        """The ledger row of an accepted message (to one destination)."""
        data = b"" if isinstance(pdu, DataSm) else pdu.short_message
        if not data:
            payload = pdu.tlv(_MESSAGE_PAYLOAD)
            if payload is not None:
                data = payload.value
        account = self.account
        assert account is not None
        return ledger.add(number, account.system_id, pdu.source_addr, dest, data)

    def _data_sm(self, pdu: DataSm) -> _Answer:
        status = self._count_and_admit()
        if status:
            return self._reject(pdu, status)
        number, message_id = self._accept_id()
        resp = DataSmResp(pdu.sequence_number, 0, message_id, self._congestion())
        ledger = self._ledger
        entry = -1 if ledger is None else self._record(ledger, pdu, number, pdu.destination_addr)
        if pdu.registered_delivery and self._receipts_on:
            dest = (pdu.dest_addr_ton, pdu.dest_addr_npi, pdu.destination_addr)
            outs, before = self._plan_receipts(pdu, number, message_id, dest, entry)
            if outs:
                return self._respond_with_receipts(resp, outs, before)
        return self._respond(resp)

    def _submit_multi(self, pdu: SubmitMulti) -> _Answer:
        status = self._count_and_admit()
        if status:
            return self._reject(pdu, status)
        number, message_id = self._accept_id()
        resp = SubmitMultiResp(pdu.sequence_number, 0, message_id, (), self._congestion())
        outs: list[tuple[float, Outbound]] = []
        before = False
        ledger = self._ledger
        for dest in pdu.dest_addresses:
            if not isinstance(dest, SmeAddress):
                continue
            entry = -1
            if ledger is not None:
                entry = self._record(ledger, pdu, number, dest.destination_addr)
            if pdu.registered_delivery and self._receipts_on:
                addr = (dest.dest_addr_ton, dest.dest_addr_npi, dest.destination_addr)
                more, early = self._plan_receipts(pdu, number, message_id, addr, entry)
                outs += more
                before = before or early
        if outs:
            return self._respond_with_receipts(resp, outs, before)
        return self._respond(resp)

    # ------------------------------------------------------------------ deliver_sm out

    @property
    def can_receive(self) -> bool:
        """Whether deliver_sm may be sent on this session now (bound RX/TRX, not ending)."""
        # Identity tests: hashing an Enum for a set lookup costs more, and this runs per receipt.
        state = self.conn.state
        return (
            (state is _BOUND_TRX or state is _BOUND_RX) and not self.closed and not self._dropping
        )

    @property
    def ready(self) -> bool:
        """Whether a deliver_sm would start at once (can receive, nothing waiting, room)."""
        return (
            self.can_receive
            and not self.pending
            and not self.stream.stalled
            and self.conn.window_free > 0
        )

    def deliver(self, out: Outbound) -> None:
        """Send a deliver_sm on this bind now if the window has room, else queue it here."""
        if not self.can_receive:
            self.sim.reroute(out)
        elif self.pending or self.stream.stalled or self.conn.window_free <= 0:
            self.pending.append(out)
        else:
            self._start(out)

    def start(self, out: Outbound) -> None:
        """Send a deliver_sm now (the caller checked ``ready``)."""
        self._start(out)

    def _start(self, out: Outbound) -> None:
        out.session = self
        try:
            self.driver.start_request(out.pdu, out)
        except WindowFull:
            self.pending.appendleft(out)
            return
        except (SessionClosedError, LocalProtocolError):
            # The session ended (or is unbinding) under us: let the simulator place it again.
            self.sim.reroute(out)
            return
        if out.entry >= 0:
            ledger = self._ledger
            if ledger is not None:
                ledger.sent(out.entry)
        if not out.sent:
            out.sent = True
            counters = out.account.counters
            kind = out.kind
            if kind == _RECEIPT:
                dlrs = counters.dlrs
                dlrs[out.stat] = dlrs.get(out.stat, 0) + 1
            elif kind == _INTERMEDIATE:
                inter = counters.intermediates
                inter[out.stat] = inter.get(out.stat, 0) + 1
            else:
                counters.mo_parts += 1
        elif out.dropped:
            out.dropped = False
            if out.kind == _RECEIPT:
                out.account.counters.dlrs_redelivered += 1
            elif out.kind == _MO:
                out.account.counters.mo_redelivered += 1

    def drain(self) -> None:
        """Start what waits for this bind, then what the store holds, while the window has
        room."""
        if not self.can_receive or self.stream.stalled:
            return
        pending = self.pending
        conn = self.conn
        while pending and conn.window_free > 0:
            self._start(pending.popleft())
            if not self.can_receive:
                return
        account = self.account
        if pending or account is None:
            return
        store = account.store
        if not store:
            return
        sim = self.sim
        expiry = sim.store_expiry
        now = anyio.current_time() if expiry is not None else 0.0
        while store and conn.window_free > 0 and self.can_receive:
            out = store.popleft()
            if expiry is not None and now - out.born >= expiry:
                sim.expire(out)
                continue
            self._start(out)

    # ------------------------------------------------------------------ binds

    def _bind(self, pdu: BindTransmitter) -> _Answer:
        sim = self.sim
        bind_type = _BIND_TYPES[type(pdu)]
        system_id = pdu.system_id
        account, status = sim.authenticate(system_id, pdu.password, bind_type)
        if status:
            counters = account.counters if account is not None else sim.stats.unbound
            failures = counters.bind_failures
            failures[status] = failures.get(status, 0) + 1
            sim.log_refusal(
                "bind refused", status, system_id=system_id, bind=bind_type, status=status
            )
            return self._failed_bind(pdu.response(status))
        assert account is not None
        tlvs: tuple[Tlv, ...] = ()
        version = sim.config.server.sc_interface_version
        if version is not None and pdu.interface_version >= INTERFACE_VERSION_34:
            tlvs = (Tlv(Tag.sc_interface_version, bytes((version,))),)
        # Sent here rather than returned: the session must be bound before parked receipts and
        # MO traffic can follow the bind response.
        self._queue(pdu.response(0, system_id=sim.config.server.system_id, tlvs=tlvs))
        self.account = account
        self.counters = account.counters
        self.bind_type = bind_type
        if pdu.interface_version < INTERFACE_VERSION_34:
            # A v3.3 ESME may not be sent TLVs (sheet 2.3, version negotiation).
            self._receipt_tlvs = False
            self._resp_tlvs = ()
        self._window = account.config.window
        self._window_status = account.window_status
        self._limited = (
            self._window is not None or sim.bursts is not None or account.bucket is not None
        )
        account.attach(self)
        self.counters.binds += 1
        self.counters.bind_total += 1
        sim.log_event("bound", system_id=system_id, bind=bind_type)
        if bind_type in _RECEIVES:
            sim.bound_receiver(self)
        return DEFERRED

    def _failed_bind(self, resp: Pdu) -> _Answer:
        """Answer a failed bind after the configured delay; close after too many."""
        server = self.sim.config.server
        self._failed_binds += 1
        limit = server.max_failed_binds
        close = limit is not None and self._failed_binds >= limit
        if server.failed_bind_delay <= 0 and not close:
            return resp
        due = self.stream.now + server.failed_bind_delay
        self.sim.scheduler.call_at(due, self._answer_failed_bind, (resp, close))
        return DEFERRED

    def _answer_failed_bind(self, arg: tuple[Pdu, bool]) -> None:
        resp, close = arg
        if self.closed or self.driver.closed:
            return
        self.driver.send_pdu(resp)
        if close:
            self.sim.stats.unbound.failed_bind_closes += 1
            # The bind response still goes out: the driver flushes before closing.
            self.driver.close(f"{self._failed_binds} failed binds on one connection")

    # ------------------------------------------------------------------ MO

    def schedule_mo(self, now: float) -> None:
        sim = self.sim
        sim.scheduler.call_at(now + sim.mo_interval(), self._mo_tick)

    def _mo_tick(self, _: object) -> None:
        sim = self.sim
        if self.closed or self.driver.closed:
            return
        limit = sim.config.mo.count
        if limit is not None and self._mo_sent >= limit:
            return
        self._mo_sent += 1
        account = self.account
        assert account is not None
        for out in sim.mo_outbounds(account, sim.next_mo_text()):
            self.deliver(out)
        self.schedule_mo(anyio.current_time())


# AccountState and Outbound live in .outbound; imported from here too.
__all__ = ["AccountState", "Outbound", "SmscSession"]
