"""``smpp-bridge simulator`` end to end: a real process, a client over TCP/TLS, its log lines."""

from __future__ import annotations

import argparse
import json
import re
import signal
import ssl
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import anyio.abc
import pytest
import trustme
from anyio.streams.buffered import BufferedByteReceiveStream

from smpp_bridge.cli.main import build_parser
from smpp_bridge.cli.simulator import build_config
from smpp_bridge.client import open_session
from smpp_bridge.simulator import Account, run_simulator
from tests.integration.test_simulator import Inbox, submit_pdu

pytestmark = pytest.mark.anyio

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "sim.toml"


class Simulator:
    """The simulator as a child process, and its stderr read line by line."""

    def __init__(self, process: anyio.abc.Process) -> None:
        assert process.stderr is not None
        self.process = process
        self.stderr = BufferedByteReceiveStream(process.stderr)
        self.lines: list[str] = []

    async def line(self, event: str) -> dict[str, str]:
        """The next log line of ``event``, as its key=value fields."""
        while True:
            raw = await self.stderr.receive_until(b"\n", 65536)
            text = raw.decode()
            self.lines.append(text)
            fields = dict(re.findall(r"(\w+)=('[^']*'|\S+)", text))
            if fields.get("event", "").strip("'") == event:
                return {k: v.strip("'") for k, v in fields.items()}


@asynccontextmanager
async def simulator_process(*args: str) -> AsyncIterator[tuple[Simulator, int]]:
    command = [sys.executable, "-m", "smpp_bridge.cli.main", "simulator", "--port", "0", *args]
    async with await anyio.open_process(command) as process:
        sim = Simulator(process)
        try:
            listening = await sim.line("listening")
            yield sim, int(listening["port"])
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()


async def test_cli_serves_logs_stats_and_stops_on_sigint() -> None:
    inbox = Inbox()
    with anyio.fail_after(20):
        async with simulator_process(
            "--system-id", "esme", "--password", "pw", "--stats-interval", "0.2"
        ) as (sim, port):
            async with open_session(
                "127.0.0.1", port, "esme", "pw", on_delivery=inbox, enquire_link_interval=None
            ) as client:
                for i in range(3):
                    await client.submit(submit_pdu(i, rd=1))
                await inbox.wait_for(3)
                while True:
                    stats = await sim.line("stats")
                    if stats["submits"] == "3" and stats["dlrs_sent"] == "3":
                        break
                assert stats["binds"] == "1"
                assert {"submits_per_s", "mos_sent", "errors"} <= set(stats)
            sim.process.send_signal(signal.SIGINT)
            stopped = await sim.line("stopped")
            assert stopped["accepted"] == "3"
            assert await sim.process.wait() == 0


async def test_cli_over_tls_with_the_example_config(tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("localhost")
    cert_file = tmp_path / "cert.pem"
    key_file = tmp_path / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    with anyio.fail_after(20):
        async with simulator_process(
            "--config",
            str(EXAMPLE),
            "--tls-cert",
            str(cert_file),
            "--tls-key",
            str(key_file),
        ) as (sim, port):
            listening_tls = sim.lines[-1]
            assert "tls=True" in listening_tls
            async with open_session(
                "localhost", port, "esme", "secret", tls=client_ctx, enquire_link_interval=None
            ) as client:
                resp = await client.submit(submit_pdu())
                assert re.fullmatch(r"[0-9a-f]+", resp.message_id)  # the example's hex ids
            sim.process.send_signal(signal.SIGTERM)
            assert await sim.process.wait() == 0


async def test_cli_reports_a_bad_config_key(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[receipts]\nroute = 'any'\nretries = 3\n")
    with anyio.fail_after(20):
        result = await anyio.run_process(
            [sys.executable, "-m", "smpp_bridge.cli.main", "simulator", "--config", str(path)],
            check=False,
        )
    assert result.returncode == 2
    error = json.loads(result.stderr)
    assert error == {"error": "unknown key", "path": "receipts.retries", "file": str(path)}


def test_command_line_overrides_the_file() -> None:
    args = build_parser().parse_args(
        [
            "simulator",
            "--config",
            str(EXAMPLE),
            "--system-id",
            "esme",
            "--password",
            "other",
            "--accept-any",
            "--seed",
            "9",
        ]
    )
    assert isinstance(args, argparse.Namespace)
    config = build_config(args)
    assert config.server.accept_any
    assert config.seed == 9
    esme = [a for a in config.accounts if a.system_id == "esme"]
    assert len(esme) == 1 and esme[0].password == "other"
    assert esme[0].tps == 200.0  # the rest of the file's account is kept
    args = build_parser().parse_args(["simulator", "--system-id", "new", "--password", "pw"])
    assert build_config(args).accounts == (Account(system_id="new", password="pw"),)


async def test_cli_reports_a_port_in_use() -> None:
    with anyio.fail_after(20):
        async with run_simulator() as sim:
            result = await anyio.run_process(
                [
                    sys.executable,
                    "-m",
                    "smpp_bridge.cli.main",
                    "simulator",
                    "--port",
                    str(sim.port),
                ],
                check=False,
            )
    assert result.returncode == 2
    assert "cannot listen" in json.loads(result.stderr)["error"]


async def test_cli_writes_the_ledger_on_sigterm(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.json"
    inbox = Inbox()
    with anyio.fail_after(20):
        async with simulator_process(
            "--system-id", "esme", "--password", "pw", "--ledger", str(ledger)
        ) as (sim, port):
            async with open_session(
                "127.0.0.1", port, "esme", "pw", on_delivery=inbox, enquire_link_interval=None
            ) as client:
                ids = [(await client.submit(submit_pdu(i, rd=1))).message_id for i in range(3)]
                await inbox.wait_for(3)
            sim.process.send_signal(signal.SIGTERM)
            written = await sim.line("ledger written")
            assert written["messages"] == "3"
            assert await sim.process.wait() == 0
    data = json.loads(ledger.read_text())
    assert [row[0] for row in data["messages"]] == ids
    assert data["totals"]["accepted"] == 3


def test_chaos_flag_sets_the_seed_and_keeps_the_file_rates(tmp_path: Path) -> None:
    path = tmp_path / "chaos.toml"
    path.write_text("[chaos]\nseed = 1\ndrop = 0.01\n")
    args = build_parser().parse_args(
        ["simulator", "--config", str(path), "--chaos", "42", "--ledger", "out.json"]
    )
    assert isinstance(args, argparse.Namespace)
    config = build_config(args)
    assert config.chaos is not None
    assert (config.chaos.seed, config.chaos.drop) == (42, 0.01)
    assert config.ledger.path == "out.json"
    args = build_parser().parse_args(["simulator", "--chaos", "7"])
    config = build_config(args)
    assert config.chaos is not None and config.chaos.seed == 7
    assert build_config(build_parser().parse_args(["simulator"])).chaos is None
