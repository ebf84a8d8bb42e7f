"""The SMPP session as a sans-IO state machine, for both roles (ESME and SMSC).

``receive_data`` buffers bytes and turns complete PDUs into events; ``next_event`` hands them out;
``send`` encodes a PDU into the outgoing buffer and returns its sequence number;
``data_to_send`` drains that buffer. Time is passed in: ``handle_timer(now)`` fires response
timeouts, enquire_link and the session-init/inactivity timers, and ``next_deadline`` says when it
next needs calling. Nothing here reads a clock or touches a socket.

The session answers on its own what needs no application decision: enquire_link, unbind, requests
not allowed in the current state, and PDUs that do not decode. Everything else (deliver_sm,
submit_sm on the SMSC side, binds on the SMSC side) is an event the driver answers with
``send(event.pdu.response(...))`` — after persisting, if it wants at-least-once.

A peer that sends a second request under a sequence number it is still waiting on gets both
handed on (``DuplicateSequence`` then ``RequestReceived``) and both answered: the session keeps
every unanswered request, and each response answers one of those under its number.
"""

from __future__ import annotations

from collections import deque
from operator import attrgetter
from typing import Final

from ..codec.constants import MAX_SEQUENCE, RESPONSE_BIT, CommandId, CommandStatus
from ..codec.framing import Framer
from ..codec.pdus import (
    ENCODERS,
    EnquireLink,
    EnquireLinkResp,
    Pdu,
    UnbindResp,
    decode,
    error_response,
)
from ..errors import (
    LocalProtocolError,
    RemoteProtocolError,
    WindowFull,
)
from .config import SessionConfig
from .events import (
    NEED_DATA,
    ConnectionClosed,
    DuplicateSequence,
    Event,
    ProtocolErrorReceived,
    RequestReceived,
    RequestRejected,
    ResponseReceived,
    ResponseTimedOut,
    StateChanged,
    UnbindReceived,
    UnexpectedResponse,
    _NeedData,
)
from .state import (
    BIND_STATES,
    BOUND_STATES,
    PERMISSIONS,
    UNWINDOWED,
    Role,
    State,
)

C = CommandId
# Plain ints: compared on every PDU, and an IntEnum member costs an attribute lookup.
_ENQUIRE = int(C.enquire_link)
_UNBIND = int(C.unbind)
_GENERIC_NACK = int(C.generic_nack)
_OUTBIND = int(C.outbind)
# Requests whose response changes the session (or is the session's own keepalive): every other
# response only settles its request.
_SESSION_REQUESTS = frozenset({_ENQUIRE, _UNBIND, *BIND_STATES})
_CLOSED = State.CLOSED  # an Enum member read through its class costs as much as a dict lookup
# The session_init timer runs until a bind arrives: from connect (OPEN), and through an outbind
# the ESME never answers (OUTBOUND; smpp-facts 9.1, v5.0 applicability).
_AWAITING_BIND = frozenset({State.OPEN, State.OUTBOUND})
# A bind here is a second bind on a bound (or binding) session: ESME_RALYBND, not RINVBNDSTS.
_HOLDS_BIND = BOUND_STATES | {State.BINDING, State.UNBINDING}


def _may_send(role: Role) -> dict[State, frozenset[int]]:
    """For each state, the requests ``role`` may send in it (``PERMISSIONS`` turned around)."""
    return {
        state: frozenset(cid for cid, rows in PERMISSIONS.items() if role in rows.get(state, ()))
        for state in State
    }


# One set lookup per PDU instead of two dict lookups and a set lookup.
_MAY_SEND: Final = {role: _may_send(role) for role in Role}
_NOTHING: Final[frozenset[int]] = frozenset()


class _Outstanding:
    """A request awaiting its response, queued in the FIFO of its timeout until settled."""

    __slots__ = ("deadline", "order", "pdu", "queue", "seq", "settled", "windowed")

    def __init__(  # noqa: PLR0917 - built once per request: positional is cheaper
        self,
        pdu: Pdu,
        seq: int,
        deadline: float,
        order: int,
        windowed: bool,
        queue: deque[_Outstanding],
    ) -> None:
        self.pdu = pdu
        self.seq = seq
        self.deadline = deadline
        self.order = order  # send order: breaks ties between equal deadlines
        self.windowed = windowed
        self.queue = queue
        self.settled = False  # answered, timed out: no longer in ``_outstanding``


_EXPIRY_ORDER = attrgetter("deadline", "order")


class Connection:
    """One SMPP session, either end. See the module docstring for the protocol."""

    def __init__(
        self, role: Role, config: SessionConfig | None = None, *, now: float = 0.0
    ) -> None:
        self.role = role
        self.config = config or SessionConfig()
        self.state = State.OPEN
        self._framer = (
            Framer(self.config.max_command_length) if self.config.max_command_length else Framer()
        )
        self._now = now
        self._opened_at = now
        self._last_rx = now
        self._out: list[bytes] = []
        self._events: deque[Event] = deque()
        self._outstanding: dict[int, _Outstanding] = {}
        # Response deadlines, one FIFO per timeout value: requests sent with the same timeout
        # expire in the order they were sent, so each FIFO stays sorted by itself. Queuing a
        # request and dropping an answered one are O(1); a single heap cost O(log n) per
        # request and kept answered entries until the timer next ran (megabytes and a pause of
        # tens of milliseconds at 100k requests a second). Timeouts differ per request
        # (enquire_link's is shorter, callers pass their own), hence a FIFO per value.
        self._expiries: dict[float, deque[_Outstanding]] = {}
        self._requests_sent = 0
        self._windowed = 0
        self._next_seq = 1
        # Peer requests not yet answered: sequence number -> command_id. A peer may reuse a
        # number it is still waiting on (a protocol error, but both requests are real): the
        # command_ids of the second and later ones wait in ``_inbound_extra``, so the common
        # case stays one dict operation per request and per response.
        self._inbound: dict[int, int] = {}
        self._inbound_extra: dict[int, deque[int]] = {}
        self._bound_state: State | None = None  # the bound state kept through UNBINDING
        self._pending_bind: int | None = None  # command_id of the bind in flight
        self._enquire_seq: int | None = None
        self.closed_reason: str | None = None
        # What we may send, and what the peer may send, in the current state (see _set_state).
        self._may_send = _MAY_SEND[role]
        self._peer_may_send = _MAY_SEND[Role.SMSC if role is Role.ESME else Role.ESME]
        self._sendable = self._may_send[State.OPEN]
        self._acceptable = self._peer_may_send[State.OPEN]

    # ------------------------------------------------------------------ properties

    @property
    def window_free(self) -> int:
        """Window slots free for requests that count against the window."""
        return self.config.window - self._windowed

    @property
    def outstanding(self) -> int:
        """Requests sent and not yet answered (windowed or not)."""
        return len(self._outstanding)

    @property
    def inbound_pending(self) -> int:
        """Peer requests received and not yet answered (duplicated numbers counted each)."""
        extra = self._inbound_extra
        if extra:
            return len(self._inbound) + sum(map(len, extra.values()))
        return len(self._inbound)

    @property
    def bound(self) -> bool:
        return self.state in BOUND_STATES

    # ------------------------------------------------------------------ receiving

    def receive_data(self, data: bytes, now: float | None = None) -> None:
        """Feed received bytes; ``b""`` means the peer closed the connection."""
        if now is not None:
            self._now = now
        if self.state is State.CLOSED:
            return
        if not data:
            clean = self.state is State.UNBOUND
            self._close("peer closed the connection" if not clean else "unbound", clean=clean)
            return
        try:
            frames = self._framer.feed(data)
        except RemoteProtocolError as exc:
            self._protocol_error(exc)
            return
        if frames:
            self._last_rx = self._now
            for frame in frames:
                # Decode and route inline: this loop runs once per PDU.
                try:
                    pdu = decode(frame)
                except RemoteProtocolError as exc:
                    self._protocol_error(exc)
                else:
                    if pdu.command_id & RESPONSE_BIT:
                        self._handle_response(pdu)
                    else:
                        self._handle_request(pdu)
                if self.closed_reason is not None:
                    return
        # The framer hands out the good frames before a bad header and keeps the error for
        # its next feed; the peer may send nothing more, so answer and close now.
        if self._framer.error is not None:
            self._protocol_error(self._framer.error)

    def next_event(self) -> Event | _NeedData:
        """The next event, or ``NEED_DATA`` when more bytes (or a timer) are needed."""
        if self._events:
            return self._events.popleft()
        return NEED_DATA

    def events(self) -> list[Event]:
        """Every pending event at once (the batch form of ``next_event``)."""
        out = list(self._events)
        self._events.clear()
        return out

    def _handle_response(self, pdu: Pdu) -> None:
        seq = pdu.sequence_number
        cid = pdu.command_id
        entry = self._outstanding.get(seq)
        if entry is None or (cid != entry.pdu.command_id | RESPONSE_BIT and cid != _GENERIC_NACK):
            # Late, duplicated, or of the wrong type for this sequence: the request (if any)
            # stays outstanding.
            self._events.append(UnexpectedResponse(pdu))
            return
        del self._outstanding[seq]
        entry.settled = True
        # Responses mostly come in send order: this drops the entry just answered (and any
        # answered out of order behind it) from the front of its FIFO.
        queue = entry.queue
        while queue and queue[0].settled:
            queue.popleft()
        if entry.windowed:
            self._windowed -= 1
        request = entry.pdu
        rcid = request.command_id
        if rcid in _SESSION_REQUESTS:
            if rcid == _ENQUIRE and seq == self._enquire_seq:
                self._enquire_seq = None
                return
            if rcid in BIND_STATES:
                self._pending_bind = None
                if pdu.command_status == 0 and cid != _GENERIC_NACK:
                    self._set_state(BIND_STATES[rcid])
                else:
                    self._set_state(State.OPEN)
            elif rcid == _UNBIND:
                self._set_state(State.UNBOUND)
        self._events.append(ResponseReceived(request, pdu))

    def _handle_request(self, pdu: Pdu) -> None:
        cid = pdu.command_id
        seq = pdu.sequence_number
        if cid not in self._acceptable:
            self._reject(pdu)
            return
        if cid in _SESSION_REQUESTS or cid == _OUTBIND:
            if cid == _ENQUIRE:
                self._queue(EnquireLinkResp(seq), seq)
                return
            if cid == _UNBIND:
                self._queue(UnbindResp(seq), seq)
                self._set_state(State.UNBOUND)
                self._events.append(UnbindReceived(pdu))
                return
            if cid in BIND_STATES:
                self._pending_bind = cid
                self._set_state(State.BINDING)
            else:
                self._set_state(State.OUTBOUND)
        if pdu.response_type is not None:
            inbound = self._inbound
            if seq not in inbound:
                inbound[seq] = cid
            else:
                # The peer reused a number it is still waiting on: keep both, say so. (A deque:
                # a peer using one number for everything costs O(1) per request, not O(n).)
                extra = self._inbound_extra.get(seq)
                if extra is None:
                    extra = self._inbound_extra[seq] = deque()
                extra.append(cid)
                self._events.append(DuplicateSequence(pdu))
        self._events.append(RequestReceived(pdu))

    def _reject(self, pdu: Pdu) -> None:
        cid = pdu.command_id
        if cid in BIND_STATES and self.state in _HOLDS_BIND:
            status = CommandStatus.ESME_RALYBND
        else:
            status = CommandStatus.ESME_RINVBNDSTS
        if pdu.response_type is not None:
            self._queue(pdu.response(status), pdu.sequence_number)
        self._events.append(RequestRejected(pdu, int(status)))

    def _protocol_error(self, exc: RemoteProtocolError) -> None:
        answer = error_response(exc)
        if answer is not None:
            self._queue(answer, answer.sequence_number)
        self._events.append(ProtocolErrorReceived(exc))
        if exc.fatal:
            self._close(f"framing lost: {exc}")

    # ------------------------------------------------------------------ sending

    def next_sequence(self) -> int:
        """Reserve the next free sequence number (1..0x7FFFFFFF, wrapping, skipping in-use)."""
        seq = self._next_seq
        outstanding = self._outstanding
        while seq in outstanding:
            seq = seq + 1 if seq < MAX_SEQUENCE else 1
        self._next_seq = seq + 1 if seq < MAX_SEQUENCE else 1
        return seq

    def send(self, pdu: Pdu, now: float | None = None, *, timeout: float | None = None) -> int:
        """Queue ``pdu`` for sending; return its sequence number.

        A request gets a fresh sequence number (its own is ignored) and a response deadline;
        a response must answer a request the peer sent and is still waiting on.
        Raises ``LocalProtocolError`` (nothing queued) when the PDU is not allowed now, and
        ``WindowFull`` when a windowed request finds every slot taken.
        """
        if now is not None:
            self._now = now
        cid = pdu.command_id
        if cid & RESPONSE_BIT:
            self._send_response(pdu)
            return pdu.sequence_number
        return self._send_request(pdu, timeout)

    def _send_request(self, pdu: Pdu, timeout: float | None) -> int:
        cid = pdu.command_id
        if cid not in self._sendable:
            raise LocalProtocolError(
                f"{self.role.value} may not send {pdu.command_name} in state {self.state.value}",
                command_status=CommandStatus.ESME_RINVBNDSTS,
                command_id=cid,
            )
        windowed = cid not in UNWINDOWED
        if windowed and self._windowed >= self.config.window:
            raise WindowFull(
                f"window of {self.config.window} is full",
                command_status=CommandStatus.ESME_RMSGQFUL,
            )
        outstanding = self._outstanding
        seq = self._next_seq
        if seq in outstanding:
            seq = self.next_sequence()  # wrapped round onto a request still outstanding
        else:
            self._next_seq = seq + 1 if seq < MAX_SEQUENCE else 1
        data = ENCODERS[type(pdu)](pdu, seq)
        if pdu.response_type is not None:
            if timeout is None:
                timeout = (
                    self.config.enquire_link_timeout
                    if cid == _ENQUIRE
                    else self.config.response_timeout
                )
            deadline = self._now + timeout
            queue = self._expiries.get(timeout)
            if queue is None:
                queue = self._expiries[timeout] = deque()
            self._requests_sent += 1
            entry = _Outstanding(pdu, seq, deadline, self._requests_sent, windowed, queue)
            outstanding[seq] = entry
            if queue and deadline < queue[-1].deadline:
                _insert_sorted(queue, entry)  # the caller's clock went back
            else:
                queue.append(entry)
            if windowed:
                self._windowed += 1
        self._out.append(data)
        if cid in _SESSION_REQUESTS or cid == _OUTBIND:
            if cid in BIND_STATES:
                self._pending_bind = cid
                self._set_state(State.BINDING)
            elif cid == _UNBIND:
                self._set_state(State.UNBINDING)
            elif cid == _OUTBIND:
                self._set_state(State.OUTBOUND)
        return seq

    def _send_response(self, pdu: Pdu) -> None:
        seq = pdu.sequence_number
        cid = pdu.command_id
        if self.state is _CLOSED:
            raise LocalProtocolError("the session is closed", command_id=cid)
        request = self._inbound.get(seq)
        if cid != _GENERIC_NACK and (request is None or cid != request | RESPONSE_BIT):
            extra = self._inbound_extra.get(seq)
            if extra is None or cid & ~RESPONSE_BIT not in extra:
                raise LocalProtocolError(
                    f"{pdu.command_name} {seq} answers no request the peer is waiting on",
                    command_id=cid,
                    sequence_number=seq,
                )
            data = ENCODERS[type(pdu)](pdu, seq)  # may raise FieldError: nothing changes then
            self._out.append(data)
            # It answers one of the later requests under this number (never a bind: a second
            # bind is refused by the state table before it gets here).
            extra.remove(cid & ~RESPONSE_BIT)
            if not extra:
                del self._inbound_extra[seq]
            return
        data = ENCODERS[type(pdu)](pdu, seq)  # may raise FieldError: nothing changes then
        self._out.append(data)
        if request is not None:
            extra = self._inbound_extra.get(seq) if self._inbound_extra else None
            if extra is None:
                del self._inbound[seq]
            else:
                # The next request under this number moves up.
                self._inbound[seq] = extra.popleft()
                if not extra:
                    del self._inbound_extra[seq]
            if request in BIND_STATES:
                self._pending_bind = None
                if pdu.command_status == 0 and cid != _GENERIC_NACK:
                    self._set_state(BIND_STATES[request])
                else:
                    self._set_state(State.OPEN)

    def _queue(self, pdu: Pdu, seq: int) -> None:
        """Queue an automatic answer (not tracked as an inbound request)."""
        self._out.append(ENCODERS[type(pdu)](pdu, seq))

    @property
    def has_data_to_send(self) -> bool:
        return bool(self._out)

    def data_to_send(self) -> bytes:
        """Everything queued since the last call, as one buffer (for one ``send_all``)."""
        out = self._out
        if not out:
            return b""
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        return data

    def pdus_to_send(self) -> list[bytes]:
        """Everything queued since the last call, one ``bytes`` per PDU (for a write each)."""
        out = self._out
        self._out = []
        return out

    def send_failed(self, reason: str = "transport failed") -> None:
        """The driver could not deliver our bytes: the session is over."""
        self._out.clear()
        self._close(reason)

    def close(self, reason: str = "closed locally") -> None:
        """End the session without the unbind handshake (or after it)."""
        self._close(reason, clean=self.state is State.UNBOUND)

    # ------------------------------------------------------------------ timers

    def next_deadline(self) -> float | None:
        """When ``handle_timer`` must next be called, or None when no timer runs."""
        if self.state is State.CLOSED:
            return None
        best: float | None = None
        expiries = self._expiries
        for timeout, queue in list(expiries.items()):
            while queue and queue[0].settled:
                queue.popleft()
            if not queue:
                del expiries[timeout]  # nothing outstanding with this timeout
            elif best is None or queue[0].deadline < best:
                best = queue[0].deadline
        cfg = self.config
        state = self.state
        if state in BOUND_STATES:
            if cfg.enquire_link_interval is not None and self._enquire_seq is None:
                due = self._last_rx + cfg.enquire_link_interval
                best = due if best is None or due < best else best
            if cfg.inactivity_timeout is not None:
                due = self._last_rx + cfg.inactivity_timeout
                best = due if best is None or due < best else best
        elif state in _AWAITING_BIND and cfg.session_init_timeout is not None:
            due = self._opened_at + cfg.session_init_timeout
            best = due if best is None or due < best else best
        return best

    def handle_timer(self, now: float) -> None:
        """Fire every timer due at ``now``: response timeouts, enquire_link, session timers."""
        self._now = now
        if self.state is State.CLOSED:
            return
        outstanding = self._outstanding
        due: list[_Outstanding] = []
        for queue in self._expiries.values():
            while queue and queue[0].deadline <= now:
                entry = queue.popleft()
                if not entry.settled:
                    due.append(entry)
        # Across FIFOs, in deadline order (send order on ties), as the requests are due.
        due.sort(key=_EXPIRY_ORDER)
        for entry in due:
            seq = entry.seq
            entry.settled = True
            del outstanding[seq]
            if entry.windowed:
                self._windowed -= 1
            cid = entry.pdu.command_id
            if seq == self._enquire_seq:
                # Our own keepalive went unanswered: the link is dead. (An enquire_link the
                # driver sent itself times out like any request below.)
                self._enquire_seq = None
                self._close("no enquire_link_resp within the enquire_link timeout")
                return
            if cid in BIND_STATES:
                self._pending_bind = None
                self._set_state(State.OPEN)
            elif cid == _UNBIND:
                self._set_state(State.UNBOUND)
            self._events.append(ResponseTimedOut(entry.pdu, seq))
        cfg = self.config
        state = self.state
        if state in BOUND_STATES:
            idle = now - self._last_rx
            if cfg.inactivity_timeout is not None and idle >= cfg.inactivity_timeout:
                self._close(f"no PDU from the peer for {idle:.1f}s (inactivity timeout)")
                return
            if (
                cfg.enquire_link_interval is not None
                and self._enquire_seq is None
                and idle >= cfg.enquire_link_interval
            ):
                self._enquire_seq = self._send_request(EnquireLink(), None)
        elif (
            state in _AWAITING_BIND
            and cfg.session_init_timeout is not None
            and now - self._opened_at >= cfg.session_init_timeout
        ):
            self._close("no bind within the session init timeout")

    # ------------------------------------------------------------------ internals

    def _set_state(self, new: State) -> None:
        old = self.state
        if old is new:
            return
        if new in BOUND_STATES:
            self._bound_state = new
        elif new is State.OPEN or new is State.CLOSED:
            self._bound_state = None
        self.state = new
        self._sendable = self._may_send[new]
        # While our unbind is in flight the peer may still send what the bind allowed.
        peer_state = self._bound_state if new is State.UNBINDING else new
        self._acceptable = _NOTHING if peer_state is None else self._peer_may_send[peer_state]
        if new is State.OPEN:
            self._opened_at = self._now
        self._events.append(StateChanged(old, new))

    def _close(self, reason: str, *, clean: bool = False) -> None:
        if self.state is State.CLOSED:
            return
        # Every request the driver sent is listed; only the session's own keepalive is not.
        leftover = tuple(
            (seq, e.pdu) for seq, e in self._outstanding.items() if seq != self._enquire_seq
        )
        self._outstanding.clear()
        self._expiries.clear()
        self._windowed = 0
        self._inbound.clear()
        self._inbound_extra.clear()
        self._enquire_seq = None
        self._pending_bind = None
        self.closed_reason = reason
        self._set_state(State.CLOSED)
        self._events.append(ConnectionClosed(reason, leftover, clean))


def _insert_sorted(queue: deque[_Outstanding], entry: _Outstanding) -> None:
    """Put ``entry`` in deadline order, after any equal deadline (rare: see _send_request)."""
    i = len(queue)
    while i and queue[i - 1].deadline > entry.deadline:
        i -= 1
    queue.insert(i, entry)


__all__ = ["Connection", "SessionConfig", "WindowFull"]
