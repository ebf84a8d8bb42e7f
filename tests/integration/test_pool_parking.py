"""Parked receipts survive a restart: a receipt that came before its mapping is in the store
before the SMSC gets its deliver_sm_resp, and a pool started again on the same store publishes
it (matched once the mapping is there, or unmatched when it never comes). Against the simulator,
with the memory store (one process), SQLite (a file) and Redis (when a server is there)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import coredis
import pytest

from smpp_bridge.codec.pdus import DeliverSm
from smpp_bridge.codec.receipt import format_receipt
from smpp_bridge.pool import (
    BindPool,
    CorrelationRecord,
    CorrelationStore,
    MemoryCorrelationStore,
    ParkedReceipt,
    open_pool,
)
from smpp_bridge.simulator import Simulator, run_simulator
from smpp_bridge.simulator.smsc import Outbound
from smpp_bridge.storage.correlation_redis import RedisCorrelationStore
from smpp_bridge.storage.correlation_sqlite import SqliteCorrelationStore

from .test_pool import Recorder, pool_config, sim_config

pytestmark = pytest.mark.anyio

REDIS_URL = "redis://127.0.0.1:6379/0"
# Every backend here is a correlation store and a parking store.
AnyStore = MemoryCorrelationStore | SqliteCorrelationStore | RedisCorrelationStore
INSTANCE = "daemon-a"


def inject_receipt(sim: Simulator, message_id: str, stat: str = "DELIVRD") -> None:
    """The simulator sends a receipt for ``message_id``, which no submit of ours announced."""
    account = sim.accounts["esme"]
    session = account.receiver()
    assert session is not None
    text = format_receipt(message_id, stat)
    pdu = DeliverSm(
        source_addr="34600000001",
        destination_addr="ACME",
        esm_class=0x04,
        short_message=text.encode("ascii"),
    )
    session.deliver(Outbound(pdu, "receipt", stat, account, None))


async def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    with anyio.fail_after(timeout):
        while not predicate():
            await anyio.sleep(0.01)


class Stores:
    """Makes stores of one kind that see the same data (a restart: a new object on the same
    file or Redis prefix; for memory, the same object)."""

    def __init__(self, kind: str, tmp_path: Path, client: coredis.Redis[bytes] | None) -> None:
        self.kind = kind
        self.path = tmp_path / "corr.sqlite"
        self.prefix = f"smppb:test:{uuid.uuid4().hex}"
        self.client = client
        self.memory = MemoryCorrelationStore()

    def make(self) -> AnyStore:
        if self.kind == "memory":
            return self.memory
        if self.kind == "sqlite":
            return SqliteCorrelationStore(self.path)
        assert self.client is not None
        return RedisCorrelationStore(self.client, prefix=self.prefix)


def redis_available() -> bool:
    import socket

    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=0.5).close()
    except OSError:
        return False
    return True


@pytest.fixture(params=["memory", "sqlite", "redis"])
async def stores(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Stores]:
    kind: str = request.param
    if kind != "redis":
        yield Stores(kind, tmp_path, None)
        return
    if not redis_available():
        pytest.skip("no Redis at 127.0.0.1:6379")
    async with coredis.Redis.from_url(REDIS_URL, decode_responses=False) as client:
        made = Stores(kind, tmp_path, client)
        try:
            yield made
        finally:
            keys = [key async for key in client.scan_iter(match=f"{made.prefix}:*")]
            if keys:
                await client.delete(keys)


@asynccontextmanager
async def running_pool(
    sim: Simulator, recorder: Recorder, store: CorrelationStore, **pool: Any
) -> AsyncIterator[BindPool]:
    config = pool_config(sim, pool=pool)
    async with open_pool(config, recorder, store=store, instance=INSTANCE) as running:
        await running.wait_ready(timeout=10)
        yield running


async def test_parked_receipt_is_matched_after_a_restart(stores: Stores) -> None:
    async with run_simulator(sim_config()) as sim:
        counters = sim.stats.account("esme")
        store: AnyStore = stores.make()
        first = Recorder()
        async with running_pool(sim, first, store) as pool:
            inject_receipt(sim, "zz42")
            await wait_until(lambda: counters.dlrs_acked == 1)
            assert pool.stats["parked"] == 1
        # Answered, not published: it was parked, and is kept for the next run.
        assert first.dlrs == []
        kept = await store.load_parked(INSTANCE)
        assert [(p.account, p.receipt.message_id, p.bind) for p in kept] == [
            ("main", "zz42", "main#0")
        ]
        # Meanwhile the mapping reaches the store (written by whoever submitted it).
        await store.put_many(
            [CorrelationRecord(account="main", message_id="ZZ42", request_id="r1", client_id="c1")]
        )
        if stores.kind != "memory":
            await store.aclose()
            store = stores.make()
        second = Recorder()
        async with running_pool(sim, second, store):
            await second.wait("dlrs", 1, timeout=10)
        (event,) = second.dlrs
        assert event.matched and event.client_id == "c1" and event.request_id == "r1"
        assert event.status == "delivered" and event.bind == "main#0"
        assert await store.load_parked(INSTANCE) == []
        await store.aclose()


async def test_parked_receipt_with_no_mapping_comes_out_unmatched_after_a_restart(
    stores: Stores,
) -> None:
    async with run_simulator(sim_config()) as sim:
        counters = sim.stats.account("esme")
        store = stores.make()
        async with running_pool(sim, Recorder(), store):
            inject_receipt(sim, "zz43", "UNDELIV")
            await wait_until(lambda: counters.dlrs_acked == 1)
        if stores.kind != "memory":
            await store.aclose()
            store = stores.make()
        second = Recorder()
        async with running_pool(sim, second, store, unmatched_after=0.5):
            await second.wait("dlrs", 1, timeout=10)
        (event,) = second.dlrs
        assert not event.matched and event.status == "failed"
        assert event.receipt.message_id == "zz43"
        assert await store.load_parked(INSTANCE) == []
        await store.aclose()


async def test_receipt_matched_while_running_leaves_nothing_parked(stores: Stores) -> None:
    async with run_simulator(sim_config()) as sim:
        counters = sim.stats.account("esme")
        store = stores.make()
        recorder = Recorder()
        async with running_pool(sim, recorder, store):
            inject_receipt(sim, "zz44")
            await wait_until(lambda: counters.dlrs_acked == 1)
            assert len(await store.load_parked(INSTANCE)) == 1
            await store.put_many(
                [CorrelationRecord(account="main", message_id="zz44", request_id="r4")]
            )
            # Found at its first relookup (a second after it arrived), then deleted.
            await recorder.wait("dlrs", 1, timeout=10)
            await wait_until(lambda: not stores_parked(store))
        assert recorder.dlrs[0].request_id == "r4"
        assert await store.load_parked(INSTANCE) == []
        await store.aclose()


def stores_parked(store: CorrelationStore) -> bool:
    """Whether the memory store still holds a parked receipt (the others are checked with an
    await after the block)."""
    if isinstance(store, MemoryCorrelationStore):
        return bool(store._parked.get(INSTANCE))
    return False


class GatedStore(MemoryCorrelationStore):
    """A memory store whose ``park_many`` waits for a gate: a slow durable write."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = anyio.Event()
        self.parking = 0

    async def park_many(self, owner: str, parked: list[ParkedReceipt]) -> None:  # type: ignore[override]
        self.parking += 1
        await self.gate.wait()
        await super().park_many(owner, parked)


async def test_deliver_sm_resp_waits_until_the_receipt_is_parked_durably() -> None:
    async with run_simulator(sim_config()) as sim:
        counters = sim.stats.account("esme")
        store = GatedStore()
        async with running_pool(sim, Recorder(), store):
            inject_receipt(sim, "zz45")
            await wait_until(lambda: store.parking == 1)
            await anyio.sleep(0.2)
            # Delivered to us, not answered: the receipt is not safe yet.
            assert counters.dlrs == {"DELIVRD": 1} and counters.dlrs_acked == 0
            store.gate.set()
            await wait_until(lambda: counters.dlrs_acked == 1)
            assert [p.receipt.message_id for p in await store.load_parked(INSTANCE)] == ["zz45"]
