"""The async driver: one sans-IO ``Connection`` over one anyio byte stream.

One reader task decodes every PDU of each receive and resolves waiters by sequence number; one
writer task sends everything queued since its last wake-up in a single ``send`` (callers only
queue bytes and poke it, so a burst of submits leaves as one write); a timer task feeds the
clock to the session; an inbound task runs the application's handler for peer requests and sends
the response only after the handler returns. The driver serves both ends: the client (ESME) and
the simulator (SMSC) use it alike.

Peers misbehave; the driver does not die of it. Whatever the peer sends becomes an answer, an
event and a counter (``protocol_errors``, ``duplicate_sequences``, ``unexpected``); an answer the
session refuses to send (``LocalProtocolError``, ``FieldError``) is dropped and counted
(``answers_dropped``), never raised out of the driver's tasks.

What was read is handed on: when the session closes, the reader, writer and timer stop, and the
inbound task still hands every peer request already read to the application's handler (their
answers can no longer be sent and are dropped), for at most ``close_drain_timeout`` seconds;
what is left then is abandoned and counted (``abandoned``). Cancelling ``run()`` from outside
stops everything at once.
"""

from __future__ import annotations

import enum
import math
import socket
from collections.abc import Awaitable, Callable
from typing import Final

import anyio
import anyio.abc
import structlog

from ..codec.constants import CommandStatus
from ..codec.pdus import Pdu
from ..errors import (
    CommandStatusError,
    LocalProtocolError,
    ResponseTimeoutError,
    SessionClosedError,
    WindowFull,
)
from ..session import (
    Connection,
    ConnectionClosed,
    DuplicateSequence,
    ProtocolErrorReceived,
    RequestReceived,
    RequestRejected,
    ResponseReceived,
    ResponseTimedOut,
    State,
    UnexpectedResponse,
)

# Called (synchronously, from the reader) when a request settles: (request, response, error).
Callback = Callable[[Pdu, Pdu | None, BaseException | None], None]
# The application's answer to a peer request: None (default OK response), a status, or a PDU.
RequestHandler = Callable[[Pdu], Awaitable[Pdu | int | None]]


class Deferred(enum.Enum):
    """The type of ``DEFERRED``."""

    DEFERRED = "deferred"


# An inline handler's answer meaning "taken: I answer it later myself (``send_pdu``) or never".
# The simulator uses it for delayed and dropped responses without a task per request.
DEFERRED: Final = Deferred.DEFERRED

# The batch form: every peer request of one receive at once (one store round trip per batch);
# returns one answer per request, in order, as for ``RequestHandler``.
BatchHandler = Callable[[list[Pdu]], Awaitable[list[Pdu | int | None]]]
# A synchronous first look at each peer request, inline in the reader (no task switch): return
# the response PDU to queue it at once, ``DEFERRED`` to take it over, or None to hand the
# request to the async handler.
InlineHandler = Callable[[Pdu], Pdu | Deferred | None]


class _Waiter:
    __slots__ = ("error", "event", "response")

    def __init__(self) -> None:
        self.event = anyio.Event()
        self.response: Pdu | None = None
        self.error: BaseException | None = None

    def __call__(self, request: Pdu, response: Pdu | None, error: BaseException | None) -> None:
        self.response = response
        self.error = error
        self.event.set()


def tune_socket(stream: anyio.abc.ByteStream) -> socket.socket | None:
    """Disable Nagle on the stream's socket; return the raw socket (None if not a socket)."""
    try:
        sock: socket.socket = stream.extra(anyio.abc.SocketAttribute.raw_socket)
    except anyio.TypedAttributeLookupError:
        return None
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock
    return None


log = structlog.get_logger("smpp_bridge.driver")

_QUICKACK = getattr(socket, "TCP_QUICKACK", None)
# Peer requests answered (by the per-request handler) between two yields: see _inbound.
# At most this many requests per batch_handler call (more queued wait for the next call).
_HANDLER_BATCH: Final = 1000
_CLOSED: Final = State.CLOSED  # (a global read per answer: cheaper than the Enum's attribute)
_ANSWER_RUN = 16


class Driver:
    """Runs a ``Connection`` over a byte stream. Use ``run()`` inside a task group."""

    def __init__(
        self,
        stream: anyio.abc.ByteStream,
        conn: Connection,
        *,
        on_request: RequestHandler | None = None,
        inline_handler: InlineHandler | None = None,
        batch_handler: BatchHandler | None = None,
        receive_size: int = 65536,
        write_per_pdu: bool = False,
        close_drain_timeout: float = 30.0,
    ) -> None:
        self.stream = stream
        self.conn = conn
        self.on_request = on_request
        self.inline_handler = inline_handler
        self.batch_handler = batch_handler
        self._receive_size = receive_size
        # Send each queued PDU in its own write instead of one write per wake-up: how some
        # peers write, so benchmarks and tests can play one (it costs a syscall per PDU).
        self.write_per_pdu = write_per_pdu
        # Once the session is over, how long the handlers may take over the peer requests
        # already read before ``run()`` gives up on them (see the module docstring).
        self.close_drain_timeout = close_drain_timeout
        self._callbacks: dict[int, Callback] = {}
        self._write_wanted = anyio.Event()
        self._write_signalled = False  # True: _write_wanted is set (others may set it too)
        self._window_event = anyio.Event()
        self._closed = anyio.Event()
        self._inbound_send, self._inbound_recv = anyio.create_memory_object_stream[list[Pdu]](
            math.inf
        )
        self._stopped = anyio.Event()
        self._raw_socket = tune_socket(stream)
        self._dispatching = False  # the reader is acting on a batch (see start_request)
        self.closed_reason: str | None = None
        self.unexpected: int = 0  # responses that matched nothing (late, duplicated)
        # Peer protocol errors: undecodable PDUs, requests not allowed in the state, and
        # requests under a sequence number already waiting on an answer (those are answered
        # and handed on like any other; ``duplicate_sequences`` counts them alone).
        self.protocol_errors: int = 0
        self.duplicate_sequences: int = 0
        # Answers the session refused to send (answering nothing outstanding, a field that does
        # not encode): dropped, the session goes on.
        self.answers_dropped: int = 0
        # Peer requests read but never handled to the end (the drain limit, or ``run()``
        # cancelled from outside while they waited).
        self.abandoned: int = 0
        self._requests_queued = 0  # peer requests handed to the inbound task
        self._requests_handled = 0  # ... whose handler has returned
        self.bytes_sent = 0
        self.writes = 0
        # The writer task and a final flush from ``run`` must not write at the same time.
        self._write_lock = anyio.Lock(fast_acquire=True)

    # ------------------------------------------------------------------ lifecycle

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Run the reader, writer, timer and inbound tasks until the session closes, then
        let the inbound task finish the peer requests already read (``close_drain_timeout``)."""
        try:
            async with anyio.create_task_group() as handlers:
                handlers.start_soon(self._inbound)
                async with anyio.create_task_group() as io:
                    io.start_soon(self._reader)
                    io.start_soon(self._writer)
                    io.start_soon(self._timer)
                    task_status.started()
                    await self._closed.wait()
                    # Last words (an unbind_resp, a generic_nack) go out before the socket
                    # closes.
                    with anyio.move_on_after(1.0, shield=True):
                        await self.flush()
                    io.cancel_scope.cancel()
                # Nothing more is read: the inbound task gets through what was, then ends.
                self._inbound_send.close()
                handlers.cancel_scope.deadline = anyio.current_time() + self.close_drain_timeout
        finally:
            if not self._closed.is_set():
                self.conn.close("driver stopped")
                self._dispatch()
            self._inbound_send.close()
            self._inbound_recv.close()
            left = self._requests_queued - self._requests_handled
            if left > 0:
                self.abandoned += left
                self._requests_handled = self._requests_queued
                log.warning("peer requests abandoned unhandled", count=left)
            try:
                with anyio.CancelScope(shield=True):
                    await self.stream.aclose()
            finally:
                self._stopped.set()

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    async def wait_closed(self) -> None:
        """Return once the session is over (the handlers may still be draining)."""
        await self._closed.wait()

    async def wait_stopped(self) -> None:
        """Return once ``run()`` has finished: the drain is done and the stream closed."""
        await self._stopped.wait()

    # ------------------------------------------------------------------ requests

    def start_request(
        self,
        pdu: Pdu,
        callback: Callback,
        *,
        timeout: float | None = None,
        now: float | None = None,
    ) -> int:
        """Queue a request now (no await); ``callback`` fires when it settles.

        ``now`` is a clock reading taken since the caller last awaited (a producer sending a
        run of requests reads the clock once for all of them); without it the clock is read
        here. Raises ``WindowFull`` if the window is full and ``LocalProtocolError`` if the PDU
        is not allowed in the current state; ``SessionClosedError`` once the session is over.
        """
        if self.closed_reason is not None:
            raise SessionClosedError(self.closed_reason)
        if now is None and not self._dispatching:
            # (While the reader dispatches a batch, the session already holds the time it read
            # for that batch: a receipt started from an inline handler needs no clock.)
            now = anyio.current_time()
        seq = self.conn.send(pdu, now, timeout=timeout)
        if pdu.response_type is not None:
            self._callbacks[seq] = callback
        if not self._write_signalled:
            # One set() per wake-up of the writer, not one per request.
            self._write_signalled = True
            self._write_wanted.set()
        return seq

    async def wait_window(self, slots: int = 1) -> None:
        """Return once ``slots`` window slots are free (at most the whole window); raises
        ``SessionClosedError`` if they never will be."""
        slots = min(slots, self.conn.config.window)
        while self.conn.window_free < slots:
            if self.closed_reason is not None:
                raise SessionClosedError(self.closed_reason)
            if self._window_event.is_set():
                self._window_event = anyio.Event()
            await self._window_event.wait()
        if self.closed_reason is not None:
            raise SessionClosedError(self.closed_reason)

    async def request(self, pdu: Pdu, *, timeout: float | None = None, check: bool = True) -> Pdu:
        """Send a request, wait for its response and return it.

        With ``check`` (the default) a non-zero command_status raises ``CommandStatusError``.
        """
        while True:
            await self.wait_window()
            waiter = _Waiter()
            try:
                self.start_request(pdu, waiter, timeout=timeout)
            except WindowFull:
                continue
            break
        await waiter.event.wait()
        if waiter.error is not None:
            raise waiter.error
        response = waiter.response
        assert response is not None
        if check and response.command_status != 0:
            raise CommandStatusError(response.command_status, pdu.command_name)
        return response

    def send_pdu(self, pdu: Pdu) -> None:
        """Queue a PDU that needs no waiter (a response, or a request whose answer is ignored)."""
        if self.closed_reason is not None:
            raise SessionClosedError(self.closed_reason)
        self.conn.send(pdu, anyio.current_time())
        self._write_wanted.set()

    async def flush(self) -> None:
        """Write whatever the session has queued, now, from the calling task."""
        data = self.conn.data_to_send()
        if data:
            await self._write(data)

    def close(self, reason: str = "closed locally") -> None:
        """End the session at once (outstanding requests fail with ``SessionClosedError``)."""
        self.conn.close(reason)
        self._dispatch()

    # ------------------------------------------------------------------ tasks

    async def _reader(self) -> None:
        conn = self.conn
        receive = self.stream.receive
        size = self._receive_size
        sock = self._raw_socket
        while self.closed_reason is None:
            try:
                data = await receive(size)
            except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
                data = b""
            except OSError as exc:
                conn.send_failed(f"receive failed: {exc}")
                self._dispatch()
                return
            if sock is not None and _QUICKACK is not None and data:
                # Answer the peer's segments at once: a peer that leaves Nagle on would
                # otherwise wait for our delayed ACK (40 ms stalls).
                try:
                    sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
                except OSError:
                    sock = None
            conn.receive_data(data, anyio.current_time())
            self._dispatching = True
            try:
                self._dispatch()
            finally:
                self._dispatching = False
            if not data:
                # End of stream: nothing more will come, whatever the session made of it.
                if self.closed_reason is None:
                    self.close("peer closed the connection")
                return

    async def _writer(self) -> None:
        conn = self.conn
        while True:
            await self._write_wanted.wait()
            self._write_wanted = anyio.Event()
            self._write_signalled = False
            if self.write_per_pdu:
                for pdu_bytes in conn.pdus_to_send():
                    await self._write(pdu_bytes)
            else:
                data = conn.data_to_send()
                if data:
                    await self._write(data)
            if conn.state is State.UNBOUND:
                # unbind and unbind_resp have both gone by: the session is over.
                self.close("unbound")
            if self.closed_reason is not None:
                return

    async def _write(self, data: bytes) -> None:
        try:
            async with self._write_lock:
                await self.stream.send(data)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, OSError) as exc:
            self.conn.send_failed(f"send failed: {exc!r}")
            self._dispatch()
            return
        self.bytes_sent += len(data)
        self.writes += 1

    async def _timer(self) -> None:
        conn = self.conn
        while True:
            deadline = conn.next_deadline()
            now = anyio.current_time()
            # Wake at least once a second so a request with a shorter timeout than the ones
            # already outstanding is still noticed in time.
            delay = 1.0 if deadline is None else min(max(deadline - now, 0.0), 1.0)
            await anyio.sleep(delay)
            conn.handle_timer(anyio.current_time())
            self._dispatch()
            if self.closed_reason is not None:
                return

    async def _inbound(self) -> None:
        receive_more = self._inbound_recv.receive_nowait
        async for batch in self._inbound_recv:
            if self.batch_handler is not None:
                # Everything that queued up while the handler last ran goes in one call: a
                # handler that awaits a store per call then pays once per burst, not once per
                # receive.
                while len(batch) < _HANDLER_BATCH:
                    try:
                        batch = batch + receive_more()
                    except (anyio.WouldBlock, anyio.EndOfStream, anyio.ClosedResourceError):
                        break
                batch_answers = await self._answer_batch(batch)
                self._requests_handled += len(batch)
                self._send_answers(batch_answers)
                continue
            # Request by request, in runs: each run's responses go out before the next run
            # starts, and the other tasks (the producer refilling the window, the writer) get
            # a turn in between, so the peer has work while we get through a burst of, say,
            # receipts (a tenth more throughput with receipts than answering the burst first).
            for start in range(0, len(batch), _ANSWER_RUN):
                if start:
                    await anyio.lowlevel.checkpoint()
                answers: list[Pdu | None] = []
                for pdu in batch[start : start + _ANSWER_RUN]:
                    answers.append(await self._answer(pdu))
                    self._requests_handled += 1
                self._send_answers(answers)

    def _send_answers(self, responses: list[Pdu | None]) -> None:
        if self.closed_reason is not None:
            return
        now = anyio.current_time()
        send = self.conn.send
        for response in responses:
            if response is not None:
                try:
                    send(response, now)
                except LocalProtocolError as exc:
                    self._answer_dropped(response, exc)
        self._write_wanted.set()

    def _answer_dropped(self, response: Pdu, exc: LocalProtocolError) -> None:
        """The session would not send ``response`` (it answers nothing the peer waits on, or
        a field does not encode): drop that one answer, keep the session."""
        self.answers_dropped += 1
        log.warning(
            "answer dropped",
            command=response.command_name,
            sequence_number=response.sequence_number,
            error=str(exc),
        )

    async def _answer_batch(self, batch: list[Pdu]) -> list[Pdu | None]:
        assert self.batch_handler is not None
        try:
            results = await self.batch_handler(batch)
            if len(results) != len(batch):
                raise ValueError(f"{len(results)} answers to {len(batch)} requests")
        except Exception as exc:
            # The application failed: ask the peer to retry every one later, lose none.
            log.warning("batch handler failed", count=len(batch), error=repr(exc))
            results = [CommandStatus.ESME_RX_T_APPN] * len(batch)
        out: list[Pdu | None] = []
        for pdu, result in zip(batch, results, strict=True):
            if pdu.response_type is None:
                out.append(None)
            elif result is None:
                out.append(pdu.response())
            elif isinstance(result, int):
                out.append(pdu.response(result))
            else:
                out.append(result)
        return out

    async def _answer(self, pdu: Pdu) -> Pdu | None:
        if pdu.response_type is None:
            if self.on_request is not None:
                try:
                    await self.on_request(pdu)
                except Exception as exc:
                    # Nothing to answer (alert_notification, outbind): the PDU was seen.
                    log.warning("handler failed", command=pdu.command_name, error=repr(exc))
            return None
        if self.on_request is None:
            return pdu.response()
        try:
            result = await self.on_request(pdu)
        except Exception:
            # The application failed: ask the peer to retry later rather than lose the PDU.
            return pdu.response(CommandStatus.ESME_RX_T_APPN)
        if result is None:
            return pdu.response()
        if isinstance(result, int):
            return pdu.response(result)
        return result

    # ------------------------------------------------------------------ events

    def _dispatch(self) -> None:
        """Act on every event the session produced (runs in whichever task fed it)."""
        inbound: list[Pdu] | None = None
        callbacks = self._callbacks
        freed = False
        inline = self.inline_handler
        send = self.conn.send
        for event in self.conn.events():
            if isinstance(event, ResponseReceived):
                freed = True
                cb = callbacks.pop(event.response.sequence_number, None)
                if cb is not None:
                    cb(event.request, event.response, None)
            elif isinstance(event, RequestReceived):
                pdu = event.pdu
                if inline is not None:
                    try:
                        answer = inline(pdu)
                    except Exception as exc:
                        # Our bug, but the peer chose the PDU: answer "retry later", go on.
                        log.warning(
                            "inline handler failed", command=pdu.command_name, error=repr(exc)
                        )
                        answer = (
                            pdu.response(CommandStatus.ESME_RX_T_APPN)
                            if pdu.response_type is not None
                            else DEFERRED
                        )
                    if answer is not None:
                        # (Read in the same receive as what closed the session, the request
                        # was still handed on; its answer can no longer go out.)
                        if answer is not DEFERRED and self.conn.state is not _CLOSED:
                            try:
                                send(answer)
                            except LocalProtocolError as exc:
                                self._answer_dropped(answer, exc)
                        continue
                if inbound is None:
                    inbound = []
                inbound.append(pdu)
            elif isinstance(event, ResponseTimedOut):
                freed = True
                cb = callbacks.pop(event.sequence_number, None)
                if cb is not None:
                    request = event.request
                    cb(
                        request,
                        None,
                        ResponseTimeoutError(request.command_name, event.sequence_number),
                    )
            elif isinstance(event, ConnectionClosed):
                self._on_closed(event)
            elif isinstance(event, UnexpectedResponse):
                self.unexpected += 1
            elif isinstance(event, ProtocolErrorReceived | RequestRejected):
                self.protocol_errors += 1
            elif isinstance(event, DuplicateSequence):
                # Both requests are handed on and answered; the peer's mistake is counted.
                self.protocol_errors += 1
                self.duplicate_sequences += 1
                log.warning(
                    "duplicate sequence number from the peer",
                    command=event.pdu.command_name,
                    sequence_number=event.pdu.sequence_number,
                )
            # StateChanged and UnbindReceived need no action here: the unbind_resp is queued
            # and the peer closes after reading it.
        if inbound:
            try:
                self._inbound_send.send_nowait(inbound)
            except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                # Only after ``run()`` has stopped handling (the session closed before these
                # were read, so this should not happen): counted, not raised.
                self.abandoned += len(inbound)
            else:
                self._requests_queued += len(inbound)
        if freed:
            self._window_event.set()
        if self.conn.has_data_to_send or self.conn.state is State.UNBOUND:
            self._write_wanted.set()

    def _on_closed(self, event: ConnectionClosed) -> None:
        self.closed_reason = event.reason
        error = SessionClosedError(event.reason)
        callbacks = self._callbacks
        self._callbacks = {}
        for seq, request in event.outstanding:
            cb = callbacks.pop(seq, None)
            if cb is not None:
                cb(request, None, error)
        self._window_event.set()
        self._write_wanted.set()
        # The inbound stream stays open: requests of this same batch of events (read before
        # the close) still go to the handlers; ``run()`` closes it once nothing more is read.
        self._closed.set()
