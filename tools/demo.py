#!/usr/bin/env python3
"""The demo behind ``tools/demo``: the SMSC simulator and the sender daemon on the embedded
defaults (SQLite queue and stores), 10k send requests enqueued with ``smpp-bridge enqueue``,
their events followed until every message has its delivery report, a summary table, and a
clean shutdown of both processes. Everything lives in a temporary directory."""

from __future__ import annotations

import argparse
import collections
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio
from _procs import free_port, wait_port

from smpp_bridge.codec.status import Status
from smpp_bridge.storage.queues import open_queue

ROOT = Path(__file__).resolve().parent.parent
# A receipt's last word (``accepted`` included: the SMSC says no more after it).
FINAL = frozenset(
    {
        Status.DELIVERED,
        Status.FAILED,
        Status.EXPIRED,
        Status.REJECTED,
        Status.CANCELED,
        Status.ACCEPTED,
    }
)
SETTLED = frozenset({Status.ERROR, Status.UNKNOWN})  # a message that never reached the SMSC
TEXTS = (
    "Your code is {n:06d}",
    "Hola {n}, tu pedido está en camino. ¡Gracias por comprar con nosotros!",
    "Reminder: your appointment is tomorrow at 10:00. Reply STOP to opt out. Ref {n}. "
    "This reminder is long enough that it needs two parts: GSM 7-bit, 153 characters each, "
    "joined again on the handset.",
    "Ваш код подтверждения: {n}",
    "Delivery {n} 📦 arrives today",
)


_last_progress = [0.0]


def progress(label: str, done: int, total: int, started: float) -> None:
    now = time.monotonic()
    if done < total and now - _last_progress[0] < 0.2:
        return
    _last_progress[0] = now
    width = 30
    filled = min(width, int(width * done / max(total, 1)))
    elapsed = time.monotonic() - started
    rate = f"{done / elapsed:8.0f}/s" if elapsed > 0.05 else ""
    sys.stderr.write(
        f"\r{label:9} [{'#' * filled}{'.' * (width - filled)}] {done:>6}/{total} {rate}"
    )
    sys.stderr.flush()


def write_config(work: Path, sim_port: int, metrics_port: int) -> Path:
    config = work / "bridge.toml"
    config.write_text(
        f"""# Written by tools/demo: the embedded defaults (SQLite) against the local simulator.
[daemon]
name = "demo"
drain_timeout = 10.0

[queue]
backend = "sqlite"
path = "bridge.db"

[metrics]
listen = "127.0.0.1:{metrics_port}"

[[accounts]]
name = "demo"
host = "127.0.0.1"
port = {sim_port}
system_id = "demo"
password = "${{DEMO_SMSC_PASSWORD}}"
binds = 2
window = 100
profile = "reference"
""",
        encoding="utf-8",
    )
    return config


def write_requests(path: Path, count: int) -> int:
    """``count`` requests as JSON lines, plus two invalid ones to show ``error`` events."""
    with path.open("w", encoding="utf-8") as f:
        for n in range(count):
            request = {
                "from": "ACME",
                "to": f"+3460{n:07d}",
                "text": TEXTS[n % len(TEXTS)].format(n=n),
                "clientId": f"demo-{n}",
            }
            f.write(json.dumps(request, ensure_ascii=False) + "\n")
        f.write(
            json.dumps({"from": "ACME", "to": "12ab", "text": "x", "clientId": "bad-to"}) + "\n"
        )
        f.write(json.dumps({"from": "ACME", "to": "+34600000000", "text": "", "clientId": "empty"}))
        f.write("\n")
    return count + 2


async def follow(db: Path, expected: int, timeout: float) -> dict[str, str]:
    """Read events until every request has a final status; the last status per clientId."""
    last: dict[str, str] = {}
    done: set[str] = set()
    started = time.monotonic()
    after: str | None = None
    async with await open_queue("sqlite", "events", path=str(db), keep_acked=True) as events:
        with anyio.move_on_after(timeout):
            while len(done) < expected:
                batch = await events.tail(after, 1000, wait=0.5)
                for entry in batch:
                    after = entry.id
                    event = json.loads(entry.data)
                    cid = event.get("clientId")
                    if cid is None or event.get("segment"):
                        continue  # per-part receipts: the message-level event follows
                    status = event["status"]
                    if last.get(cid) in FINAL:
                        continue
                    last[cid] = status
                    if status in FINAL or status in SETTLED:
                        done.add(cid)
                progress("reports", len(done), expected, started)
    sys.stderr.write("\n")
    return last


def stop(proc: subprocess.Popen[bytes], name: str) -> int | None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            print(f"{name} did not stop within 30 s: killed", file=sys.stderr)
            proc.kill()
            return proc.wait()
    return proc.returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=10_000, help="messages (default 10000)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for DLRs")
    parser.add_argument("--keep", action="store_true", help="keep the working directory")
    args = parser.parse_args()
    exe = str(Path(sys.executable).with_name("smpp-bridge"))
    work = Path(tempfile.mkdtemp(prefix="smpp-bridge-demo-"))
    sim_port, metrics_port = free_port(), free_port()
    config = write_config(work, sim_port, metrics_port)
    env = {**os.environ, "DEMO_SMSC_PASSWORD": "demo-pw", "SMPP_BRIDGE_LOG_LEVEL": "info"}
    sim_log = (work / "simulator.log").open("wb")
    daemon_log = (work / "daemon.log").open("wb")
    sim = subprocess.Popen(
        [
            exe,
            "simulator",
            "--port",
            str(sim_port),
            "--config",
            str(ROOT / "examples" / "demo-sim.toml"),
        ],
        stdout=sim_log,
        stderr=sim_log,
    )
    daemon: subprocess.Popen[bytes] | None = None
    ok = False
    try:
        wait_port(sim_port, sim, "simulator")
        print(f"simulator   127.0.0.1:{sim_port}   (log {work / 'simulator.log'})")
        daemon = subprocess.Popen(
            [exe, "run", "--config", str(config)], stdout=daemon_log, stderr=daemon_log, env=env
        )
        wait_port(metrics_port, daemon, "daemon")
        print(f"daemon      SQLite queue {work / 'bridge.db'}   (log {work / 'daemon.log'})")
        print(f"metrics     http://127.0.0.1:{metrics_port}/metrics")
        requests = work / "requests.jsonl"
        total = write_requests(requests, args.count)
        started = time.monotonic()
        subprocess.run(
            [exe, "enqueue", str(requests), "--config", str(config), "--progress"],
            check=True,
            stdout=subprocess.DEVNULL,
            env=env,
        )
        last = anyio.run(follow, work / "bridge.db", total, args.timeout, backend="trio")
        elapsed = time.monotonic() - started
        counts = collections.Counter(last.values())
        sent = sum(n for s, n in counts.items() if s not in SETTLED)
        rows = [
            ("requests enqueued", total),
            ("sent (accepted by the SMSC)", sent),
            *((f"  {s}", n) for s, n in counts.most_common() if s not in SETTLED),
            ("error (invalid request / rejected)", counts.get(Status.ERROR, 0)),
            ("unknown outcome", counts.get(Status.UNKNOWN, 0)),
            ("without a final report", total - len(last) + counts.get(Status.SENT, 0)),
            ("end to end incl. reports (s)", round(elapsed, 2)),
            ("throughput incl. reports (msg/s)", round(sent / elapsed) if elapsed else 0),
        ]
        width = max(len(k) for k, _ in rows)
        print()
        print(f"{'smpp-bridge demo':{width}}   value")
        print("-" * (width + 12))
        for key, value in rows:
            print(f"{key:{width}}   {value}")
        ok = (
            counts.get(Status.SENT, 0) == 0
            and counts.get(Status.ERROR, 0) == 2
            and len(last) == total
        )
    finally:
        code = stop(daemon, "daemon") if daemon is not None else None
        stop(sim, "simulator")
        sim_log.close()
        daemon_log.close()
        print(f"\ndaemon exited with {code}; simulator stopped")
        if args.keep or not ok:
            print(f"working directory kept: {work}")
        else:
            for path in sorted(work.rglob("*"), reverse=True):
                path.unlink() if path.is_file() else path.rmdir()
            work.rmdir()
    return 0 if ok and code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
