#!/usr/bin/env python3
"""Pool benchmark: the bind pool against the session-level path, with and without receipts.

One simulator (``smpp-bridge simulator``, its deliver_sm window raised to the client's) serves
every run; each run is one ``smpp-bridge bench`` process:

* ``session``: ``open_session`` + ``submit_stream`` per bind, receipts only counted;
* ``pool``: ``open_pool`` + ``BindPool.send_many`` per ``--batch`` messages (100; 1 for
  ``BindPool.send`` per message), every outcome published and, with receipts on, every
  receipt parsed, correlated through the in-memory store and published.

With receipts, both paths keep at most ``--max-awaiting`` accepted messages waiting for their
receipt (the steady state of a real SMSC; the simulator can accept faster than it sends
receipts, and an unbounded backlog would measure the backlog, not the pool).

The four (path, receipts) runs are interleaved ``--repeat`` times (the machine is shared: a
burst of someone else's work hits one run, not one configuration). Per configuration: the best
and median msgs/s, client and simulator CPU µs per message (the bench's ``process_time``, the
simulator's ``/proc/<pid>/stat``), and the client's RSS at the start, after a tenth of the
messages and at the end. Ratios pool/session are given from the best rates and per round.

    .venv/bin/python tools/bench_pool.py [--count N] [--repeat R] [--binds B] [--batch M] [--json]
    .venv/bin/python tools/bench_pool.py --count 1000000 --repeat 1 --only pool,pool+dlr

(the second is the memory check: RSS from a tenth of the run to its end). A benchmark, never a
test: nothing here asserts.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

from _bench import (
    REPO,
    Server,
    Summary,
    load_average,
    machine,
    others_pct,
    print_head,
    process_cpu,
    simulator_argv,
    system_busy,
)

HOST = "127.0.0.1"
RUN_TIMEOUT = 900.0
# The simulator's own deliver_sm window matches the client's, so receipts are not held back
# by it; nothing else differs from the defaults (receipts at once, all DELIVRD).
SIM_CONFIG = "[server]\nwindow = {window}\n"
CONFIGS = ("session", "pool", "session+dlr", "pool+dlr")


@dataclass
class Run:
    config: str
    count: int
    rate: float
    client_us: float
    server_us: float
    others_pct: float
    rss: dict[str, int]
    result: dict[str, Any]

    @property
    def rss_growth(self) -> int:
        """Client RSS growth from a tenth of the messages to the end, KiB."""
        return self.rss.get("end", 0) - self.rss.get("warm", self.rss.get("start", 0))


def run_bench(config: str, sim: Server, args: argparse.Namespace) -> Run:
    path, _, dlr = config.partition("+")
    argv = [
        sys.executable,
        "-m",
        "smpp_bridge.cli.main",
        "bench",
        "--host",
        HOST,
        "--port",
        str(sim.port),
        "--system-id",
        "bench",
        "--path",
        path,
        "--count",
        str(args.count),
        "--binds",
        str(args.binds),
        "--window",
        str(args.window),
        "--dlr-timeout",
        str(RUN_TIMEOUT),
    ]
    if dlr:
        argv += ["--dlr", "--max-awaiting", str(args.max_awaiting)]
    if args.text:
        argv += ["--text", args.text]
    if path == "pool":
        argv += ["--batch", str(args.batch)]
    sim_cpu0 = process_cpu(sim.pid)
    busy0 = system_busy()
    wall0 = time.perf_counter()
    done = subprocess.run(
        argv, cwd=REPO, capture_output=True, text=True, timeout=RUN_TIMEOUT + 60, check=False
    )
    wall = time.perf_counter() - wall0
    busy = system_busy() - busy0
    sim_cpu = process_cpu(sim.pid) - sim_cpu0
    if done.returncode != 0:
        raise RuntimeError(f"{config}: bench failed ({done.returncode}): {done.stderr[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    acked = result["acked"]
    if acked != args.count or (dlr and result["dlrs"] < acked):
        print(
            f"warning: {config}: {acked} accepted, {result['dlrs']} receipts of {args.count}",
            file=sys.stderr,
        )
    return Run(
        config=config,
        count=args.count,
        rate=result["msgs_per_s"] or 0.0,
        client_us=result["cpu_s"] / args.count * 1e6,
        server_us=sim_cpu / args.count * 1e6,
        others_pct=others_pct(wall, busy, result["cpu_s"], sim_cpu),
        rss=result.get("rss_kib", {}),
        result=result,
    )


@dataclass
class Row(Summary[Run]):
    config: str
    runs: list[Run] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "config": self.config,
            "count": self.runs[0].count,
            "msgs_per_s_best": round(self.best),
            "msgs_per_s_median": round(self.median),
            "client_cpu_us_per_msg": round(self.client_us, 2),
            "simulator_cpu_us_per_msg": round(self.server_us, 2),
            "client_rss_kib": [r.rss for r in self.runs],
            "client_rss_growth_kib": max(r.rss_growth for r in self.runs),
            "others_cpu_pct": [round(r.others_pct, 1) for r in self.runs],
            "runs": [round(r.rate) for r in self.runs],
        }


def ratios(rows: dict[str, Row]) -> dict[str, dict[str, float]]:
    """pool/session: of the best rates, and the best and median of the per-round ratios."""
    out: dict[str, dict[str, float]] = {}
    for suffix, label in (("", "without receipts"), ("+dlr", "with receipts")):
        pool, session = rows.get("pool" + suffix), rows.get("session" + suffix)
        if pool is None or session is None:
            continue
        rounds = [p.rate / s.rate for p, s in zip(pool.runs, session.runs, strict=False) if s.rate]
        out[label] = {
            "best_pool / best_session": pool.best / session.best,
            "per-round best": max(rounds),
            "per-round median": statistics.median(rounds),
        }
    return out


def print_report(rows: dict[str, Row], load: dict[str, Any]) -> None:
    print(
        f"\n{machine(load)}; {load['repeat']} interleaved run(s) per configuration; pool path: "
        + ("BindPool.send per message" if load["batch"] == 1 else f"send_many({load['batch']})")
        + "\n"
    )
    head = (
        f"{'config':<12} {'count':>8} {'best/s':>9} {'median/s':>9} {'cli µs':>7} "
        f"{'sim µs':>7} {'RSS KiB start→10%→end':>24} {'others':>7}"
    )
    print_head(head)
    for row in rows.values():
        last = row.runs[-1]
        rss = f"{last.rss.get('start', 0)}→{last.rss.get('warm', 0)}→{last.rss.get('end', 0)}"
        print(
            f"{row.config:<12} {last.count:>8} {row.best:>9,.0f} {row.median:>9,.0f} "
            f"{row.client_us:>7.2f} {row.server_us:>7.2f} {rss:>24} {row.others_pct:>6.1f}%"
        )
    found = ratios(rows)
    print("\npool / session:" if found else "\npool / session: (needs both paths)")
    for label, values in found.items():
        parts = ", ".join(f"{k} {v:.2f}×" for k, v in values.items())
        print(f"  {label:<18} {parts}")
    print("\nclient RSS growth from a tenth of the run to its end (worst run):")
    for row in rows.values():
        growth = max(r.rss_growth for r in row.runs)
        print(f"  {row.config:<12} {growth:>8,} KiB over {row.runs[0].count:,} messages")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=100_000, help="messages per run")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved runs per config")
    parser.add_argument("--binds", type=int, default=2, help="binds per run (default 2)")
    parser.add_argument("--window", type=int, default=100, help="window per bind (default 100)")
    parser.add_argument("--text", help="message text (default: the bench's)")
    parser.add_argument(
        "--max-awaiting",
        type=int,
        default=20_000,
        help="with receipts, both paths pause while this many accepted messages wait for "
        "theirs (default 20000; 0: no limit, and a submit rate above the receipt rate piles "
        "them up in the simulator and the pool's store)",
    )
    parser.add_argument(
        "--batch",
        type=int,
        default=100,
        help="pool path: messages per BindPool.send_many call, as the daemon hands over a "
        "queue batch (default 100; 1: BindPool.send per message)",
    )
    parser.add_argument(
        "--only", help=f"comma-separated configurations (default all: {','.join(CONFIGS)})"
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    configs = [c for c in CONFIGS if not args.only or c in args.only.split(",")]
    if not configs:
        parser.error(f"--only names none of {', '.join(CONFIGS)}")
    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as f:
        f.write(SIM_CONFIG.format(window=args.window))
        config_path = f.name
    sim = Server("sim", "simulator", simulator_argv(HOST, config_path), "stderr")
    rows = {c: Row(c) for c in configs}
    load_before = load_average()
    try:
        sim.start()
        for rep in range(args.repeat):
            for config in configs:
                run = run_bench(config, sim, args)
                rows[config].runs.append(run)
                print(
                    f"[{rep + 1}/{args.repeat}] {config:<12} {run.rate:>9,.0f} msgs/s  "
                    f"client {run.client_us:6.2f} µs  simulator {run.server_us:6.2f} µs  "
                    f"RSS growth {run.rss_growth:,} KiB  others {run.others_pct:.0f}%",
                    file=sys.stderr,
                    flush=True,
                )
    finally:
        sim.stop()
        os.unlink(config_path)
    load = {
        "before": load_before,
        "after": load_average(),
        "repeat": args.repeat,
        "batch": args.batch,
    }
    if args.json:
        out = {
            "rows": [row.as_dict() for row in rows.values()],
            "ratios": ratios(rows),
            "load": load,
        }
        print(json.dumps(out, indent=2, ensure_ascii=False))
    else:
        print_report(rows, load)
    return 0


if __name__ == "__main__":
    sys.exit(main())
