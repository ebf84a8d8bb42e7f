"""Every example the docs include runs: each file under docs/examples, under trio and asyncio,
as its own process (as a reader would run it), exits 0 and prints what the page says."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"
# What each example prints once its message came back as a receipt.
EXPECTED = {
    "session.py": "receipt for 1: delivered",
    "pool.py": "order-42: receipt delivered for 1",
}


def test_every_example_is_listed() -> None:
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted(EXPECTED)


@pytest.mark.parametrize("runtime", ["trio", "asyncio"])
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_runs(name: str, runtime: str) -> None:
    argv = [sys.executable, str(EXAMPLES / name)]
    if runtime == "asyncio":
        argv.append("asyncio")
    done = subprocess.run(
        argv, cwd=EXAMPLES.parents[1], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert EXPECTED[name] in done.stdout, done.stdout + done.stderr
