"""The message store contract, run against every backend: memory, SQLite and a real Redis.

Redis is the server at 127.0.0.1:6379. Each test gets its own key prefix and deletes its keys
afterwards. Without a server the Redis cases are skipped, except under CI, where they fail.
Every store gets a fake wall clock, so dedup windows are crossed without sleeping.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import coredis
import pytest

from smpp_bridge.bridge.envelope import Event
from smpp_bridge.bridge.store import (
    MemoryMessageStore,
    MessageRecord,
    MessageStore,
    decode_record,
    encode_record,
    status_rank,
)
from smpp_bridge.errors import StoreClosedError
from smpp_bridge.storage.messages_open import open_message_store
from smpp_bridge.storage.messages_redis import RedisMessageStore
from smpp_bridge.storage.messages_sqlite import SqliteMessageStore
from tests.redis_util import REDIS_URL, delete_prefix, need_redis

pytestmark = pytest.mark.anyio

BACKENDS = ["memory", "sqlite", "redis"]
T0 = 1_776_000_000.0
WINDOW = 3600.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def record(
    request_id: str, client_id: str | None = None, *, created: float = T0, **kw: Any
) -> MessageRecord:
    fields: dict[str, Any] = {
        "to": "+34600000001",
        "from_": "ACME",
        "status": "submitting",
        "created_at": created,
        "updated_at": created,
    }
    fields.update(kw)
    return MessageRecord(request_id=request_id, client_id=client_id, **fields)


def event(request_id: str | None, status: str, **kw: Any) -> Event:
    fields: dict[str, Any] = {
        "id": None,
        "client_id": None,
        "code": 0,
        "event_at": "2026-04-21T10:15:00.000Z",
    }
    fields.update(kw)
    return Event(request_id=request_id, status=status, **fields)


class Backend:
    """Makes stores of one kind that all see the same data (one file, one Redis prefix)."""

    def __init__(self, kind: str, tmp_path: Path, client: coredis.Redis[bytes] | None) -> None:
        self.kind = kind
        self.path = tmp_path / "messages.sqlite"
        self.prefix = f"smppb:test:{uuid.uuid4().hex}"
        self.client = client
        self.clock = Clock()
        self.memory: MemoryMessageStore | None = None

    def make(self, window: float = WINDOW) -> MessageStore:
        if self.kind == "memory":
            if self.memory is None:  # one process: "another store" is the same object
                self.memory = MemoryMessageStore(window, clock=self.clock)
            return self.memory
        if self.kind == "sqlite":
            return SqliteMessageStore(self.path, window, clock=self.clock)
        assert self.client is not None
        return RedisMessageStore(self.client, self.prefix, window, clock=self.clock)


@pytest.fixture(params=BACKENDS)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    kind: str = request.param
    if kind != "redis":
        yield Backend(kind, tmp_path, None)
        return
    need_redis()
    async with coredis.Redis.from_url(REDIS_URL, decode_responses=False) as client:
        made = Backend(kind, tmp_path, client)
        try:
            yield made
        finally:
            await delete_prefix(client, made.prefix)


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[MessageStore]:
    made = backend.make()
    try:
        yield made
    finally:
        await made.aclose()


# --------------------------------------------------------------------------------------------
# begin and dedup


async def test_begin_records_and_get_finds(store: MessageStore) -> None:
    with anyio.fail_after(5):
        first = record("1:0", "order-77", account="main", parts=2)
        assert await store.begin([first, record("1:1")]) == {}
        found = await store.get("order-77")
        assert found is not None
        assert found == (first, [])
        by_request = await store.get("1:0")
        assert by_request is not None and by_request[0] == first
        other = await store.get("1:1")
        assert other is not None and other[0].client_id is None
        assert await store.get("nothing") is None
        assert await store.begin([]) == {}


async def test_duplicate_client_id_returns_the_earlier_record(backend: Backend) -> None:
    store = backend.make()
    again = backend.make()  # another daemon on the same backend
    try:
        with anyio.fail_after(5):
            await store.begin([record("1:0", "order-77")])
            await store.mark(["1:0"], "submitting")
            backend.clock.now += WINDOW - 1
            existing = await again.begin([record("2:0", "order-77"), record("2:1", "order-78")])
            assert list(existing) == ["2:0"]
            assert existing["2:0"].request_id == "1:0"
            assert existing["2:0"].status == "submitting"
            # The duplicate was not recorded: the key still leads to the first request.
            found = await store.get("order-77")
            assert found is not None and found[0].request_id == "1:0"
            assert await store.get("2:0") is None
    finally:
        await store.aclose()
        if again is not store:
            await again.aclose()


async def test_duplicates_within_one_batch(store: MessageStore) -> None:
    with anyio.fail_after(5):
        existing = await store.begin(
            [record("1:0", "dup"), record("1:1", "dup"), record("1:2", "other")]
        )
        # Keyed by the request given: the first of the pair is new, only the second one
        # finds an earlier record (the first's), so the first is never taken for a redelivery.
        assert list(existing) == ["1:1"]
        assert existing["1:1"].request_id == "1:0"
        # A redelivery of the same call: each finds the first request's record.
        again = await store.begin([record("1:0", "dup"), record("1:1", "dup")])
        assert sorted(again) == ["1:0", "1:1"]
        assert {r.request_id for r in again.values()} == {"1:0"}


async def test_redelivery_without_client_id_is_recognised(store: MessageStore) -> None:
    with anyio.fail_after(5):
        await store.begin([record("7:0"), record("7:1")])
        await store.apply([event("7:0", "sent", id="m1")])
        existing = await store.begin([record("7:0"), record("7:1")])
        assert set(existing) == {"7:0", "7:1"}
        assert existing["7:0"].status == "sent"
        assert existing["7:0"].message_ids == ["m1"]
        assert existing["7:1"].status == "submitting"


async def test_client_ids_and_request_ids_do_not_collide(store: MessageStore) -> None:
    with anyio.fail_after(5):
        await store.begin([record("5:0")])
        # A clientId spelled like another message's request id is a different key.
        assert await store.begin([record("6:0", "5:0")]) == {}


async def test_dedup_window_expires(backend: Backend) -> None:
    store = backend.make()
    try:
        with anyio.fail_after(5):
            await store.begin([record("1:0", "order-77")])
            backend.clock.now += WINDOW + 1
            assert await store.begin([record("2:0", "order-77", created=T0 + WINDOW)]) == {}
            found = await store.get("order-77")
            assert found is not None and found[0].request_id == "2:0"
            # The earlier record is still there by its request id.
            earlier = await store.get("1:0")
            assert earlier is not None and earlier[0].client_id == "order-77"
            # The window restarts from the new record.
            backend.clock.now += 10
            existing = await store.begin([record("3:0", "order-77")])
            assert existing["3:0"].request_id == "2:0"
    finally:
        await store.aclose()


async def test_concurrent_begins_let_exactly_one_through(backend: Backend) -> None:
    stores = [backend.make() for _ in range(4)]
    results: list[dict[str, MessageRecord]] = []

    async def claim(store: MessageStore, i: int) -> None:
        results.append(await store.begin([record(f"{i}:0", "contested")]))

    try:
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                for i, store in enumerate(stores):
                    tg.start_soon(claim, store, i)
        winners = [r for r in results if not r]
        assert len(winners) == 1
        losers = [next(iter(r.values())).request_id for r in results if r]
        assert len(losers) == 3 and len(set(losers)) == 1
    finally:
        for store in {id(s): s for s in stores}.values():
            await store.aclose()


async def test_large_batches(store: MessageStore) -> None:
    with anyio.fail_after(20):
        records = [record(f"9:{i}", f"c{i}", created=T0 + i) for i in range(1500)]
        assert await store.begin(records) == {}
        await store.apply([event(f"9:{i}", "sent", id=f"m{i}") for i in range(1500)])
        existing = await store.begin(records)
        assert len(existing) == 1500
        assert existing["9:1499"].message_ids == ["m1499"]
        assert existing["9:0"].status == "sent"


# --------------------------------------------------------------------------------------------
# mark and apply


async def test_mark(store: MessageStore) -> None:
    with anyio.fail_after(5):
        await store.begin([record("1:0", status="queued"), record("1:1"), record("1:2")])
        await store.mark(["1:0", "1:1", "missing"], "submitting")
        await store.apply([event("1:1", "delivered")])
        await store.mark(["1:1"], "submitting")  # a terminal status stays
        await store.mark(["1:2"], "error")
        await store.mark(["1:2"], "failed")  # terminal replaces terminal
        await store.mark([], "sent")
        statuses = []
        for rid in ("1:0", "1:1", "1:2"):
            found = await store.get(rid)
            assert found is not None
            statuses.append(found[0].status)
        assert statuses == ["submitting", "delivered", "failed"]
        # A message the SMSC took is never marked back to before its submit.
        await store.apply([event("1:0", "sent", id="m0")])
        await store.mark(["1:0"], "queued")
        await store.mark(["1:0"], "submitting")
        found = await store.get("1:0")
        assert found is not None and found[0].status == "sent"


async def test_apply_moves_status_and_keeps_history(backend: Backend) -> None:
    store = backend.make()
    try:
        with anyio.fail_after(5):
            await store.begin([record("1:0", "order-77")])
            backend.clock.now = T0 + 5
            events = [
                event("1:0", "sent", id="m1", message_ids=["m1", "m2"], parts=2, account="main"),
                event("1:0", "delivered", id="m1", segment=1, parts=2),
                event("1:0", "buffered", id="m2", code=0),
                event("1:0", "delivered", id="m1", code=0),
            ]
            await store.apply(events)
            found = await store.get("order-77")
            assert found is not None
            rec, history = found
            assert rec.status == "delivered"
            assert rec.message_ids == ["m1", "m2"]
            assert rec.parts == 2
            assert rec.account == "main"
            assert rec.updated_at == T0 + 5
            assert rec.created_at == T0
            assert history == events
    finally:
        await store.aclose()


async def test_late_events_do_not_undo_terminal_status(store: MessageStore) -> None:
    with anyio.fail_after(5):
        await store.begin([record("1:0"), record("1:1"), record("1:2")])
        # A receipt overtakes its own submit outcome.
        await store.apply([event("1:0", "delivered", id="m")])
        await store.apply([event("1:0", "sent", id="m"), event("1:0", "buffered", id="m")])
        # A "sent" outcome after "buffered" does not go back either.
        await store.apply([event("1:1", "buffered", id="n"), event("1:1", "sent", id="n")])
        # A later terminal status is the SMSC's last word.
        await store.apply(
            [event("1:2", "expired", code=0), event("1:2", "failed", code=69, reason="x")]
        )
        got = [await store.get(rid) for rid in ("1:0", "1:1", "1:2")]
        assert [g[0].status for g in got if g is not None] == ["delivered", "buffered", "failed"]
        first = got[0]
        assert first is not None and [e.status for e in first[1]] == [
            "delivered",
            "sent",
            "buffered",
        ]
        last = got[2]
        assert last is not None and (last[0].code, last[0].reason) == (69, "x")


async def test_apply_error_and_unknown_details(store: MessageStore) -> None:
    with anyio.fail_after(5):
        await store.begin([record("1:0"), record("1:1")])
        await store.apply(
            [
                event("1:0", "unknown", reason="response timeout", possible_duplicate=True),
                event("1:1", "error", code=0x45, reason="ESME_RSUBMITFAIL"),
            ]
        )
        await store.apply([event("1:0", "sent", id="m9", attempts=2)])
        first = await store.get("1:0")
        second = await store.get("1:1")
        assert first is not None and second is not None
        assert first[0].status == "sent"
        assert first[0].reason is None
        assert first[0].possible_duplicate is True  # sticks once set
        assert first[0].message_ids == ["m9"]
        assert (second[0].status, second[0].code, second[0].reason) == (
            "error",
            0x45,
            "ESME_RSUBMITFAIL",
        )


async def test_apply_ignores_what_is_not_in_the_store(store: MessageStore) -> None:
    with anyio.fail_after(5):
        await store.begin([record("1:0")])
        await store.apply(
            [
                event(None, "inbound", message="STOP", from_="+34600000001"),
                event("nobody", "delivered"),
                event("1:0", "sent", id="m"),
            ]
        )
        await store.apply([])
        found = await store.get("1:0")
        assert found is not None and [e.status for e in found[1]] == ["sent"]
        assert await store.get("nobody") is None


async def test_text_survives(store: MessageStore) -> None:
    with anyio.fail_after(5):
        tricky = "order 'ü' \"€\" \\ 🙂 :k:c: \n"
        await store.begin([record("r 1:0", tricky, account="acc:1")])
        await store.apply([event("r 1:0", "error", reason=tricky, id=tricky)])
        found = await store.get(tricky)
        assert found is not None
        rec, history = found
        assert (rec.client_id, rec.reason, rec.message_ids) == (tricky, tricky, [tricky])
        assert history[0].reason == tricky


# --------------------------------------------------------------------------------------------
# history and purge


async def test_history(store: MessageStore) -> None:
    with anyio.fail_after(5):
        await store.begin([record(f"1:{i}", created=T0 + i) for i in range(10)])
        await store.apply([event(f"1:{i}", "sent") for i in range(0, 10, 3)])

        def ids(records: list[MessageRecord]) -> list[str]:
            return [r.request_id for r in records]

        assert ids(await store.history(None, limit=3)) == ["1:7", "1:8", "1:9"]
        assert ids(await store.history(T0 + 4, limit=3)) == ["1:4", "1:5", "1:6"]
        assert ids(await store.history(T0 + 8)) == ["1:8", "1:9"]
        assert ids(await store.history(T0, status="sent")) == ["1:0", "1:3", "1:6", "1:9"]
        assert ids(await store.history(None, limit=2, status="sent")) == ["1:6", "1:9"]
        assert ids(await store.history(T0 + 1, limit=1, status="sent")) == ["1:3"]
        assert await store.history(T0 + 100) == []
        assert await store.history(None, limit=0) == []


async def test_purge(backend: Backend) -> None:
    store = backend.make()
    try:
        with anyio.fail_after(5):
            await store.begin(
                [
                    record("1:0", "old", created=T0 - 100),
                    record("1:1", created=T0 - 50),
                    record("1:2", "new", created=T0),
                ]
            )
            await store.apply([event("1:0", "sent"), event("1:2", "sent")])
            assert await store.purge(T0 - 10) == 2
            assert await store.purge(T0 - 10) == 0
            assert await store.get("old") is None
            assert await store.get("1:1") is None
            assert await store.get("new") is not None
            assert [r.request_id for r in await store.history(None)] == ["1:2"]
            # A purged clientId is free again, even inside the dedup window.
            assert await store.begin([record("2:0", "old")]) == {}
            assert await store.begin([record("1:1")]) == {}
    finally:
        await store.aclose()


async def test_closed_store_refuses(backend: Backend) -> None:
    store = backend.make()
    await store.aclose()
    await store.aclose()  # idempotent
    with anyio.fail_after(5):
        with pytest.raises(StoreClosedError):
            await store.begin([record("1:0")])
        with pytest.raises(StoreClosedError):
            await store.get("1:0")


# --------------------------------------------------------------------------------------------
# Backend specifics


async def test_sqlite_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "m.sqlite"
    with anyio.fail_after(5):
        async with SqliteMessageStore(path) as store:
            await store.begin([record("1:0", "c")])
            await store.apply([event("1:0", "sent", id="m")])
        async with SqliteMessageStore(path) as store:
            found = await store.get("c")
            assert found is not None and found[0].status == "sent" and len(found[1]) == 1
            existing = await store.begin([record("2:0", "c")])
            assert existing["2:0"].request_id == "1:0"


async def test_redis_keys_expire_and_url_constructor() -> None:
    need_redis()
    prefix = f"smppb:test:{uuid.uuid4().hex}"
    async with coredis.Redis.from_url(REDIS_URL, decode_responses=False) as client:
        try:
            with anyio.fail_after(5):
                async with RedisMessageStore(
                    REDIS_URL, prefix, dedup_window=60, retention=600
                ) as store:
                    await store.begin([record("1:0", "c")])
                    await store.apply([event("1:0", "sent")])
                for key in (f"{prefix}:m:1:0", f"{prefix}:h:1:0", f"{prefix}:k:c:c"):
                    assert 0 < await client.ttl(key) <= 600, key
        finally:
            await delete_prefix(client, prefix)


async def test_redis_store_from_url_needs_connecting() -> None:
    store = RedisMessageStore(REDIS_URL, "smppb:test:unused")
    with pytest.raises(RuntimeError, match="async with"):
        await store.get("x")
    await store.aclose()


async def test_redis_connect() -> None:
    need_redis()
    prefix = f"smppb:test:{uuid.uuid4().hex}"
    with anyio.fail_after(5):
        store = await RedisMessageStore.connect(REDIS_URL, prefix)
        try:
            assert await store.begin([record("1:0", "c")]) == {}
            assert (await store.purge(T0 + 1)) == 1
        finally:
            await store.aclose()
        with pytest.raises(StoreClosedError):
            await store.get("c")


async def test_open_message_store(tmp_path: Path) -> None:
    with anyio.fail_after(5):
        async with open_message_store("sqlite", path=tmp_path / "s.sqlite") as store:
            assert await store.begin([record("1:0")]) == {}
        async with open_message_store("memory") as store:
            assert await store.begin([record("1:0")]) == {}
    with pytest.raises(ValueError, match=r"store\.path"):
        async with open_message_store("sqlite"):
            pass
    with pytest.raises(ValueError, match=r"store\.url"):
        async with open_message_store("redis"):
            pass


def test_record_json_names_and_rules() -> None:
    rec = record("1:0", "c", message_ids=["a"])
    assert b'"requestId":"1:0"' in encode_record(rec) and b'"from":"ACME"' in encode_record(rec)
    assert decode_record(encode_record(rec)) == rec
    assert rec.dedup_key == "c" and record("1:0").dedup_key == "1:0"
    assert status_rank("submitting") < status_rank("sent") < status_rank("buffered")
    assert status_rank("buffered") < status_rank("delivered") == status_rank("error")
    with pytest.raises(ValueError, match="dedup_window"):
        MemoryMessageStore(0)


# --------------------------------------------------------------------------------------------
# lookup by SMSC message id


async def test_get_by_message_id_normalises_like_the_correlation(store: MessageStore) -> None:
    with anyio.fail_after(5):
        await store.begin([record("1:0", "order-77"), record("1:1", "order-78")])
        await store.apply(
            [
                event("1:0", "sent", id="00A1B2", account="main"),
                event("1:1", "sent", id="m-2", message_ids=["m-2", "m-3"], account="main"),
            ]
        )
        await store.apply([event("1:0", "delivered", id="00A1B2", account="main")])
        for spelling in ("00A1B2", "a1b2", " A1B2 ", "0000a1b2", str(0xA1B2)):
            found = await store.get_by_message_id(spelling)
            assert found is not None, spelling
            assert found[0].request_id == "1:0"
            assert [e.status for e in found[1]] == ["sent", "delivered"]
        # Any part's id finds its message.
        third = await store.get_by_message_id("M-3")
        assert third is not None and third[0].request_id == "1:1"
        assert await store.get_by_message_id("nothing") is None
        assert await store.get_by_message_id("") is None
        assert await store.get_by_message_id("a1b2", account="other") is None


async def test_get_by_message_id_across_accounts_and_bases(backend: Backend) -> None:
    store = backend.make()
    try:
        with anyio.fail_after(5):
            await store.begin(
                [
                    record("1:0", created=T0),
                    record("1:1", created=T0 + 1),
                    record("1:2", created=T0 + 2),
                ]
            )
            await store.apply(
                [
                    event("1:0", "sent", id="42", account="a"),
                    event("1:1", "sent", id="0042", account="b"),
                    # Hex 42 is decimal 66: written as a receipt would, it still leads here.
                    event("1:2", "sent", id="66", account="c"),
                ]
            )
            # The id as written wins over a converted one; of two accounts, the newest...
            newest = await store.get_by_message_id("42")
            assert newest is not None and newest[0].request_id == "1:1"
            # ... unless the account is named.
            of_a = await store.get_by_message_id("42", account="a")
            assert of_a is not None and of_a[0].request_id == "1:0"
            # Decimal 66 read as the hex form of "42": found through the other base.
            converted = await store.get_by_message_id("66", account="a")
            assert converted is not None and converted[0].request_id == "1:0"
            # Purged messages are not found any more: "42" now only reads as hex 0x42 = 66.
            assert await store.purge(T0 + 1.5) == 2
            assert await store.get_by_message_id("42", account="a") is None
            left = await store.get_by_message_id("42")
            assert left is not None and left[0].request_id == "1:2"
            assert await store.get_by_message_id("2a") is None
    finally:
        await store.aclose()


async def test_get_by_message_id_index_costs_no_extra_call() -> None:
    """On Redis the index is written inside ``apply``'s one script: no round trip more."""
    need_redis()
    prefix = f"smppb:test:{uuid.uuid4().hex}"
    async with coredis.Redis.from_url(REDIS_URL, decode_responses=False) as client:
        store = RedisMessageStore(client, prefix, WINDOW, clock=Clock())
        calls: list[str] = []
        original = store._script

        async def counting(source: str, keys: Any, args: Any) -> Any:
            calls.append(source)
            return await original(source, keys, args)

        store._script = counting  # type: ignore[method-assign]
        try:
            with anyio.fail_after(5):
                await store.begin([record(f"1:{n}") for n in range(50)])
                calls.clear()
                await store.apply([event(f"1:{n}", "sent", id=f"{n:08d}") for n in range(50)])
                assert len(calls) == 1
                found = await store.get_by_message_id("17")
                assert found is not None and found[0].request_id == "1:17"
                assert 0 < await client.ttl(f"{prefix}:i:17") <= store._ttl
        finally:
            await store.aclose()
            await delete_prefix(client, prefix)


def test_the_redis_scripts_rank_statuses_from_the_one_vocabulary() -> None:
    """The scripts' status table is ``Status.rank``, and no script names a status otherwise."""
    import re

    from smpp_bridge.codec.status import Status
    from smpp_bridge.storage import messages_redis

    table = re.findall(r'\["(\w+)"\] = (\d+)', messages_redis._LUA_RANKS)
    assert {name: int(rank) for name, rank in table} == {s.value: s.rank for s in Status}
    scripts = [v for k, v in vars(messages_redis).items() if k.endswith("_LUA")]
    assert len(scripts) == 4
    for script in scripts:
        rest = script.replace(messages_redis._LUA_RANKS, "")
        for status in Status:
            assert f"'{status.value}'" not in rest and f'"{status.value}"' not in rest
