"""``smpp-bridge enqueue`` with bad lines in the file, through the real CLI and the SQLite
queue: every bad line becomes its own queue entry (one ``error`` event from the daemon), every
good request goes through, and the summary counts both and names the bad lines.
"""

from __future__ import annotations

import collections
import json
import signal
from pathlib import Path
from typing import Any

import anyio
import pytest

from smpp_bridge.bridge.config import load_config
from smpp_bridge.bridge.envelope import Invalid, Valid, parse_batch
from smpp_bridge.simulator import run_simulator
from smpp_bridge.storage.queues import open_queue
from tests.integration.test_daemon_process import (
    ENV,
    cli,
    daemon_process,
    free_port,
    read_events,
    sim,
    wait_http,
    write_config,
)

pytestmark = pytest.mark.anyio

LONE = '{"from": "ACME", "to": "+34600000001", "text": "lone \\ud800 surrogate", "clientId": "bad"}'


def request(n: int, **extra: Any) -> dict[str, Any]:
    return {
        "from": "ACME",
        "to": f"+3460{n:07d}",
        "text": f"code {n}",
        "clientId": f"k-{n}",
    } | extra


async def queued(config: Path) -> list[bytes]:
    """Every payload on the requests queue, in order (consumed, so the queue is left empty)."""
    q = load_config(config, env=ENV).queue
    payloads: list[bytes] = []
    async with await open_queue(q.backend, q.requests, path=q.path) as queue:
        while batch := await queue.consume(500, wait=0.0):
            payloads += [e.data for e in batch]
            await queue.ack([e.id for e in batch])
    return payloads


def parsed(payloads: list[bytes]) -> collections.Counter[str]:
    """What the daemon will make of the payloads: valid requests and invalid ones."""
    return collections.Counter(
        type(p).__name__ for payload in payloads for p in parse_batch(payload)
    )


async def enqueue(*args: str) -> tuple[int, dict[str, Any]]:
    done = await anyio.to_thread.run_sync(cli, "enqueue", *args)
    out = done.stdout if done.returncode == 0 else done.stderr
    return done.returncode, json.loads(out)


@pytest.mark.timeout(150)
async def test_a_lone_surrogate_at_line_6001_is_one_error_event_and_the_rest_go_through(
    tmp_path: Path,
) -> None:
    """The reported case: 6 011 lines, line 6 001 carries ``\\ud800``. Before, enqueue died
    at 5 000 with a UnicodeEncodeError; now the daemon answers 6 010 sent + 1 error."""
    lines = [json.dumps(request(n, requestDlr=False)) for n in range(6011)]
    lines[6000] = LONE
    source = tmp_path / "requests.jsonl"
    source.write_text("\n".join(lines) + "\n")
    with anyio.fail_after(140):
        async with run_simulator(sim()) as simulator:
            assert simulator.port is not None
            metrics_port = free_port()
            config = write_config(tmp_path, simulator.port, metrics_port)
            code, summary = await enqueue(str(source), "--config", str(config))
            assert code == 0, summary
            assert summary["enqueued"] == 6011 and summary["requests"] == 6010
            assert summary["invalid"] == 1
            assert [i["line"] for i in summary["first_invalid"]] == [6001]
            assert "surrogate" in summary["first_invalid"][0]["reason"]
            with daemon_process(config, tmp_path / "daemon.log") as proc:
                await wait_http(metrics_port, "/readyz")
                while True:
                    events = await read_events(config)
                    if len(events) >= 6011:
                        break
                    await anyio.sleep(0.2)
                await anyio.sleep(0.5)  # nothing more is coming
                proc.send_signal(signal.SIGTERM)
                assert await anyio.to_thread.run_sync(lambda: proc.wait(timeout=30)) == 0
            events = await read_events(config)
    statuses = collections.Counter(e["status"] for e in events)
    assert statuses == {"sent": 6010, "error": 1}, statuses
    assert {e["clientId"] for e in events if e["status"] == "sent"} == {
        f"k-{n}" for n in range(6011) if n != 6000
    }
    (error,) = (e for e in events if e["status"] == "error")
    assert error["reason"].startswith("text: contains an unpaired UTF-16 surrogate")
    assert error["clientId"] == "bad"


async def test_every_kind_of_bad_jsonl_line_is_published_alone(tmp_path: Path) -> None:
    """Each bad line (or bulk item) is one queue entry the daemon answers with one error; a
    bad item in a bulk line does not take its valid neighbours with it."""
    good = [json.dumps(request(n)).encode() for n in range(20)]
    bulk_with_bad = json.dumps([request(100), request(101)])[:-1] + "," + LONE + "]"
    lines: list[bytes] = [
        b"\xef\xbb\xbf" + good[0],  # 1: a byte order mark is not an error
        good[1],
        LONE.encode(),  # 3
        b"",  # 4: blank, skipped
        bulk_with_bad.encode(),  # 5: two good, one bad
        b'{"from": "ACME", "to": "+34600000002", "text": "caf\xe9"}',  # 6: Latin-1, not UTF-8
        b"this is not json",  # 7
        b"[]",  # 8
        b"42",  # 9
        json.dumps([request(102), [request(103)]]).encode(),  # 10: one good, one array
        json.dumps(request(104) | {"validity": float("nan")}).encode(),  # 11: NaN
        b'{"from": "ACME", "to": "+34600000003", "text": "x", "validity": 1e400}',  # 12: inf
        b"[" * 100_000 + b"]" * 100_000,  # 13: too deep for json.loads
        b'{"validity": ' + b"9" * 5000 + b"}",  # 14: an int Python will not parse
        *good[2:],  # 15..32
    ]
    source = tmp_path / "mixed.jsonl"
    source.write_bytes(b"\n".join(lines) + b"\n")
    config = write_config(tmp_path, free_port(), free_port())
    with anyio.fail_after(50):
        code, summary = await enqueue(str(source), "--config", str(config), "--bulk", "7")
        assert code == 0, summary
        payloads = await queued(config)
    bad_lines = [3, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14]
    assert [i["line"] for i in summary["first_invalid"]] == bad_lines[:10]
    assert summary["invalid"] == len(bad_lines)
    valid = 20 + 2 + 1
    assert summary["requests"] == valid
    assert summary["enqueued"] == valid + len(bad_lines)
    assert summary["not_json"] == 4  # lines 6, 7, 13, 14
    assert summary["entries"] == len(payloads)
    # What the daemon makes of it: exactly one invalid request per bad line.
    assert parsed(payloads) == {Valid.__name__: valid, Invalid.__name__: len(bad_lines)}
    valid_ids = {
        p.request.client_id for b in payloads for p in parse_batch(b) if isinstance(p, Valid)
    }
    assert valid_ids == {f"k-{n}" for n in (*range(20), 100, 101, 102)}


async def test_csv_with_bad_bytes_and_an_oversized_field(tmp_path: Path) -> None:
    rows = [b"\xef\xbb\xbffrom,to,text,clientId"]  # Excel's byte order mark
    rows += [f"ACME,+3460{n:07d},code {n},csv-{n}".encode() for n in range(5)]
    rows.insert(3, b"ACME,+34600000099,caf\xe9 latin-1,csv-latin1")  # line 4
    rows.insert(5, b"ACME,+34600000098," + b"x" * 200_000 + b",csv-huge")  # line 6
    source = tmp_path / "requests.csv"
    source.write_bytes(b"\r\n".join(rows) + b"\r\n")
    config = write_config(tmp_path, free_port(), free_port())
    with anyio.fail_after(50):
        code, summary = await enqueue(str(source), "--config", str(config))
        assert code == 0, summary
        payloads = await queued(config)
    assert summary["requests"] == 5 and summary["invalid"] == 2 and summary["enqueued"] == 7
    assert [i["line"] for i in summary["first_invalid"]] == [4, 6]
    assert parsed(payloads) == {Valid.__name__: 5, Invalid.__name__: 2}
    valid_ids = {
        p.request.client_id for b in payloads for p in parse_batch(b) if isinstance(p, Valid)
    }
    assert valid_ids == {f"csv-{n}" for n in range(5)}


@pytest.mark.timeout(30)  # a sync test: pytest-timeout is its guard
def test_a_queue_failure_stops_with_what_was_published(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Not a line's fault: enqueue stops, and says how far it got (no silent partial run)."""
    from smpp_bridge.cli.main import main
    from smpp_bridge.storage import queues

    real_open = queues.open_queue

    async def flaky_open(*args: Any, **kw: Any) -> Any:
        queue = await real_open(*args, **kw)
        real_publish = queue.publish
        calls = 0

        async def publish(payloads: Any) -> list[str]:
            nonlocal calls
            calls += 1
            if calls == 3:
                raise OSError("disk I/O error")
            return await real_publish(payloads)

        queue.publish = publish  # type: ignore[method-assign]
        return queue

    monkeypatch.setattr(queues, "open_queue", flaky_open)
    monkeypatch.setenv("TEST_SMSC_PASSWORD", "pw")
    source = tmp_path / "requests.jsonl"
    source.write_text("".join(json.dumps(request(n)) + "\n" for n in range(500)))
    config = write_config(tmp_path, free_port(), free_port())
    code = main(["enqueue", str(source), "--config", str(config), "--bulk", "1"])
    assert code == 2
    report = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert "disk I/O error" in report["error"]
    assert report["enqueued"] == 100 and report["stopped_at_line"] == 150
