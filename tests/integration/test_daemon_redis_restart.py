"""Redis goes away mid-run and comes back: the daemon pauses and goes on, and loses nothing.

A Redis server of the test's own (an append-only file, fsync always, so a restart keeps what
it acknowledged) holds the daemon's queues, message store and correlations; it is killed while
the daemon is busy and started again two seconds later. Every queue, store and correlation call
that failed meanwhile is tried again: the daemon process keeps running, every request gets one
outcome and one final report, none is sent twice, and SIGTERM still ends it cleanly.
"""

from __future__ import annotations

import collections
import os
import shutil
import signal
import subprocess
from contextlib import AbstractContextManager
from pathlib import Path

import anyio
import pytest

from smpp_bridge.simulator import run_simulator

from .test_daemon_process import (
    FINAL,
    daemon_process,
    enqueue_requests,
    free_port,
    process,
    read_events,
    sim,
    wait_accepted,
    wait_http,
    write_config,
)

pytestmark = pytest.mark.anyio

REDIS_SERVER = shutil.which("redis-server")


def redis_server(port: int, workdir: Path) -> AbstractContextManager[subprocess.Popen[bytes]]:
    """``redis-server`` on ``port``, keeping its data in ``workdir`` (append-only, fsync
    always); killed on exit."""
    assert REDIS_SERVER is not None
    argv = [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(workdir)]
    argv += ["--save", "", "--appendonly", "yes", "--appendfsync", "always"]
    return process(argv, workdir / "redis.log")


async def wait_redis(port: int) -> None:
    with anyio.fail_after(20):
        while True:
            try:
                stream = await anyio.connect_tcp("127.0.0.1", port)
            except OSError:
                await anyio.sleep(0.05)
                continue
            async with stream:
                await stream.send(b"PING\r\n")
                if (await stream.receive()).startswith(b"+PONG"):
                    return
            await anyio.sleep(0.05)


async def test_redis_restarting_mid_run_is_a_pause(
    tmp_path: Path, accepted_per_destination: collections.Counter[str]
) -> None:
    if REDIS_SERVER is None:
        # Installed with the Redis that CI's machines run: missing there is a broken setup.
        if os.environ.get("CI"):
            pytest.fail("no redis-server on PATH under CI")
        pytest.skip("needs redis-server")
    count = 2000
    redis_port = free_port()
    data = tmp_path / "redis"
    data.mkdir()
    log = tmp_path / "daemon.log"
    with redis_server(redis_port, data) as first_redis:
        await wait_redis(redis_port)
        async with run_simulator(sim()) as simulator:
            assert simulator.port is not None
            metrics = free_port()
            config = write_config(
                tmp_path,
                simulator.port,
                metrics,
                redis_prefix="restart",
                redis_url=f"redis://127.0.0.1:{redis_port}/0",
                unknown_outcome="report",
            )
            await enqueue_requests(tmp_path, config, count)
            with daemon_process(config, log) as daemon:
                await wait_http(metrics, "/readyz")
                await wait_accepted(accepted_per_destination, count // 4, 60)
                first_redis.send_signal(signal.SIGKILL)
                first_redis.wait(timeout=30)
                await anyio.sleep(2.0)
                assert daemon.poll() is None, log.read_text()[-3000:]
                with redis_server(redis_port, data):
                    await wait_redis(redis_port)
                    with anyio.move_on_after(60):
                        while True:
                            assert daemon.poll() is None, log.read_text()[-3000:]
                            events = await read_events(config)
                            outcome_of = {e["clientId"] for e in events if e["status"] == "sent"}
                            final_of = {e["clientId"] for e in events if e["status"] in FINAL}
                            if len(outcome_of) == len(final_of) == count:
                                break
                            await anyio.sleep(0.3)
                    daemon.send_signal(signal.SIGTERM)
                    with anyio.fail_after(30):
                        while daemon.poll() is None:
                            await anyio.sleep(0.05)
                    assert daemon.returncode == 0, log.read_text()[-3000:]
                    events = await read_events(config)
    by_status = collections.Counter(e["status"] for e in events)
    sent = collections.Counter(e["clientId"] for e in events if e["status"] == "sent")
    finals = collections.Counter(e["clientId"] for e in events if e["status"] in FINAL)
    everyone = {f"k-{n}" for n in range(count)}
    missing = sorted(everyone - set(sent))
    assert not missing, (len(missing), missing[:5], by_status, log.read_text()[-3000:])
    assert not (everyone - set(finals)), (by_status, log.read_text()[-3000:])
    assert max(sent.values()) == 1 and max(finals.values()) == 1, by_status
    assert max(accepted_per_destination.values()) == 1  # nothing sent twice
    assert "failed: trying again" in log.read_text()  # the outage was seen, and waited out
