"""A tiny HTTP/1.1 server for ``/metrics``, ``/healthz`` and ``/readyz``: anyio streams, h11
for the protocol.

Each route is an async function returning ``(status, content_type, body)``. Only GET (and
HEAD, which answers like GET without the body) is served; other methods get 405, unknown paths
404. Connections are kept alive. Every connection runs in its own task with deadlines on
reading a request, writing the response and running the handler, and requests are bounded in
size, so a slow or hostile client costs one task and a socket, never the others' service.
"""

from __future__ import annotations

import errno
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Final

import anyio
import anyio.abc
import h11
import structlog

__all__ = ["Route", "serve_http"]

log = structlog.get_logger("smpp_bridge.bridge.http")

#: A route handler: ``(status, content_type, body)``.
Route = Callable[[], Awaitable[tuple[int, str, bytes]]]

_TEXT: Final = "text/plain; charset=utf-8"
_READ_CHUNK: Final = 65536
# Accept errors that mean "out of resources for now": wait a little and accept again.
_RETRY_ACCEPT: Final = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}


@dataclass(frozen=True, slots=True)
class _Limits:
    max_request_size: int
    idle_timeout: float
    request_timeout: float
    handler_timeout: float


class _Close(Exception):
    """End this connection (the peer went away, broke the protocol or was too slow)."""


async def serve_http(
    host: str,
    port: int,
    routes: Mapping[str, Route],
    *,
    max_request_size: int = 16384,
    idle_timeout: float = 30.0,
    request_timeout: float = 10.0,
    handler_timeout: float = 10.0,
    max_connections: int = 256,
    task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``routes`` (exact paths; a query string is ignored) on ``host:port`` until
    cancelled. ``task_status.started`` gets the bound port (useful with port 0).

    ``max_request_size`` bounds the request head and body in bytes; ``idle_timeout`` how long
    a kept-alive connection may wait for its next request; ``request_timeout`` how long a
    started request may take to arrive (and its response to be written); ``handler_timeout``
    how long a handler may run before the client gets 503. Connections beyond
    ``max_connections`` are closed at once.
    """
    for name, value in (
        ("max_request_size", max_request_size),
        ("idle_timeout", idle_timeout),
        ("request_timeout", request_timeout),
        ("handler_timeout", handler_timeout),
        ("max_connections", max_connections),
    ):
        if not value > 0:
            raise ValueError(f"{name} must be positive, got {value!r}")
    for path in routes:
        if not path.startswith("/"):
            raise ValueError(f"route paths must start with '/', got {path!r}")
    limits = _Limits(max_request_size, idle_timeout, request_timeout, handler_timeout)
    table = dict(routes)
    listener = await anyio.create_tcp_listener(local_host=host, local_port=port)
    bound = listener.extra(anyio.abc.SocketAttribute.local_port)
    active = 0

    async def handle(stream: anyio.abc.SocketStream) -> None:
        nonlocal active
        try:
            await _serve_connection(stream, table, limits)
        finally:
            active -= 1

    async def accept_loop(sub: anyio.abc.SocketListener, tg: anyio.abc.TaskGroup) -> None:
        nonlocal active
        while True:
            try:
                stream = await sub.accept()
            except OSError as exc:
                if exc.errno not in _RETRY_ACCEPT:
                    raise
                log.warning("http_accept_failed", error=str(exc))
                await anyio.sleep(0.1)
                continue
            if active >= max_connections:
                log.warning("http_too_many_connections", limit=max_connections)
                await stream.aclose()
                continue
            active += 1
            tg.start_soon(handle, stream)

    async with listener, anyio.create_task_group() as tg:
        for sub in listener.listeners:
            # create_tcp_listener makes one socket listener per address family.
            assert isinstance(sub, anyio.abc.SocketListener)
            tg.start_soon(accept_loop, sub, tg)
        log.info("http_listening", host=host, port=bound, paths=sorted(table))
        task_status.started(bound)


async def _serve_connection(
    stream: anyio.abc.ByteStream, routes: Mapping[str, Route], limits: _Limits
) -> None:
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=limits.max_request_size)
    try:
        async with stream:
            while True:
                try:
                    request = await _read_request(stream, conn, limits)
                except h11.RemoteProtocolError as exc:
                    if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                        status = exc.error_status_hint
                        body = f"bad request: {exc}\n".encode()
                        await _respond(
                            stream,
                            conn,
                            limits,
                            status=status,
                            content_type=_TEXT,
                            body=body,
                            close=True,
                        )
                    return
                if request is None:
                    return
                status, content_type, body, extra = await _dispatch(request, routes, limits)
                if request.method == b"HEAD":
                    body_out = b""
                    length = len(body)
                else:
                    body_out = body
                    length = None
                await _respond(
                    stream,
                    conn,
                    limits,
                    status=status,
                    content_type=content_type,
                    body=body_out,
                    extra=extra,
                    length=length,
                )
                if conn.our_state is h11.MUST_CLOSE or conn.their_state is not h11.DONE:
                    return
                conn.start_next_cycle()
    except _Close:
        return
    except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
        log.debug("http_connection_error", error=repr(exc))


async def _receive(stream: anyio.abc.ByteStream, conn: h11.Connection) -> None:
    try:
        data = await stream.receive(_READ_CHUNK)
    except anyio.EndOfStream:
        data = b""
    conn.receive_data(data)


async def _read_request(
    stream: anyio.abc.ByteStream, conn: h11.Connection, limits: _Limits
) -> h11.Request | None:
    """The next complete request (its body read and discarded), or None when the client
    closed the connection between requests. Raises ``h11.RemoteProtocolError`` for a bad or
    oversized request and ``_Close`` for a client too slow to send it.

    Waiting for a request to start is bounded by ``idle_timeout``; once its first bytes are
    in, the whole request must arrive within ``request_timeout``.
    """
    request: h11.Request | None = None
    body_size = 0
    deadline = anyio.current_time() + limits.idle_timeout
    started = False
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            with anyio.CancelScope(deadline=deadline) as scope:
                await _receive(stream, conn)
            if scope.cancelled_caught:
                log.debug("http_client_too_slow", started=started)
                raise _Close
            if not started:
                started = True
                deadline = anyio.current_time() + limits.request_timeout
        elif isinstance(event, h11.Request):
            request = event
        elif isinstance(event, h11.Data):
            body_size += len(event.data)
            if body_size > limits.max_request_size:
                raise h11.RemoteProtocolError("request body too large", error_status_hint=413)
        elif isinstance(event, h11.EndOfMessage):
            return request
        elif isinstance(event, h11.ConnectionClosed):
            return None


async def _dispatch(
    request: h11.Request, routes: Mapping[str, Route], limits: _Limits
) -> tuple[int, str, bytes, list[tuple[bytes, bytes]]]:
    """(status, content type, body, extra headers) for one request."""
    if request.method not in (b"GET", b"HEAD"):
        return 405, _TEXT, b"method not allowed\n", [(b"allow", b"GET, HEAD")]
    path = request.target.split(b"?", 1)[0].decode("ascii", "replace")
    route = routes.get(path)
    if route is None:
        return 404, _TEXT, b"not found\n", []
    try:
        with anyio.fail_after(limits.handler_timeout):
            status, content_type, body = await route()
    except TimeoutError:
        log.warning("http_handler_timeout", path=path, timeout=limits.handler_timeout)
        return 503, _TEXT, b"handler timed out\n", []
    except Exception:
        log.exception("http_handler_failed", path=path)
        return 500, _TEXT, b"internal error\n", []
    return status, content_type, body, []


async def _respond(
    stream: anyio.abc.ByteStream,
    conn: h11.Connection,
    limits: _Limits,
    *,
    status: int,
    content_type: str,
    body: bytes,
    extra: list[tuple[bytes, bytes]] | None = None,
    length: int | None = None,
    close: bool = False,
) -> None:
    headers = [
        (b"content-type", content_type.encode()),
        (b"content-length", str(len(body) if length is None else length).encode()),
        (b"cache-control", b"no-store"),
        *(extra or ()),
    ]
    if close:
        headers.append((b"connection", b"close"))
    parts = [conn.send(h11.Response(status_code=status, headers=headers))]
    if body:
        parts.append(conn.send(h11.Data(data=body)))
    parts.append(conn.send(h11.EndOfMessage()))
    out = b"".join(part for part in parts if part)
    with anyio.move_on_after(limits.request_timeout) as slow:
        await stream.send(out)
    if slow.cancelled_caught:
        raise _Close
