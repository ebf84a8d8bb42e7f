"""The webhook forwarder against a real HTTP receiver on loopback (anyio TCP + h11, TLS via
trustme) that fails on demand: 500s, connection resets, hangs. Whatever the receiver does,
every event arrives, signed, with its queue entry id as the idempotency key, and the queue
sees acks, releases and dead letters in batches.
"""

from __future__ import annotations

import email.utils
import json
import socket
import ssl
import struct
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import anyio
import anyio.abc
import coredis
import h11
import msgspec
import pytest
import trustme
from anyio.streams.tls import TLSListener

from smpp_bridge.bridge.metrics import Metrics
from smpp_bridge.bridge.webhook import (
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WebhookConfig,
    WebhookForwarder,
    _retry_after,
    sign,
    verify_signature,
)
from smpp_bridge.errors import QueueClosedError
from smpp_bridge.storage.queues import WorkQueue, open_queue
from smpp_bridge.storage.queues.base import Leased
from tests.bridge_fakes import MemoryWorkQueue
from tests.redis_util import REDIS_URL, need_redis

pytestmark = pytest.mark.anyio

SECRET = "s3cret-for-tests"
Outcome = Literal["ok", "500", "reset"]


@dataclass
class Received:
    index: int
    headers: dict[str, str]
    body: bytes
    connection: int
    outcome: Outcome = "ok"


@dataclass
class Receiver:
    """A webhook endpoint. ``script`` decides each request's fate from the request."""

    script: Callable[[Received], Awaitable[Outcome]] | None = None
    requests: list[Received] = field(default_factory=list)
    connections: int = 0
    in_flight: int = 0
    max_in_flight: int = 0

    def accepted(self) -> list[Received]:
        return [r for r in self.requests if r.outcome == "ok"]

    async def handle(self, stream: anyio.abc.ByteStream) -> None:
        self.connections += 1
        number = self.connections
        conn = h11.Connection(h11.SERVER)
        try:
            async with stream:
                while True:
                    got = await self._read(stream, conn)
                    if got is None:
                        return
                    request, body = got
                    received = Received(
                        index=len(self.requests),
                        headers={k.decode().lower(): v.decode() for k, v in request.headers},
                        body=body,
                        connection=number,
                    )
                    self.requests.append(received)
                    self.in_flight += 1
                    self.max_in_flight = max(self.max_in_flight, self.in_flight)
                    try:
                        outcome = await self.script(received) if self.script else "ok"
                    finally:
                        self.in_flight -= 1
                    received.outcome = outcome
                    if outcome == "reset":
                        raw = stream.extra(anyio.abc.SocketAttribute.raw_socket)
                        raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                        return
                    status = 200 if outcome == "ok" else 500
                    payload = b'{"ok":true}' if status == 200 else b"boom"
                    out = b"".join(
                        part
                        for part in (
                            conn.send(
                                h11.Response(
                                    status_code=status,
                                    headers=[("content-length", str(len(payload)))],
                                )
                            ),
                            conn.send(h11.Data(data=payload)),
                            conn.send(h11.EndOfMessage()),
                        )
                        if part
                    )
                    await stream.send(out)
                    if conn.our_state is h11.MUST_CLOSE:
                        return
                    conn.start_next_cycle()
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, h11.ProtocolError, OSError):
            return

    @staticmethod
    async def _read(
        stream: anyio.abc.ByteStream, conn: h11.Connection
    ) -> tuple[h11.Request, bytes] | None:
        request: h11.Request | None = None
        body = b""
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                try:
                    conn.receive_data(await stream.receive())
                except anyio.EndOfStream:
                    conn.receive_data(b"")
            elif isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                assert request is not None
                return request, body
            elif isinstance(event, h11.ConnectionClosed):
                return None


@asynccontextmanager
async def serve(receiver: Receiver, *, tls: ssl.SSLContext | None = None) -> AsyncIterator[str]:
    """Run ``receiver`` on a loopback port; yields the webhook URL."""
    tcp = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = tcp.extra(anyio.abc.SocketAttribute.local_port)
    listener: anyio.abc.Listener[anyio.abc.ByteStream]
    if tls is not None:
        listener = TLSListener(tcp, tls, standard_compatible=False)
        url = f"https://localhost:{port}/hook"
    else:
        listener = tcp
        url = f"http://127.0.0.1:{port}/hook"
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, receiver.handle)
        yield url
        tg.cancel_scope.cancel()


def config(url: str, **kw: object) -> WebhookConfig:
    defaults: dict[str, object] = {
        "url": url,
        "secret": SECRET,
        "batch": 5,
        "backoff_base": 0.01,
        "backoff_cap": 0.05,
        "timeout": 5.0,
    }
    defaults.update(kw)
    return msgspec.convert(defaults, WebhookConfig)


def event(i: int) -> bytes:
    fields = {"id": f"m{i}", "clientId": f"c{i}", "status": "delivered", "code": 0}
    return json.dumps({**fields, "eventAt": "2026-04-21T10:15:00Z"}).encode()


async def wait_until(predicate: Callable[[], Awaitable[bool]]) -> None:
    while not await predicate():
        await anyio.sleep(0.01)


async def drained(queue: WorkQueue) -> bool:
    return await queue.depth() == 0


QUEUES = ["memory", "sqlite", "redis"]


@asynccontextmanager
async def outbox(kind: str, tmp_path: Path) -> AsyncIterator[WorkQueue]:
    """The fake (which also records batches), or a real queue from ``open_queue``."""
    if kind == "memory":
        async with MemoryWorkQueue("webhook") as fake:
            yield fake
        return
    if kind == "sqlite":
        async with await open_queue("sqlite", "webhook", path=str(tmp_path / "q.db")) as queue:
            yield queue
        return
    need_redis()
    prefix = f"smppb:test:{uuid.uuid4().hex}"
    try:
        async with await open_queue("redis", "webhook", url=REDIS_URL, prefix=prefix) as queue:
            yield queue
    finally:
        async with coredis.Redis.from_url(REDIS_URL, decode_responses=False) as client:
            keys = [key async for key in client.scan_iter(match=f"{prefix}:*")]
            if keys:
                await client.delete(keys)


def signed(r: Received, *, now: float | None = None) -> bool:
    """Whether a received POST verifies, as a receiver checks it: from its headers alone,
    with the default replay window."""
    return verify_signature(
        SECRET,
        r.headers[TIMESTAMP_HEADER.lower()],
        r.headers[IDEMPOTENCY_HEADER.lower()],
        r.body,
        r.headers[SIGNATURE_HEADER.lower()],
        now=now,
    )


def acked_batches(queue: WorkQueue) -> list[list[str]] | None:
    return queue.batches["ack"] if isinstance(queue, MemoryWorkQueue) else None


# --------------------------------------------------------------------------- signatures


def test_signature_round_trip_and_refusals() -> None:
    body = event(1)
    now = 1700000000
    header = sign(SECRET, "1700000000", "42", body)
    assert header.startswith("sha256=") and len(header) == 7 + 64
    assert verify_signature(SECRET, "1700000000", "42", body, header, now=now)
    assert verify_signature(
        SECRET.encode(), "1700000000", "42", body, header.upper().replace("SHA", "sha"), now=now
    )
    assert not verify_signature(SECRET, "1700000000", "42", body + b" ", header, now=now)
    assert not verify_signature(SECRET, "1700000001", "42", body, header, now=now)
    assert not verify_signature(SECRET, "1700000000", "43", body, header, now=now)
    assert not verify_signature("other", "1700000000", "42", body, header, now=now)
    assert not verify_signature(
        SECRET, "1700000000", "42", body, header.replace("sha256=", "sha1="), now=now
    )
    assert not verify_signature(SECRET, "1700000000", "42", body, "sha256=", now=now)
    assert not verify_signature(SECRET, "1700000000", "42", body, header + "0", now=now)
    assert not verify_signature(SECRET, "17e8", "42", body, header, now=now)
    assert not verify_signature(SECRET, "", "42", body, header, now=now)


def test_signature_is_hmac_of_timestamp_key_and_body() -> None:
    """The documented string, computed independently of ``sign``."""
    import hashlib
    import hmac

    body = event(7)
    expected = hmac.new(SECRET.encode(), b"1700000000.1700000000000-3." + body, hashlib.sha256)
    assert sign(SECRET, "1700000000", "1700000000000-3", body) == f"sha256={expected.hexdigest()}"


def test_the_idempotency_key_is_signed() -> None:
    """Another key, or bytes moved between the key and the body, fail."""
    body = b'{"id": "m1"}'
    header = sign(SECRET, "1700000000", "1-0", body)
    assert verify_signature(SECRET, "1700000000", "1-0", body, header, now=1700000000)
    for key, other_body in (("2-0", body), ("1", b"-0" + body), ("1-0{", body[1:])):
        assert not verify_signature(
            SECRET, "1700000000", key, other_body, header, now=1700000000
        ), key
    # A key the scheme cannot delimit is refused on both sides.
    for bad in ("", "a.b", "has space", "caf\u00e9", "x" * 201, "\ud800"):
        assert not verify_signature(SECRET, "1700000000", bad, body, header, now=1700000000)
        with pytest.raises(ValueError, match="idempotency key"):
            sign(SECRET, "1700000000", bad, body)
    with pytest.raises(ValueError, match="timestamp"):
        sign(SECRET, "-1", "1", body)


def test_replay_window_is_on_by_default() -> None:
    body = event(1)
    ts = 1700000000
    header = sign(SECRET, str(ts), "9", body)

    def ok(now: float, max_age: float | None = 300.0, max_skew: float = 60.0) -> bool:
        return verify_signature(
            SECRET, str(ts), "9", body, header, now=now, max_age=max_age, max_skew=max_skew
        )

    assert ok(ts) and ok(ts + 300) and ok(ts - 60)
    assert not ok(ts + 301)  # default max_age 300 s
    assert not ok(ts + 365 * 86400)  # signed a year ago
    assert not ok(ts - 61)  # too far in the future: default max_skew 60 s
    assert ok(ts + 1000, max_age=1000) and not ok(ts + 1001, max_age=1000)
    assert ok(ts - 120, max_skew=120) and not ok(ts - 121, max_skew=120)
    assert ok(ts + 365 * 86400, max_age=None)  # explicitly unbounded
    assert not ok(ts - 61, max_age=None)  # the future bound still holds
    # Current time by default: a 2023 timestamp is long expired.
    assert not verify_signature(SECRET, str(ts), "9", body, header)
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="max_age"):
            ok(ts, max_age=bad)
        with pytest.raises(ValueError, match="max_skew"):
            ok(ts, max_skew=bad)


@pytest.mark.parametrize(
    "timestamp",
    [
        "-1700000000",
        "+1700000000",
        " 1700000000",
        "1700000000 ",
        "1700000000.5",
        "17e8",
        "\u0661\u0667\u0660\u0660",
        "9" * 400,
        "1" * 16,
        "0x6553f100",
        "\ud800",
        "-" + "9" * 400,
    ],
)
def test_bad_timestamps_are_refused_not_raised(timestamp: str) -> None:
    body = event(1)
    header = sign(SECRET, "1700000000", "1", body)
    assert verify_signature(SECRET, timestamp, "1", body, header, now=1700000000) is False
    assert verify_signature(SECRET, timestamp, "1", body, header, max_age=None) is False


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"url": "ftp://example.com/"}, "url"),
        ({"url": "/relative"}, "url"),
        ({"url": "http://[::1"}, "url"),
        ({"secret": ""}, "secret"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": float("nan")}, "timeout"),
        ({"batch": 0}, "batch"),
        ({"backoff_base": -1}, "backoff_base"),
        ({"backoff_base": 2.0, "backoff_cap": 1.0}, "backoff_cap"),
        ({"max_attempts": 0}, "max_attempts"),
        ({"retries": 3}, "retries"),
        ({"batch": "many"}, "batch"),
    ],
)
def test_config_errors_name_the_field(change: dict[str, object], message: str) -> None:
    raw: dict[str, object] = {"url": "https://example.com/hook"}
    raw.update(change)
    with pytest.raises(msgspec.ValidationError, match=message):
        msgspec.convert(raw, WebhookConfig)


def test_config_repr_hides_secrets() -> None:
    cfg = WebhookConfig(url="https://user:pw@example.com/hook?token=abc", secret="hush")
    text = repr(cfg)
    assert "hush" not in text and "pw" not in text and "abc" not in text
    assert "example.com/hook" in text


# --------------------------------------------------------------------------- delivery


@pytest.mark.parametrize("kind", QUEUES)
async def test_every_event_arrives_despite_500s_and_resets(kind: str, tmp_path: Path) -> None:
    failures = 10

    async def script(request: Received) -> Outcome:
        if request.index < failures:
            return "500" if request.index % 2 else "reset"
        return "ok"

    receiver = Receiver(script)
    metrics = Metrics()
    count = 40
    with anyio.fail_after(30):
        async with outbox(kind, tmp_path) as queue:
            ids = await queue.publish([event(i) for i in range(count)])
            async with serve(receiver) as url, anyio.create_task_group() as tg:
                forwarder = WebhookForwarder(config(url), queue, metrics=metrics)
                await tg.start(forwarder.run)
                await wait_until(lambda: drained(queue))
                tg.cancel_scope.cancel()
            dead = await queue.dead_letters()

    accepted = receiver.accepted()
    # Every event arrived, once: the bodies exactly as stored, keyed by their entry ids.
    assert sorted(r.body for r in accepted) == sorted(event(i) for i in range(count))
    keys = [r.headers[IDEMPOTENCY_HEADER.lower()] for r in accepted]
    assert sorted(keys) == sorted(ids)
    for r in receiver.requests:
        assert r.headers["content-type"] == "application/json"
        assert signed(r)
        # A retried event keeps its key; each key always carries the same body.
        assert json.loads(r.body)["id"] == f"m{ids.index(r.headers['idempotency-key'])}"
    assert len(receiver.requests) == count + failures
    assert forwarder.delivered == count and forwarder.failures == failures
    deliveries = metrics.webhook_deliveries_total
    assert deliveries.labels("delivered").value == count
    assert deliveries.labels("failed").value == failures
    assert dead == []
    batches = acked_batches(queue)
    if batches is not None:
        # Each id acknowledged exactly once (acks go out in batches).
        assert sorted(i for batch in batches for i in batch) == sorted(ids)
    assert forwarder.in_flight == 0


async def test_up_to_batch_posts_in_flight_over_kept_alive_connections() -> None:
    batch = 5
    gate = anyio.Event()

    async def script(request: Received) -> Outcome:
        # Hold the first requests until `batch` of them are in flight at once: the test
        # hangs (and fails on its deadline) unless the forwarder really runs them in parallel.
        if not gate.is_set():
            if receiver.in_flight >= batch:
                gate.set()
            else:
                await gate.wait()
        return "ok"

    receiver = Receiver(script)
    queue = MemoryWorkQueue("webhook")
    count = 60
    await queue.publish([event(i) for i in range(count)])
    with anyio.fail_after(30):
        async with serve(receiver) as url, anyio.create_task_group() as tg:
            forwarder = WebhookForwarder(config(url, batch=batch), queue)
            await tg.start(forwarder.run)
            await wait_until(lambda: drained(queue))
            tg.cancel_scope.cancel()
    assert receiver.max_in_flight == batch
    assert len(receiver.accepted()) == count
    # Keep-alive: connections are reused, at most one per concurrent POST.
    assert receiver.connections <= batch
    # Consumed in batches, never more leased than `batch`.
    assert queue.calls["consume"] < count


async def test_a_captured_post_does_not_verify_later_or_under_another_key() -> None:
    """The real forwarder over HTTP, its clock fixed: its POST verifies at the time it was
    sent (and up to 300 s later), not after, not with another event's key or body."""
    sent_at = 1_800_000_000
    receiver = Receiver()
    queue = MemoryWorkQueue("webhook")
    ids = await queue.publish([event(1), event(2)])
    with anyio.fail_after(20):
        async with serve(receiver) as url, anyio.create_task_group() as tg:
            forwarder = WebhookForwarder(config(url), queue, clock=lambda: sent_at + 0.9)
            await tg.start(forwarder.run)
            await wait_until(lambda: drained(queue))
            tg.cancel_scope.cancel()
    first, second = sorted(receiver.accepted(), key=lambda r: r.headers["idempotency-key"])
    assert [first.headers["idempotency-key"], second.headers["idempotency-key"]] == ids
    assert first.headers[TIMESTAMP_HEADER.lower()] == str(sent_at)
    for r in (first, second):
        assert signed(r, now=sent_at) and signed(r, now=sent_at + 300)
        assert not signed(r, now=sent_at + 301)
        assert not signed(r, now=sent_at - 61)
    # Swapping one POST's key (or body) for the other's breaks its signature.
    swapped_key = Received(0, {**first.headers, "idempotency-key": ids[1]}, first.body, 0)
    swapped_body = Received(0, first.headers, second.body, 0)
    assert not signed(swapped_key, now=sent_at) and not signed(swapped_body, now=sent_at)


async def test_an_entry_id_the_signature_cannot_cover_is_dead_lettered() -> None:
    """A third-party queue whose ids contain a "." cannot be signed: dead letter, no POST."""

    class DottedIds(MemoryWorkQueue):
        async def consume(self, max_count: int, *, wait: float = 1.0) -> list[Leased]:
            return [
                msgspec.structs.replace(e, id=f"{e.id}.x") if e.id == "1" else e
                for e in await super().consume(max_count, wait=wait)
            ]

        async def dead_letter(self, items: Sequence[tuple[str, str]]) -> None:
            await super().dead_letter([(i.removesuffix(".x"), why) for i, why in items])

        async def extend(self, ids: Sequence[str]) -> None:
            await super().extend([i.removesuffix(".x") for i in ids])

        async def release(self, ids: Sequence[str], *, delay: float = 0.0) -> None:
            await super().release([i.removesuffix(".x") for i in ids], delay=delay)

        async def __aenter__(self) -> DottedIds:
            return self

    receiver = Receiver()
    queue = DottedIds("webhook")
    await queue.publish([event(1), event(2)])
    with anyio.fail_after(20):
        async with serve(receiver) as url, anyio.create_task_group() as tg:
            await tg.start(WebhookForwarder(config(url), queue).run)
            await wait_until(lambda: drained(queue))
            tg.cancel_scope.cancel()
    assert [r.headers["idempotency-key"] for r in receiver.requests] == ["2"]
    (dead,) = await queue.dead_letters()
    assert "cannot be signed" in dead.reason


async def test_without_secret_no_signature_header() -> None:
    receiver = Receiver()
    queue = MemoryWorkQueue("webhook")
    await queue.publish([event(1)])
    with anyio.fail_after(20):
        async with serve(receiver) as url, anyio.create_task_group() as tg:
            await tg.start(WebhookForwarder(config(url, secret=None), queue).run)
            await wait_until(lambda: drained(queue))
            tg.cancel_scope.cancel()
    (only,) = receiver.requests
    assert SIGNATURE_HEADER.lower() not in only.headers
    assert only.headers[TIMESTAMP_HEADER.lower()].isdigit()
    assert only.headers[IDEMPOTENCY_HEADER.lower()] == "1"


@pytest.mark.parametrize("kind", QUEUES)
async def test_max_attempts_moves_the_event_to_dead_letters(kind: str, tmp_path: Path) -> None:
    async def script(request: Received) -> Outcome:
        return "ok" if json.loads(request.body)["id"] == "m0" else "500"

    receiver = Receiver(script)
    metrics = Metrics()
    with anyio.fail_after(20):
        async with outbox(kind, tmp_path) as queue:
            ids = await queue.publish([event(i) for i in range(4)])
            async with serve(receiver) as url, anyio.create_task_group() as tg:
                forwarder = WebhookForwarder(config(url, max_attempts=3), queue, metrics=metrics)
                await tg.start(forwarder.run)
                await wait_until(lambda: drained(queue))
                tg.cancel_scope.cancel()
            dead = await queue.dead_letters()
    assert sorted(d.id for d in dead) == sorted(ids[1:])
    for d in dead:
        assert "3 attempts failed" in d.reason and "HTTP 500" in d.reason
    assert len(receiver.requests) == 1 + 3 * 3
    assert metrics.webhook_deliveries_total.labels("dead_lettered").value == 3
    assert metrics.webhook_deliveries_total.labels("failed").value == 9


@pytest.mark.parametrize("kind", QUEUES)
async def test_shutdown_releases_undelivered_events_at_once(kind: str, tmp_path: Path) -> None:
    async def script(request: Received) -> Outcome:
        if json.loads(request.body)["id"] not in ("m0", "m1"):
            await anyio.sleep_forever()  # a receiver that never answers
        return "ok"

    receiver = Receiver(script)
    with anyio.fail_after(20):
        async with outbox(kind, tmp_path) as queue:
            ids = await queue.publish([event(i) for i in range(6)])
            async with serve(receiver) as url, anyio.create_task_group() as tg:
                forwarder = WebhookForwarder(config(url, batch=10), queue)
                await tg.start(forwarder.run)

                async def stuck() -> bool:
                    return await queue.depth() == 4 and receiver.in_flight == 4

                await wait_until(stuck)
                tg.cancel_scope.cancel()
            if isinstance(queue, MemoryWorkQueue):
                assert queue.leased_ids() == []
                released = [i for batch in queue.batches["release"] for i in batch]
                assert sorted(released) == sorted(ids[2:])
            # Nothing still leased: the next consumer gets the four at once, as redeliveries.
            again = await queue.consume(10, wait=0)
    assert sorted(e.id for e in again) == sorted(ids[2:])
    assert all(e.attempts == 2 for e in again)
    assert forwarder.in_flight == 0


async def test_leases_are_renewed_while_an_event_is_retried() -> None:
    extended = anyio.Event()
    renewed: list[list[str]] = []

    def on_extend(ids: object) -> None:
        assert isinstance(ids, list)
        renewed.append(ids)
        extended.set()

    async def script(request: Received) -> Outcome:
        # Fail until the forwarder has renewed the lease of the event it is retrying.
        return "ok" if extended.is_set() else "500"

    receiver = Receiver(script)
    queue = MemoryWorkQueue("webhook", visibility_timeout=30.0)
    queue.on_extend = on_extend
    ids = await queue.publish([event(1)])
    with anyio.fail_after(20):
        async with serve(receiver) as url, anyio.create_task_group() as tg:
            forwarder = WebhookForwarder(config(url), queue, renew_every=0.05)
            await tg.start(forwarder.run)
            await wait_until(lambda: drained(queue))
            tg.cancel_scope.cancel()
    assert renewed[0] == ids
    # Delivered under its first lease: never handed out twice.
    assert {r.headers["idempotency-key"] for r in receiver.requests} == set(ids)
    assert receiver.accepted()[-1].body == event(1)


def test_renewal_defaults_to_a_third_of_the_visibility_timeout() -> None:
    cfg = WebhookConfig(url="http://127.0.0.1:9/")
    assert WebhookForwarder(cfg, MemoryWorkQueue(visibility_timeout=3.0)).renew_every == 1.0
    with pytest.raises(ValueError, match="renew_every"):
        WebhookForwarder(cfg, MemoryWorkQueue(), renew_every=0)


async def test_queue_errors_are_retried() -> None:
    receiver = Receiver()
    queue = MemoryWorkQueue("webhook")
    ids = await queue.publish([event(i) for i in range(8)])
    queue.fail_next.update({"consume": 2, "ack": 2})
    with anyio.fail_after(20):
        async with serve(receiver) as url, anyio.create_task_group() as tg:
            await tg.start(WebhookForwarder(config(url), queue).run)
            await wait_until(lambda: drained(queue))
            tg.cancel_scope.cancel()
    assert sorted(r.headers["idempotency-key"] for r in receiver.accepted()) == sorted(ids)
    assert queue.fail_next["consume"] == 0 and queue.fail_next["ack"] == 0


async def test_a_closed_queue_stops_the_forwarder() -> None:
    queue = MemoryWorkQueue("webhook")
    await queue.aclose()
    forwarder = WebhookForwarder(config("http://127.0.0.1:9/hook"), queue)
    with anyio.fail_after(20), pytest.raises(BaseExceptionGroup) as info:
        await forwarder.run()
    assert info.group_contains(QueueClosedError)


def test_retry_after_header() -> None:
    now = 1_700_000_000.0
    assert _retry_after(None, now) == 0
    assert _retry_after("", now) == 0
    assert _retry_after("7", now) == 7
    assert _retry_after(" 120 ", now) == 120
    assert _retry_after("-3", now) == 0
    assert _retry_after("soon", now) == 0
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert _retry_after(date, now) == 30
    assert _retry_after(email.utils.formatdate(now - 30, usegmt=True), now) == 0


# --------------------------------------------------------------------------- HTTPS


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def server_context(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(ctx)
    return ctx


async def test_https_with_a_trusted_private_ca(ca: trustme.CA) -> None:
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)

    async def script(request: Received) -> Outcome:
        return "500" if request.index == 0 else "ok"

    receiver = Receiver(script)
    queue = MemoryWorkQueue("webhook")
    ids = await queue.publish([event(i) for i in range(5)])
    with anyio.fail_after(30):
        async with serve(receiver, tls=server_context(ca)) as url, anyio.create_task_group() as tg:
            forwarder = WebhookForwarder(config(url), queue, ssl_context=client_ctx)
            await tg.start(forwarder.run)
            await wait_until(lambda: drained(queue))
            tg.cancel_scope.cancel()
    accepted = receiver.accepted()
    assert sorted(r.headers["idempotency-key"] for r in accepted) == sorted(ids)
    for r in accepted:
        assert signed(r)


async def test_https_refuses_an_untrusted_certificate(ca: trustme.CA) -> None:
    receiver = Receiver()
    queue = MemoryWorkQueue("webhook")
    await queue.publish([event(1)])
    with anyio.fail_after(30):
        async with serve(receiver, tls=server_context(ca)) as url, anyio.create_task_group() as tg:
            # verify_tls on (the default), system trust store only: the private CA is unknown.
            forwarder = WebhookForwarder(config(url, max_attempts=1), queue)
            await tg.start(forwarder.run)
            await wait_until(lambda: drained(queue))
            tg.cancel_scope.cancel()
    assert receiver.requests == []
    (dead,) = await queue.dead_letters()
    assert "CERTIFICATE_VERIFY_FAILED" in dead.reason or "certificate" in dead.reason.lower()
