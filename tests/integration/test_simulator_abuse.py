"""The simulator's abuse limits over loopback TCP: the session-init timeout, the failed-bind
delay and limit per connection, and rate-limited refusal logs."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from smpp_bridge.codec import BindTransceiver, CommandStatus, Framer, Pdu, decode, encode
from smpp_bridge.simulator import ServerConfig, Simulator, run_simulator
from tests.integration.test_simulator import PW, eventually, make_config

pytestmark = pytest.mark.anyio

S = CommandStatus


class Recorder:
    """An EventLog that keeps every line."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, dict[str, Any]]] = []

    def info(self, event: str, **fields: Any) -> None:
        self.lines.append((event, fields))

    def of(self, event: str) -> list[dict[str, Any]]:
        return [fields for e, fields in self.lines if e == event]


async def receive_pdus(stream: anyio.abc.ByteStream, framer: Framer) -> list[Pdu]:
    """The PDUs of the next receive (EndOfStream when the simulator closed)."""
    return [decode(frame) for frame in framer.feed(await stream.receive())]


def test_session_init_timeout_is_on_by_default() -> None:
    assert ServerConfig().session_init_timeout == 30.0
    assert ServerConfig().max_failed_binds == 3


async def test_session_init_timeout_closes_a_silent_tcp_connection() -> None:
    log = Recorder()
    config = make_config(server=ServerConfig(session_init_timeout=0.3))
    with anyio.fail_after(10):
        async with Simulator(config, log=log) as sim:
            await sim.listen()
            assert sim.port is not None
            streams = [await anyio.connect_tcp("127.0.0.1", sim.port) for _ in range(5)]
            start = anyio.current_time()
            for stream in streams:
                async with stream:
                    with pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)):
                        await stream.receive()
            assert 0.25 <= anyio.current_time() - start < 2.0
            await eventually(lambda: not sim.sessions)
            assert sim.stats.unbound.session_init_timeouts == 5
    # Five closes for one reason: one line, then one line counting the other four.
    closes = log.of("closed before bind")
    assert len(closes) == 2
    assert closes[1]["suppressed"] == 4


async def test_failed_binds_are_answered_late_and_the_connection_closed_after_the_limit() -> None:
    config = make_config(server=ServerConfig(failed_bind_delay=0.2, max_failed_binds=3))
    framer = Framer()
    with anyio.fail_after(10):
        async with run_simulator(config) as sim:
            assert sim.port is not None
            async with await anyio.connect_tcp("127.0.0.1", sim.port) as stream:
                for seq in (1, 2, 3):
                    sent = anyio.current_time()
                    await stream.send(
                        encode(BindTransceiver(system_id="esme", password="bad"), seq)
                    )
                    (resp,) = await receive_pdus(stream, framer)
                    assert anyio.current_time() - sent >= 0.19
                    assert (resp.command_status, resp.sequence_number) == (S.ESME_RINVPASWD, seq)
                # The third failure ends the connection.
                with pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)):
                    await receive_pdus(stream, framer)
            await eventually(lambda: not sim.sessions)
            assert sim.stats.unbound.failed_bind_closes == 1
            assert sim.stats.account("esme").bind_failures == {S.ESME_RINVPASWD: 3}
            # A good bind on a new connection is welcome.
            async with await anyio.connect_tcp("127.0.0.1", sim.port) as stream:
                await stream.send(encode(BindTransceiver(system_id="esme", password=PW), 1))
                (resp,) = await receive_pdus(stream, framer)
                assert resp.command_status == 0


async def test_refused_binds_are_logged_at_most_once_per_interval() -> None:
    log = Recorder()
    config = make_config(
        server=ServerConfig(failed_bind_delay=0.0, max_failed_binds=None, refusal_log_interval=0.3)
    )
    framer = Framer()
    n = 200
    with anyio.fail_after(20):
        async with Simulator(config, log=log) as sim:
            await sim.listen()
            assert sim.port is not None
            async with await anyio.connect_tcp("127.0.0.1", sim.port) as stream:
                for seq in range(1, n + 1):
                    await stream.send(encode(BindTransceiver(system_id="esme", password="x"), seq))
                    (resp,) = await receive_pdus(stream, framer)
                    assert resp.command_status == S.ESME_RINVPASWD
                # The last suppressed lines are reported when their interval ends.
                await anyio.sleep(0.4)
                refused = log.of("bind refused")
                assert 2 <= len(refused) <= 2 + 2 * (anyio.current_time() - sim.started) / 0.3
                # Each line is one refusal, or the count of those held back since the last.
                shown = sum(1 for f in refused if "suppressed" not in f)
                assert shown + sum(f.get("suppressed", 0) for f in refused) == n
                assert all(f["status"] == S.ESME_RINVPASWD for f in refused)
