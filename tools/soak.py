#!/usr/bin/env python3
"""Soak the daemon against a misbehaving SMSC and count every message, end to end.

The simulator (its seeded ``chaos`` profile: drops, stalls, throttling and queue-full bursts,
receipts before responses, on other binds, hex ids, SMSC restarts) and ``smpp-bridge run`` in
their own processes; ``--count`` send requests, each with its own destination and text,
enqueued with ``smpp-bridge enqueue``; the events followed until every request has its outcome
and every sent message its final report. Then SIGTERM to both (the daemon must be gone within
``drain_timeout`` + 5 s), and one ledger: the requests, the simulator's ledger file and the
daemon's events compared by ``smpp_bridge.ledger.check_run``. Exit 0 when everything adds up;
otherwise the first problems, each with the request's history (store record, events, SMSC
ledger lines), and exit 1.

Long runs: ``--kill-every S`` kills the daemon with SIGKILL at random times (mean S seconds)
and starts it again; the SMSC restarts at random too (``--smsc-restart-rate``, the chaos
profile's ``restart``: every connection closed, new ones refused for a pause, the receipts it
owes kept). A ledger line is printed every ``--report-every`` seconds.

    .venv/bin/python tools/soak.py --count 10000 --backend sqlite --policy retry --seed 7
    .venv/bin/python tools/soak.py --count 1000000 --kill-every 60 --timeout 3600
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
from _procs import free_port, wait_port

from smpp_bridge.bridge.config import load_config
from smpp_bridge.bridge.daemon import open_backends
from smpp_bridge.codec.status import Status
from smpp_bridge.ledger import Request, check_run, history, smsc_messages
from smpp_bridge.simulator.ledger import read_ledger

FINALS = frozenset(
    {
        Status.DELIVERED,
        Status.FAILED,
        Status.EXPIRED,
        Status.CANCELED,
        Status.REJECTED,
        Status.ACCEPTED,
    }
)
REDIS_URL = os.environ.get("SMPP_BRIDGE_TEST_REDIS", "redis://127.0.0.1:6379/0")
PASSWORD_VAR = "SOAK_SMSC_PASSWORD"


def write_daemon_config(
    work: Path, args: argparse.Namespace, sim_port: int, metrics_port: int, prefix: str
) -> Path:
    queue = (
        'backend = "sqlite"\npath = "bridge.db"'
        if args.backend == "sqlite"
        else f'backend = "redis"\nurl = "{REDIS_URL}"\nprefix = "{prefix}"'
    )
    path = work / "bridge.toml"
    path.write_text(
        f"""[daemon]
name = "soak"
drain_timeout = {args.drain_timeout}
unknown_outcome = "{args.policy}"

[queue]
{queue}
visibility_timeout = 5.0

[metrics]
listen = "127.0.0.1:{metrics_port}"

[pool]
reconnect_base = 0.05
reconnect_cap = 0.5
unmatched_after = {args.unmatched_after}

[[accounts]]
name = "soak"
port = {sim_port}
system_id = "soak"
password = "${{{PASSWORD_VAR}}}"
binds = 2
window = 100
response_timeout = {args.response_timeout}
enquire_link_interval = 5.0
""",
        encoding="utf-8",
    )
    return path


def write_sim_config(work: Path, args: argparse.Namespace) -> Path:
    path = work / "simulator.toml"
    path.write_text(
        f"""seed = {args.seed}

[[accounts]]
system_id = "soak"
password = "soak-pw"
max_binds = 8
window = 200

[chaos]
seed = {args.seed}
restart = {args.smsc_restart_rate}
""",
        encoding="utf-8",
    )
    return path


def write_requests(path: Path, count: int, run: str) -> list[Request]:
    """Each request its own destination and text: that is how the SMSC's ledger tells them
    apart (a repeat of one is a resend)."""
    requests = [Request(f"{run}-{n}", f"+3461{n:08d}", f"soak {run} {n}") for n in range(count)]
    with path.open("w", encoding="utf-8") as f:
        for r in requests:
            f.write(
                json.dumps({"from": "SOAK", "to": r.to, "text": r.text, "clientId": r.client_id})
            )
            f.write("\n")
    return requests


class Follower:
    """The daemon's events, read as they come: what each request has had so far."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.after: str | None = None
        self.outcome: set[str] = set()
        self.sent: set[str] = set()
        self.final: set[str] = set()
        self.in_doubt: set[str] = set()  # reported unknown or resent: receipts may be unmatched

    def take(self, event: dict[str, Any]) -> None:
        self.events.append(event)
        cid = event.get("clientId")
        status = event.get("status")
        if cid is None:
            return
        if status in (Status.SENT, Status.ERROR, Status.UNKNOWN):
            self.outcome.add(cid)
        if status == Status.UNKNOWN or event.get("possibleDuplicate"):
            self.in_doubt.add(cid)
        if status == Status.SENT:
            self.sent.add(cid)
        elif status in FINALS and not event.get("segment"):
            self.final.add(cid)

    def done(self, total: int) -> bool:
        return len(self.outcome) >= total and self.sent <= self.final


class Soak:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.rng = random.Random(args.seed)
        self.exe = str(Path(sys.executable).with_name("smpp-bridge"))
        self.work = Path(tempfile.mkdtemp(prefix="smpp-bridge-soak-"))
        self.prefix = f"soak-{uuid.uuid4().hex[:8]}"
        self.sim_port = free_port()
        self.metrics_port = free_port()
        self.config = write_daemon_config(
            self.work, args, self.sim_port, self.metrics_port, self.prefix
        )
        self.sim_config = write_sim_config(self.work, args)
        self.ledger_path = self.work / "smsc-ledger.json"
        self.env = {**os.environ, PASSWORD_VAR: "soak-pw", "SMPP_BRIDGE_LOG_LEVEL": "info"}
        self.sim: subprocess.Popen[bytes] | None = None
        self.daemon: subprocess.Popen[bytes] | None = None
        self.kills = 0
        self.shutdown_seconds: float | None = None

    # ------------------------------------------------------------------ processes

    def _log(self, name: str) -> Any:
        return (self.work / f"{name}.log").open("ab")

    def start_sim(self) -> None:
        self.sim = subprocess.Popen(
            [
                self.exe,
                "simulator",
                "--port",
                str(self.sim_port),
                "--config",
                str(self.sim_config),
                "--ledger",
                str(self.ledger_path),
            ],
            stdout=self._log("simulator"),
            stderr=subprocess.STDOUT,
            env=self.env,
        )
        wait_port(self.sim_port, self.sim, "simulator")

    def stop_sim(self) -> None:
        if self.sim is not None and self.sim.poll() is None:
            self.sim.send_signal(signal.SIGTERM)
            try:
                self.sim.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.sim.kill()
                self.sim.wait()

    def start_daemon(self) -> None:
        self.daemon = subprocess.Popen(
            [self.exe, "run", "--config", str(self.config)],
            stdout=self._log("daemon"),
            stderr=subprocess.STDOUT,
            env=self.env,
        )
        wait_port(self.metrics_port, self.daemon, "daemon")

    def stop_daemon(self) -> int | None:
        """SIGTERM, timed: the drain must end within drain_timeout + 5 s."""
        if self.daemon is None or self.daemon.poll() is not None:
            return None if self.daemon is None else self.daemon.returncode
        started = time.monotonic()
        self.daemon.send_signal(signal.SIGTERM)
        try:
            code = self.daemon.wait(timeout=self.args.drain_timeout + 30)
        except subprocess.TimeoutExpired:
            self.daemon.kill()
            code = self.daemon.wait()
        self.shutdown_seconds = time.monotonic() - started
        return code

    # ------------------------------------------------------------------ the run

    async def follow(self, follower: Follower, backends: Any) -> None:
        while batch := await backends.events.tail(follower.after, 5000):
            follower.after = batch[-1].id
            for entry in batch:
                try:
                    follower.take(json.loads(entry.data))
                except ValueError:
                    follower.take({"status": "garbled", "raw": entry.data[:80]})

    async def run(self) -> int:
        args = self.args
        self.start_sim()
        self.start_daemon()
        requests = write_requests(self.work / "requests.jsonl", args.count, f"r{args.seed}")
        enqueue = subprocess.run(
            [self.exe, "enqueue", str(self.work / "requests.jsonl"), "--config", str(self.config)],
            capture_output=True,
            text=True,
            env=self.env,
            check=False,
        )
        if enqueue.returncode != 0:
            print(f"enqueue failed: {enqueue.stderr}", file=sys.stderr)
            return 1
        follower = Follower()
        config = load_config(self.config, env=self.env)
        started = time.monotonic()
        next_report = started + args.report_every
        next_kill = started + self._interval(args.kill_every)
        done_at: float | None = None
        async with open_backends(config, consumer="soak-reader", correlation=False) as backends:
            while True:
                await self.follow(follower, backends)
                now = time.monotonic()
                if now - started > args.timeout:
                    break
                if follower.done(len(requests)):
                    # A receipt for a submit in doubt (reported unknown, or resent) has no
                    # mapping: it comes out as unmatched once unmatched_after has passed.
                    if done_at is None:
                        done_at = now
                    if not follower.in_doubt or now - done_at > args.unmatched_after + 2:
                        break
                if now >= next_report:
                    next_report = now + args.report_every
                    self.report_line(now - started, follower, len(requests))
                if now >= next_kill:
                    assert self.daemon is not None
                    self.daemon.kill()
                    self.daemon.wait()
                    self.kills += 1
                    self.start_daemon()
                    next_kill = time.monotonic() + self._interval(args.kill_every)
                await anyio.sleep(0.2)
            elapsed = time.monotonic() - started
            code = self.stop_daemon()
            self.stop_sim()
            await self.follow(follower, backends)
        async with open_backends(config, consumer="soak-reader") as backends:
            parked = len(await backends.correlation.load_parked("soak"))  # type: ignore[attr-defined]
            smsc_ledger = read_ledger(self.ledger_path)
            totals = smsc_ledger["totals"]
            smsc = smsc_messages(smsc_ledger)
            report = check_run(requests, follower.events, smsc, parked=parked)
            summary = report.summary() | {
                "seconds": round(elapsed, 1),
                "msgs_per_s": round(len(requests) / elapsed) if elapsed else None,
                "daemon_kills": self.kills,
                "smsc": {
                    k: totals.get(k)
                    for k in (
                        "accepted",
                        "dlrs_redelivered",
                        "dlrs_lost",
                        "fault_drops",
                        "ignored_after_drop",
                        "stalls",
                        "restarts",
                    )
                },
                "shutdown_seconds": round(self.shutdown_seconds or 0, 2),
                "daemon_exit": code,
                "events": len(follower.events),
                "work": str(self.work),
            }
            print(json.dumps(summary))
            failed = not report.ok
            if self.shutdown_seconds is not None and (
                self.shutdown_seconds > args.drain_timeout + 5
            ):
                print(f"SIGTERM took {self.shutdown_seconds:.1f} s", file=sys.stderr)
                failed = True
            if code not in (0, None):
                print(f"the daemon exited {code} on SIGTERM", file=sys.stderr)
                failed = True
            for problem in report.problems[:5]:
                print(f"\n{problem.kind}: {problem.detail}", file=sys.stderr)
                if problem.client_id is not None:
                    found = await backends.store.get(problem.client_id)
                    record = None if found is None else _record_dict(found[0])
                    print(
                        history(problem.client_id, requests, follower.events, smsc, record),
                        file=sys.stderr,
                    )
        if failed:
            print(f"\nlogs and data kept in {self.work}", file=sys.stderr)
        elif not args.keep:
            shutil.rmtree(self.work, ignore_errors=True)
        return 1 if failed else 0

    def _interval(self, mean: float | None) -> float:
        return float("inf") if not mean else self.rng.expovariate(1 / mean)

    def report_line(self, elapsed: float, follower: Follower, total: int) -> None:
        statuses = Counter(e.get("status") for e in follower.events)
        print(
            json.dumps(
                {
                    "t": round(elapsed),
                    "requests": total,
                    "outcomes": len(follower.outcome),
                    "sent": len(follower.sent),
                    "finals": len(follower.final),
                    "events": dict(statuses),
                    "daemon_kills": self.kills,
                }
            ),
            flush=True,
        )

    async def cleanup(self) -> None:
        if self.args.backend != "redis":
            return
        import coredis

        async with coredis.Redis.from_url(REDIS_URL) as client:
            keys = [k async for k in client.scan_iter(match=f"{self.prefix}*")]
            if keys:
                await client.delete(keys)


def _record_dict(record: Any) -> dict[str, Any]:
    import msgspec

    return dict(msgspec.to_builtins(record))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--backend", choices=("sqlite", "redis"), default="sqlite")
    parser.add_argument("--policy", choices=("retry", "report"), default="retry")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=50.0, help="seconds for the whole run")
    parser.add_argument("--drain-timeout", type=float, default=5.0)
    parser.add_argument("--response-timeout", type=float, default=10.0)
    parser.add_argument("--unmatched-after", type=float, default=20.0)
    parser.add_argument("--report-every", type=float, default=10.0)
    parser.add_argument("--kill-every", type=float, default=None, help="mean s between kill -9")
    parser.add_argument(
        "--smsc-restart-rate",
        type=float,
        default=1 / 6000,
        help="chance per submit that the SMSC restarts (every connection closed, a pause; "
        "stored receipts kept, as a real SMSC keeps them on disk)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the working directory")
    args = parser.parse_args(argv)
    soak = Soak(args)
    try:
        return anyio.run(soak.run, backend="trio")
    finally:
        if soak.daemon is not None and soak.daemon.poll() is None:
            soak.daemon.kill()
        if soak.sim is not None and soak.sim.poll() is None:
            soak.sim.kill()
        anyio.run(soak.cleanup, backend="trio")


if __name__ == "__main__":
    sys.exit(main())
