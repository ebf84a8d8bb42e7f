"""The per-request faults of a simulated session: close after N PDUs, stalls, garbled bytes,
a drop at a submit (half-close, linger) and the chaos profile's per-submit decisions. A mixin
of ``SmscSession``: the request path checks one flag, then calls these as plain methods."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, cast

import anyio
import anyio.abc

from ..codec.constants import CommandId
from ..codec.pdus import DataSm, Pdu, SubmitMulti, SubmitSm
from ..driver.driver import DEFERRED, Deferred, Driver
from ..session import Connection
from .outbound import AccountState
from .stats import Counters
from .stream import SessionStream

if TYPE_CHECKING:
    from .server import Simulator
    from .smsc import SmscSession

C = CommandId

_Answer = Pdu | Deferred | None  # what an inline handler returns (see Driver)
_SUBMITS: Final = frozenset({SubmitSm, DataSm, SubmitMulti})

# Garbled PDUs for the ``garble`` fault (sequence numbers patched in when sent).
_GARBLE_HEADERS: Final[dict[str, tuple[int, int]]] = {
    "command_id": (16, 0x000000F0),  # a reserved command_id: the ESME answers generic_nack
    "length": (8, C.deliver_sm),  # command_length below the header: framing is lost
}


class SessionFaults:
    """The fault half of ``SmscSession`` (which sets everything declared here)."""

    sim: Simulator
    stream: SessionStream
    conn: Connection
    driver: Driver
    counters: Counters
    account: AccountState | None
    closed: bool
    pdus: int
    submits_seen: int
    _tg: anyio.abc.TaskGroup | None
    _aborting: bool
    _dropping: bool
    _held: list[Pdu]
    _outside_reader: bool
    _handlers: dict[type[Pdu], Callable[[Any], _Answer]]
    _other: Callable[[Pdu], _Answer]
    abort: Callable[[str], None]
    drain: Callable[[], None]

    def _fault(self, pdu: Pdu) -> _Answer | None:
        """Apply the per-request faults: None to go on, else the answer (``DEFERRED`` when the
        request is taken: held, ignored, or never answered)."""
        if self._aborting:
            return DEFERRED
        if self._dropping:
            self.counters.ignored_after_drop += 1
            return DEFERRED
        faults = self.sim.config.faults
        n = self.pdus
        if faults.close_after_pdus is not None and n >= faults.close_after_pdus:
            self.counters.fault_closes += 1
            self.abort(f"fault: close after {faults.close_after_pdus} PDUs")
            return DEFERRED
        stream = self.stream
        if faults.stall_after_pdus is not None and n == faults.stall_after_pdus:
            self.counters.stalls += 1
            stream.stall()
            if faults.stall_for is not None:
                self.sim.scheduler.call_at(stream.now + faults.stall_for, self._end_stall)
        if stream.stalled:
            self._held.append(pdu)
            return DEFERRED
        if faults.garble_after_pdus is not None and n == faults.garble_after_pdus:
            self.counters.garbled += 1
            stream.inject(self._garbage(faults.garble))
        if type(pdu) in _SUBMITS:
            return self._submit_fault(pdu)
        return None

    def _submit_fault(self, pdu: Pdu) -> _Answer | None:
        """The faults decided per submit: drop_at_submit, then chaos."""
        self.submits_seen += 1
        drop_at = self.sim.config.faults.drop_at_submit
        if drop_at is not None and self.submits_seen >= drop_at:
            self.drop(self.sim.config.faults.drop_mode, f"fault: dropped at submit {drop_at}")
            self.counters.ignored_after_drop += 1
            return DEFERRED
        chaos = self.sim.chaos
        if chaos is not None:
            # This mixin's self is the SmscSession: so named for the type checker.
            return chaos.on_submit(cast("SmscSession", self), pdu)
        return None

    def stall_for(self, seconds: float) -> None:
        """Stop reading and writing for ``seconds`` (what was read is held, then answered)."""
        self.counters.stalls += 1
        self.stream.stall()
        self.sim.scheduler.call_at(self.stream.now + seconds, self._end_stall)

    def drop(self, mode: str, reason: str) -> None:
        """Stop answering: flush the answers produced so far, half-close the socket, and
        (``close`` mode) destroy it after ``faults.drop_linger`` seconds; everything that
        arrives meanwhile is ignored."""
        if self._dropping or self._aborting or self.closed:
            return
        self._dropping = True
        self.counters.fault_drops += 1
        # Everything answered up to here leaves; nothing queued later will.
        data = self.conn.data_to_send()
        self.stream.mute()
        if self._tg is not None:
            self._tg.start_soon(self._half_close, data, mode, reason)

    async def _half_close(self, data: bytes, mode: str, reason: str) -> None:
        try:
            await self.stream.send_last(data)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            self.abort(f"{reason} (the socket failed)")
            return
        if mode == "close":
            await anyio.sleep(self.sim.config.faults.drop_linger)
            self.abort(reason)

    def _end_stall(self, _: object) -> None:
        if self.closed:
            return
        self.stream.resume()
        self.stream.now = anyio.current_time()
        held = self._held
        self._held = []
        self._outside_reader = True
        try:
            for pdu in held:
                if self.driver.closed:
                    break
                answer: _Answer | None = None
                if self._dropping or self._aborting:
                    if not self._aborting:
                        self.counters.ignored_after_drop += 1
                    continue
                if type(pdu) in _SUBMITS:
                    answer = self._submit_fault(pdu)
                if answer is None:
                    handler = self._handlers.get(type(pdu))
                    answer = handler(pdu) if handler is not None else self._other(pdu)
                if isinstance(answer, Pdu):
                    self.driver.send_pdu(answer)
        finally:
            self._outside_reader = False
        self.drain()
        account = self.account
        if account is not None and account.store:
            account.pump()

    def _garbage(self, kind: str) -> bytes:
        seq = self.conn.next_sequence()
        if kind == "body":
            # A deliver_sm whose service_type never ends: the body cannot be read.
            body = b"GARBLED-NO-NUL!!"
            return (
                (16 + len(body)).to_bytes(4)
                + C.deliver_sm.to_bytes(4)
                + bytes(4)
                + (seq.to_bytes(4) + body)
            )
        length, command_id = _GARBLE_HEADERS[kind]
        return length.to_bytes(4) + command_id.to_bytes(4) + bytes(4) + seq.to_bytes(4)


__all__ = ["SessionFaults"]
