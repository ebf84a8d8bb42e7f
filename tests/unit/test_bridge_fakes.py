"""The in-memory WorkQueue fake keeps the queue contract the webhook tests rely on: leases
that expire and redeliver with attempts + 1, release with a delay, extend, dead letters after
``max_deliveries``. Runs on trio's MockClock, so lease expiry is instant and exact."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
import trio.testing

from smpp_bridge.errors import QueueClosedError
from smpp_bridge.storage.queues import WorkQueue
from tests.bridge_fakes import MemoryWorkQueue, QueueDown

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, Any]]:
    return "trio", {"clock": trio.testing.MockClock(autojump_threshold=0)}


async def test_fifo_batches_ack_and_depth() -> None:
    queue: WorkQueue = MemoryWorkQueue(visibility_timeout=10)
    ids = await queue.publish([b"a", b"b", b"c"])
    first = await queue.consume(2, wait=0)
    assert [(e.id, e.data, e.attempts) for e in first] == [(ids[0], b"a", 1), (ids[1], b"b", 1)]
    await queue.ack([ids[0]])
    assert await queue.depth() == 2
    assert [e.id for e in await queue.consume(5, wait=0)] == [ids[2]]
    assert await queue.consume(5, wait=1.0) == []  # leased: nothing until the lease ends


async def test_lease_expiry_release_delay_and_extend() -> None:
    queue = MemoryWorkQueue(visibility_timeout=10)
    (entry_id,) = await queue.publish([b"x"])
    await queue.consume(1, wait=0)
    start = anyio.current_time()
    # Lease runs out: redelivered with attempts 2, after exactly the visibility timeout.
    (again,) = await queue.consume(1, wait=60)
    assert (again.id, again.attempts) == (entry_id, 2)
    assert anyio.current_time() - start == pytest.approx(10)
    # Release with a delay: back after the delay, not before.
    await queue.release([entry_id], delay=3)
    assert await queue.consume(1, wait=2.9) == []
    (third,) = await queue.consume(1, wait=1)
    assert third.attempts == 3
    # Extend keeps it leased past the original timeout.
    await anyio.sleep(8)
    await queue.extend([entry_id])
    assert await queue.consume(1, wait=9) == []
    assert queue.leased_ids() == [entry_id]
    assert queue.batches["extend"] == [[entry_id]]


async def test_max_deliveries_and_explicit_dead_letters() -> None:
    queue = MemoryWorkQueue(visibility_timeout=1, max_deliveries=2)
    first, second = await queue.publish([b"p", b"q"])
    await queue.dead_letter([(second, "bad payload")])
    for attempt in (1, 2):
        got = await queue.consume(1, wait=5)
        assert [(e.id, e.attempts) for e in got] == [(first, attempt)]
    assert await queue.consume(1, wait=5) == []
    dead = {d.id: d for d in await queue.dead_letters()}
    assert dead[first].reason == "delivered 2 times without ack"
    assert dead[first].attempts == 2
    assert dead[second].reason == "bad payload"
    assert await queue.depth() == 0


async def test_scripted_failures_tail_and_close() -> None:
    queue = MemoryWorkQueue(keep_acked=True)
    ids = await queue.publish([b"1", b"2"])
    await queue.ack(ids[:1])
    assert [e.id for e in await queue.tail(None)] == ids
    assert [e.id for e in await queue.tail(ids[0])] == ids[1:]
    assert await queue.oldest_age() >= 0
    queue.fail_next["consume"] = 1
    with pytest.raises(QueueDown):
        await queue.consume(1)
    assert [e.id for e in await queue.consume(1, wait=0)] == ids[1:]
    async with queue:
        pass
    with pytest.raises(QueueClosedError):
        await queue.depth()
