"""kill -9 between publishing a final report and answering its deliver_sm: the SMSC sends the
receipt again, and the next process must not publish it as new. A pool runs in a process of
its own (``tests/crash_pool``) against the simulator (in this process, over TCP), on SQLite
and on Redis, and kills itself right after a batch of receipts is published; a second process
on the same store takes the redeliveries. Counted over every message: each final receipt is
published once as new, any repeat flagged ``possible_duplicate``, none missing."""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import coredis
import pytest

from smpp_bridge.simulator import run_simulator

from .test_pool import sim_config
from .test_pool_parking import REDIS_URL

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]
N = 300


@pytest.fixture(params=["sqlite", "redis"])
async def store_arg(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:{tmp_path / 'corr.sqlite'}"
        return
    prefix = f"smppb:test:{uuid.uuid4().hex}"
    yield f"redis:{prefix}"
    async with coredis.Redis.from_url(REDIS_URL, decode_responses=False) as client:
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*")]
        if keys:
            await client.delete(keys)


def start(port: int, out: Path, store: str, *extra: str) -> subprocess.Popen[bytes]:
    """The pool process; its output goes to ``out`` with ``.log`` added."""
    with open(f"{out}.log", "wb") as log:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.crash_pool",
                str(port),
                str(out),
                "--store",
                store,
                *extra,
            ],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )


def log_of(out: Path) -> str:
    return Path(f"{out}.log").read_text(errors="replace")[-3000:]


def lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


async def test_a_receipt_published_before_a_kill_9_comes_again_flagged(
    store_arg: str, tmp_path: Path
) -> None:
    first_out, second_out = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    async with run_simulator(sim_config(receipts={"delay": 0.0})) as sim:
        assert sim.port is not None
        counters = sim.stats.account("esme")
        first = start(sim.port, first_out, store_arg, "--send", str(N), "--kill-after", "100")
        with anyio.fail_after(60):
            while first.poll() is None:
                await anyio.sleep(0.05)
        assert first.returncode == -signal.SIGKILL, log_of(first_out)
        before = [e for e in lines(first_out) if "stat" in e]
        killed = {e["request"] for e in before if e["batch"] == before[-1]["batch"]}
        assert len(before) >= 100 and killed
        second = start(sim.port, second_out, store_arg)
        try:
            # Every receipt the SMSC owes has been answered (by the first process, or by the
            # second one: published, or recognised as a repeat), and every request has its
            # report (the receipts the first one had parked are published by the second).
            def done() -> bool:
                published = {e["request"] for e in before + lines(second_out) if "stat" in e}
                return counters.dlrs_acked == N and len(published) == N

            with anyio.fail_after(60):
                while not done():
                    assert second.poll() is None, log_of(second_out)
                    await anyio.sleep(0.02)
            await anyio.sleep(0.3)  # anything the second one was still writing
        finally:
            second.send_signal(signal.SIGTERM)
            with anyio.fail_after(30):
                while second.poll() is None:
                    await anyio.sleep(0.05)
        after = [e for e in lines(second_out) if "stat" in e]

    assert counters.dlrs_lost == 0
    assert counters.dlrs_redelivered >= len(killed)
    new = collections.Counter(e["request"] for e in before + after if not e["possible_duplicate"])
    flagged = collections.Counter(e["request"] for e in after if e["possible_duplicate"])
    missing = [f"r{i}" for i in range(N) if f"r{i}" not in new]
    assert not missing, f"no final report for {len(missing)} requests, first {missing[0]}"
    twice = sorted(r for r, n in new.items() if n > 1)
    assert not twice, f"{len(twice)} published twice unflagged, first {twice[0]}"
    # The batch the first process died in came again: flagged, never as new.
    assert set(flagged) <= killed | {e["request"] for e in before}
    assert killed <= set(flagged), f"not flagged again: {sorted(killed - set(flagged))[:5]}"
    assert sum(flagged.values()) == len(flagged)
