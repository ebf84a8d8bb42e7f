"""What the benchmarks in tools/ share: timers, /proc readings, the processes they start, the
summary of repeated runs, and the table lines of their reports.

Every figure a bench prints is measured in its own run, ratios included (against a baseline
measured beside it), and nothing here asserts: benchmarks are never tests.
"""

from __future__ import annotations

import os
import queue
import statistics
import subprocess
import sys
import threading
import time
import timeit
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

REPO = Path(__file__).resolve().parent.parent

# ==================================================================== timers
#
# Three ways to time a piece of code, each the best of several runs (the least disturbed by
# the rest of a shared machine). They differ in how the runs are sized, and each bench keeps
# the one its figures were always measured with.


def best_us_per_call(fn: Callable[[], object], seconds: float) -> float:
    """Best-of-5 time per call in µs, each run sized to take about ``seconds``."""
    timer = timeit.Timer(fn)
    number, _ = timer.autorange()
    number = max(1, int(number * seconds / 0.2))
    return min(timer.repeat(5, number)) / number * 1e6


def best_ns_per_call(fn: Callable[[], object], seconds: float) -> float:
    """Best time per call in ns over runs of ``autorange`` size, as many runs (at least 3) as
    fill about ``seconds``."""
    timer = timeit.Timer(fn)
    number, _ = timer.autorange()
    runs = max(3, int(seconds / max(1e-9, timer.timeit(number) / number) / number))
    best = min(timer.repeat(repeat=runs, number=number))
    return best / number * 1e9


def best_us_per_item(run: Callable[[], int], seconds: float) -> float:
    """Best µs per item over repeated calls of ``run`` (which returns how many items it did)
    for about ``seconds``."""
    best = float("inf")
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        count = run()
        best = min(best, (time.perf_counter() - start) / count * 1e6)
    return best


# ==================================================================== /proc readings

_TICK = os.sysconf("SC_CLK_TCK")


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system, every thread) a process has used so far."""
    with open(f"/proc/{pid}/stat") as f:
        # The command name may contain spaces: the fields that follow it are after the ')'.
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def system_busy() -> float:
    """CPU seconds the whole machine has been busy (every core, not idle nor iowait)."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]
    # guest time is already counted in user time.
    return (sum(values[:8]) - idle) / _TICK


def load_average() -> list[float]:
    with open("/proc/loadavg") as f:
        return [float(v) for v in f.read().split()[:3]]


def rss_kib(pid: int | str = "self") -> int:
    """Resident set size of a process, in KiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def others_pct(wall: float, busy: float, *used: float) -> float:
    """The share of the machine (every core) that other processes used during a run, in %:
    of ``busy`` CPU seconds of the whole machine over ``wall`` seconds, what the bench's own
    processes (``used``, CPU seconds each) did not use."""
    others = busy
    for seconds in used:
        others -= seconds
    return 100.0 * max(0.0, others) / (wall * (os.cpu_count() or 1))


# ==================================================================== processes


class Lines:
    """Reads a pipe's lines in a thread, so the parent can wait with a timeout."""

    def __init__(self, pipe: Any) -> None:
        self.queue: queue.Queue[str | None] = queue.Queue()
        self.thread = threading.Thread(target=self._pump, args=(pipe,), daemon=True)
        self.thread.start()

    def _pump(self, pipe: Any) -> None:
        for line in pipe:
            self.queue.put(line)
        self.queue.put(None)

    def wait_for(self, predicate: Callable[[str], bool], timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise TimeoutError("the process did not answer in time") from None
            if line is None:
                raise EOFError("the process ended")
            if predicate(line):
                return line


def simulator_argv(host: str, config_path: str) -> list[str]:
    """``smpp-bridge simulator`` on ``host``, any free port, accepting any credentials, with
    the config file at ``config_path`` (its periodic stats line out of the way)."""
    return [
        sys.executable,
        "-m",
        "smpp_bridge.cli.main",
        "simulator",
        "--host",
        host,
        "--port",
        "0",
        "--accept-any",
        "--stats-interval",
        "86400",
        "--config",
        config_path,
    ]


@dataclass
class Server:
    """An SMSC process the runs share: ``start`` waits for its "listening ... port=N" line
    and reads the port; ``pid`` is what its CPU is read from."""

    name: str
    label: str
    argv: list[str]
    port_from: str  # "stderr" (the simulator's log) or "stdout"
    proc: subprocess.Popen[str] | None = None
    port: int = 0
    lines: Lines | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            self.argv,
            cwd=REPO,
            # The simulator logs its "listening ... port=N" line at info level.
            env={**os.environ, "SMPP_BRIDGE_LOG_LEVEL": "info"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        out = Lines(self.proc.stdout)
        err = Lines(self.proc.stderr)
        self.lines = err if self.port_from == "stderr" else out
        line = self.lines.wait_for(lambda s: "listening" in s and "port=" in s, 30.0)
        self.port = int(line.split("port=", 1)[1].split(maxsplit=1)[0])

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# ==================================================================== repeated runs


class Measured(Protocol):
    """One run as the summaries read it."""

    rate: float  # messages per second
    client_us: float  # client CPU µs per message
    server_us: float  # server (simulator) CPU µs per message
    others_pct: float  # see ``others_pct``


R = TypeVar("R", bound=Measured)


class Summary(Generic[R]):
    """The runs of one configuration, repeated and interleaved with the others': the best
    and median rate, the lowest CPU (the least disturbed run), the median disturbance."""

    runs: list[R]

    @property
    def best(self) -> float:
        return max(r.rate for r in self.runs)

    @property
    def median(self) -> float:
        return statistics.median(r.rate for r in self.runs)

    @property
    def client_us(self) -> float:
        return min(r.client_us for r in self.runs)

    @property
    def server_us(self) -> float:
        return min(r.server_us for r in self.runs)

    @property
    def others_pct(self) -> float:
        return statistics.median(r.others_pct for r in self.runs)


# ==================================================================== report lines


def print_head(head: str) -> None:
    """A table's column headings, underlined."""
    print(head)
    print("-" * len(head))


def machine(load: Mapping[str, Any]) -> str:
    """The cores and the load averages ``before`` and ``after`` the runs."""
    return (
        f"machine: {os.cpu_count()} cores; load average before {load['before']}, "
        f"after {load['after']}"
    )
