#!/usr/bin/env python3
"""End-to-end daemon benchmark: send requests in, ``sent`` and ``delivered`` events out.

One simulator process (receipts on), one daemon process (``smpp-bridge run``), the requests
enqueued by ``smpp-bridge enqueue`` while the daemon runs, and this process following the
events queue until every request has its final report. Prints JSON: messages per second end
to end, queue -> submit_sm_resp latency percentiles (from the daemon's own histogram), the
daemon's RSS sampled along the way, and the ratio against the bind pool alone
(``smpp-bridge bench --path pool --dlr``) measured in the same run.

    tools/bench_e2e.py --backend sqlite --count 100000
    tools/bench_e2e.py --backend redis --count 1000000   # the memory check
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import anyio
from _bench import rss_kib
from _procs import free_port, wait_port

from smpp_bridge.storage.queues import open_queue

ROOT = Path(__file__).resolve().parent.parent
EXE = str(Path(sys.executable).with_name("smpp-bridge"))
FINAL = frozenset({"delivered", "failed", "expired", "rejected", "canceled", "accepted"})
SIM_CONFIG = """seed = 5
[server]
window = {sim_window}
[[accounts]]
system_id = "bench"
password = "pw"
max_binds = 8
window = 500
[receipts]
delay = 0.0
"""


def rss_mib(pid: int) -> float:
    """The daemon's RSS in MiB; 0 once it is gone."""
    try:
        return rss_kib(pid) / 1024
    except OSError:
        return 0.0


def histogram_quantiles(text: str, name: str, qs: tuple[float, ...]) -> dict[str, float | None]:
    """Quantiles from a Prometheus histogram's cumulative buckets (upper bound of the bucket)."""
    buckets: list[tuple[float, float]] = []
    for line in text.splitlines():
        if line.startswith(f"{name}_bucket"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            buckets.append((float("inf") if le == "+Inf" else float(le), float(line.split()[-1])))
    buckets.sort()
    total = buckets[-1][1] if buckets else 0.0
    out: dict[str, float | None] = {}
    for q in qs:
        out[f"p{round(q * 100)}"] = next(
            (le for le, n in buckets if total and n >= q * total), None
        )
    return out


def write_requests(path: Path, count: int) -> None:
    with path.open("w", encoding="utf-8") as f:
        for n in range(count):
            f.write(
                f'{{"from":"ACME","to":"+3460{n % 10_000_000:07d}",'
                f'"text":"Your code is {n % 1_000_000:06d}","clientId":"b-{n}"}}\n'
            )


TIMELINE = ("submits_total", "responses_total", "dlrs_total", "events_total", "queue_depth")


def scrape(port: int) -> dict[str, float]:
    """Totals of a few families from the daemon's /metrics (summed over labels)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    out = dict.fromkeys(TIMELINE, 0.0)
    for line in text.splitlines():
        for name in TIMELINE:
            if line.startswith(f"smpp_bridge_{name}"):
                out[name] += float(line.split()[-1])
    return out


async def follow(
    config_queue: dict[str, Any], count: int, pid: int, metrics_port: int | None
) -> dict[str, Any]:
    done = 0
    sent = 0
    after: str | None = None
    samples: list[tuple[int, float]] = []
    next_sample = 0
    started = time.monotonic()
    first_sent: float | None = None
    next_tick = started + 1.0
    async with await open_queue(keep_acked=True, **config_queue) as events:
        while done < count:
            batch = await events.tail(after, 5000, wait=0.5)
            for entry in batch:
                event = json.loads(entry.data)
                status = event["status"]
                if status == "sent":
                    sent += 1
                    if first_sent is None:
                        first_sent = time.monotonic()
                elif status in FINAL:
                    done += 1
            if batch:
                after = batch[-1].id
            if done >= next_sample:
                samples.append((done, round(rss_mib(pid), 1)))
                next_sample += max(1, count // 10)
            if metrics_port is not None and time.monotonic() >= next_tick:
                next_tick += 1.0
                row = await anyio.to_thread.run_sync(scrape, metrics_port)
                print(
                    f"{time.monotonic() - started:6.1f}s done={done} "
                    + " ".join(f"{k}={v:.0f}" for k, v in row.items()),
                    file=sys.stderr,
                )
            if time.monotonic() - started > 3600:
                break
    elapsed = time.monotonic() - started
    return {"elapsed": elapsed, "done": done, "sent": sent, "rss": samples}


def run_pool_baseline(port: int, count: int) -> float | None:
    out = subprocess.run(
        [
            EXE,
            "bench",
            "--port",
            str(port),
            "--system-id",
            "bench",
            "--password",
            "pw",
            "--count",
            str(count),
            "--binds",
            "2",
            "--window",
            "200",
            "--dlr",
            "--path",
            "pool",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        rate: float = json.loads(out.stdout)["msgs_per_s"]
        return rate
    except (ValueError, KeyError):
        print(f"pool baseline failed: {out.stderr[-500:]}", file=sys.stderr)
        return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("sqlite", "redis"), default="sqlite")
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--binds", type=int, default=2)
    parser.add_argument("--window", type=int, default=200)
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--timeline", action="store_true", help="daemon counters every second")
    parser.add_argument("--keep", action="store_true", help="keep the working directory")
    parser.add_argument(
        "--sim-window",
        type=int,
        default=100,
        help="deliver_sm the simulator keeps in flight per bind (default 100)",
    )
    parser.add_argument(
        "--wrap", default="", help="command prefix for the daemon, e.g. 'py-spy record -o x.svg --'"
    )
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="smpp-bridge-bench-"))
    sim_port, metrics_port = free_port(), free_port()
    (work / "sim.toml").write_text(SIM_CONFIG.format(sim_window=args.sim_window))
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    queue: dict[str, Any]
    if args.backend == "sqlite":
        queue_toml = 'backend = "sqlite"\npath = "bridge.db"'
        queue = {"backend": "sqlite", "name": "events", "path": str(work / "bridge.db")}
    else:
        queue_toml = f'backend = "redis"\nurl = "{args.redis_url}"\nprefix = "{prefix}"'
        queue = {"backend": "redis", "name": "events", "url": args.redis_url, "prefix": prefix}
    (work / "bridge.toml").write_text(
        f"""[daemon]
name = "bench"
max_in_flight = 20000
[queue]
{queue_toml}
[metrics]
listen = "127.0.0.1:{metrics_port}"
[[accounts]]
name = "bench"
port = {sim_port}
system_id = "bench"
password = "pw"
binds = {args.binds}
window = {args.window}
enquire_link_interval = 30.0
"""
    )
    requests = work / "requests.jsonl"
    write_requests(requests, args.count)
    env = {**os.environ, "SMPP_BRIDGE_LOG_LEVEL": "warning"}
    sim = subprocess.Popen(
        [
            EXE,
            "simulator",
            "--port",
            str(sim_port),
            "--config",
            str(work / "sim.toml"),
            "--stats-interval",
            "3600",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    daemon: subprocess.Popen[bytes] | None = None
    result: dict[str, Any] = {"backend": args.backend, "count": args.count}
    try:
        wait_port(sim_port, sim, "simulator")
        if not args.no_baseline:
            result["pool_only_msgs_per_s"] = run_pool_baseline(sim_port, min(args.count, 100_000))
        daemon_log = (work / "daemon.log").open("wb")
        daemon = subprocess.Popen(
            [*args.wrap.split(), EXE, "run", "--config", str(work / "bridge.toml")],
            stdout=daemon_log,
            stderr=daemon_log,
            env=env,
        )
        wait_port(metrics_port, daemon, "daemon")
        cpu0 = os.times()
        enq = subprocess.Popen(
            [EXE, "enqueue", str(requests), "--config", str(work / "bridge.toml")],
            stdout=subprocess.PIPE,
            env=env,
        )
        followed = anyio.run(
            follow,
            queue,
            args.count,
            daemon.pid,
            metrics_port if args.timeline else None,
            backend="trio",
        )
        enq_out = json.loads(enq.communicate()[0] or b"{}")
        del cpu0
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics") as r:
            metrics = r.read().decode()
        rate = followed["done"] / followed["elapsed"]
        result |= {
            "delivered_reports": followed["done"],
            "sent_events": followed["sent"],
            "seconds": round(followed["elapsed"], 2),
            "msgs_per_s": round(rate),
            "enqueue_per_s": enq_out.get("per_second"),
            "queue_to_resp_seconds": histogram_quantiles(
                metrics, "smpp_bridge_latency_queue_to_resp_seconds", (0.5, 0.99)
            ),
            "daemon_rss_mib": followed["rss"],
        }
        base = result.get("pool_only_msgs_per_s")
        if base:
            result["ratio_vs_pool_only"] = round(rate / base, 3)
    finally:
        if daemon is not None:
            # A profiler wrapping the daemon writes its report on SIGINT (and passes it on).
            daemon.send_signal(signal.SIGINT if args.wrap else signal.SIGTERM)
            try:
                daemon.wait(timeout=60)
            except subprocess.TimeoutExpired:
                daemon.kill()
        sim.send_signal(signal.SIGTERM)
        sim.wait(timeout=30)
        if args.backend == "redis":
            import coredis

            async def clean() -> None:
                async with coredis.Redis.from_url(args.redis_url) as client:
                    keys = [k async for k in client.scan_iter(match=f"{prefix}:*")]
                    if keys:
                        await client.delete(keys)

            anyio.run(clean, backend="trio")
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
