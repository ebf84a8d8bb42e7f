"""The daemon as users run it: ``smpp-bridge run`` in its own process, fed by ``smpp-bridge
enqueue``, watched through ``events``, ``status``, ``history`` and its HTTP endpoint, stopped
with SIGTERM — and killed with SIGKILL mid-flight, then restarted: no accepted request is lost
and none the SMSC accepted is sent again (a count per destination at the simulator).
"""

from __future__ import annotations

import collections
import json
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from pathlib import Path
from typing import Any

import anyio
import coredis
import httpx
import pytest

from smpp_bridge.bridge.config import load_config
from smpp_bridge.simulator import config_from_dict as sim_config_from_dict
from smpp_bridge.simulator import run_simulator
from smpp_bridge.storage.queues import open_queue
from tests.redis_util import REDIS_URL, delete_prefix, need_redis

pytestmark = pytest.mark.anyio

CLI = [sys.executable, "-m", "smpp_bridge.cli.main"]
FINAL = frozenset({"delivered", "failed", "expired", "rejected", "canceled", "accepted"})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def write_config(
    tmp_path: Path,
    sim_port: int,
    metrics_port: int,
    *,
    name: str = "proc",
    redis_prefix: str | None = None,
    redis_url: str = REDIS_URL,
    **daemon: Any,
) -> Path:
    extra = "".join(f"{k} = {json.dumps(v)}\n" for k, v in daemon.items())
    queue = (
        'backend = "sqlite"\npath = "bridge.db"'
        if redis_prefix is None
        else f'backend = "redis"\nurl = "{redis_url}"\nprefix = "{redis_prefix}"'
    )
    path = tmp_path / f"{name}.toml"
    path.write_text(
        f"""[daemon]
name = "{name}"
drain_timeout = 5.0
batch = 20
{extra}
[queue]
{queue}
visibility_timeout = 2.0
[metrics]
listen = "127.0.0.1:{metrics_port}"
[pool]
reconnect_base = 0.05
reconnect_cap = 0.5
[[accounts]]
name = "main"
port = {sim_port}
system_id = "esme"
password = "${{TEST_SMSC_PASSWORD}}"
binds = 2
window = 20
enquire_link_interval = 5.0
"""
    )
    return path


ENV = {**os.environ, "TEST_SMSC_PASSWORD": "pw", "SMPP_BRIDGE_LOG_LEVEL": "info"}


@contextmanager
def process(
    argv: list[str], log: Path, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """``argv`` running, its output appended to ``log``; killed on exit if still running."""
    with log.open("ab") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=out, env=env)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)


def daemon_process(config: Path, log: Path) -> AbstractContextManager[subprocess.Popen[bytes]]:
    return process([*CLI, "run", "--config", str(config)], log, ENV)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, env=ENV, timeout=60, check=False
    )


async def wait_http(port: int, path: str, timeout: float = 30.0) -> httpx.Response:
    with anyio.fail_after(timeout):
        async with httpx.AsyncClient() as client:
            while True:
                try:
                    response = await client.get(f"http://127.0.0.1:{port}{path}")
                    if response.status_code == 200:
                        return response
                except httpx.TransportError:
                    pass
                await anyio.sleep(0.1)


async def read_events(config: Path) -> list[dict[str, Any]]:
    q = load_config(config, env=ENV).queue
    async with await open_queue(
        q.backend, q.events, path=q.path, url=q.url, prefix=q.prefix, keep_acked=True
    ) as events:
        out: list[dict[str, Any]] = []
        after = None
        while batch := await events.tail(after, 5000):
            after = batch[-1].id
            out += [json.loads(e.data) for e in batch]
        return out


async def enqueue_requests(tmp_path: Path, config: Path, count: int) -> None:
    """``smpp-bridge enqueue`` of ``count`` requests (``requests_file``)."""
    enq = await anyio.to_thread.run_sync(
        cli, "enqueue", str(requests_file(tmp_path, count)), "--config", str(config)
    )
    assert enq.returncode == 0, enq.stderr


async def wait_accepted(accepted: collections.Counter[str], count: int, timeout: float) -> None:
    """Until the simulator has accepted ``count`` submits (``accepted_per_destination``)."""
    with anyio.fail_after(timeout):
        while sum(accepted.values()) < count:
            await anyio.sleep(0.01)


def requests_file(tmp_path: Path, count: int) -> Path:
    path = tmp_path / "requests.jsonl"
    with path.open("w") as f:
        for n in range(count):
            f.write(
                json.dumps(
                    {
                        "from": "ACME",
                        "to": f"+3460{n:07d}",
                        "text": f"code {n}",
                        "clientId": f"k-{n}",
                    }
                )
                + "\n"
            )
    return path


def sim(**receipts: Any) -> Any:
    return sim_config_from_dict(
        {
            "seed": 9,
            "accounts": [{"system_id": "esme", "password": "pw", "max_binds": 8, "window": 100}],
            "submit": {"latency": {"dist": "uniform", "low": 0.0, "high": 0.01}},
            "receipts": {"delay": {"dist": "uniform", "low": 0.0, "high": 0.3}} | receipts,
        }
    )


@pytest.mark.parametrize(
    ("backend", "policy"), [("sqlite", "report"), ("sqlite", "retry"), ("redis", "report")]
)
async def test_kill_9_mid_flight_loses_nothing_and_sends_nothing_twice(
    tmp_path: Path,
    accepted_per_destination: collections.Counter[str],
    backend: str,
    policy: str,
) -> None:
    """SQLite: one daemon, killed, restarted. Redis: two daemons sharing the stream, one killed;
    the other takes its pending entries over once their leases run out."""
    count = 3000
    prefix = None
    if backend == "redis":
        need_redis()
        prefix = f"test-crash-{uuid.uuid4().hex[:8]}"
    try:
        async with run_simulator(sim()) as simulator:
            assert simulator.port is not None
            ports = {"a": free_port(), "b": free_port()}
            configs = {
                name: write_config(
                    tmp_path,
                    simulator.port,
                    port,
                    name=name,
                    redis_prefix=prefix,
                    unknown_outcome=policy,
                )
                for name, port in ports.items()
            }
            config = configs["a"]
            log = tmp_path / "daemon.log"
            enq = await anyio.to_thread.run_sync(
                cli,
                "enqueue",
                str(requests_file(tmp_path, count)),
                "--config",
                str(config),
                "--bulk",
                "10",
            )
            assert enq.returncode == 0, enq.stderr
            with ExitStack() as running:
                victim = running.enter_context(daemon_process(config, log))
                await wait_http(ports["a"], "/readyz")
                if backend == "redis":
                    running.enter_context(daemon_process(configs["b"], log))
                    await wait_http(ports["b"], "/readyz")
                # Mid-flight: some accepted, many not yet.
                with anyio.fail_after(60):
                    while sum(accepted_per_destination.values()) < count // 3:
                        await anyio.sleep(0.01)
                victim.send_signal(signal.SIGKILL)
                victim.wait(timeout=30)
                if backend == "sqlite":
                    running.enter_context(daemon_process(config, log))  # the restart
                with anyio.move_on_after(40):
                    while True:
                        events = await read_events(config)
                        settled = {
                            e["clientId"] for e in events if e["status"] in ("sent", "unknown")
                        }
                        if len(settled) == count:
                            break
                        await anyio.sleep(0.2)
                missing = {f"k-{n}" for n in range(count)} - settled
                seen = collections.Counter(
                    e["status"] for e in events if e.get("clientId") in missing
                )
                assert not missing, (
                    len(missing),
                    sorted(missing)[:5],
                    seen,
                    log.read_text()[-3000:],
                )
            events = await read_events(config)
    finally:
        if prefix is not None:
            async with coredis.Redis.from_url(REDIS_URL) as client:
                await delete_prefix(client, prefix)
    sent = collections.Counter(e["clientId"] for e in events if e["status"] == "sent")
    unknown = {e["clientId"] for e in events if e["status"] == "unknown"}
    everyone = {f"k-{n}" for n in range(count)}
    assert set(sent) | unknown == everyone  # nobody lost
    doubled = {d: n for d, n in accepted_per_destination.items() if n > 1}
    if policy == "report":
        # Nothing is ever resent: an unclear outcome is reported, not retried.
        assert doubled == {}
        assert not [e for e in events if e.get("possibleDuplicate") and e["status"] == "sent"]
    else:
        # Resent only what the crash left unclear, and each resend says so.
        flagged = {e["clientId"] for e in events if e.get("possibleDuplicate")}
        assert {f"k-{int(d[-7:])}" for d in doubled} <= flagged
    assert sum(accepted_per_destination.values()) == len(accepted_per_destination) + sum(
        n - 1 for n in doubled.values()
    )
    # Every accepted message's receipt found it: no unmatched DLR event.
    assert not [e for e in events if "unmatched" in (e.get("reason") or "")]


async def test_cli_enqueue_events_status_history_and_sigterm(tmp_path: Path) -> None:
    async with run_simulator(sim(outcomes=[{"stat": "DELIVRD", "weight": 1}])) as simulator:
        assert simulator.port is not None
        metrics_port = free_port()
        config = write_config(tmp_path, simulator.port, metrics_port)
        csv_file = tmp_path / "requests.csv"
        csv_file.write_text(
            "from,to,text,clientId,maxParts\n"
            "ACME,+34600000001,hello one,csv-1,2\n"
            "ACME,+34600000002,hello two,csv-2,\n"
            "ACME,not-a-number,bad,csv-bad,\n"
        )
        with daemon_process(config, tmp_path / "daemon.log") as proc:
            ready = await wait_http(metrics_port, "/readyz")
            assert ready.json()["ready"] is True
            enq = await anyio.to_thread.run_sync(
                cli, "enqueue", str(csv_file), "--config", str(config)
            )
            assert enq.returncode == 0, enq.stderr
            assert json.loads(enq.stdout)["enqueued"] == 3
            with anyio.fail_after(30):
                while True:
                    events = await read_events(config)
                    if sum(e["status"] == "delivered" for e in events) == 2:
                        break
                    await anyio.sleep(0.1)
            metrics = (await wait_http(metrics_port, "/metrics")).text
            assert 'smpp_bridge_dlrs_total{status="delivered"} 2' in metrics
            proc.send_signal(signal.SIGTERM)
            assert await anyio.to_thread.run_sync(lambda: proc.wait(timeout=30)) == 0
        status = await anyio.to_thread.run_sync(cli, "status", "csv-1", "--config", str(config))
        assert status.returncode == 0, status.stderr
        record = json.loads(status.stdout)
        assert record["status"] == "delivered"
        assert [h["status"] for h in record["history"]] == ["sent", "delivered"]
        # The SMSC's message id finds the same message (as written, and padded with zeros).
        smsc_id = next(
            e["id"]
            for e in await read_events(config)
            if e["clientId"] == "csv-1" and e["status"] == "sent"
        )
        for key in (smsc_id, f"000{smsc_id}"):
            by_id = await anyio.to_thread.run_sync(cli, "status", key, "--config", str(config))
            assert by_id.returncode == 0, by_id.stderr
            assert json.loads(by_id.stdout)["clientId"] == "csv-1"
        missing = await anyio.to_thread.run_sync(cli, "status", "nope", "--config", str(config))
        assert missing.returncode == 2 and "nope" in json.loads(missing.stderr)["error"]
        history = await anyio.to_thread.run_sync(
            cli, "history", "--since", "1h", "--config", str(config)
        )
        assert {m["clientId"] for m in json.loads(history.stdout)["messages"]} == {"csv-1", "csv-2"}
        printed = await anyio.to_thread.run_sync(cli, "events", "--config", str(config))
        lines = [json.loads(line) for line in printed.stdout.splitlines()]
        bad = [e for e in lines if e["status"] == "error"]
        assert len(bad) == 1 and bad[0]["clientId"] == "csv-bad" and "to:" in bad[0]["reason"]
        assert sum(e["status"] == "sent" for e in lines) == 2


async def test_run_refuses_a_broken_config_with_its_key_path(tmp_path: Path) -> None:
    config = tmp_path / "bridge.toml"
    config.write_text('[[accounts]]\nname = "a"\nsystem_id = "x"\nport = "high"\n')
    result = await anyio.to_thread.run_sync(cli, "run", "--config", str(config))
    assert result.returncode == 2
    error = json.loads(result.stderr.strip().splitlines()[-1])
    assert "accounts[0].port" in error["error"]


async def test_second_signal_exits_at_once_and_the_restart_finishes_the_work(
    tmp_path: Path, accepted_per_destination: collections.Counter[str]
) -> None:
    """SIGTERM starts a drain; a second SIGTERM ends the process at once (exit 130). Nothing
    acknowledged is lost: the next start finishes every request, none accepted twice."""
    count = 2000
    slow = sim_config_from_dict(
        {
            "seed": 9,
            "accounts": [{"system_id": "esme", "password": "pw", "max_binds": 8, "window": 100}],
            # Responses take a while: the drain is still waiting when the second signal comes.
            "submit": {"latency": {"dist": "uniform", "low": 0.3, "high": 0.6}},
            "receipts": {"delay": 0.0},
        }
    )
    async with run_simulator(slow) as simulator:
        assert simulator.port is not None
        port = free_port()
        config = write_config(tmp_path, simulator.port, port, unknown_outcome="report")
        log = tmp_path / "daemon.log"
        await enqueue_requests(tmp_path, config, count)
        with daemon_process(config, log) as proc:
            await wait_http(port, "/readyz")
            await wait_accepted(accepted_per_destination, count // 4, 30)
            proc.send_signal(signal.SIGTERM)
            await anyio.sleep(0.05)
            proc.send_signal(signal.SIGTERM)
            code = await anyio.to_thread.run_sync(lambda: proc.wait(timeout=20))
        assert code == 130
        with daemon_process(config, log):
            await wait_http(port, "/healthz")
            with anyio.fail_after(40):
                while True:
                    events = await read_events(config)
                    done = {e["clientId"] for e in events if e["status"] in ("sent", "unknown")}
                    if len(done) == count:
                        break
                    await anyio.sleep(0.2)
    assert {d: n for d, n in accepted_per_destination.items() if n > 1} == {}
    assert "second signal: exiting now" in log.read_text()
