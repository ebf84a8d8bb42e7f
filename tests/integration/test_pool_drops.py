"""The pool against an SMSC that drops connections mid-window and redelivers receipts, and a
drain that ends in bounded time whatever the SMSC does. Over real TCP, against a raw peer
(``tests/dropping_smsc``: the codec only, not our session) and the simulator; every check is
a count over every message.
"""

from __future__ import annotations

import collections
from typing import Any

import anyio
import pytest

from smpp_bridge.errors import PoolClosed
from smpp_bridge.pool import (
    AccountConfig,
    BindPool,
    DlrEvent,
    OutboundMessage,
    PoolConfig,
    SubmitOutcome,
    open_pool,
)
from smpp_bridge.pool.pool import BindSnapshot
from smpp_bridge.simulator import run_simulator

from ..dropping_smsc import DroppingSmsc, dead_port, running
from .test_pool import Recorder, messages, pool_config, sim_config
from .test_pool_parking import inject_receipt, wait_until

pytestmark = pytest.mark.anyio


class SlowRecorder(Recorder):
    """A handler that takes its time, as the daemon's does (a store write per batch): a
    connection that closes meanwhile must not cost a publication."""

    async def on_outcomes(self, outcomes: list[SubmitOutcome]) -> None:
        await anyio.sleep(0.003)
        await super().on_outcomes(outcomes)

    async def on_dlrs(self, events: list[DlrEvent]) -> None:
        await anyio.sleep(0.003)
        await super().on_dlrs(events)


def config_for(port: int, **account: Any) -> PoolConfig:
    fields: dict[str, Any] = {
        "name": "main",
        "system_id": "esme",
        "password": "pw",
        "port": port,
        "binds": 2,
        "window": 100,
        "enquire_link_interval": None,
        "unknown_outcome": "retry",
    } | account
    return PoolConfig(
        accounts=(AccountConfig(**fields),),
        reconnect_base=0.05,
        reconnect_cap=0.2,
        retry_base=0.02,
        retry_cap=0.2,
    )


def assert_one_outcome_each(outcomes: list[SubmitOutcome], n: int) -> None:
    ids = collections.Counter(o.message.id for o in outcomes)
    assert len(outcomes) == n, f"{n - len(outcomes)} messages without an outcome"
    assert len(ids) == n and max(ids.values()) == 1


@pytest.mark.parametrize("duplicates", [False, True])
async def test_drops_mid_window_every_send_one_outcome_every_receipt_one_event(
    duplicates: bool,
) -> None:
    n = 3000
    smsc = DroppingSmsc(drop_every=700, duplicate_receipts=duplicates)
    recorder = SlowRecorder()
    with anyio.fail_after(60):
        async with running(smsc), open_pool(config_for(smsc.port), recorder) as pool:
            await pool.wait_ready(timeout=10)
            batch = messages(n)
            for start in range(0, n, 100):
                await pool.send_many(batch[start : start + 100])
            await recorder.wait("outcomes", n, timeout=30)
            # Every receipt written is read, and each unanswered one is written again.
            await wait_until(
                lambda: (
                    len({e.receipt.message_id for e in recorder.dlrs}) >= len(smsc.receipt_ids)
                    and smsc.unacked == 0
                ),
                timeout=30,
            )
            await anyio.sleep(0.3)  # room for a stray repeat to (wrongly) come out
    assert smsc.drops >= 4, "the connection never dropped: the test proves nothing"
    assert_one_outcome_each(recorder.outcomes, n)
    assert collections.Counter(o.status for o in recorder.outcomes) == {"sent": n}
    # Every message the SMSC accepted is one of ours, once (nothing unanswered was accepted).
    assert sorted(smsc.accepted) == sorted(o.message_ids[0] for o in recorder.outcomes)
    ids = collections.Counter(e.receipt.message_id for e in recorder.dlrs)
    assert set(ids) == smsc.receipt_ids and max(ids.values()) == 1
    assert all(e.matched for e in recorder.dlrs)
    # Repeats were there (redelivered after each drop, or sent twice), and each was known.
    assert smsc.receipts_written > len(smsc.receipt_ids)
    assert pool.duplicate_receipts == smsc.receipts_written - len(ids)
    assert pool.stats["duplicate_receipts"] == pool.duplicate_receipts


async def test_a_receipt_repeated_on_another_bind_past_the_recent_memory_is_known() -> None:
    recorder = Recorder()
    async with run_simulator(sim_config(receipts={"delay": 0.0, "route": "any"})) as sim:
        config = pool_config(sim, binds=2)
        async with open_pool(config, recorder, recent_settled=10) as pool:
            await pool.wait_ready(timeout=10)
            await pool.send_many(messages(50))
            await recorder.wait("dlrs", 50, timeout=10)
            first = recorder.outcomes[0].message_ids[0]
            await anyio.sleep(1.5)  # the tombstones are in the store (once a second)
            for _ in range(3):
                inject_receipt(sim, first)
            await wait_until(lambda: pool.duplicate_receipts == 3)
            await anyio.sleep(0.2)
    assert len(recorder.dlrs) == 50


async def test_an_unmatched_receipt_is_published_with_its_id_and_account() -> None:
    recorder = Recorder()
    async with run_simulator(sim_config()) as sim:
        config = pool_config(sim, pool={"unmatched_after": 1.0})
        async with open_pool(config, recorder) as pool:
            await pool.wait_ready(timeout=10)
            inject_receipt(sim, "00FEED", "UNDELIV")
            await recorder.wait("dlrs", 1, timeout=10)
            assert pool.unmatched_receipts == 1 == pool.stats["unmatched_receipts"]
    (event,) = recorder.dlrs
    assert not event.matched and event.request_id is None
    assert (event.account, event.smsc_message_id, event.status) == ("main", "00FEED", "failed")
    assert event.reason is not None and event.reason.startswith("unmatched")
    assert PoolConfig(accounts=()).unmatched_after == 120.0


async def test_bind_states_is_a_typed_snapshot() -> None:
    recorder = Recorder()
    async with run_simulator(sim_config()) as sim:
        async with open_pool(pool_config(sim, binds=2, window=7), recorder) as pool:
            await pool.wait_ready(timeout=10)
            states = pool.bind_states()
            assert all(isinstance(s, BindSnapshot) for s in states)
            assert [(s.name, s.account, s.state, s.window) for s in states] == [
                ("main#0", "main", "up", 7),
                ("main#1", "main", "up", 7),
            ]
            assert all(s.outstanding == 0 for s in states)
        assert {s.state for s in pool.bind_states()} == {"closed"}


# ------------------------------------------------------------------ drain in bounded time


async def blocked_sender(pool: BindPool, batch: list[OutboundMessage], out: list[Any]) -> None:
    try:
        for m in batch:
            await pool.send(m)
    except PoolClosed as exc:
        out.append(exc)


async def test_drain_against_an_smsc_that_is_gone_ends_at_once() -> None:
    recorder = Recorder()
    port = await dead_port()
    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            pool = BindPool(config_for(port), recorder)
            await tg.start(pool.run)
            await anyio.sleep(0.5)  # reconnecting, in backoff
            raised: list[Any] = []
            tg.start_soon(blocked_sender, pool, messages(3), raised)
            await anyio.sleep(0.1)
            reconnects = pool.stats["reconnects"]
            start = anyio.current_time()
            unsent = await pool.drain(timeout=30)
            took = anyio.current_time() - start
    assert took < 2.0
    assert pool.stats["reconnects"] == reconnects  # none after the drain began
    # Not sent, and said so: handed back, or PoolClosed to its sender.
    assert [m.id for m in unsent] in ([], ["m0"]) and (unsent or raised)
    assert recorder.outcomes == []
    assert {s.state for s in pool.bind_states()} == {"closed"}


async def test_drain_after_the_smsc_went_away_does_not_reconnect() -> None:
    recorder = Recorder()
    smsc = DroppingSmsc()
    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            async with running(smsc):
                pool = BindPool(config_for(smsc.port), recorder)
                await tg.start(pool.run)
                await pool.wait_ready(timeout=10)
                await pool.send_many(messages(10))
                await recorder.wait("outcomes", 10, timeout=10)
            # Gone: the listener is closed, connections are refused.
            await wait_until(lambda: pool.stats["reconnects"] >= 2)
            start = anyio.current_time()
            assert await pool.drain(timeout=30) == []
            took = anyio.current_time() - start
    assert took < 2.0
    assert_one_outcome_each(recorder.outcomes, 10)


async def test_drain_against_an_smsc_that_never_answers_ends_in_time() -> None:
    recorder = Recorder()
    smsc = DroppingSmsc(mode="stall")
    with anyio.fail_after(30):
        async with running(smsc), anyio.create_task_group() as tg:
            pool = BindPool(config_for(smsc.port), recorder)
            await tg.start(pool.run)
            await wait_until(lambda: smsc.connections == 2)  # binding, never answered
            raised: list[Any] = []
            tg.start_soon(blocked_sender, pool, messages(3), raised)
            await anyio.sleep(0.1)
            start = anyio.current_time()
            unsent = await pool.drain(timeout=2)
            took = anyio.current_time() - start
    assert took < 2 + 3.5
    assert [m.id for m in unsent] in ([], ["m0"]) and (unsent or raised)
    assert recorder.outcomes == []


async def test_drain_against_an_smsc_that_stalls_mid_window_ends_in_time() -> None:
    recorder = Recorder()
    smsc = DroppingSmsc(receipts=False)
    n = 50
    with anyio.fail_after(30):
        async with running(smsc), anyio.create_task_group() as tg:
            pool = BindPool(config_for(smsc.port, unknown_outcome="report"), recorder)
            await tg.start(pool.run)
            await pool.wait_ready(timeout=10)
            smsc.mode = "stall"  # bound, then silent: submits and the unbind unanswered
            await pool.send_many(messages(n))
            start = anyio.current_time()
            unsent = await pool.drain(timeout=1)
            took = anyio.current_time() - start
    assert took < 1 + 3.5
    assert unsent == []
    assert_one_outcome_each(recorder.outcomes, n)
    assert {o.status for o in recorder.outcomes} == {"unknown"}


async def test_drain_against_an_smsc_that_throttles_everything_ends_in_time() -> None:
    recorder = Recorder()
    smsc = DroppingSmsc(mode="throttle")
    n = 30
    with anyio.fail_after(30):
        async with running(smsc), anyio.create_task_group() as tg:
            pool = BindPool(config_for(smsc.port), recorder)
            await tg.start(pool.run)
            await pool.wait_ready(timeout=10)
            await pool.send_many(messages(n))
            await wait_until(lambda: smsc.submits > n + 5)  # retried
            start = anyio.current_time()
            unsent = await pool.drain(timeout=1)
            took = anyio.current_time() - start
            submits = smsc.submits
            await anyio.sleep(0.5)
            assert smsc.submits == submits  # nothing resent after the drain
    assert took < 1 + 3.5
    # Refused and waiting for a retry, the SMSC has none of them: given back, to be sent
    # another time, not reported failed or unknown. Only a part out at the very moment (its
    # refusal not read yet) makes an unknown outcome.
    assert unsent, f"throttled messages must be given back: {recorder.outcomes[:3]}"
    assert {o.status for o in recorder.outcomes} <= {"unknown"}
    ids = sorted([m.id for m in unsent] + [o.message.id for o in recorder.outcomes])
    assert ids == sorted(m.id for m in messages(n)), "each message given back or settled once"


class FailingOnceRecorder(Recorder):
    """A handler whose first receipt batch fails (its store down, say)."""

    def __init__(self) -> None:
        super().__init__()
        self.failed = 0

    async def on_dlrs(self, events: list[DlrEvent]) -> None:
        if not self.failed:
            self.failed = len(events)
            raise OSError("events store unreachable")
        await super().on_dlrs(events)


async def test_a_receipt_batch_the_handler_failed_is_published_later_once() -> None:
    """The batch is answered with an error, so the SMSC sends it again, and it is parked
    again: each receipt still comes out exactly once (not lost as a 'repeat' of itself)."""
    recorder = FailingOnceRecorder()
    n = 200
    async with run_simulator(sim_config()) as sim:
        pool: BindPool
        async with open_pool(pool_config(sim, binds=1), recorder) as pool:
            await pool.wait_ready(timeout=10)
            await pool.send_many(messages(n))
            await recorder.wait("dlrs", n, timeout=20)
            await anyio.sleep(1.5)  # repeats and relookups that could still come
    assert recorder.failed > 0
    per_request = collections.Counter(e.request_id for e in recorder.dlrs)
    assert len(per_request) == n and set(per_request.values()) == {1}


async def test_a_message_that_cannot_be_encoded_fails_alone_and_the_binds_stay() -> None:
    """A destination too long for the wire (the daemon validates it; a library caller may
    not): an error outcome naming the field, while the binds stay up for the rest."""
    recorder = Recorder()
    good = messages(20)
    bad = OutboundMessage(id="bad", source="ACME", destination="+" + "1" * 40, text="x")
    async with run_simulator(sim_config()) as sim:
        pool: BindPool
        async with open_pool(pool_config(sim, binds=2), recorder) as pool:
            await pool.wait_ready(timeout=10)
            await pool.send_many([*good[:10], bad, *good[10:]])
            await pool.send(
                OutboundMessage(id="bad2", source="ACME", destination="+" + "2" * 40, text="y")
            )
            await recorder.wait("outcomes", 22, timeout=10)
            assert pool.stats["reconnects"] == 0
            assert {s.state for s in pool.bind_states()} == {"up"}
    by_id = {o.message.id: o for o in recorder.outcomes}
    for name in ("bad", "bad2"):
        assert by_id[name].status == "error" and "destination_addr" in (by_id[name].reason or "")
    assert {by_id[m.id].status for m in good} == {"sent"}
