"""Pieces of the daemon: timestamps, the group commit, and the Bridge's own paths over fakes
(in-memory queues and stores, no pool)."""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from smpp_bridge.bridge.app import UNMATCHED_REASON, Bridge, CommitBatch, GroupCommit
from smpp_bridge.bridge.config import config_from_dict
from smpp_bridge.bridge.envelope import Event
from smpp_bridge.bridge.events import iso_time as _iso
from smpp_bridge.bridge.store import MemoryMessageStore
from smpp_bridge.codec.receipt import Receipt
from smpp_bridge.codec.status import Status
from smpp_bridge.pool import DlrEvent, MemoryCorrelationStore, OutboundMessage, SubmitOutcome
from smpp_bridge.pool.dlr import iso_utc
from tests.bridge_fakes import MemoryWorkQueue


@given(st.floats(min_value=0, max_value=4e9, allow_nan=False))
def test_cached_timestamps_equal_iso_utc(moment: float) -> None:
    assert _iso(moment) == iso_utc(moment)


def event(n: int) -> Event:
    return Event(id=str(n), client_id=None, status="sent", code=0, event_at="x")


@pytest.mark.anyio
async def test_group_commit_batches_concurrent_callers_and_retries_failures() -> None:
    flushed: list[tuple[list[str], list[str]]] = []
    failures = 0
    errors: list[Exception] = []

    async def flush(batch: CommitBatch) -> None:
        nonlocal failures
        await anyio.sleep(0.01)
        if failures:
            failures -= 1
            raise OSError("disk full")
        flushed.append(([e.id or "" for e in batch.events], [e.id or "" for e in batch.stored]))

    commit = GroupCommit(flush, retry_base=0.01, retry_cap=0.02, on_error=errors.append)
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(commit.run)
            async with anyio.create_task_group() as callers:
                for n in range(20):
                    callers.start_soon(commit.submit, [event(n)], n % 2 == 0)
            # Twenty callers, far fewer writes; everyone's events written, stored ones marked.
            assert 1 <= len(flushed) < 20
            assert sorted(i for f in flushed for i in f[0]) == sorted(str(n) for n in range(20))
            assert sorted(i for f in flushed for i in f[1]) == sorted(
                str(n) for n in range(0, 20, 2)
            )
            # A failing write is tried again until it goes through; the caller just waits.
            failures = 3
            await commit.submit([event(99)], True)
            assert flushed[-1] == (["99"], ["99"])
            assert commit.failures == 3 and len(errors) == 3
            await commit.submit([event(100)], True)  # and the next batch goes through
            assert flushed[-1][0] == ["100"]
            tg.cancel_scope.cancel()


@pytest.mark.anyio
async def test_a_retried_commit_does_not_publish_twice() -> None:
    """The store write fails after the events were published: the retry only writes the
    store, so the events queue holds each event once."""
    bridge, _, events = make_bridge()
    store = bridge.store
    assert isinstance(store, MemoryMessageStore)
    apply = store.apply
    fails = 2

    async def flaky_apply(batch: Any) -> None:
        nonlocal fails
        if fails:
            fails -= 1
            raise OSError("database is locked")
        await apply(batch)

    store.apply = flaky_apply  # type: ignore[method-assign,assignment]
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(bridge._commit.run)
            await bridge.on_dlrs([unmatched("1"), unmatched("2")])
            tg.cancel_scope.cancel()
    assert [e["id"] for e in await published(events)] == ["1", "2"]
    assert bridge._commit.failures == 2
    assert bridge.state.last_error is not None and "locked" in bridge.state.last_error


# --------------------------------------------------------------------------------------------
# The Bridge's own paths, over fakes: an in-memory queue and stores, no pool, no socket.


def make_bridge(**daemon: object) -> tuple[Bridge, MemoryWorkQueue, MemoryWorkQueue]:
    config = config_from_dict(
        {
            "daemon": {"name": "t", **daemon},
            "queue": {"backend": "sqlite", "path": "unused.db"},
            "metrics": {"listen": ""},
            "accounts": [{"name": "main", "system_id": "esme", "password": "pw", "port": 1}],
        },
        env={},
    )
    requests, events = MemoryWorkQueue("requests"), MemoryWorkQueue("events", keep_acked=True)
    bridge = Bridge(
        config,
        requests=requests,
        events=events,
        store=MemoryMessageStore(),
        correlation=MemoryCorrelationStore(),
    )
    return bridge, requests, events


async def published(events: MemoryWorkQueue) -> list[dict[str, Any]]:
    return [json.loads(e.data) for e in await events.tail(None, 1000)]


def sent_outcome(message: OutboundMessage, message_id: str) -> SubmitOutcome:
    return SubmitOutcome(message, Status.SENT, 0, (message_id,), 1, "main", "main-0")


@pytest.mark.anyio
async def test_two_requests_with_one_client_id_in_one_entry_no_false_duplicate_flag() -> None:
    """The second request gets the duplicate error; the first is an ordinary submit, sent
    once, and its ``sent`` event does not say ``possibleDuplicate``."""
    one = {"from": "ACME", "to": "+34600000001", "text": "one", "clientId": "order-77"}
    two = {"from": "ACME", "to": "+34600000002", "text": "two", "clientId": "order-77"}
    for policy in ("retry", "report"):
        bridge, requests, events = make_bridge(unknown_outcome=policy)
        await requests.publish([json.dumps([one, two]).encode()])
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(bridge._commit.run)
                leased = await requests.consume(10, wait=0.0)
                to_send = await bridge._take(leased)
                assert [m.text for _, m in to_send] == ["one"]
                assert not bridge._possible_duplicates
                (request, message) = to_send[0]
                await bridge.on_outcomes([sent_outcome(message, "m-1")])
                tg.cancel_scope.cancel()
        out = await published(events)
        assert [e["status"] for e in out] == ["error", "sent"], policy
        error, sent = out
        assert error["requestId"].endswith(":1") and "duplicate clientId" in error["reason"]
        assert sent["requestId"] == request.request_id and "possibleDuplicate" not in sent
        assert requests.batches["ack"] == [[leased[0].id]]
        found = await bridge.store.get("order-77")
        assert found is not None and found[0].status == "sent"
        assert not found[0].possible_duplicate


def unmatched(message_id: str, stat: str = "DELIVRD", account: str = "main") -> DlrEvent:
    return DlrEvent(
        account=account,
        receipt=Receipt(message_id=message_id, stat=stat, err="000"),
        record=None,
        bind=f"{account}-0",
        arrived_at=0.0,
        reason="unmatched: no mapping within 120 s",
    )


@pytest.mark.anyio
async def test_unmatched_receipts_are_unknown_events_and_counted() -> None:
    bridge, _, events = make_bridge()
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(bridge._commit.run)
            await bridge.on_dlrs([unmatched("00FF01"), unmatched("7", "UNDELIV", "other")])
            await bridge.on_dlrs([unmatched("8")])
            tg.cancel_scope.cancel()
    out = await published(events)
    assert [(e["status"], e["id"], e["account"], e["reason"]) for e in out] == [
        ("unknown", "00FF01", "main", UNMATCHED_REASON),
        ("unknown", "7", "other", UNMATCHED_REASON),
        ("unknown", "8", "main", UNMATCHED_REASON),
    ]
    assert [e["receiptStatus"] for e in out] == ["delivered", "failed", "delivered"]
    assert all(e["clientId"] is None for e in out)
    family = bridge.metrics.unmatched_receipts_total
    assert family.labels("main").value == 2 and family.labels("other").value == 1
    assert b'smpp_bridge_unmatched_receipts_total{account="main"} 2' in bridge.metrics.render()


class StubPool:
    """Takes every message and settles it ``sent`` at once (the pool's part, without binds)."""

    def __init__(self, bridge: Bridge) -> None:
        self.bridge = bridge
        self.sent: list[OutboundMessage] = []

    async def send_many(self, messages: Any) -> None:
        for message in messages:
            self.sent.append(message)
            await self.bridge.on_outcomes([sent_outcome(message, f"m-{len(self.sent)}")])


def claimed_then_failed(begin: Any) -> Any:
    """``begin`` that records the claim, then loses its first reply."""
    lost_replies = 1

    async def flaky(records: Any) -> Any:
        nonlocal lost_replies
        found = await begin(records)
        if lost_replies:
            lost_replies -= 1
            raise OSError("connection reset by peer")
        return found

    return flaky


@pytest.mark.anyio
async def test_a_failing_queue_or_store_is_a_pause_not_a_crash() -> None:
    """consume, the claim (recorded, then its reply lost), and the ack each fail: the consumer
    tries again and goes on; each request is sent once, unflagged, and acknowledged."""
    for policy in ("retry", "report"):
        bridge, requests, events = make_bridge(unknown_outcome=policy)
        pool = StubPool(bridge)
        bridge.pool = pool  # type: ignore[assignment]
        store = bridge.store
        assert isinstance(store, MemoryMessageStore)
        store.begin = claimed_then_failed(store.begin)  # type: ignore[method-assign]
        requests.fail_next.update({"consume": 2, "ack": 2})
        texts = [f"code {n}" for n in range(3)]
        await requests.publish(
            [
                json.dumps({"from": "ACME", "to": f"+3460000000{n}", "text": t}).encode()
                for n, t in enumerate(texts)
            ]
        )
        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                tg.start_soon(bridge._commit.run)
                tg.start_soon(bridge._consume)
                while bridge.state.acked_entries < 3:
                    await anyio.sleep(0.01)
                tg.cancel_scope.cancel()
        assert sorted(m.text for m in pool.sent) == texts, policy
        out = await published(events)
        assert [e["status"] for e in out] == ["sent"] * 3, policy
        assert not any(e.get("possibleDuplicate") for e in out)
        assert requests.calls["ack"] >= 3 and not requests.leased_ids()
        assert bridge.state.last_error is not None and "failed" in bridge.state.last_error
