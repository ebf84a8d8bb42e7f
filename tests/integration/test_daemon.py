"""The daemon end to end: requests on a real queue (SQLite file or Redis), the simulator over
TCP, events read back from the events queue. Every check counts every message.
"""

from __future__ import annotations

import collections
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import coredis
import pytest

from smpp_bridge.bridge.app import Bridge
from smpp_bridge.bridge.config import BridgeConfig, config_from_dict
from smpp_bridge.bridge.daemon import open_backends, run_daemon
from smpp_bridge.simulator import Simulator, run_simulator
from smpp_bridge.simulator import config_from_dict as sim_config_from_dict
from smpp_bridge.storage.queues import WorkQueue
from tests.redis_util import REDIS_URL, delete_prefix, need_redis

pytestmark = pytest.mark.anyio

FINAL = frozenset({"delivered", "failed", "expired", "rejected", "canceled", "accepted"})
OUTCOMES = [
    {"stat": "DELIVRD", "weight": 70},
    {"stat": "UNDELIV", "weight": 12, "err": 1},
    {"stat": "EXPIRED", "weight": 8, "err": 27},
    {"stat": "REJECTD", "weight": 6, "err": 11},
    {"stat": "DELETED", "weight": 4, "err": 6},
]
STAT_TO_STATUS = {
    "DELIVRD": "delivered",
    "UNDELIV": "failed",
    "EXPIRED": "expired",
    "REJECTD": "rejected",
    "DELETED": "canceled",
}


def sim_config(**sections: Any) -> Any:
    base: dict[str, Any] = {
        "seed": 3,
        "accounts": [{"system_id": "esme", "password": "pw", "max_binds": 8, "window": 200}],
        "submit": {"message_id": {"format": "hex", "receipt_format": "decimal"}},
        "receipts": {"delay": {"dist": "uniform", "low": 0.0, "high": 0.2}, "outcomes": OUTCOMES},
    }
    base.update(sections)
    return sim_config_from_dict(base)


def bridge_config(
    tmp_path: Path, sim: Simulator, backend: str = "sqlite", prefix: str = "", **sections: Any
) -> BridgeConfig:
    assert sim.port is not None
    queue: dict[str, Any] = {"backend": backend, "visibility_timeout": 5.0}
    if backend == "sqlite":
        queue["path"] = "bridge.db"
    else:
        queue |= {"url": REDIS_URL, "prefix": prefix}
    data: dict[str, Any] = {
        "daemon": {"name": "d1", "drain_timeout": 5.0, "batch": 50, "max_in_flight": 2000},
        "queue": queue,
        "metrics": {"listen": ""},
        "pool": {"reconnect_base": 0.05, "reconnect_cap": 0.3, "retry_base": 0.02},
        "accounts": [
            {
                "name": "main",
                "system_id": "esme",
                "password": "pw",
                "port": sim.port,
                "binds": 2,
                "window": 100,
                "enquire_link_interval": None,
            }
        ],
    }
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = data[key] | value
        elif key == "account":
            data["accounts"][0] |= value
        else:
            data[key] = value
    return config_from_dict(data, base_dir=tmp_path)


@asynccontextmanager
async def daemon(config: BridgeConfig) -> AsyncIterator[Bridge]:
    async with anyio.create_task_group() as tg:
        bridge: Bridge = await tg.start(
            lambda task_status: run_daemon(config, signals=False, task_status=task_status)
        )
        try:
            yield bridge
        finally:
            bridge.stop()
            with anyio.fail_after(30):
                await bridge.stopped()


def request(n: int, **extra: Any) -> dict[str, Any]:
    return {
        "from": "ACME",
        "to": f"+3460{n:07d}",
        "text": f"Your code is {n:06d}",
        "clientId": f"c-{n}",
    } | extra


async def enqueue(queue: WorkQueue, requests: list[Any], bulk: int = 25) -> None:
    payloads = []
    for i in range(0, len(requests), bulk):
        chunk = requests[i : i + bulk]
        payloads.append(json.dumps(chunk if bulk > 1 else chunk[0]).encode())
    for i in range(0, len(payloads), 100):
        await queue.publish(payloads[i : i + 100])


class Events:
    """Follows the events queue: every event, message-level events by status, and the final
    status per clientId (kept up to date as events arrive, so waiting stays cheap)."""

    def __init__(self, queue: WorkQueue) -> None:
        self.queue = queue
        self.after: str | None = None
        self.all: list[dict[str, Any]] = []
        self.by: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
        self.final: dict[str, str] = {}

    async def poll(self) -> None:
        while True:
            batch = await self.queue.tail(self.after, 1000)
            if not batch:
                return
            self.after = batch[-1].id
            for entry in batch:
                event = json.loads(entry.data)
                self.all.append(event)
                if event.get("segment"):
                    continue
                status = event["status"]
                self.by[status].append(event)
                if status in FINAL and event.get("clientId"):
                    self.final[event["clientId"]] = status

    def of(self, status: str) -> list[dict[str, Any]]:
        return self.by.get(status, [])

    async def wait(self, done: Any, timeout: float) -> None:
        with anyio.fail_after(timeout):
            while True:
                await self.poll()
                if done(self):
                    return
                await anyio.sleep(0.05)


def finals(events: Events) -> dict[str, str]:
    return events.final


async def run_mixed(config: BridgeConfig, sim: Simulator, count: int) -> None:
    """``count`` valid requests plus bad ones: exactly one ``sent`` per valid request, an
    ``error`` per bad one, and DLR statuses that equal the simulator's own counts."""
    bad: list[Any] = [
        {"from": "ACME", "to": "12ab", "text": "x", "clientId": "bad-to"},
        {"from": "ACME", "to": "+34600000001", "text": "", "clientId": "bad-empty"},
        {
            "from": "ACME",
            "to": "+34600000001",
            "text": "hi",
            "clientId": "bad-enc",
            "encoding": "klingon",
        },
        {"from": "A", "to": "+34600000001", "text": "hi", "clientId": "bad-from"},
        {"to": "+34600000001", "text": "hi", "clientId": "bad-missing"},
    ]
    valid = [request(n) for n in range(count)]
    async with open_backends(config, consumer="producer", correlation=False) as backends:
        await enqueue(backends.requests, valid[: count // 2] + bad + valid[count // 2 :])
        # Not JSON at all, and a bulk of more than 100: one error event each.
        await backends.requests.publish([b"{not json", json.dumps([request(0)] * 101).encode()])
        events = Events(backends.events)
        async with daemon(config):
            await events.wait(lambda ev: len(finals(ev)) >= count, timeout=120)
        await events.poll()
    sent = events.of("sent")
    assert len(sent) == count
    assert {e["clientId"] for e in sent} == {f"c-{n}" for n in range(count)}
    errors = events.of("error")
    assert {e.get("clientId") for e in errors} >= {d.get("clientId") for d in bad}
    assert len(errors) == len(bad) + 2
    reasons = " | ".join(e["reason"] for e in errors)
    for fragment in ("to:", "text:", "encoding", "from:", "payload"):
        assert fragment in reasons
    stats = sim.stats.total()
    assert stats.accepted == count
    final = collections.Counter(finals(events).values())
    expected = {STAT_TO_STATUS[stat]: n for stat, n in stats.dlrs.items() if n}
    assert dict(final) == expected
    assert not [e for e in events.all if "unmatched" in (e.get("reason") or "")]


async def test_end_to_end_sqlite_mixed_outcomes(tmp_path: Path) -> None:
    async with run_simulator(sim_config()) as sim:
        await run_mixed(bridge_config(tmp_path, sim), sim, 10_000)


async def test_end_to_end_redis_mixed_outcomes(tmp_path: Path) -> None:
    need_redis()
    prefix = f"test-daemon-{uuid.uuid4().hex[:8]}"
    try:
        async with run_simulator(sim_config()) as sim:
            await run_mixed(bridge_config(tmp_path, sim, "redis", prefix), sim, 3000)
    finally:
        async with coredis.Redis.from_url(REDIS_URL) as client:
            await delete_prefix(client, prefix)


async def test_two_daemons_share_one_redis_stream(tmp_path: Path) -> None:
    """Two daemons, one stream, one correlation store; receipts come on any bind, so many reach
    the daemon that did not send the message: every one still finds its request."""
    need_redis()
    prefix = f"test-daemon-{uuid.uuid4().hex[:8]}"
    count = 3000
    try:
        async with run_simulator(
            sim_config(
                receipts={
                    "delay": {"dist": "uniform", "low": 0.0, "high": 0.2},
                    "outcomes": OUTCOMES,
                    "route": "any",
                }
            )
        ) as sim:
            one = bridge_config(tmp_path, sim, "redis", prefix)
            two = bridge_config(tmp_path, sim, "redis", prefix, daemon={"name": "d2"})
            async with open_backends(one, consumer="producer", correlation=False) as backends:
                await enqueue(backends.requests, [request(n) for n in range(count)])
                events = Events(backends.events)
                async with daemon(one) as b1, daemon(two) as b2:
                    await events.wait(lambda ev: len(finals(ev)) >= count, timeout=120)
                await events.poll()
            assert b1.state.settled > 0 and b2.state.settled > 0  # both did work
            assert b1.state.settled + b2.state.settled == count
            sent = events.of("sent")
            assert sorted(e["clientId"] for e in sent) == sorted(f"c-{n}" for n in range(count))
            assert sim.stats.total().accepted == count
            assert len(finals(events)) == count
            assert not [e for e in events.all if "unmatched" in (e.get("reason") or "")]
    finally:
        async with coredis.Redis.from_url(REDIS_URL) as client:
            await delete_prefix(client, prefix)


async def test_duplicate_client_id_is_not_sent_twice(tmp_path: Path) -> None:
    async with run_simulator(sim_config()) as sim:
        config = bridge_config(tmp_path, sim)
        async with open_backends(config, consumer="producer", correlation=False) as backends:
            events = Events(backends.events)
            async with daemon(config):
                await enqueue(backends.requests, [request(1)], bulk=1)
                await events.wait(lambda ev: ev.of("sent"), timeout=30)
                await enqueue(backends.requests, [request(1, text="again")], bulk=1)
                await events.wait(lambda ev: ev.of("error"), timeout=30)
                # The daemon goes on: a new clientId is sent.
                await enqueue(backends.requests, [request(2)], bulk=1)
                await events.wait(lambda ev: len(ev.of("sent")) == 2, timeout=30)
            found = await backends.store.get("c-1")
        assert sim.stats.total().accepted == 2
        (error,) = events.of("error")
        assert error["clientId"] == "c-1" and "duplicate clientId" in error["reason"]
        assert found is not None
        assert found[0].status in FINAL | {"sent"}  # the duplicate did not touch the record


async def test_drain_hands_back_what_was_not_sent(tmp_path: Path) -> None:
    """Stopping with a backlog held in the pool: what never left goes back to the queue, and
    the next daemon sends exactly that — every request sent once."""
    count = 600
    slow = sim_config(submit={"latency": 0.02}, receipts={"enabled": False})
    async with run_simulator(slow) as sim:
        config = bridge_config(
            tmp_path, sim, account={"window": 5, "binds": 1}, daemon={"max_in_flight": 400}
        )
        async with open_backends(config, consumer="producer", correlation=False) as backends:
            await enqueue(backends.requests, [request(n) for n in range(count)], bulk=10)
            events = Events(backends.events)
            async with daemon(config) as first:
                await events.wait(lambda ev: len(ev.of("sent")) >= 50, timeout=30)
            assert first.state.released_entries > 0
            assert await backends.requests.depth() > 0
            async with daemon(config):
                await events.wait(lambda ev: len(ev.of("sent")) >= count, timeout=60)
            await events.poll()
        sent = [e["clientId"] for e in events.of("sent")]
        assert sorted(sent) == sorted(f"c-{n}" for n in range(count))
        assert sim.stats.total().accepted == count
        assert not events.of("unknown")


async def test_status_and_history_follow_the_events(tmp_path: Path) -> None:
    async with run_simulator(sim_config(receipts={"delay": 0.0, "outcomes": OUTCOMES[:1]})) as sim:
        config = bridge_config(tmp_path, sim)
        async with open_backends(config, consumer="producer", correlation=False) as backends:
            events = Events(backends.events)
            async with daemon(config):
                await enqueue(backends.requests, [request(n) for n in range(5)], bulk=5)
                await events.wait(lambda ev: len(finals(ev)) == 5, timeout=30)
            found = await backends.store.get("c-3")
            recent = await backends.store.history(None, 10)
        assert found is not None
        record, history = found
        assert record.status == "delivered"
        assert [e.status for e in history] == ["sent", "delivered"]
        assert record.message_ids and history[0].id == record.message_ids[0]
        assert {r.client_id for r in recent} == {f"c-{n}" for n in range(5)}


async def test_webhook_gets_every_event_while_it_fails_then_recovers(tmp_path: Path) -> None:
    """The daemon's events also go to a webhook that answers 500 or resets the connection for
    a while: every event still arrives, signed, each idempotency key once."""
    from smpp_bridge.bridge.webhook import verify_signature
    from tests.integration.test_webhook import Received, Receiver, serve

    failures = 0

    async def flaky(received: Received) -> Any:
        nonlocal failures
        if failures < 40:
            failures += 1
            return "reset" if failures % 2 else "error"
        return "ok"

    receiver = Receiver(script=flaky)
    count = 200
    async with serve(receiver) as url, run_simulator(sim_config()) as sim:
        config = bridge_config(
            tmp_path,
            sim,
            webhook={"url": url, "secret": "s3cret", "backoff_base": 0.01, "backoff_cap": 0.05},
        )
        async with open_backends(config, consumer="producer", correlation=False) as backends:
            events = Events(backends.events)
            async with daemon(config):
                await enqueue(backends.requests, [request(n) for n in range(count)])
                await events.wait(lambda ev: len(finals(ev)) == count, timeout=60)
                with anyio.fail_after(60):
                    while len({r.headers["idempotency-key"] for r in receiver.accepted()}) < len(
                        events.all
                    ):
                        await anyio.sleep(0.05)
    assert failures == 40
    delivered = receiver.accepted()
    bodies = sorted(json.dumps(json.loads(r.body), sort_keys=True) for r in delivered)
    assert bodies == sorted(json.dumps(e, sort_keys=True) for e in events.all)
    for r in delivered:
        assert verify_signature(
            "s3cret",
            r.headers["x-smpp-bridge-timestamp"],
            r.headers["idempotency-key"],
            r.body,
            r.headers["x-smpp-bridge-signature"],
        )


@pytest.mark.parametrize("level", ["info", "debug"])
async def test_logs_never_carry_the_password_and_text_only_at_debug(
    tmp_path: Path, level: str
) -> None:
    import io

    import structlog

    from smpp_bridge.log import configure_logging

    out = io.StringIO()
    configure_logging(level, json=True, stream=out)
    try:
        async with run_simulator(sim_config(receipts={"delay": 0.0})) as sim:
            config = bridge_config(tmp_path, sim)
            async with open_backends(config, consumer="producer", correlation=False) as backends:
                events = Events(backends.events)
                async with daemon(config):
                    await enqueue(backends.requests, [request(n) for n in range(3)], bulk=3)
                    await events.wait(lambda ev: len(finals(ev)) == 3, timeout=30)
    finally:
        structlog.reset_defaults()
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert any(line["event"] == "daemon started" for line in lines)
    text = out.getvalue()
    assert '"pw"' not in text and "password" not in text
    taken = [line for line in lines if line["event"] == "request taken"]
    settled = [line for line in lines if line["event"] == "submit settled"]
    if level == "info":
        assert "Your code is" not in text and not taken and not settled
    else:
        assert {line["client_id"] for line in taken} == {"c-0", "c-1", "c-2"}
        assert all(line["text"].startswith("Your code is") for line in taken)
        assert {line["request_id"] for line in settled} == {line["request_id"] for line in taken}
        assert all(line["message_id"] and line["bind"] for line in settled)


async def test_redelivery_after_a_crash_finishes_what_the_store_says(tmp_path: Path) -> None:
    """Three requests a crashed daemon had taken, redelivered: one settled by its receipt but
    whose ``sent`` event was lost (recovered as ``sent``), one fully settled (just acked), one
    claimed and never settled (``unknown`` under ``report``). None is submitted again."""
    import time

    from smpp_bridge.bridge.envelope import Event
    from smpp_bridge.bridge.store import MessageRecord

    async with run_simulator(sim_config()) as sim:
        config = bridge_config(tmp_path, sim, daemon={"unknown_outcome": "report"})
        async with open_backends(config, consumer="producer", correlation=False) as backends:
            (entry,) = await backends.requests.publish(
                [json.dumps([request(0), request(1), request(2)]).encode()]
            )
            now = time.time()
            records = [
                MessageRecord(
                    request_id=f"{entry}:{n}",
                    client_id=f"c-{n}",
                    to=f"+3460{n:07d}",
                    from_="ACME",
                    status="submitting",
                    created_at=now,
                    updated_at=now,
                )
                for n in range(3)
            ]
            await backends.store.begin(records)

            def event(n: int, status: str) -> Event:
                return Event(
                    id=f"m{n}",
                    client_id=f"c-{n}",
                    status=status,
                    code=0,
                    event_at="2026-11-27T00:00:00.000Z",
                    request_id=f"{entry}:{n}",
                )

            await backends.store.apply([event(0, "delivered"), event(1, "sent")])
            await backends.store.apply([event(1, "delivered")])
            events = Events(backends.events)
            async with daemon(config):
                await events.wait(lambda ev: ev.of("sent") and ev.of("unknown"), timeout=30)
                await anyio.sleep(0.3)
                await events.poll()
                assert await backends.requests.depth() == 0
        assert sim.stats.total().submits == 0
        (sent,) = events.of("sent")
        assert sent["clientId"] == "c-0" and sent["id"] == "m0" and "recovered" in sent["reason"]
        (unknown,) = events.of("unknown")
        assert unknown["clientId"] == "c-2" and unknown["possibleDuplicate"] is True
        assert len(events.all) == 2


async def test_one_entry_repeating_a_client_id_sends_the_first_unflagged(tmp_path: Path) -> None:
    """One queue entry, two requests with one clientId (as ``smpp-bridge enqueue`` of a file
    holding both makes): the first is sent once with no ``possibleDuplicate``, the second is
    the duplicate ``error``."""
    async with run_simulator(sim_config()) as sim:
        for policy in ("retry", "report"):
            (tmp_path / policy).mkdir()
            config = bridge_config(tmp_path / policy, sim, daemon={"unknown_outcome": policy})
            async with open_backends(config, consumer="producer", correlation=False) as backends:
                events = Events(backends.events)
                async with daemon(config):
                    await enqueue(backends.requests, [request(1), request(1, text="again")], bulk=2)
                    await events.wait(lambda ev: ev.of("sent") and ev.of("error"), timeout=30)
                    await events.wait(lambda ev: "c-1" in finals(ev), timeout=30)
                    await anyio.sleep(0.2)
                    await events.poll()
                found = await backends.store.get("c-1")
            (sent,) = events.of("sent")
            assert "possibleDuplicate" not in sent, policy
            assert sent["requestId"].endswith(":0")
            (error,) = events.of("error")
            assert error["requestId"].endswith(":1") and "duplicate clientId" in error["reason"]
            assert not events.of("unknown")
            assert found is not None and not found[0].possible_duplicate
        assert sim.stats.total().accepted == 2  # once per policy


async def test_unmatched_receipt_is_an_unknown_event(tmp_path: Path) -> None:
    """Receipts whose id leads to no request (the SMSC writes them in hex, the account is set
    to exact ids): after ``unmatched_after`` each is an ``unknown`` event with the SMSC id,
    the account and ``unmatched receipt``, and counted per account."""
    ids = {"message_id": {"format": "decimal", "receipt_format": "hex", "start": 1000}}
    receipts = {"delay": 0.0, "tlvs": False}  # the id only in the text, in hex
    async with run_simulator(sim_config(submit=ids, receipts=receipts)) as sim:
        config = bridge_config(
            tmp_path,
            sim,
            pool={"unmatched_after": 0.3},
            account={"message_id_mode": "exact"},
        )
        async with open_backends(config, consumer="producer", correlation=False) as backends:
            events = Events(backends.events)
            async with daemon(config) as bridge:
                await enqueue(backends.requests, [request(n) for n in range(3)], bulk=1)
                await events.wait(lambda ev: len(ev.of("unknown")) == 3, timeout=30)
                metrics = bridge.metrics.render().decode()
    sent = {e["id"] for e in events.of("sent")}
    assert len(sent) == 3
    unknown = events.of("unknown")
    assert {int(e["id"], 16) for e in unknown} == {int(i) for i in sent}
    for e in unknown:
        assert e["reason"] == "unmatched receipt" and e["account"] == "main"
        assert e["clientId"] is None and e["receiptStatus"] == "delivered"
    assert 'smpp_bridge_unmatched_receipts_total{account="main"} 3' in metrics
    assert not finals(events)
