"""``BindPool.send_many`` and the store kept small: every message once, mappings gone once
their receipts settle them (repeats still matched), none stored when no receipt was asked for,
and a drain that says how much of a batch was taken. Counts over every message."""

from __future__ import annotations

import collections

import anyio
import pytest

from smpp_bridge.errors import PoolClosed
from smpp_bridge.pool import BindPool, MemoryCorrelationStore, OutboundMessage, open_pool
from smpp_bridge.simulator import run_simulator

from .test_pool import Recorder, messages, pool_config, sim_config
from .test_pool_parking import inject_receipt, wait_until

pytestmark = pytest.mark.anyio

LONG = "Este mensaje es largo y llega en varias partes. " * 5


def mixed(n: int) -> list[OutboundMessage]:
    """One-part messages, with a multipart one every tenth."""
    batch = messages(n)
    for m in batch[::10]:
        m.text = LONG
    return batch


async def test_send_many_sends_every_message_once_and_forgets_settled_mappings() -> None:
    recorder = Recorder()
    n = 3000
    store = MemoryCorrelationStore()
    async with run_simulator(sim_config()) as sim:
        config = pool_config(sim, binds=2, window=50)
        async with open_pool(config, recorder, store=store) as pool:
            await pool.wait_ready(timeout=10)
            batch = mixed(n)
            for start in range(0, n, 100):
                await pool.send_many(batch[start : start + 100])
            await recorder.wait("outcomes", n, timeout=60)
            parts = sum(o.parts for o in recorder.outcomes)
            await recorder.wait("dlrs", parts, timeout=60)
            # Every part settled: nothing left to correlate, only each part's tombstone.
            assert store.count(settled=False) == 0
            assert store.count(settled=True) == len(store) == parts
        accepted = sim.stats.account("esme").accepted
    assert collections.Counter(o.status for o in recorder.outcomes) == {"sent": n}
    assert len({o.message.id for o in recorder.outcomes}) == n
    assert accepted == parts > n
    assert len(recorder.dlrs) == parts
    assert all(e.matched for e in recorder.dlrs)


async def test_mappings_are_kept_when_asked() -> None:
    recorder = Recorder()
    store = MemoryCorrelationStore()
    async with run_simulator(sim_config()) as sim:
        config = pool_config(sim, window=50)
        async with open_pool(config, recorder, store=store, forget_settled=False) as pool:
            await pool.wait_ready(timeout=10)
            await pool.send_many(messages(100))
            await recorder.wait("dlrs", 100, timeout=30)
            assert len(store) == 100
            assert store.count(settled=True) == 100  # marked, so that repeats are known


async def test_no_mapping_is_stored_when_no_receipt_is_asked_for() -> None:
    recorder = Recorder()
    store = MemoryCorrelationStore()
    async with run_simulator(sim_config()) as sim:
        config = pool_config(sim, window=50)
        async with open_pool(config, recorder, store=store) as pool:
            await pool.wait_ready(timeout=10)
            batch = messages(100)
            for m in batch:
                m.request_dlr = False
            await pool.send_many(batch)
            await recorder.wait("outcomes", 100, timeout=30)
            assert len(store) == 0
        assert sim.stats.account("esme").dlrs == {}
    assert all(o.status == "sent" for o in recorder.outcomes)


async def test_repeated_receipt_is_recognised_after_its_mapping_is_forgotten() -> None:
    recorder = Recorder()
    store = MemoryCorrelationStore()
    async with run_simulator(sim_config()) as sim:
        config = pool_config(sim)
        # A memory of one settled part: the second message's receipt pushes the first out,
        # and its repeat is known by its tombstone in the store.
        async with open_pool(config, recorder, store=store, recent_settled=1) as pool:
            await pool.wait_ready(timeout=10)
            await pool.send_many(messages(2))
            await recorder.wait("dlrs", 2, timeout=10)
            assert store.count(settled=False) == 0
            message_id = next(o for o in recorder.outcomes if o.message.id == "m0").message_ids[0]
            for _ in range(2):
                inject_receipt(sim, message_id)  # the SMSC did not hear our answer, say
                inject_receipt(sim, message_id, "ENROUTE")  # nor may a late one regress it
            await wait_until(lambda: pool.duplicate_receipts == 4)
            await anyio.sleep(0.2)
    assert len(recorder.dlrs) == 2
    assert all(e.matched for e in recorder.dlrs)
    assert pool.stats["duplicate_receipts"] == 4
    # The first receipt came with (or right after) its response, yet was not parked: the
    # mapping is stored before receipts are looked up.
    assert pool.stats["parked"] == 0


async def test_send_many_interrupted_by_a_drain_says_how_much_was_taken() -> None:
    recorder = Recorder()
    config = sim_config(submit={"latency": 0.3}, receipts={"enabled": False})
    async with run_simulator(config) as sim, anyio.create_task_group() as tg:
        pool = BindPool(pool_config(sim, window=10), recorder)
        await tg.start(pool.run)
        await pool.wait_ready()
        raised: list[PoolClosed] = []

        async def sender() -> None:
            try:
                await pool.send_many(messages(40))
            except PoolClosed as exc:
                raised.append(exc)

        tg.start_soon(sender)
        await wait_until(lambda: sim.stats.account("esme").submits == 10)
        with anyio.fail_after(10):
            unsent = await pool.drain(timeout=5)
    (closed,) = raised
    assert closed.accepted == 10 == len(recorder.outcomes)
    assert all(o.status == "sent" for o in recorder.outcomes)
    assert unsent == []
    assert sim.stats.account("esme").accepted == 10
