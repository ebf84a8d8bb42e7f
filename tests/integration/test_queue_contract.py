"""The work-queue contract, run against every backend: SQLite and a real Redis.

Each test gets a fresh SQLite file and its own Redis key prefix (deleted afterwards). Without a
Redis server the Redis cases are skipped, except under CI, where they fail. Leases use short
visibility timeouts (tenths of a second) so that expiry can be exercised; tests wait for
outcomes with generous ``wait`` values and never assert on how long anything took.
"""

from __future__ import annotations

import gc
import socket
import sqlite3
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import coredis
import pytest

from smpp_bridge.errors import QueueBackendError, QueueClosedError
from smpp_bridge.storage.queues import (
    DeadLetter,
    Leased,
    RedisQueue,
    SqliteQueue,
    WorkQueue,
    open_queue,
)
from tests.redis_util import REDIS_URL, delete_prefix, need_redis

pytestmark = pytest.mark.anyio

BACKENDS = ["sqlite", "redis"]
GUARD = 30.0  # seconds: a hang fails the test instead of the whole run


class Backend:
    """Opens queue objects of one kind that share one store (one file, one Redis prefix), as
    separate processes would."""

    def __init__(self, kind: str, tmp_path: Path, client: coredis.Redis[bytes] | None) -> None:
        self.kind = kind
        self.path = tmp_path / "queues.sqlite"
        self.prefix = f"smppb-test-{uuid.uuid4().hex[:12]}"
        self.client = client
        self.opened: list[SqliteQueue | RedisQueue] = []

    async def open(self, name: str = "jobs", **options: Any) -> SqliteQueue | RedisQueue:
        options.setdefault("prefix", self.prefix)
        queue: SqliteQueue | RedisQueue
        if self.kind == "sqlite":
            queue = SqliteQueue(self.path, name, **options)
        else:
            assert self.client is not None
            queue = RedisQueue(self.client, name, **options)
        await queue.open()
        self.opened.append(queue)
        return queue

    def open_args(self) -> dict[str, Any]:
        """Arguments for ``open_queue`` reaching the same store."""
        return {"path": str(self.path), "url": REDIS_URL, "prefix": self.prefix}

    async def corrupt(self, name: str = "jobs") -> None:
        """Put one entry the queue cannot deliver (no usable payload) and one whose publish
        time is garbage but whose payload is fine (b"undated")."""
        if self.kind == "sqlite":
            conn = sqlite3.connect(self.path)
            try:
                table = f'"{self.prefix}:q:{name}"'
                with conn:
                    conn.execute(f"INSERT INTO {table} (data, enqueued_at) VALUES (42, 1.0)")
                    conn.execute(
                        f"INSERT INTO {table} (data, enqueued_at) VALUES (?, 'garbage')",
                        (b"undated",),
                    )
            finally:
                conn.close()
        else:
            assert self.client is not None
            stream = f"{self.prefix}:q:{name}"
            await self.client.xadd(stream, {b"x": b"no payload here"})
            await self.client.xadd(stream, {b"d": b"undated", b"t": b"garbage"})


@pytest.fixture(params=BACKENDS)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    kind: str = request.param
    if kind == "sqlite":
        env = Backend(kind, tmp_path, None)
        try:
            yield env
        finally:
            for queue in reversed(env.opened):
                await queue.aclose()
        return
    need_redis()
    async with coredis.Redis.from_url(REDIS_URL, decode_responses=False) as client:
        env = Backend(kind, tmp_path, client)
        try:
            yield env
        finally:
            for queue in reversed(env.opened):
                await queue.aclose()
            await delete_prefix(client, env.prefix)


def payloads(count: int, tag: str = "m") -> list[bytes]:
    return [f"{tag}-{i}".encode() for i in range(count)]


async def drain(queue: WorkQueue, batch: int = 100, wait: float = 0.0) -> list[Leased]:
    """Everything the queue hands out now (leased, not acknowledged)."""
    out: list[Leased] = []
    while leased := await queue.consume(batch, wait=wait):
        out += leased
    return out


async def until_dead(queue: WorkQueue, count: int) -> list[DeadLetter]:
    """Consume (and never ack) until ``count`` dead letters exist."""
    while len(dead := await queue.dead_letters()) < count:
        await queue.consume(10, wait=0.2)
    return dead


# -- publish and consume


async def test_publish_consume_fifo(backend: Backend) -> None:
    with anyio.fail_after(GUARD):
        queue = await backend.open()
        ids = await queue.publish(payloads(5))
        assert len(ids) == len(set(ids)) == 5
        before = time.time()
        got = await queue.consume(10, wait=0)
        assert [e.id for e in got] == ids
        assert [e.data for e in got] == payloads(5)
        assert all(e.attempts == 1 for e in got)
        # The publish time is the publisher's clock, within reason of ours.
        assert all(abs(e.enqueued_at - before) < 60 for e in got)
        assert await queue.consume(10, wait=0) == []


async def test_publish_empty_and_binary_payloads(backend: Backend) -> None:
    with anyio.fail_after(GUARD):
        queue = await backend.open()
        assert await queue.publish([]) == []
        blobs = [b"", bytes(range(256)), b"\x00\xff" * 5000, bytearray(b"ba")]
        ids = await queue.publish(blobs)  # type: ignore[arg-type]
        got = await queue.consume(10, wait=0)
        assert [e.id for e in got] == ids
        assert [e.data for e in got] == [bytes(b) for b in blobs]


async def test_max_count_respected_and_batches_of_1000(backend: Backend) -> None:
    with anyio.fail_after(GUARD):
        queue = await backend.open()
        ids: list[str] = []
        for start in range(0, 1000, 100):
            ids += await queue.publish(payloads(100, f"b{start}"))
        assert await queue.depth() == 1000
        seen: list[Leased] = []
        while leased := await queue.consume(64, wait=0):
            assert len(leased) <= 64
            seen += leased
            await queue.ack([e.id for e in leased])
        assert [e.id for e in seen] == ids
        assert len({e.id for e in seen}) == 1000
        assert await queue.depth() == 0


async def test_ack_removes(backend: Backend) -> None:
    with anyio.fail_after(GUARD):
        queue = await backend.open(visibility_timeout=0.2)
        ids = await queue.publish(payloads(3))
        got = await queue.consume(3, wait=0)
        await queue.ack([got[0].id, got[0].id, got[1].id])  # repeats are harmless
        assert await queue.depth() == 1
        # The acknowledged two never come back; the third does, once its lease runs out.
        again = await queue.consume(3, wait=5)
        assert [(e.id, e.attempts) for e in again] == [(ids[2], 2)]
        await queue.ack([ids[2]])
        await queue.ack([ids[2]])  # acking twice is harmless
        assert await queue.depth() == 0
        assert await queue.consume(3, wait=0.5) == []


async def test_second_object_sees_published_entries(backend: Backend) -> None:
    with anyio.fail_after(GUARD):
        producer = await backend.open(consumer="producer")
        consumer = await backend.open(consumer="consumer")
        ids = await producer.publish(payloads(3))
        got = await consumer.consume(10, wait=0)
        assert [e.id for e in got] == ids
        # A consumer already waiting is woken by another object's publish.
        result: list[Leased] = []

        async def wait_for_one() -> None:
            result.extend(await consumer.consume(10, wait=20))

        async with anyio.create_task_group() as tg:
            tg.start_soon(wait_for_one)
            await anyio.sleep(0.2)
            late = await producer.publish([b"late"])
        assert [(e.id, e.data) for e in result] == [(late[0], b"late")]


async def test_consume_waits_for_local_publish(backend: Backend) -> None:
    with anyio.fail_after(GUARD):
        queue = await backend.open()
        result: list[Leased] = []

        async def wait_for_one() -> None:
            result.extend(await queue.consume(10, wait=20))

        async with anyio.create_task_group() as tg:
            tg.start_soon(wait_for_one)
            await anyio.sleep(0.1)
            await queue.publish([b"now"])
        assert [e.data for e in result] == [b"now"]


async def test_empty_batches_are_no_ops(backend: Backend) -> None:
    with anyio.fail_after(GUARD):
        queue = await backend.open()
        await queue.ack([])
        await queue.release([])
        await queue.extend([])
        await queue.dead_letter([])
        assert await queue.dead_letters() == []
        assert await queue.tail(None) == []


async def test_dead_letter_before_delivery(backend: Backend) -> None:
    with anyio.fail_after(GUARD):
        queue = await backend.open()
        [doomed, kept] = await queue.publish([b"doomed", b"kept"])
        await queue.dead_letter([(doomed, "cancelled by operator")])
        assert [(d.id, d.attempts, d.reason) for d in await queue.dead_letters()] == [
            (doomed, 0, "cancelled by operator")
        ]
        assert [e.id for e in await queue.consume(5, wait=0)] == [kept]


async def test_consume_wait_times_out_empty(backend: Backend) -> None:
    with anyio.fail_after(GUARD):
        queue = await backend.open()
        assert await queue.consume(5, wait=0.1) == []
        assert await queue.consume(5, wait=0) == []


# -- leases


async def test_lease_expiry_redelivers_with_attempts(backend: Backend) -> None:
    with anyio.fail_after(GUARD):
        queue = await backend.open(visibility_timeout=0.2)
        [entry_id] = await queue.publish([b"job"])
        first = await queue.consume(1, wait=0)
        assert [(e.id, e.attempts) for e in first] == [(entry_id, 1)]
        second = await queue.consume(1, wait=10)
        assert [(e.id, e.data, e.attempts) for e in second] == [(entry_id, b"job", 2)]
        assert second[0].enqueued_at == pytest.approx(first[0].enqueued_at, abs=0.01)
        third = await queue.consume(1, wait=10)
        assert [(e.id, e.attempts) for e in third] == [(entry_id, 3)]


async def test_crashed_consumer_entries_go_to_another(backend: Backend) -> None:
    with anyio.fail_after(GUARD):
        crashed = await backend.open(consumer="crashed", visibility_timeout=0.3)
        survivor = await backend.open(consumer="survivor", visibility_timeout=0.3)
        ids = await crashed.publish(payloads(4))
        taken = await crashed.consume(4, wait=0)
        assert len(taken) == 4
        await crashed.aclose()  # without acknowledging anything
        got: list[Leased] = []
        while len(got) < 4:
            got += await survivor.consume(10, wait=5)
        assert sorted(e.id for e in got) == sorted(ids)
        assert {e.attempts for e in got} == {2}


async def test_restart_under_same_name_takes_own_leases_at_once(backend: Backend) -> None:
    with anyio.fail_after(GUARD):
        before = await backend.open(consumer="daemon-1", visibility_timeout=600)
        ids = await before.publish(payloads(3))
        assert len(await before.consume(2, wait=0)) == 2
        await before.aclose()
        after = await backend.open(consumer="daemon-1", visibility_timeout=600)
        got = await after.consume(10, wait=0)
        # Its two leftovers first (redelivered), then the never-delivered one.
        assert sorted((e.id, e.attempts) for e in got) == [(ids[0], 2), (ids[1], 2), (ids[2], 1)]
        # Another name does not get them, even long before the 600 s lease would run out.
        other = await backend.open(consumer="daemon-2", visibility_timeout=600)
        assert await other.consume(10, wait=0) == []


async def test_release_delay_zero_redelivers_at_once(backend: Backend) -> None:
    with anyio.fail_after(GUARD):
        queue = await backend.open()  # the default 60 s lease: only release brings it back
        ids = await queue.publish(payloads(3))
        got = await queue.consume(3, wait=0)
        await queue.release([got[1].id], delay=0.0)
        again = await queue.consume(3, wait=0)
        assert [(e.id, e.attempts) for e in again] == [(ids[1], 2)]


async def test_release_with_delay(backend: Backend) -> None:
    with anyio.fail_after(GUARD):
        holder = await backend.open(consumer="holder")
        other = await backend.open(consumer="other")
        [entry_id] = await holder.publish([b"later"])
        await holder.consume(1, wait=0)
        await holder.release([entry_id], delay=30)
        assert await other.consume(1, wait=0.3) == []
        assert await holder.consume(1, wait=0) == []
        # Releasing again without delay hands it out now, to anyone.
        await holder.release([entry_id], delay=0)
        got = await other.consume(1, wait=10)
        assert [(e.id, e.attempts) for e in got] == [(entry_id, 2)]


async def test_release_only_acts_on_own_leases(backend: Backend) -> None:
    with anyio.fail_after(GUARD):
        holder = await backend.open(consumer="holder")
        intruder = await backend.open(consumer="intruder")
        [entry_id] = await holder.publish([b"mine"])
        await holder.consume(1, wait=0)
        await intruder.release([entry_id])
        await intruder.extend([entry_id])
        assert await intruder.consume(1, wait=0.3) == []
        assert await holder.consume(1, wait=0) == []


async def test_extend_keeps_the_lease(backend: Backend) -> None:
    with anyio.fail_after(GUARD):
        holder = await backend.open(consumer="holder", visibility_timeout=1.0)
        other = await backend.open(consumer="other", visibility_timeout=1.0)
        [entry_id] = await holder.publish([b"long job"])
        await holder.consume(1, wait=0)
        # Renewed every 0.3 s for twice the lease: nobody else ever gets it.
        for _ in range(7):
            await anyio.sleep(0.3)
            await holder.extend([entry_id])
            assert await other.consume(1, wait=0) == []
        # Once renewals stop, the lease runs out and the entry moves on.
        got = await other.consume(1, wait=10)
        assert [(e.id, e.attempts) for e in got] == [(entry_id, 2)]


async def test_two_consumers_never_share_a_leased_entry(backend: Backend) -> None:
    with anyio.fail_after(GUARD):
        first = await backend.open(consumer="first")
        second = await backend.open(consumer="second")
        ids: list[str] = []
        for start in range(0, 600, 100):
            ids += await first.publish(payloads(100, f"p{start}"))
        seen: dict[str, list[str]] = {"first": [], "second": []}

        async def run(queue: WorkQueue, label: str) -> None:
            while leased := await queue.consume(7, wait=0.3):
                seen[label] += [e.id for e in leased]
                await anyio.lowlevel.checkpoint()

        async with anyio.create_task_group() as tg:
            tg.start_soon(run, first, "first")
            tg.start_soon(run, second, "second")
        assert not set(seen["first"]) & set(seen["second"])
        assert sorted(seen["first"] + seen["second"]) == sorted(ids)
        assert len(seen["first"] + seen["second"]) == 600


# -- dead letters


async def test_max_deliveries_dead_letters_with_reason(backend: Backend) -> None:
    with anyio.fail_after(GUARD):
        queue = await backend.open(visibility_timeout=0.2, max_deliveries=2)
        [poison] = await queue.publish([b"poison"])
        got = await queue.consume(1, wait=0)
        assert [(e.id, e.attempts) for e in got] == [(poison, 1)]
        got = await queue.consume(1, wait=10)
        assert [(e.id, e.attempts) for e in got] == [(poison, 2)]
        [dead] = await until_dead(queue, 1)
        assert dead.id == poison
        assert dead.data == b"poison"
        assert dead.attempts == 2
        assert dead.reason == "delivered 2 times without ack"
        assert dead.dead_at > 0
        assert await queue.depth() == 0
        # The queue goes on as before.
        fine = await queue.publish([b"fine"])
        assert [e.id for e in await queue.consume(5, wait=0)] == fine


async def test_explicit_dead_letter(backend: Backend) -> None:
    with anyio.fail_after(GUARD):
        queue = await backend.open(visibility_timeout=0.2)
        ids = await queue.publish(payloads(3))
        got = await queue.consume(2, wait=0)
        await queue.dead_letter([(got[0].id, "invalid request: no 'to'"), (got[1].id, "bad")])
        assert await queue.depth() == 1
        dead = await queue.dead_letters()
        assert [(d.id, d.data, d.reason, d.attempts) for d in dead] == [
            (ids[0], b"m-0", "invalid request: no 'to'", 1),
            (ids[1], b"m-1", "bad", 1),
        ]
        assert await queue.dead_letters(limit=1) == dead[:1]
        # Gone from the queue for good: not redelivered after the lease would have run out.
        left = await queue.consume(10, wait=0.6)
        assert [e.id for e in left] == [ids[2]]
        # Dead-lettering what is not on the queue any more (or twice) changes nothing.
        await queue.dead_letter([(ids[0], "again")])
        assert len(await queue.dead_letters()) == 2


async def test_corrupted_entries_are_dead_lettered_not_raised(backend: Backend) -> None:
    with anyio.fail_after(GUARD):
        queue = await backend.open()
        [good] = await queue.publish([b"good"])
        await backend.corrupt()
        [last] = await queue.publish([b"last"])
        got = await queue.consume(10, wait=0)
        assert [e.data for e in got] == [b"good", b"undated", b"last"]
        assert got[0].id == good and got[2].id == last
        # An unreadable publish time falls back to something sane, never a crash.
        assert abs(got[1].enqueued_at - time.time()) < 3600
        [dead] = await queue.dead_letters()
        assert dead.reason.startswith("corrupted entry")
        assert await queue.depth() == 3


# -- depth, age, tail


async def test_depth_and_oldest_age(backend: Backend) -> None:
    with anyio.fail_after(GUARD):
        queue = await backend.open()
        assert await queue.depth() == 0
        assert await queue.oldest_age() == 0.0
        ids = await queue.publish(payloads(3))
        assert await queue.depth() == 3
        assert 0.0 <= await queue.oldest_age() < 3600
        got = await queue.consume(2, wait=0)
        assert await queue.depth() == 3  # leased entries still count
        assert 0.0 <= await queue.oldest_age() < 3600
        await queue.ack([got[0].id])
        assert await queue.depth() == 2
        await queue.ack([got[1].id, ids[2]])
        assert await queue.depth() == 0
        assert await queue.oldest_age() == 0.0


async def test_tail_after_id_and_limit(backend: Backend) -> None:
    with anyio.fail_after(GUARD):
        queue = await backend.open()
        ids = await queue.publish(payloads(5))
        every = await queue.tail(None)
        assert [(e.id, e.data) for e in every] == list(zip(ids, payloads(5), strict=True))
        page = await queue.tail(ids[1], limit=2)
        assert [e.id for e in page] == ids[2:4]
        assert await queue.tail(ids[-1]) == []
        # Tail does not lease: everything is still there to consume.
        assert [e.id for e in await queue.consume(10, wait=0)] == ids


async def test_tail_waits_for_new_entries(backend: Backend) -> None:
    with anyio.fail_after(GUARD):
        reader = await backend.open()
        writer = await backend.open()
        [first] = await writer.publish([b"first"])
        result: list[Any] = []

        async def follow() -> None:
            result.extend(await reader.tail(first, wait=20))

        async with anyio.create_task_group() as tg:
            tg.start_soon(follow)
            await anyio.sleep(0.2)
            [second] = await writer.publish([b"second"])
        assert [(e.id, e.data) for e in result] == [(second, b"second")]
        assert await reader.tail(second, wait=0.1) == []


async def test_keep_acked_tail_sees_acknowledged_entries(backend: Backend) -> None:
    with anyio.fail_after(GUARD):
        events = await backend.open("events", keep_acked=True)
        ids = await events.publish(payloads(4, "e"))
        assert await events.oldest_age() >= 0.0
        got = await events.consume(10, wait=0)
        await events.ack([e.id for e in got[:3]])
        await events.dead_letter([(got[3].id, "undeliverable")])
        assert await events.depth() == 0
        assert await events.oldest_age() == 0.0
        assert await events.consume(10, wait=0) == []
        assert [e.id for e in await events.tail(None)] == ids
        assert [d.id for d in await events.dead_letters()] == [ids[3]]
        # Acknowledging is not consuming on a log: a second reader of the file/stream sees
        # the same history.
        reader = await backend.open("events", keep_acked=True)
        assert [e.data for e in await reader.tail(ids[0])] == payloads(4, "e")[1:]


async def test_keep_acked_depth_counts_unacknowledged(backend: Backend) -> None:
    with anyio.fail_after(GUARD):
        events = await backend.open("events", keep_acked=True)
        ids = await events.publish(payloads(3, "e"))
        assert await events.depth() == 3
        got = await events.consume(2, wait=0)
        assert await events.depth() == 3
        await events.ack([got[0].id])
        assert await events.depth() == 2
        assert [e.id for e in await events.consume(5, wait=0)] == [ids[2]]


async def test_keep_acked_retain_bounds_the_log(backend: Backend) -> None:
    with anyio.fail_after(GUARD):
        events = await backend.open("events", keep_acked=True, retain=5)
        ids: list[str] = []
        for i in range(12):
            ids += await events.publish([f"e-{i}".encode()])
        kept = [e.id for e in await events.tail(None, limit=100)]
        # The newest ``retain`` are always kept; SQLite trims exactly, Redis approximately
        # (whole stream nodes, MAXLEN ~).
        assert kept == ids[-len(kept) :]
        assert len(kept) >= 5
        if backend.kind == "sqlite":
            assert kept == ids[-5:]


# -- lifecycle and errors


async def test_open_queue_factory_and_context_manager(backend: Backend) -> None:
    with anyio.fail_after(GUARD):
        kind: Any = backend.kind
        async with await open_queue(kind, "factory", **backend.open_args()) as queue:
            ids = await queue.publish([b"a", b"b"])
            got = await queue.consume(5, wait=0)
            await queue.ack([e.id for e in got])
            assert [e.id for e in got] == ids
        with pytest.raises(QueueClosedError):
            await queue.publish([b"c"])
        await queue.aclose()  # closing twice is fine


async def test_closed_queue_refuses_calls(backend: Backend) -> None:
    with anyio.fail_after(GUARD):
        queue = await backend.open()
        await queue.aclose()
        with pytest.raises(QueueClosedError, match="closed"):
            await queue.consume(1, wait=0)
        with pytest.raises(QueueClosedError):
            await queue.depth()


async def test_bad_arguments_are_named(backend: Backend) -> None:
    with anyio.fail_after(GUARD):
        queue = await backend.open()
        with pytest.raises(ValueError, match="max_count"):
            await queue.consume(0)
        with pytest.raises(TypeError, match="max_count"):
            await queue.consume(True)
        with pytest.raises(ValueError, match="wait"):
            await queue.consume(1, wait=-1)
        with pytest.raises(TypeError, match=r"payloads\[1\] is str"):
            await queue.publish([b"ok", "text"])  # type: ignore[list-item]
        with pytest.raises(TypeError, match="single value"):
            await queue.publish(b"abc")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="entry id"):
            await queue.ack(["not an id"])
        with pytest.raises(TypeError, match="single string"):
            await queue.ack("1-0")
        with pytest.raises(ValueError, match="delay"):
            await queue.release(["1-0" if backend.kind == "redis" else "1"], delay=-1)
        with pytest.raises(TypeError, match=r"items\[0\]"):
            await queue.dead_letter([("1",)])  # type: ignore[list-item]
        with pytest.raises(ValueError, match="limit"):
            await queue.tail(None, limit=0)
        with pytest.raises(ValueError):
            await queue.tail("yesterday")
        with pytest.raises(ValueError, match="queue name"):
            await backend.open("no spaces")
        with pytest.raises(ValueError, match="visibility_timeout"):
            await backend.open(visibility_timeout=0)
        with pytest.raises(ValueError, match="max_deliveries"):
            await backend.open(max_deliveries=0)
        with pytest.raises(ValueError, match="prefix"):
            await backend.open(prefix='say "hi"')


async def test_open_queue_rejects_bad_backend_and_missing_location(tmp_path: Path) -> None:
    with anyio.fail_after(GUARD):
        with pytest.raises(ValueError, match="unknown queue backend 'kafka'"):
            await open_queue("kafka", "jobs", path=str(tmp_path / "q"))  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="needs a path"):
            await open_queue("sqlite", "jobs")
        with pytest.raises(ValueError, match="needs a url"):
            await open_queue("redis", "jobs")


# -- backend specifics


async def test_sqlite_shared_by_another_process(tmp_path: Path) -> None:
    """A publisher in another process (``smpp-bridge enqueue``) reaches a waiting consumer."""
    path = tmp_path / "shared.sqlite"
    script = (
        "import anyio\n"
        "from smpp_bridge.storage.queues import open_queue\n"
        "async def main():\n"
        f"    async with await open_queue('sqlite', 'jobs', path={str(path)!r}) as q:\n"
        "        for i in range(5):\n"
        "            await q.publish([f'x{i}-{j}'.encode() for j in range(20)])\n"
        "anyio.run(main)\n"
    )
    with anyio.fail_after(GUARD):
        async with await open_queue("sqlite", "jobs", path=str(path)) as queue:
            got: list[Leased] = []
            async with anyio.create_task_group() as tg:
                tg.start_soon(anyio.run_process, [sys.executable, "-c", script])
                while len(got) < 100:
                    got += await queue.consume(100, wait=10)
            assert [e.data for e in got] == [
                f"x{i}-{j}".encode() for i in range(5) for j in range(20)
            ]


async def test_sqlite_busy_file_is_a_backend_error(tmp_path: Path) -> None:
    path = tmp_path / "locked.sqlite"
    with anyio.fail_after(GUARD):
        queue = SqliteQueue(path, "jobs", busy_timeout=0.05)
        await queue.open()
        blocker = sqlite3.connect(path, isolation_level=None)
        try:
            blocker.execute("BEGIN IMMEDIATE")
            with pytest.raises(QueueBackendError, match=r"publish failed.*locked"):
                await queue.publish([b"x"])
            blocker.execute("ROLLBACK")
            assert len(await queue.publish([b"x"])) == 1
        finally:
            blocker.close()
            await queue.aclose()


async def test_redis_stream_deleted_underneath_recovers(tmp_path: Path) -> None:
    need_redis()
    with anyio.fail_after(GUARD):
        async with coredis.Redis.from_url(REDIS_URL, decode_responses=False) as client:
            env = Backend("redis", tmp_path, client)
            try:
                queue = await env.open()
                await queue.publish([b"lost with the stream"])
                await client.delete([f"{env.prefix}:q:jobs"])
                assert await queue.consume(5, wait=0) == []
                ids = await queue.publish([b"after"])
                got = await queue.consume(5, wait=0)
                assert [e.id for e in got] == ids
            finally:
                for opened in env.opened:
                    await opened.aclose()
                await delete_prefix(client, env.prefix)


# coredis leaves a failed connection's internal memory streams unclosed; collected here, in
# this test, so the warnings about them are not blamed on another test.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.filterwarnings("ignore::ResourceWarning")
async def test_redis_unreachable_is_a_backend_error() -> None:
    with anyio.fail_after(GUARD):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        with pytest.raises(QueueBackendError, match=f"open failed.*127.0.0.1:{port}"):
            await open_queue("redis", "jobs", url=f"redis://127.0.0.1:{port}/0")
    gc.collect()
