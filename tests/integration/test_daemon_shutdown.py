"""SIGTERM ends ``smpp-bridge run`` within ``drain_timeout`` + 5 s whatever the SMSC does, and
loses nothing: every request is settled (an event) or back in the queue, which a second run,
against a healthy SMSC, finishes.

The SMSCs: one killed under the daemon (a dead port, reconnects refused), a peer that accepts
TCP and never reads or answers (written here), and a simulator that throttles every submit.
"""

from __future__ import annotations

import collections
import json
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

from smpp_bridge.bridge.daemon import EXIT_SHUTDOWN_DEADLINE, SHUTDOWN_GRACE
from smpp_bridge.simulator import config_from_dict as sim_config_from_dict
from smpp_bridge.simulator import run_simulator
from tests.integration.test_daemon_process import (
    ENV,
    cli,
    daemon_process,
    free_port,
    read_events,
    requests_file,
    wait_http,
)

pytestmark = pytest.mark.anyio

# The simulator's count of accepted submits per destination (registered under its own name).

DRAIN = 2.0
BUDGET = DRAIN + 5.0
COUNT = 300
SETTLED = frozenset({"sent", "error", "unknown"})


def write_config(tmp_path: Path, sim_port: int, metrics_port: int, **account: Any) -> Path:
    extra = "".join(f"{k} = {json.dumps(v)}\n" for k, v in account.items())
    path = tmp_path / "bridge.toml"
    path.write_text(
        f"""[daemon]
name = "shutdown"
drain_timeout = {DRAIN}
batch = 20
max_in_flight = 200
unknown_outcome = "report"
[queue]
backend = "sqlite"
path = "bridge.db"
visibility_timeout = 30.0
[metrics]
listen = "127.0.0.1:{metrics_port}"
[pool]
reconnect_base = 0.05
reconnect_cap = 0.3
[[accounts]]
name = "main"
port = {sim_port}
system_id = "esme"
password = "${{TEST_SMSC_PASSWORD}}"
binds = 2
window = 10
enquire_link_interval = 1.0
{extra}"""
    )
    return path


def sim(**sections: Any) -> Any:
    base: dict[str, Any] = {
        "seed": 5,
        "accounts": [{"system_id": "esme", "password": "pw", "max_binds": 8, "window": 100}],
        "submit": {"latency": {"dist": "uniform", "low": 0.0, "high": 0.01}},
        "receipts": {"enabled": False},
    }
    for key, value in sections.items():
        base[key] = base.get(key, {}) | value if isinstance(value, dict) else value
    return sim_config_from_dict(base)


async def enqueue(tmp_path: Path, config: Path) -> None:
    enq = await anyio.to_thread.run_sync(
        cli, "enqueue", str(requests_file(tmp_path, COUNT)), "--config", str(config)
    )
    assert enq.returncode == 0, enq.stderr


async def sigterm_and_time(proc: subprocess.Popen[bytes], log: Path) -> float:
    start = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        code = await anyio.to_thread.run_sync(lambda: proc.wait(timeout=BUDGET + 20))
    except subprocess.TimeoutExpired:
        pytest.fail(f"no exit {BUDGET + 20} s after SIGTERM\n{log.read_text()[-4000:]}")
    took = time.monotonic() - start
    print(f"exit {code} {took:.2f} s after SIGTERM")
    # 0: drained; EXIT_SHUTDOWN_DEADLINE: the watchdog ended what the drain left running.
    assert code in (0, EXIT_SHUTDOWN_DEADLINE), log.read_text()[-4000:]
    assert took <= BUDGET, (took, log.read_text()[-4000:])
    return took


async def finish_on_a_healthy_smsc(
    tmp_path: Path, config: Path, log: Path, counts: collections.Counter[str]
) -> None:
    """The second run: every request the first left unsettled is still in the queue, and
    gets its outcome now; nothing the SMSC accepted is accepted again."""
    before = {e["clientId"] for e in await read_events(config) if e["status"] in SETTLED}
    async with run_simulator(sim()) as healthy:
        assert healthy.port is not None
        text = config.read_text()
        old_port = next(line for line in text.splitlines() if line.startswith("port = "))
        config.write_text(text.replace(old_port, f"port = {healthy.port}"))
        with daemon_process(config, log) as proc:
            with anyio.fail_after(60):
                while True:
                    events = await read_events(config)
                    done = {e["clientId"] for e in events if e["status"] in SETTLED}
                    if len(done) == COUNT:
                        break
                    await anyio.sleep(0.2)
            await sigterm_and_time(proc, log)
    everyone = {f"k-{n}" for n in range(COUNT)}
    assert done == everyone
    settled_twice = collections.Counter(
        e["clientId"] for e in events if e["status"] in SETTLED and e["clientId"] in before
    )
    assert not {k: n for k, n in settled_twice.items() if n > 1}
    assert {d: n for d, n in counts.items() if n > 1} == {}


async def sigterm_once_accepted(
    tmp_path: Path,
    smsc_config: Any,
    accepted: collections.Counter[str],
    count: int,
    **account: Any,
) -> Path:
    """Against a simulator of ``smsc_config``: the daemon runs until the SMSC has accepted
    ``count`` submits, a second more, then gets SIGTERM (timed by ``sigterm_and_time``). The
    config, for ``finish_on_a_healthy_smsc``."""
    log = tmp_path / "daemon.log"
    metrics = free_port()
    async with run_simulator(smsc_config) as smsc:
        assert smsc.port is not None
        config = write_config(tmp_path, smsc.port, metrics, **account)
        await enqueue(tmp_path, config)
        with daemon_process(config, log) as proc:
            await wait_http(metrics, "/readyz")
            with anyio.fail_after(30):
                while sum(accepted.values()) < count:
                    await anyio.sleep(0.01)
            await anyio.sleep(1.0)
            await sigterm_and_time(proc, log)
    return config


async def test_sigterm_with_the_smsc_gone(
    tmp_path: Path, accepted_per_destination: collections.Counter[str]
) -> None:
    """The SMSC dies mid-run; the daemon keeps reconnecting to a dead port. SIGTERM still ends
    it in time, and the unsent requests wait in the queue."""
    log = tmp_path / "daemon.log"
    metrics = free_port()
    slow = sim(submit={"latency": 0.05})
    async with run_simulator(slow) as smsc:
        assert smsc.port is not None
        config = write_config(tmp_path, smsc.port, metrics, response_timeout=3.0)
        await enqueue(tmp_path, config)
        proc_cm = daemon_process(config, log)
        proc = proc_cm.__enter__()
        try:
            await wait_http(metrics, "/readyz")
            with anyio.fail_after(30):
                while sum(accepted_per_destination.values()) < 20:
                    await anyio.sleep(0.01)
        except BaseException:
            proc_cm.__exit__(None, None, None)
            raise
    # The simulator is gone: its port refuses; the daemon is in its reconnect loop.
    try:
        await anyio.sleep(1.0)
        await sigterm_and_time(proc, log)
    finally:
        proc_cm.__exit__(None, None, None)
    await finish_on_a_healthy_smsc(tmp_path, config, log, accepted_per_destination)


@contextmanager
def stalled_peer() -> Iterator[int]:
    """A TCP listener that accepts every connection and never reads or writes a byte."""
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    server.settimeout(0.1)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            held.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=5)
        for conn in held:
            conn.close()
        server.close()


async def test_sigterm_with_a_stalled_peer(
    tmp_path: Path, accepted_per_destination: collections.Counter[str]
) -> None:
    """The SMSC accepts TCP and never answers (not even the bind): nothing can be sent, and
    SIGTERM must not wait on the bind, the unbind or the requests held for it."""
    log = tmp_path / "daemon.log"
    metrics = free_port()
    with stalled_peer() as port:
        config = write_config(tmp_path, port, metrics, response_timeout=30.0)
        await enqueue(tmp_path, config)
        with daemon_process(config, log) as proc:
            await wait_http(metrics, "/healthz")
            await anyio.sleep(1.5)  # binds hanging, requests taken and waiting for a bind
            await sigterm_and_time(proc, log)
    assert not [e for e in await read_events(config) if e["status"] == "sent"]
    await finish_on_a_healthy_smsc(tmp_path, config, log, accepted_per_destination)


async def test_sigterm_with_a_throttling_smsc(
    tmp_path: Path, accepted_per_destination: collections.Counter[str]
) -> None:
    """The SMSC takes 5 submits a second and throttles the rest (ESME_RTHROTTLED): the pool
    is full of retries when SIGTERM comes."""
    throttled = sim_config_from_dict(
        {
            "seed": 5,
            "accounts": [{"system_id": "esme", "password": "pw", "max_binds": 8, "tps": 5.0}],
            "receipts": {"enabled": False},
        }
    )
    config = await sigterm_once_accepted(tmp_path, throttled, accepted_per_destination, 5)
    await finish_on_a_healthy_smsc(
        tmp_path, config, tmp_path / "daemon.log", accepted_per_destination
    )


async def test_sigterm_with_an_smsc_stalled_mid_window(
    tmp_path: Path, accepted_per_destination: collections.Counter[str]
) -> None:
    """Bound, answering, then silent with windows full (``stall_after_pdus``): the drain
    gives up after ``drain_timeout`` (those requests are ``unknown``: they may have gone) and
    the unbind to a peer that never answers must not hold the exit."""
    stalling = sim(faults={"stall_after_pdus": 30})
    config = await sigterm_once_accepted(
        tmp_path, stalling, accepted_per_destination, 20, response_timeout=60.0
    )
    await finish_on_a_healthy_smsc(
        tmp_path, config, tmp_path / "daemon.log", accepted_per_destination
    )


HANGING_DRAIN = """
import sys
import anyio
from smpp_bridge.pool import pool

async def hang(self, timeout=30.0):
    await anyio.sleep_forever()  # a drain that never returns, whatever its timeout

pool.BindPool.drain = hang
from smpp_bridge.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


async def test_sigterm_when_the_drain_never_returns(
    tmp_path: Path, accepted_per_destination: collections.Counter[str]
) -> None:
    """The daemon's own deadline, whatever the pool does: with a drain that never returns
    (patched in), the watchdog ends the process at drain_timeout + 4.5 s, exit status 124.
    Requests never offered to the pool were handed back first; the rest come back when their
    leases run out, as unknown outcomes. The next run settles every one."""
    log = tmp_path / "daemon.log"
    metrics = free_port()
    with stalled_peer() as port:
        config = write_config(tmp_path, port, metrics)
        config.write_text(
            config.read_text().replace("visibility_timeout = 30.0", "visibility_timeout = 3.0")
        )
        await enqueue(tmp_path, config)
        with log.open("ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-c", HANGING_DRAIN, "run", "--config", str(config)],
                stdout=out,
                stderr=out,
                env=ENV,
            )
        try:
            await wait_http(metrics, "/healthz")
            await anyio.sleep(1.0)
            start = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            code = await anyio.to_thread.run_sync(lambda: proc.wait(timeout=BUDGET + 20))
            took = time.monotonic() - start
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)
    text = log.read_text()
    assert code == EXIT_SHUTDOWN_DEADLINE, text[-4000:]
    assert DRAIN + SHUTDOWN_GRACE - 0.5 <= took <= BUDGET, (took, text[-4000:])
    assert "drain overran its deadline" in text and "shutdown deadline passed" in text
    await finish_on_a_healthy_smsc(tmp_path, config, log, accepted_per_destination)
