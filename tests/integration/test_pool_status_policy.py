"""Per-account command_status classes (``AccountConfig.transient`` / ``permanent``) against the
simulator refusing every fifth submit with a chosen status: what the pool retries, what it fails
with the code, and what it counts as back-pressure. Counts over every message."""

from __future__ import annotations

import collections
from typing import Any

import msgspec
import pytest

from smpp_bridge.codec.constants import CommandStatus as S
from smpp_bridge.pool import AccountConfig
from smpp_bridge.simulator import run_simulator

from .test_pool import Recorder, messages, pool_for, send_all, sim_config

pytestmark = pytest.mark.anyio

N = 200
EVERY = 5  # every fifth submit the simulator gets is refused
VENDOR = 0x400  # a vendor-specific code: permanent unless an account says otherwise


async def run_with(status: int, **overrides: Any) -> tuple[Recorder, dict[str, int], int]:
    """Send ``N`` messages through a pool with ``overrides`` on its account, against an SMSC
    refusing every fifth submit with ``status``; the outcomes, the pool's stats and how many
    submits the SMSC refused."""
    recorder = Recorder()
    bursts = {"every": EVERY, "length": 1, "status": status}
    config = sim_config(faults={"queue_full": bursts}, receipts={"enabled": False})
    async with run_simulator(config) as sim:
        # Retries enough that no message can run out of them on refused slots.
        async with pool_for(sim, recorder, binds=1, window=20, max_retries=20, **overrides) as pool:
            await send_all(pool, messages(N))
            await recorder.wait("outcomes", N, timeout=30)
        refused = sim.stats.account("esme").rejected.get(status, 0)
    assert refused > 0, "the SMSC refused nothing: the test proves nothing"
    assert len({o.message.id for o in recorder.outcomes}) == N
    return recorder, pool.stats, refused


def statuses(recorder: Recorder) -> collections.Counter[str]:
    return collections.Counter(o.status for o in recorder.outcomes)


async def test_default_transient_status_is_retried_until_accepted() -> None:
    recorder, stats, refused = await run_with(S.ESME_RSUBMITFAIL)
    assert statuses(recorder) == {"sent": N}
    assert stats["retries"] == refused


async def test_an_account_can_make_a_transient_status_permanent() -> None:
    recorder, stats, refused = await run_with(S.ESME_RSUBMITFAIL, permanent=("ESME_RSUBMITFAIL",))
    assert statuses(recorder) == {"sent": N - refused, "error": refused}
    assert {o.code for o in recorder.outcomes if o.status == "error"} == {S.ESME_RSUBMITFAIL}
    assert stats["retries"] == 0


async def test_vendor_status_is_permanent_by_default() -> None:
    recorder, stats, refused = await run_with(VENDOR)
    assert statuses(recorder) == {"sent": N - refused, "error": refused}
    assert {o.code for o in recorder.outcomes if o.status == "error"} == {VENDOR}
    assert stats["retries"] == 0


async def test_an_account_can_make_a_vendor_status_transient() -> None:
    recorder, stats, refused = await run_with(VENDOR, transient=(VENDOR,))
    assert statuses(recorder) == {"sent": N}
    assert stats["retries"] == refused


async def test_throttled_as_transient_is_retried_without_slowing_down() -> None:
    # By default ESME_RTHROTTLED is back-pressure (retried while the bind slows down: against
    # an SMSC refusing by count, not by rate, it would crawl). ``transient = [0x58]`` makes it
    # a transient status: retried with backoff, the rate left alone.
    recorder, stats, refused = await run_with(S.ESME_RTHROTTLED, transient=(0x58,))
    assert statuses(recorder) == {"sent": N}
    assert stats["throttled"] == 0
    assert stats["retries"] == refused


def test_account_config_reads_overrides_from_plain_data() -> None:
    account = msgspec.convert(
        {
            "name": "a",
            "system_id": "esme",
            "transient": [0x400, "ESME_RTHROTTLED"],
            "permanent": ["esme_rsubmitfail", "0x401"],
        },
        AccountConfig,
    )
    policy = account.status_policy()
    assert policy.classify(VENDOR).value == "transient"
    assert policy.classify(S.ESME_RTHROTTLED).value == "transient"
    assert policy.classify(S.ESME_RSUBMITFAIL).value == "permanent"
    assert policy.classify(0x401).value == "permanent"
    # Untouched codes keep their default class.
    assert policy.classify(S.ESME_RMSGQFUL).value == "backpressure"
    assert policy.classify(S.ESME_RSYSERR).value == "transient"


@pytest.mark.parametrize(
    ("transient", "permanent", "message"),
    [
        ((0x45,), ("ESME_RSUBMITFAIL",), "both transient and permanent"),
        (("ESME_NOSUCHTHING",), (), "unknown command_status"),
        ((), (0,), "ESME_ROK"),
        ((2**32,), (), "outside"),
    ],
)
def test_account_config_refuses_contradictory_or_unknown_codes(
    transient: tuple[int | str, ...], permanent: tuple[int | str, ...], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        AccountConfig(name="a", system_id="esme", transient=transient, permanent=permanent)
