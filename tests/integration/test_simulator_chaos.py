"""The seeded chaos profile over loopback TCP: the same seed makes the same decisions, and
under every misbehaviour at once no accepted message loses its receipt."""

from __future__ import annotations

import collections

import anyio
import msgspec
import pytest

from smpp_bridge.codec import SubmitSm
from smpp_bridge.errors import BindError, SessionClosedError
from smpp_bridge.simulator import (
    Chaos,
    LedgerConfig,
    Simulator,
    Uniform,
    run_simulator,
)
from smpp_bridge.simulator.chaos import chaos_message_ids
from tests.integration.test_pool import Recorder, messages, pool_for, send_all, sim_config
from tests.integration.test_simulator import Inbox, eventually, make_config, session, submit_pdu

pytestmark = pytest.mark.anyio

# Every misbehaviour, often: a few hundred submits see each of them.
BUSY = Chaos(
    seed=7,
    drop=0.01,
    stall=0.01,
    stall_for=0.05,
    throttle=0.01,
    queue_full=0.01,
    burst_length=(2, 5),
    restart=0.005,
    restart_pause=Uniform(low=0.05, high=0.1),
)


async def send_sequentially(sim: Simulator, pdus: list[SubmitSm], inbox: Inbox) -> None:
    """One submit at a time (so the simulator sees the same sequence on every run), through
    drops and restarts, until each one is accepted."""
    todo = list(range(len(pdus)))
    while todo:
        done: set[int] = set()
        try:
            async with session(sim, window=1, response_timeout=2.0, on_delivery=inbox) as client:
                for i in todo:
                    resp = await client.request(pdus[i], check=False)
                    if resp.command_status == 0:
                        done.add(i)
        except* (SessionClosedError, BindError, OSError, anyio.EndOfStream):
            await anyio.sleep(0.02)  # restarting: connections refused for a moment
        todo = [i for i in todo if i not in done]


async def chaos_run(chaos: Chaos, n: int) -> tuple[list[tuple[str, int, str]], list[str]]:
    """The decisions and the message ids of ``n`` sequential submits under ``chaos``."""
    config = make_config(chaos=chaos, ledger=LedgerConfig(enabled=True))
    inbox = Inbox()
    async with run_simulator(config) as sim:
        await send_sequentially(sim, [submit_pdu(i, rd=1) for i in range(n)], inbox)
        assert sim.chaos is not None and sim.stats.ledger is not None
        # Receipts keep coming (stored, redelivered) until every one is acked.
        async with session(sim, bind="rx", on_delivery=inbox):
            await eventually(lambda: sim.stats.ledger.fates()["pending"] == 0, timeout=20)  # type: ignore[union-attr]
        assert sim.stats.account("esme").dlrs_lost == 0
        return list(sim.chaos.log), [row.message_id for row in sim.stats.ledger.rows()]


async def test_same_seed_same_decisions() -> None:
    with anyio.fail_after(60):
        first_log, first_ids = await chaos_run(BUSY, 300)
        again_log, again_ids = await chaos_run(BUSY, 300)
        other_log, _ = await chaos_run(msgspec.structs.replace(BUSY, seed=8), 300)
    kinds = collections.Counter(action for _, _, action in first_log)
    # Every kind of decision was taken, and all the same way on the second run.
    for action in ("stall", "throttle", "queue_full", "restart", "other_bind", "same_bind"):
        assert kinds[action] > 0, action
    assert kinds["drop_close"] + kinds["drop_half_close"] > 0
    assert again_log == first_log
    assert again_ids == first_ids
    assert other_log != first_log


def test_message_id_rendering_comes_from_the_seed() -> None:
    renderings = {chaos_message_ids(Chaos(seed=seed)) for seed in range(40)}
    assert chaos_message_ids(Chaos(seed=3)) == chaos_message_ids(Chaos(seed=3))
    formats = {(ids.format, ids.receipt_format) for ids in renderings}
    assert formats == {
        ("decimal", "decimal"),
        ("hex", "hex"),
        ("hex", "decimal"),
        ("decimal", "hex"),
    }


async def test_chaos_loses_no_receipt_with_a_pool_of_two_binds() -> None:
    # The daemon's pool, two binds, every misbehaviour at a few times its default rate.
    n = 3000
    recorder = Recorder()
    chaos = {
        "seed": 11,
        "drop": 1 / 600,
        "stall": 1 / 1000,
        "throttle": 1 / 500,
        "queue_full": 1 / 800,
        "restart": 1 / 500,
    }
    config = sim_config(chaos=chaos, ledger={"enabled": True})
    with anyio.fail_after(60):
        async with run_simulator(config) as sim:
            async with pool_for(sim, recorder, binds=2, window=100) as pool:
                await send_all(pool, messages(n))
                await recorder.wait("outcomes", n, timeout=40)
                ledger = sim.stats.ledger
                assert ledger is not None
                await eventually(lambda: ledger.fates()["pending"] == 0, timeout=30)
                await recorder.wait("dlrs", n, timeout=10)
            counters = sim.stats.account("esme")
            rows = list(ledger.rows())
            assert sim.chaos is not None
            counts = sim.chaos.counts
    assert counts["drop_close"] + counts["drop_half_close"] > 0 and counts["restart"] > 0
    assert counts["throttle"] > 0 and counts["before_resp"] > 0
    assert collections.Counter(o.status for o in recorder.outcomes) == {"sent": n}
    assert counters.dlrs_lost == 0
    assert len(rows) == counters.accepted and all(r.receipt_acked for r in rows)
    # Every message the pool was told was sent has its receipt in the ledger, acked.
    sent_ids = {mid for o in recorder.outcomes for mid in o.message_ids}
    assert sent_ids <= {r.message_id for r in rows}
    assert {d.smsc_message_id for d in recorder.dlrs} >= sent_ids
