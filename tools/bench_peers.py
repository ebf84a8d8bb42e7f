#!/usr/bin/env python3
"""Peer benchmark: clients × SMSCs over loopback TCP, each peer in its own process.

Clients: ours (``open_session`` + ``submit_stream``, window 100, trio); smpplib (synchronous
stop-and-wait: send submit_sm, read its response); the ``smpp34`` package's asyncio client
(window 100, 100 concurrent submit tasks); and a raw ceiling (a plain socket sending
pre-encoded submit_sm bytes, 100 outstanding, reading only the 16-octet headers).

SMSCs: our simulator (``smpp-bridge simulator``) writing one batch per wake-up, the same with
``--write-per-pdu`` (one send per PDU, as many SMSCs write), and ``tools/smpp34_smsc.py`` (the
smpp34 package's Rust-backed asyncio ``Server``, answering every submit with accept).

Per (client, SMSC) pair: msgs/s, client CPU µs/msg (``process_time`` in the client process),
server CPU µs/msg (``/proc/<pid>/stat`` utime+stime around the run), response gaps over 30 ms
seen by the client (40 ms delayed-ACK stalls), client RSS after the bind, after the first tenth
of the run and at the end, and the CPU other processes used meanwhile (the machine is shared).
With receipts on, the client asks for registered_delivery and the run ends when every response
and every receipt has been handled. Each pair runs ``--repeat`` times, interleaved; the table
shows the best and median rate and the lowest CPU.

    .venv/bin/python tools/bench_peers.py [--count N] [--quick] [--json] [--repeat R]

Fast pairs send ``--count`` messages; pairs with a slow peer (smpplib, the smpp34 client or
server) send a tenth of it. A benchmark, never a test: nothing here asserts.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _bench import (
    REPO,
    Lines,
    Server,
    Summary,
    load_average,
    machine,
    others_pct,
    print_head,
    process_cpu,
    rss_kib,
    simulator_argv,
    system_busy,
)

HOST = "127.0.0.1"
WINDOW = 100
SYSTEM_ID = "bench"
PASSWORD = "pw"
SOURCE = "ACME"
DESTINATION = "34600000001"
TEXT = b"Hello from bench_peers, message text"
GAP = 0.030  # a response gap longer than this is a stall (delayed ACK is 40 ms)
SLOW_DIVISOR = 10  # pairs with a slow peer send count // SLOW_DIVISOR
RUN_TIMEOUT = 600.0

TOOLS = Path(__file__).resolve().parent

# The simulator's own deliver_sm window matches the client's (the default is 10), so receipts
# are not throttled by it; nothing else differs from the CLI defaults.
SIM_CONFIG = "[server]\nwindow = 100\n"

SUBMIT_SM = 0x00000004
SUBMIT_SM_RESP = 0x80000004
DELIVER_SM = 0x00000005
DELIVER_SM_RESP = 0x80000005
ENQUIRE_LINK = 0x00000015
ENQUIRE_LINK_RESP = 0x80000015
UNBIND = 0x00000006
UNBIND_RESP = 0x80000006
HEADER = struct.Struct(">IIII")


# ==================================================================== measurements


class Gaps:
    """Counts pauses between consecutive responses longer than ``GAP``."""

    __slots__ = ("count", "last", "longest")

    def __init__(self, start: float) -> None:
        self.last = start
        self.count = 0
        self.longest = 0.0

    def mark(self, now: float) -> None:
        gap = now - self.last
        if gap > GAP:
            self.count += 1
            self.longest = max(self.longest, gap)
        self.last = now


# ==================================================================== client processes
#
# A client process binds, prints a READY line and waits for a line on stdin; then it runs,
# prints its RESULT as one JSON line and unbinds. The parent reads the server's CPU between
# the two, so binding and unbinding are not counted.


def _ready_and_wait() -> None:
    print(json.dumps({"ready": True}), flush=True)
    sys.stdin.readline()


@dataclass
class Outcome:
    count: int
    elapsed: float = 0.0
    cpu: float = 0.0
    ok: int = 0
    receipts: int = 0
    gaps: int = 0
    longest_gap: float = 0.0
    rss_start: int = 0
    rss_warm: int = 0
    rss_end: int = 0

    def finish(self, t0: float, c0: float, gaps: Gaps) -> None:
        """Stop the clocks and report to the parent (before the unbind, which may fail)."""
        self.elapsed = time.perf_counter() - t0
        self.cpu = time.process_time() - c0
        self.gaps = gaps.count
        self.longest_gap = gaps.longest
        self.rss_end = rss_kib()
        print(json.dumps({"result": self.__dict__}), flush=True)


def client_ours(port: int, count: int, receipts: bool) -> Outcome:
    import anyio

    from smpp_bridge.client import Delivery, open_session
    from smpp_bridge.codec import SubmitSm

    out = Outcome(count)
    pdu = SubmitSm(
        source_addr_ton=5,
        source_addr=SOURCE,
        dest_addr_ton=1,
        dest_addr_npi=1,
        destination_addr=DESTINATION,
        short_message=TEXT,
        registered_delivery=1 if receipts else 0,
    )

    async def main() -> None:
        all_receipts = anyio.Event()

        async def on_delivery(delivery: Delivery) -> int | None:
            if delivery.receipt is not None:
                out.receipts += 1
                if out.receipts >= count:
                    all_receipts.set()
            return None

        async with open_session(
            HOST,
            port,
            SYSTEM_ID,
            PASSWORD,
            window=WINDOW,
            on_delivery=on_delivery if receipts else None,
        ) as client:
            out.rss_start = rss_kib()
            await anyio.to_thread.run_sync(_ready_and_wait)
            warm_at = max(1, count // 10)
            done = 0
            t0 = time.perf_counter()
            c0 = time.process_time()
            gaps = Gaps(t0)
            async for batch in client.submit_stream(itertools.repeat(pdu, count)):
                gaps.mark(time.perf_counter())
                done += len(batch)
                out.ok += sum(1 for r in batch if r.ok)
                if not out.rss_warm and done >= warm_at:
                    out.rss_warm = rss_kib()
            if receipts:
                with anyio.fail_after(RUN_TIMEOUT):
                    await all_receipts.wait()
            out.finish(t0, c0, gaps)

    anyio.run(main, backend="trio")
    return out


def client_smpplib(port: int, count: int, receipts: bool) -> Outcome:
    import smpplib.client
    import smpplib.exceptions

    out = Outcome(count)
    responses = 0

    def on_sent(pdu: Any) -> None:
        nonlocal responses
        responses += 1
        out.ok += pdu.status == 0

    def on_received(pdu: Any) -> None:
        out.receipts += 1

    client = smpplib.client.Client(HOST, port, timeout=60, allow_unknown_opt_params=True)
    client.set_message_sent_handler(on_sent)
    client.set_message_received_handler(on_received)
    client.connect()
    client.bind_transceiver(system_id=SYSTEM_ID, password=PASSWORD)
    out.rss_start = rss_kib()
    _ready_and_wait()
    warm_at = max(1, count // 10)
    t0 = time.perf_counter()
    c0 = time.process_time()
    gaps = Gaps(t0)
    for i in range(count):
        client.send_message(
            source_addr_ton=5,
            source_addr=SOURCE,
            dest_addr_ton=1,
            dest_addr_npi=1,
            destination_addr=DESTINATION,
            short_message=TEXT,
            registered_delivery=receipts,
        )
        while responses <= i:
            client.read_once()  # answers a receipt read meanwhile with deliver_sm_resp
        gaps.mark(time.perf_counter())
        if i + 1 == warm_at:
            out.rss_warm = rss_kib()
    while receipts and out.receipts < count:
        client.read_once()
    out.finish(t0, c0, gaps)
    # The smpp34 server may close at once instead of answering the unbind.
    with contextlib.suppress(smpplib.exceptions.ConnectionError):
        client.unbind()
    client.disconnect()
    return out


def client_smpp34(port: int, count: int, receipts: bool) -> Outcome:
    import smpp34

    out = Outcome(count)

    async def main() -> None:
        client = smpp34.Client(HOST, port, SYSTEM_ID, PASSWORD, bind_type="TRX", window_size=WINDOW)
        smsc = await client.connect()
        out.rss_start = rss_kib()
        await asyncio.to_thread(_ready_and_wait)
        warm_at = max(1, count // 10)
        done = 0
        t0 = time.perf_counter()
        c0 = time.process_time()
        gaps = Gaps(t0)

        async def submitter(n: int) -> None:
            nonlocal done
            for _ in range(n):
                resp = await smsc.submit_sm(
                    DESTINATION,
                    TEXT,
                    source_addr=SOURCE,
                    source_addr_ton=5,
                    dest_addr_ton=1,
                    dest_addr_npi=1,
                    registered_delivery=1 if receipts else 0,
                )
                gaps.mark(time.perf_counter())
                out.ok += resp.is_success
                done += 1
                if done == warm_at:
                    out.rss_warm = rss_kib()

        async def receiver() -> None:
            while out.receipts < count:
                event = await smsc.next()
                if isinstance(event, smpp34.Disconnected):
                    return
                out.receipts += 1

        shares = [count // WINDOW + (i < count % WINDOW) for i in range(WINDOW)]
        tasks = [submitter(n) for n in shares if n]
        await asyncio.gather(*tasks, *([receiver()] if receipts else []))
        out.finish(t0, c0, gaps)
        try:
            await smsc.unbind()
            await client.stop()
        except smpp34.SmppError:
            pass  # measured already; a peer that closes instead of answering does not matter

    asyncio.run(main())
    return out


def _recv_pdu(sock: socket.socket) -> tuple[int, int, int, bytes]:
    """One whole PDU read from a blocking socket (setup and teardown only)."""
    data = b""
    while len(data) < 16 or len(data) < HEADER.unpack_from(data)[0]:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("the SMSC closed the connection")
        data += chunk
    length, cid, status, seq = HEADER.unpack_from(data)
    return cid, status, seq, data[16:length]


def client_raw(port: int, count: int, receipts: bool) -> Outcome:
    """The ceiling: the least Python per message a well-behaved windowed client can do."""
    from smpp_bridge.codec import BindTransceiver, SubmitSm, Unbind, encode

    out = Outcome(count)
    template = encode(
        SubmitSm(
            source_addr_ton=5,
            source_addr=SOURCE,
            dest_addr_ton=1,
            dest_addr_npi=1,
            destination_addr=DESTINATION,
            short_message=TEXT,
            registered_delivery=1 if receipts else 0,
        ),
        0,
    )
    size = len(template)
    # A ring of submits with distinct sequence numbers, encoded once: a number comes round
    # again only long after its response (the window is far smaller than the ring).
    ring_len = 1 << 16
    ring = b"".join(
        template[:12] + seq.to_bytes(4, "big") + template[16:] for seq in range(2, ring_len + 2)
    )
    view = memoryview(ring)

    def submits(first: int, n: int) -> bytes:
        start = (first % ring_len) * size
        end = start + n * size
        if end <= len(ring):
            return bytes(view[start:end])
        return bytes(view[start:]) + bytes(view[: end - len(ring)])

    sock = socket.create_connection((HOST, port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    quickack = getattr(socket, "TCP_QUICKACK", None)
    sock.sendall(encode(BindTransceiver(system_id=SYSTEM_ID, password=PASSWORD), 1))
    cid, status, _, _ = _recv_pdu(sock)
    if status != 0:
        raise ConnectionError(f"bind refused: 0x{status:08X}")
    out.rss_start = rss_kib()
    _ready_and_wait()
    warm_at = max(1, count // 10)
    resp_prefix = HEADER.pack
    header = HEADER.unpack_from
    recv = sock.recv
    t0 = time.perf_counter()
    c0 = time.process_time()
    gaps = Gaps(t0)
    sent = min(WINDOW, count)
    sock.sendall(submits(0, sent))
    responses = 0
    pending = b""
    while responses < count or (receipts and out.receipts < count):
        data = recv(262144)
        if not data:
            raise ConnectionError("the SMSC closed the connection")
        if quickack is not None:
            sock.setsockopt(socket.IPPROTO_TCP, quickack, 1)
        gaps.mark(time.perf_counter())
        if pending:
            data = pending + data
        end = len(data)
        pos = 0
        got = 0
        answers: list[bytes] = []
        while end - pos >= 16:
            length, cid, status, seq = header(data, pos)
            if end - pos < length:
                break
            if cid == SUBMIT_SM_RESP:
                got += 1
                if status == 0:
                    out.ok += 1
            elif cid == DELIVER_SM:
                out.receipts += 1
                answers.append(resp_prefix(17, DELIVER_SM_RESP, 0, seq) + b"\x00")
            elif cid == ENQUIRE_LINK:
                answers.append(resp_prefix(16, ENQUIRE_LINK_RESP, 0, seq))
            pos += length
        pending = data[pos:]
        if responses < warm_at <= responses + got:
            out.rss_warm = rss_kib()
        responses += got
        more = min(got, count - sent)
        if more > 0:
            answers.append(submits(sent, more))
            sent += more
        if answers:
            sock.sendall(b"".join(answers))
    out.finish(t0, c0, gaps)
    try:
        sock.sendall(encode(Unbind(), ring_len + 2))
        while _recv_pdu(sock)[0] != UNBIND_RESP:
            pass
    except OSError:
        pass  # the smpp34 server may close at once instead of answering the unbind
    sock.close()
    return out


CLIENTS: dict[str, Callable[[int, int, bool], Outcome]] = {
    "ours": client_ours,
    "smpplib": client_smpplib,
    "smpp34": client_smpp34,
    "raw": client_raw,
}


def run_client_role(name: str, port: int, count: int, receipts: bool) -> int:
    CLIENTS[name](port, count, receipts)
    return 0


# ==================================================================== server processes


def make_servers(config_path: str) -> dict[str, Server]:
    sim = simulator_argv(HOST, config_path)
    return {
        "sim": Server("sim", "simulator", sim, "stderr"),
        "sim-1pdu": Server(
            "sim-1pdu", "simulator --write-per-pdu", [*sim, "--write-per-pdu"], "stderr"
        ),
        "smpp34": Server(
            "smpp34", "smpp34 Server", [sys.executable, str(TOOLS / "smpp34_smsc.py")], "stdout"
        ),
    }


# ==================================================================== the matrix


@dataclass(frozen=True)
class Pair:
    client: str
    server: str
    receipts: bool = False

    @property
    def key(self) -> str:
        return f"{self.client}{'+dlr' if self.receipts else ''}/{self.server}"

    @property
    def slow(self) -> bool:
        return self.client in ("smpplib", "smpp34") or self.server == "smpp34"


PAIRS = [
    *(
        Pair(c, s)
        for s in ("sim", "sim-1pdu", "smpp34")
        for c in ("ours", "raw", "smpp34", "smpplib")
    ),
    Pair("ours", "sim", receipts=True),
    Pair("raw", "sim", receipts=True),
    Pair("raw", "smpp34", receipts=True),
]


@dataclass
class Run:
    pair: Pair
    count: int
    rate: float
    client_us: float
    server_us: float
    gaps: int
    longest_gap: float
    rss_start: int
    rss_warm: int
    rss_end: int
    server_rss: int
    others_pct: float
    ok: int
    receipts: int


def run_pair(pair: Pair, server: Server, count: int) -> Run:
    argv = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--role",
        pair.client,
        "--port",
        str(server.port),
        "--count",
        str(count),
    ]
    if pair.receipts:
        argv.append("--receipts")
    proc = subprocess.Popen(
        argv, cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdin is not None
    try:
        lines = Lines(proc.stdout)
        lines.wait_for(lambda s: s.startswith('{"ready"'), 60.0)
        server_cpu0 = process_cpu(server.pid)
        busy0 = system_busy()
        wall0 = time.perf_counter()
        proc.stdin.write("go\n")
        proc.stdin.flush()
        line = lines.wait_for(lambda s: s.startswith('{"result"'), RUN_TIMEOUT)
        wall = time.perf_counter() - wall0
        busy = system_busy() - busy0
        server_cpu = process_cpu(server.pid) - server_cpu0
        server_rss = rss_kib(server.pid)
        proc.stdin.close()
        if proc.wait(60) != 0:
            print(f"warning: {pair.key}: the client failed after its run", file=sys.stderr)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    res = json.loads(line)["result"]
    if res["ok"] != count or (pair.receipts and res["receipts"] < count):
        print(
            f"warning: {pair.key}: {res['ok']} ok, {res['receipts']} receipts of {count}",
            file=sys.stderr,
        )
    return Run(
        pair=pair,
        count=count,
        rate=count / res["elapsed"],
        client_us=res["cpu"] / count * 1e6,
        server_us=server_cpu / count * 1e6,
        gaps=res["gaps"],
        longest_gap=res["longest_gap"],
        rss_start=res["rss_start"],
        rss_warm=res["rss_warm"],
        rss_end=res["rss_end"],
        server_rss=server_rss,
        others_pct=others_pct(wall, busy, res["cpu"], server_cpu),
        ok=res["ok"],
        receipts=res["receipts"],
    )


@dataclass
class Row(Summary[Run]):
    """A pair's repeated runs, summarised."""

    pair: Pair
    runs: list[Run]

    @property
    def gaps(self) -> int:
        return max(r.gaps for r in self.runs)

    @property
    def longest_gap_ms(self) -> float:
        return 1000 * max(r.longest_gap for r in self.runs)

    @property
    def rss_growth_kb(self) -> int:
        """Client memory growth from the first tenth of the run to its end (worst run)."""
        return max(r.rss_end - r.rss_warm for r in self.runs)

    def as_dict(self) -> dict[str, Any]:
        return {
            "client": self.pair.client,
            "server": self.pair.server,
            "receipts": self.pair.receipts,
            "count": self.runs[0].count,
            "msgs_per_s_best": round(self.best),
            "msgs_per_s_median": round(self.median),
            "client_cpu_us_per_msg": round(self.client_us, 2),
            "server_cpu_us_per_msg": round(self.server_us, 2),
            "gaps_over_30ms": self.gaps,
            "longest_gap_ms": round(self.longest_gap_ms, 1),
            "client_rss_kb": [
                self.runs[-1].rss_start,
                self.runs[-1].rss_warm,
                self.runs[-1].rss_end,
            ],
            "client_rss_growth_kb": self.rss_growth_kb,
            "server_rss_kb": [r.server_rss for r in self.runs],
            "others_cpu_pct": round(self.others_pct, 1),
            "runs": [round(r.rate) for r in self.runs],
        }


# ==================================================================== report


@dataclass
class Target:
    name: str
    value: float
    goal: float
    higher_is_better: bool = True
    unit: str = ""

    @property
    def met(self) -> bool:
        return self.value >= self.goal if self.higher_is_better else self.value <= self.goal

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": round(self.value, 2),
            "goal": ("≥ " if self.higher_is_better else "≤ ") + f"{self.goal:g}{self.unit}",
            "met": self.met,
        }


def ratios_and_targets(rows: dict[str, Row]) -> tuple[dict[str, float], list[Target]]:
    def rate(key: str) -> float:
        return rows[key].best

    def ratio(a: str, b: str) -> float:
        return rate(a) / rate(b)

    ratios = {
        "ours / raw ceiling (simulator)": ratio("ours/sim", "raw/sim"),
        "ours / raw ceiling (simulator, write per PDU)": ratio("ours/sim-1pdu", "raw/sim-1pdu"),
        "ours / raw ceiling (smpp34 server)": ratio("ours/smpp34", "raw/smpp34"),
        "ours / smpp34 client (simulator)": ratio("ours/sim", "smpp34/sim"),
        "ours / smpp34 client (smpp34 server)": ratio("ours/smpp34", "smpp34/smpp34"),
        "ours / smpplib (simulator)": ratio("ours/sim", "smpplib/sim"),
        "ours / smpplib (smpp34 server)": ratio("ours/smpp34", "smpplib/smpp34"),
        "simulator / smpp34 server (raw client)": ratio("raw/sim", "raw/smpp34"),
        "simulator / smpp34 server (raw client, receipts)": ratio("raw+dlr/sim", "raw+dlr/smpp34"),
        "smpp34 server CPU / simulator CPU (raw client)": rows["raw/smpp34"].server_us
        / rows["raw/sim"].server_us,
        "smpp34 server CPU / simulator CPU (raw, receipts)": rows["raw+dlr/smpp34"].server_us
        / rows["raw+dlr/sim"].server_us,
    }
    ours = [row for row in rows.values() if row.pair.client == "ours"]
    targets = [
        Target(
            "ours / raw ceiling, simulator", ratios["ours / raw ceiling (simulator)"], 0.9, unit="×"
        ),
        Target("ours msgs/s vs simulator", rate("ours/sim"), 150_000),
        Target("ours / smpp34 client", ratios["ours / smpp34 client (simulator)"], 4, unit="×"),
        Target("ours / smpplib", ratios["ours / smpplib (simulator)"], 10, unit="×"),
        Target("client CPU µs/msg, batched writes", rows["ours/sim"].client_us, 6, False),
        Target("client CPU µs/msg, per-PDU writes", rows["ours/sim-1pdu"].client_us, 13, False),
        Target("receipts on: msgs/s (resp + receipt)", rate("ours+dlr/sim"), 80_000),
        Target(
            "simulator / smpp34 server",
            ratios["simulator / smpp34 server (raw client)"],
            20,
            unit="×",
        ),
        Target("simulator CPU µs/msg", rows["raw/sim"].server_us, 4, False),
        Target("simulator CPU µs/msg, receipts", rows["raw+dlr/sim"].server_us, 7, False),
        Target(
            "client memory growth KiB (worst of ours)",
            max(row.rss_growth_kb for row in ours),
            2048,
            False,
        ),
        Target("response gaps > 30 ms (ours, total)", sum(row.gaps for row in ours), 0, False),
    ]
    return ratios, targets


def print_report(rows: dict[str, Row], load: dict[str, Any], servers: dict[str, Server]) -> None:
    ratios, targets = ratios_and_targets(rows)
    print(
        f"\n{machine(load)}; other processes' CPU during runs: median "
        f"{load['others_cpu_pct_median']:.1f}%, max {load['others_cpu_pct_max']:.1f}%"
    )
    print(
        "servers: "
        + "; ".join(f"{s.name} = {s.label}" for s in servers.values())
        + f"; {load['repeat']} run(s) per pair, interleaved\n"
    )
    head = (
        f"{'client/server':<20} {'count':>8} {'best/s':>9} {'median/s':>9} {'cli µs':>7} "
        f"{'srv µs':>7} {'gaps':>5} {'max ms':>7} {'RSS KiB start→10%→end':>24} {'others':>7}"
    )
    print_head(head)
    for row in rows.values():
        last = row.runs[-1]
        rss = f"{last.rss_start}→{last.rss_warm}→{last.rss_end}"
        print(
            f"{row.pair.key:<20} {last.count:>8} {row.best:>9,.0f} {row.median:>9,.0f} "
            f"{row.client_us:>7.2f} {row.server_us:>7.2f} {row.gaps:>5} "
            f"{row.longest_gap_ms:>7.1f} {rss:>24} {row.others_pct:>6.1f}%"
        )
    print("\nratios (best rates):")
    for name, value in ratios.items():
        print(f"  {name:<52} {value:8.2f}")
    print("\ntargets:")
    for t in targets:
        d = t.as_dict()
        verdict = "met" if t.met else "NOT met"
        print(f"  [{verdict:>7}] {t.name:<44} {d['value']:>12,} (goal {d['goal']})")


# ==================================================================== main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--count", type=int, help="messages per fast pair (default 200000)")
    parser.add_argument("--quick", action="store_true", help="a ~30 s smoke run")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--repeat", type=int, help="runs per pair (default 3; 1 with --quick)")
    parser.add_argument("--only", help="comma-separated pairs to run, e.g. ours/sim,raw/sim")
    parser.add_argument("--role", choices=sorted(CLIENTS), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--receipts", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.role:
        return run_client_role(args.role, args.port, args.count, args.receipts)

    count = args.count or (100_000 if args.quick else 200_000)
    repeat = args.repeat or (1 if args.quick else 3)
    pairs = PAIRS
    if args.only:
        wanted = set(args.only.split(","))
        pairs = [p for p in PAIRS if p.key in wanted]
    log = sys.stderr
    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as f:
        f.write(SIM_CONFIG)
        config_path = f.name
    servers = make_servers(config_path)
    needed = {p.server for p in pairs}
    results: dict[str, list[Run]] = {p.key: [] for p in pairs}
    load_before = load_average()
    started = time.perf_counter()
    try:
        for name in needed:
            servers[name].start()
        for rep in range(repeat):
            for pair in pairs:
                n = max(1000, count // SLOW_DIVISOR) if pair.slow else count
                run = run_pair(pair, servers[pair.server], n)
                results[pair.key].append(run)
                print(
                    f"[{rep + 1}/{repeat}] {pair.key:<20} {run.rate:>9,.0f} msgs/s  "
                    f"client {run.client_us:6.2f} µs  server {run.server_us:6.2f} µs  "
                    f"gaps {run.gaps}  others {run.others_pct:.0f}%",
                    file=log,
                    flush=True,
                )
    finally:
        for server in servers.values():
            server.stop()
        os.unlink(config_path)
    others = [r.others_pct for runs in results.values() for r in runs]
    load = {
        "before": load_before,
        "after": load_average(),
        "others_cpu_pct_median": statistics.median(others),
        "others_cpu_pct_max": max(others),
        "repeat": repeat,
        "seconds": round(time.perf_counter() - started, 1),
    }
    rows = {key: Row(next(p for p in pairs if p.key == key), runs) for key, runs in results.items()}
    complete = all(p.key in rows for p in PAIRS)
    if args.json:
        doc: dict[str, Any] = {"load": load, "rows": [r.as_dict() for r in rows.values()]}
        if complete:
            ratios, targets = ratios_and_targets(rows)
            doc["ratios"] = {k: round(v, 3) for k, v in ratios.items()}
            doc["targets"] = [t.as_dict() for t in targets]
        print(json.dumps(doc, indent=2, ensure_ascii=False))
    elif complete:
        print_report(rows, load, servers)
    else:
        for row in rows.values():
            print(json.dumps(row.as_dict(), ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
