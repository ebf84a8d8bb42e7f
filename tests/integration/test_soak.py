"""Soak: the daemon against the simulator's seeded chaos profile, every message counted.

Each case runs ``tools/soak.py`` (the same harness as long runs): simulator and daemon in their
own processes, 10 000 requests, drops, stalls, throttling and queue-full bursts, receipts before
responses and on other binds, SMSC restarts. The ledger (requests, the simulator's ledger file,
the daemon's events) must add up; on failure the output names the first request that did not
and shows its history.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.redis_util import need_redis

SOAK = Path(__file__).resolve().parents[2] / "tools" / "soak.py"


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("backend", "policy", "seed"),
    [
        ("sqlite", "retry", 11),
        ("sqlite", "report", 12),
        ("redis", "retry", 13),
        ("redis", "report", 14),
    ],
)
def test_soak_on_chaos_adds_up(backend: str, policy: str, seed: int) -> None:
    if backend == "redis":
        need_redis()
    result = subprocess.run(
        [
            sys.executable,
            str(SOAK),
            "--count",
            "10000",
            "--backend",
            backend,
            "--policy",
            policy,
            "--seed",
            str(seed),
            "--timeout",
            "45",
            "--unmatched-after",
            "5",
        ],
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert result.returncode == 0, f"{result.stdout[-4000:]}\n{result.stderr[-8000:]}"
