"""The metrics/health HTTP server over real TCP: routes, status codes, keep-alive and
pipelining, HEAD, size limits, and clients that are slow, idle or too many."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import anyio
import anyio.abc
import httpx
import pytest

from smpp_bridge.bridge.http import Route, serve_http
from smpp_bridge.bridge.metrics import CONTENT_TYPE, Metrics

pytestmark = pytest.mark.anyio


class App:
    def __init__(self) -> None:
        self.metrics = Metrics()
        self.ready = False
        self.calls = 0

    def routes(self) -> dict[str, Route]:
        async def metrics() -> tuple[int, str, bytes]:
            self.calls += 1
            return 200, CONTENT_TYPE, self.metrics.render()

        async def healthz() -> tuple[int, str, bytes]:
            return 200, "application/json", b'{"status":"ok"}'

        async def readyz() -> tuple[int, str, bytes]:
            if self.ready:
                return 200, "application/json", b'{"ready":true}'
            body = json.dumps({"ready": False, "reason": "no bind is up"}).encode()
            return 503, "application/json", body

        async def boom() -> tuple[int, str, bytes]:
            raise RuntimeError("handler bug")

        async def slow() -> tuple[int, str, bytes]:
            await anyio.sleep_forever()
            raise AssertionError("unreachable")

        return {"/metrics": metrics, "/healthz": healthz, "/readyz": readyz, "/boom": boom,
                "/slow": slow}  # fmt: skip


@asynccontextmanager
async def running(routes: Mapping[str, Route], **kw: Any) -> AsyncIterator[int]:
    async with anyio.create_task_group() as tg:
        port = await tg.start(partial(serve_http, "127.0.0.1", 0, routes, **kw))
        assert isinstance(port, int) and port > 0
        yield port
        tg.cancel_scope.cancel()


async def read_all(stream: anyio.abc.ByteStream) -> bytes:
    """Everything until the server closes the connection."""
    data = b""
    while True:
        try:
            data += await stream.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError):
            return data


async def test_routes_and_status_codes() -> None:
    app = App()
    app.metrics.submits_total.labels("main").inc(5)
    with anyio.fail_after(20):
        async with running(app.routes(), handler_timeout=0.2) as port:
            base = f"http://127.0.0.1:{port}"
            async with httpx.AsyncClient(base_url=base) as client:
                r = await client.get("/metrics")
                assert r.status_code == 200
                assert r.headers["content-type"] == CONTENT_TYPE
                assert 'smpp_bridge_submits_total{account="main"} 5' in r.text
                assert (await client.get("/metrics?debug=1")).status_code == 200
                r = await client.get("/healthz")
                assert (r.status_code, r.json()) == (200, {"status": "ok"})
                r = await client.get("/readyz")
                assert r.status_code == 503
                assert r.json() == {"ready": False, "reason": "no bind is up"}
                app.ready = True
                assert (await client.get("/readyz")).status_code == 200
                assert (await client.get("/nope")).status_code == 404
                assert (await client.get("/metrics/")).status_code == 404
                r = await client.post("/metrics", content=b"x")
                assert r.status_code == 405 and r.headers["allow"] == "GET, HEAD"
                assert (await client.delete("/healthz")).status_code == 405
                assert (await client.get("/boom")).status_code == 500
                assert (await client.get("/slow")).status_code == 503
                # The server survived all of that.
                assert (await client.get("/healthz")).status_code == 200


async def test_head_answers_without_a_body() -> None:
    app = App()
    with anyio.fail_after(20):
        async with running(app.routes()) as port, httpx.AsyncClient() as client:
            url = f"http://127.0.0.1:{port}/metrics"
            full = await client.get(url)
            head = await client.head(url)
            assert head.status_code == 200 and head.content == b""
            assert head.headers["content-length"] == str(len(full.content))


async def test_keep_alive_and_pipelining_on_one_connection() -> None:
    app = App()
    with anyio.fail_after(20):
        async with (
            running(app.routes()) as port,
            await anyio.connect_tcp("127.0.0.1", port) as stream,
        ):
            request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
            # Three requests in one write; the last asks the server to close.
            await stream.send(
                request * 2 + b"GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            )
            data = await read_all(stream)
    assert data.count(b"HTTP/1.1 200 ") == 2
    assert data.count(b"HTTP/1.1 404 ") == 1
    assert data.count(b'{"status":"ok"}') == 2


async def test_many_requests_over_one_kept_alive_client() -> None:
    app = App()
    with anyio.fail_after(20):
        async with running(app.routes()) as port:
            limits = httpx.Limits(max_connections=1)
            async with httpx.AsyncClient(limits=limits) as client:
                for _ in range(50):
                    assert (await client.get(f"http://127.0.0.1:{port}/metrics")).is_success
    assert app.calls == 50


async def test_malformed_request_gets_400() -> None:
    with anyio.fail_after(20):
        async with (
            running(App().routes()) as port,
            await anyio.connect_tcp("127.0.0.1", port) as stream,
        ):
            await stream.send(b"NOT HTTP AT ALL\r\n\r\n")
            data = await read_all(stream)
    assert data.startswith(b"HTTP/1.1 400 ")


async def test_oversized_requests_are_refused() -> None:
    with anyio.fail_after(20):
        async with running(App().routes(), max_request_size=1024) as port:
            async with await anyio.connect_tcp("127.0.0.1", port) as stream:
                await stream.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 4096)
                head = await read_all(stream)
            assert head.startswith(b"HTTP/1.1 431 ")
            async with await anyio.connect_tcp("127.0.0.1", port) as stream:
                body = b"b" * 4096
                await stream.send(
                    b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body)
                    + body
                )
                post = await read_all(stream)
            assert post.startswith(b"HTTP/1.1 413 ")


async def test_a_slow_client_does_not_block_others_and_is_dropped() -> None:
    with anyio.fail_after(20):
        async with running(App().routes(), request_timeout=1.0, idle_timeout=1.0) as port:
            async with await anyio.connect_tcp("127.0.0.1", port) as slow:
                # Half a request, then nothing: others are served meanwhile.
                await slow.send(b"GET /healthz HTTP/1.1\r\nHo")
                async with httpx.AsyncClient() as client:
                    for _ in range(5):
                        r = await client.get(f"http://127.0.0.1:{port}/healthz")
                        assert r.status_code == 200
                # The server gives up on it: the connection ends without a response.
                assert await read_all(slow) == b""
            # An idle kept-alive connection is closed too.
            async with await anyio.connect_tcp("127.0.0.1", port) as idle:
                await idle.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                data = await read_all(idle)
            assert data.startswith(b"HTTP/1.1 200 ")


async def test_connections_beyond_the_limit_are_closed_at_once() -> None:
    with anyio.fail_after(20):
        async with running(App().routes(), max_connections=2) as port:
            first = await anyio.connect_tcp("127.0.0.1", port)
            second = await anyio.connect_tcp("127.0.0.1", port)
            async with first, second:
                for stream in (first, second):
                    # A full round trip proves the server counts this connection.
                    await stream.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                    assert (await stream.receive()).startswith(b"HTTP/1.1 200 ")
                async with await anyio.connect_tcp("127.0.0.1", port) as third:
                    await third.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                    assert await read_all(third) == b""
            # Once they are gone, new connections are served again.
            async with httpx.AsyncClient() as client:
                await wait_served(client, f"http://127.0.0.1:{port}/healthz")


async def wait_served(client: httpx.AsyncClient, url: str) -> None:
    while True:
        try:
            if (await client.get(url)).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await anyio.sleep(0.01)


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"max_request_size": 0}, "max_request_size"),
        ({"idle_timeout": -1.0}, "idle_timeout"),
        ({"max_connections": 0}, "max_connections"),
    ],
)
async def test_bad_arguments(kw: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        await serve_http("127.0.0.1", 0, {}, **kw)
    with pytest.raises(ValueError, match="must start with '/'"):
        await serve_http("127.0.0.1", 0, {"metrics": App().routes()["/metrics"]})
