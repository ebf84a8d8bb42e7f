"""The correlation store contract, run against every backend: memory, SQLite and a real Redis.

Redis is the server at 127.0.0.1:6379 (CI starts one). Each test gets its own key prefix and
deletes its keys afterwards. Without a server the Redis cases are skipped, except under CI,
where they fail: a missing server there is a broken setup, not a reason to test less.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import coredis
import pytest

from smpp_bridge.errors import StoreClosedError
from smpp_bridge.pool import (
    CorrelationRecord,
    CorrelationStore,
    IdMode,
    MemoryCorrelationStore,
    MessageIdResolver,
)
from smpp_bridge.pool.correlation import Conversion
from smpp_bridge.storage.correlation_redis import RedisCorrelationStore
from smpp_bridge.storage.correlation_sqlite import SqliteCorrelationStore
from tests.redis_util import REDIS_URL, delete_prefix, need_redis

pytestmark = pytest.mark.anyio

ACCOUNT = "acme"
BACKENDS = ["memory", "sqlite", "redis"]


def record(
    message_id: str, request_id: str | None = None, account: str = ACCOUNT, **kw: Any
) -> CorrelationRecord:
    return CorrelationRecord(
        account=account,
        message_id=message_id,
        request_id=request_id or f"req-{message_id}",
        client_id=f"client-{message_id}",
        **kw,
    )


def unique_prefix() -> str:
    return f"smppb:test:{uuid.uuid4().hex}"


class Backend:
    """Makes stores of one kind that all see the same data (one file, one Redis prefix)."""

    def __init__(self, kind: str, tmp_path: Path, client: coredis.Redis[bytes] | None) -> None:
        self.kind = kind
        self.path = tmp_path / "corr.sqlite"
        self.prefix = unique_prefix()
        self.client = client
        self.memory: MemoryCorrelationStore | None = None

    def make(self, resolver: MessageIdResolver | None = None) -> CorrelationStore:
        # The contract is the same whatever the mode; ``exact`` keeps ids like "42" apart
        # from ``auto``'s rule, which has its own tests below.
        if resolver is None:
            resolver = MessageIdResolver(default=IdMode.EXACT)
        if self.kind == "memory":
            # One process, one dict: "another store" is the same object.
            if self.memory is None:
                self.memory = MemoryCorrelationStore(resolver=resolver)
            return self.memory
        if self.kind == "sqlite":
            return SqliteCorrelationStore(self.path, resolver=resolver)
        assert self.client is not None
        return RedisCorrelationStore(self.client, prefix=self.prefix, resolver=resolver)


@pytest.fixture(params=BACKENDS)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    kind: str = request.param
    if kind != "redis":
        yield Backend(kind, tmp_path, None)
        return
    need_redis()
    async with coredis.Redis.from_url(REDIS_URL, decode_responses=False) as client:
        backend = Backend(kind, tmp_path, client)
        try:
            yield backend
        finally:
            await delete_prefix(client, backend.prefix)


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[CorrelationStore]:
    made = backend.make()
    try:
        yield made
    finally:
        await made.aclose()


# -- the contract


@pytest.mark.parametrize("size", [1, 100, 1000])
async def test_batch_round_trip(store: CorrelationStore, size: int) -> None:
    records = [
        record(
            f"00MSG{i:06X}",
            part=i % 3,
            parts=3,
            submitted_at=1_700_000_000.0 + i,
            meta={"bind": "acme#0", "i": i},
        )
        for i in range(size)
    ]
    with anyio.fail_after(10):
        await store.put_many(records)
        # As the SMSC might write them in a receipt: lower case, no padding.
        ids = [f"msg{i:06x}" for i in range(size)]
        found = await store.get_many(ACCOUNT, ids)
    assert len(found) == size
    for i, rec in zip(ids, records, strict=True):
        assert found[i] == rec


async def test_missing_and_empty(store: CorrelationStore) -> None:
    with anyio.fail_after(5):
        await store.put_many([])
        assert await store.get_many(ACCOUNT, []) == {}
        await store.put_many([record("abc")])
        assert await store.get_many(ACCOUNT, ["abd", "ab", ""]) == {}
        await store.delete_many(ACCOUNT, [])


async def test_accounts_are_separate(store: CorrelationStore) -> None:
    with anyio.fail_after(5):
        await store.put_many(
            [record("42", "a-42"), record("42", "b-42", "other"), record("7", "c-7", "x:y")]
        )
        assert (await store.get_many(ACCOUNT, ["42"]))["42"].request_id == "a-42"
        assert (await store.get_many("other", ["42"]))["42"].request_id == "b-42"
        # A ':' in an account name cannot alias another account's keys.
        assert (await store.get_many("x:y", ["7"]))["7"].request_id == "c-7"
        assert await store.get_many("x", ["y:7"]) == {}
        assert await store.get_many("nobody", ["42"]) == {}


async def test_put_replaces(store: CorrelationStore) -> None:
    with anyio.fail_after(5):
        await store.put_many([record("0099", "first")])
        await store.put_many([record("99", "second")])
        assert (await store.get_many(ACCOUNT, ["099"]))["099"].request_id == "second"


async def test_delete_by_submit_id(store: CorrelationStore) -> None:
    with anyio.fail_after(5):
        await store.put_many([record("00AB"), record("CD"), record("EF")])
        await store.delete_many(ACCOUNT, ["ab", "00cd", "missing"])
        assert set(await store.get_many(ACCOUNT, ["ab", "cd", "ef"])) == {"ef"}


async def test_normalisation_through_the_store(backend: Backend) -> None:
    resolver = MessageIdResolver({"h2d": IdMode.HEX_TO_DECIMAL, "d2h": "decimal-to-hex"})
    store = backend.make(resolver)
    try:
        with anyio.fail_after(5):
            await store.put_many(
                [
                    record("0000FF", account="h2d"),
                    record("256", account="h2d"),  # hex 0x256, not decimal 256
                    record("255", account="d2h"),
                    record("10", "ten", account="d2h"),
                    record("16", "sixteen", account="d2h"),
                ]
            )
            assert (await store.get_many("h2d", ["255"]))["255"].message_id == "0000FF"
            # Decimal receipts: 256 is hex 100, not there; the record under "256" is another
            # message and is not taken...
            assert await store.get_many("h2d", ["256"]) == {}
            # ...but an id that is no decimal number at all is looked up as it is.
            assert (await store.get_many("h2d", ["FF"]))["FF"].message_id == "0000FF"
            found = await store.get_many("d2h", ["00ff", "10", "A"])
            assert {k: v.message_id for k, v in found.items()} == {
                "00ff": "255",
                "10": "16",
                "A": "10",
            }
    finally:
        await store.aclose()


async def test_auto_decides_from_what_the_store_sees(backend: Backend) -> None:
    """Hex responses, decimal receipts, through every backend: ``put_many`` shows the resolver
    submit ids, ``get_many`` receipt ids (before it looks them up); until hex-to-decimal is
    decided nothing that reads two ways is matched."""
    n = MessageIdResolver().decide_after
    numbers = list(range(0x33, 0x33 + n + 10))
    store = backend.make(MessageIdResolver())
    try:
        with anyio.fail_after(10):
            # A receipt ahead of its mapping, 0x18's key stored under its spelling: nothing.
            await store.put_many([record("18", "req-18")])
            assert await store.get_many(ACCOUNT, ["18"]) == {}
            await store.put_many([record(format(n, "X"), f"req-{n:x}") for n in numbers])
            assert await store.get_many(ACCOUNT, ["51", "0052"]) == {}
            assert store.resolver.conversion(ACCOUNT) is None
            # Enough decimal receipts in one batch: decided before the lookup, all found.
            receipts = [str(n) for n in numbers]
            found = await store.get_many(ACCOUNT, receipts)
            assert store.resolver.conversion(ACCOUNT) is Conversion.HEX_TO_DECIMAL
            assert {k: v.request_id for k, v in found.items()} == {
                str(n): f"req-{n:x}" for n in numbers
            }
            assert (await store.get_many(ACCOUNT, ["24"]))["24"].request_id == "req-18"
            assert await store.get_many(ACCOUNT, ["18"]) == {}  # 0x12: never stored
            if backend.kind != "memory":
                # Another process on the same data (a restarted daemon, one that only
                # receives) adopts the decision the store keeps at its first lookup, without
                # seeing a single id of its own; a configured mode is not overridden.
                other = backend.make(MessageIdResolver())
                exact = backend.make(MessageIdResolver(default=IdMode.EXACT))
                try:
                    assert other.resolver.conversion(ACCOUNT) is None
                    assert (await other.get_many(ACCOUNT, ["51"]))["51"].request_id == "req-33"
                    assert other.resolver.conversion(ACCOUNT) is Conversion.HEX_TO_DECIMAL
                    # (Read as it is written: 0x51's own mapping.)
                    assert (await exact.get_many(ACCOUNT, ["51"]))["51"].request_id == "req-51"
                    assert exact.resolver.conversion(ACCOUNT) is Conversion.SAME
                finally:
                    await other.aclose()
                    await exact.aclose()
    finally:
        await store.aclose()


async def test_the_first_decision_stored_stays(backend: Backend) -> None:
    """Two processes that decided differently (an SMSC that changed its ways): the store
    keeps the first, which every process that has not decided adopts."""
    if backend.kind == "memory":
        pytest.skip("one process: nothing to keep")
    n = MessageIdResolver().decide_after
    first, second = backend.make(MessageIdResolver()), backend.make(MessageIdResolver())
    late = backend.make(MessageIdResolver())
    try:
        with anyio.fail_after(10):
            await first.put_many([record(format(i, "X")) for i in range(0x40, 0x40 + n)])
            await first.get_many(ACCOUNT, [str(i) for i in range(0x40, 0x40 + n)])
            assert first.resolver.conversion(ACCOUNT) is Conversion.HEX_TO_DECIMAL
            await first.put_many([record("ffff")])  # the decision goes with the next write
            ids = [str(10**6 + i) for i in range(n)]
            await second.put_many([record(i) for i in ids])
            await second.get_many(ACCOUNT, ids)
            assert second.resolver.conversion(ACCOUNT) is Conversion.SAME
            await second.put_many([record("7")])
            await late.get_many(ACCOUNT, ["65"])
            assert late.resolver.conversion(ACCOUNT) is Conversion.HEX_TO_DECIMAL
    finally:
        for made in (first, second, late):
            await made.aclose()


async def test_concurrent_use(backend: Backend) -> None:
    store = backend.make()
    errors: list[str] = []

    async def worker(n: int) -> None:
        mine = [record(f"{n}-{i}", f"r{n}-{i}") for i in range(50)]
        for start in range(0, 50, 10):
            await store.put_many(mine[start : start + 10])
            found = await store.get_many(ACCOUNT, [r.message_id for r in mine[: start + 10]])
            if len(found) != start + 10 or any(
                found[r.message_id].request_id != r.request_id for r in mine[: start + 10]
            ):
                errors.append(f"worker {n} at {start}")

    try:
        with anyio.fail_after(15):
            async with anyio.create_task_group() as tg:
                for n in range(20):
                    tg.start_soon(worker, n)
            found = await store.get_many(
                ACCOUNT, [f"{n}-{i}" for n in range(20) for i in range(50)]
            )
    finally:
        await store.aclose()
    assert errors == []
    assert len(found) == 1000


async def test_a_second_store_sees_the_first_ones_records(backend: Backend) -> None:
    """Two daemons on one Redis, or two processes on one SQLite file."""
    first, second = backend.make(), backend.make()
    try:
        with anyio.fail_after(5):
            await first.put_many([record("abc123")])
            assert (await second.get_many(ACCOUNT, ["ABC123"]))["ABC123"].request_id == (
                "req-abc123"
            )
    finally:
        await first.aclose()
        await second.aclose()


async def test_use_after_close_fails(backend: Backend) -> None:
    store = backend.make()
    await store.aclose()
    with pytest.raises(StoreClosedError):
        await store.put_many([record("1")])
    with pytest.raises(StoreClosedError):
        await store.get_many(ACCOUNT, ["1"])


# -- expiry: one real wait per persistent backend (the memory store's TTL runs on a fake clock
# in the unit tests)


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
async def test_ttl_expiry(kind: str, tmp_path: Path) -> None:
    async def check(store: CorrelationStore) -> None:
        await store.put_many([record("short")], ttl=1.0)
        await store.put_many([record("long")])
        assert set(await store.get_many(ACCOUNT, ["short", "long"])) == {"short", "long"}
        await anyio.sleep(1.5)
        assert set(await store.get_many(ACCOUNT, ["short", "long"])) == {"long"}

    with anyio.fail_after(10):
        if kind == "sqlite":
            async with SqliteCorrelationStore(tmp_path / "ttl.sqlite") as store:
                await check(store)
            return
        need_redis()
        prefix = unique_prefix()
        async with RedisCorrelationStore.connect(REDIS_URL, prefix=prefix) as redis_store:
            try:
                await check(redis_store)
            finally:
                await delete_prefix(redis_store.client, prefix)


# -- SQLite specifics


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


async def test_sqlite_wal_durable_and_purged(tmp_path: Path) -> None:
    path = tmp_path / "corr.sqlite"
    clock = FakeClock()
    with anyio.fail_after(10):
        async with SqliteCorrelationStore(path, clock=clock, purge_interval=60) as store:
            await store.put_many([record(str(i)) for i in range(10)], ttl=30)
            await store.put_many([record("keep")])
        with sqlite3.connect(path) as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
            assert conn.execute("SELECT count(*) FROM smppb_correlation").fetchone() == (11,)
        # Reopened: what was stored is still there; expired rows are hidden, then purged.
        async with SqliteCorrelationStore(path, clock=clock, purge_interval=60) as store:
            assert len(await store.get_many(ACCOUNT, [str(i) for i in range(10)])) == 10
            clock.now += 31
            assert await store.get_many(ACCOUNT, ["1"]) == {}
            # The periodic purge rides on the next put once the interval has passed.
            clock.now += 30
            await store.put_many([record("new")])
            assert await store.purge() == 0
            assert set(await store.get_many(ACCOUNT, ["keep", "new", "1"])) == {"keep", "new"}
        with sqlite3.connect(path) as conn:
            assert conn.execute("SELECT count(*) FROM smppb_correlation").fetchone() == (2,)


async def test_sqlite_explicit_purge(tmp_path: Path) -> None:
    clock = FakeClock()
    with anyio.fail_after(5):
        async with SqliteCorrelationStore(tmp_path / "p.sqlite", clock=clock) as store:
            await store.put_many([record("a"), record("b")], ttl=5)
            await store.put_many([record("c")])
            assert await store.purge() == 0
            clock.now += 5
            assert await store.purge() == 2


def test_sqlite_rejects_bad_settings(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        SqliteCorrelationStore(tmp_path / "x", table="x; DROP TABLE y")
    with pytest.raises(ValueError):
        SqliteCorrelationStore(tmp_path / "x", synchronous="SOMETIMES")


# -- Redis specifics


async def test_redis_keys_and_expiry_are_set(tmp_path: Path) -> None:
    need_redis()
    prefix = unique_prefix()
    with anyio.fail_after(5):
        async with RedisCorrelationStore.connect(REDIS_URL, prefix=prefix) as store:
            try:
                await store.put_many([record("00AB"), record("1", account="a:b")])
                client = store.client
                raw = await client.get(f"{prefix}:{ACCOUNT}:ab")
                assert raw is not None and b'"messageId":"00AB"' in raw
                assert await client.exists([f"{prefix}:a%3Ab:1"]) == 1
                ttl = await client.ttl(f"{prefix}:{ACCOUNT}:ab")
                assert 7 * 86400 - 5 <= ttl <= 7 * 86400
                await store.put_many([record("cd")], ttl=0.2)  # rounded up to a whole second
                assert await client.ttl(f"{prefix}:{ACCOUNT}:cd") == 1
            finally:
                await delete_prefix(store.client, prefix)


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize("kind", ["sqlite", "redis"])
async def test_stores_run_on_asyncio_too(kind: str, tmp_path: Path) -> None:
    async def check(store: CorrelationStore) -> None:
        await store.put_many([record("0A"), record("0B")])
        assert set(await store.get_many(ACCOUNT, ["a", "b", "c"])) == {"a", "b"}

    with anyio.fail_after(5):
        if kind == "sqlite":
            async with SqliteCorrelationStore(tmp_path / "asyncio.sqlite") as store:
                await check(store)
            return
        need_redis()
        prefix = unique_prefix()
        async with RedisCorrelationStore.connect(REDIS_URL, prefix=prefix) as redis_store:
            try:
                await check(redis_store)
            finally:
                await delete_prefix(redis_store.client, prefix)
