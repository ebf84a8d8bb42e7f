"""The statistics the benchmarks share (tools/_bench.py): what they summarise and print.

Benchmarks are never tests: nothing here times anything, it checks the arithmetic."""

from __future__ import annotations

import importlib
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

TOOLS = Path(__file__).resolve().parents[2] / "tools"


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(TOOLS))
    return importlib.import_module("_bench")


@dataclass
class Run:
    rate: float
    client_us: float = 0.0
    server_us: float = 0.0
    others_pct: float = 0.0


def test_summary_of_repeated_runs(bench: Any) -> None:
    @dataclass
    class Row(bench.Summary):  # type: ignore[misc]
        runs: list[Run] = field(default_factory=list)

    row = Row(
        [
            Run(100.0, client_us=5.0, server_us=2.0, others_pct=10.0),
            Run(300.0, client_us=4.0, server_us=3.0, others_pct=30.0),
            Run(200.0, client_us=6.0, server_us=1.0, others_pct=20.0),
        ]
    )
    assert row.best == 300.0
    assert row.median == 200.0
    # The lowest CPU is the least disturbed run's; disturbance itself by its median.
    assert row.client_us == 4.0
    assert row.server_us == 1.0
    assert row.others_pct == 20.0


def test_others_pct_is_what_the_bench_did_not_use(bench: Any) -> None:
    cores = os.cpu_count() or 1
    assert bench.others_pct(2.0, 3.0, 1.0, 0.5) == pytest.approx(100.0 * 1.5 / (2.0 * cores))
    # Readings a tick apart can make the bench's own CPU exceed the machine's: never negative.
    assert bench.others_pct(1.0, 1.0, 2.0) == 0.0


def test_report_lines(bench: Any, capsys: pytest.CaptureFixture[str]) -> None:
    bench.print_head("a    b")
    assert capsys.readouterr().out == "a    b\n------\n"
    line = bench.machine({"before": [0.5, 0.4, 0.3], "after": [1.0, 0.9, 0.8]})
    assert line == (
        f"machine: {os.cpu_count()} cores; load average before [0.5, 0.4, 0.3], "
        "after [1.0, 0.9, 0.8]"
    )


def test_best_per_item_divides_by_what_the_run_did(bench: Any) -> None:
    us = bench.best_us_per_item(lambda: 1000, 0.01)
    assert math.isfinite(us) and us >= 0.0
