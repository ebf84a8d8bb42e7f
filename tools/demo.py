#!/usr/bin/env python3
"""The demo behind ``tools/demo``: simulator in a subprocess, 10k messages with receipts through
the client library, a live progress line, then a summary table. Everything stops cleanly."""

from __future__ import annotations

import argparse
import collections
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import anyio

from smpp_bridge.cli.send import ids_match
from smpp_bridge.client.delivery import Delivery
from smpp_bridge.client.esme import SubmitResult, open_session
from smpp_bridge.codec import SubmitSm

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def progress(label: str, done: int, total: int, started: float) -> None:
    width = 30
    filled = int(width * done / max(total, 1))
    elapsed = time.monotonic() - started
    rate = f"{done / elapsed:8.0f}/s" if elapsed > 0.05 else ""
    bar = "#" * filled + "." * (width - filled)
    sys.stderr.write(f"\r{label:9} [{bar}] {done:>6}/{total} {rate}")
    sys.stderr.flush()


async def run(port: int, count: int, window: int) -> int:
    statuses: collections.Counter[str] = collections.Counter()
    receipts: dict[str, str] = {}
    accepted: list[str] = []
    errors: collections.Counter[str] = collections.Counter()

    async def on_delivery(d: Delivery) -> None:
        if d.receipt is not None and d.receipt.final:
            receipts[d.receipt.message_id] = d.receipt.status

    started = time.monotonic()
    async with open_session(
        "127.0.0.1", port, "demo", "demo-pw", window=window, on_delivery=on_delivery
    ) as smpp:
        template = smpp.build_text("ACME", "+34600000000", "Your code is 123456")[0]
        pdus = (
            SubmitSm(
                source_addr_ton=template.source_addr_ton,
                source_addr=template.source_addr,
                dest_addr_ton=1,
                dest_addr_npi=1,
                destination_addr=f"34600{i:06d}",
                registered_delivery=1,
                data_coding=template.data_coding,
                short_message=template.short_message,
            )
            for i in range(count)
        )
        done = 0
        batch: list[SubmitResult]
        async for batch in smpp.submit_stream(pdus):
            for r in batch:
                if r.ok and r.message_id is not None:
                    accepted.append(r.message_id)
                elif r.response is not None:
                    errors[f"0x{r.response.command_status:08X}"] += 1
                else:
                    errors[type(r.error).__name__] += 1
            done += len(batch)
            if done == count or done % 500 < len(batch):
                progress("submitted", done, count, started)
        submit_seconds = time.monotonic() - started
        sys.stderr.write("\n")
        waited = time.monotonic()
        with anyio.move_on_after(60):
            while len(receipts) < len(accepted):
                progress("receipts", len(receipts), len(accepted), waited)
                await anyio.sleep(0.2)
        progress("receipts", len(receipts), len(accepted), waited)
        sys.stderr.write("\n")
    total_seconds = time.monotonic() - started
    # Correlate: every receipt must name a submitted message. This simulator profile answers
    # submits with hex ids and writes receipt texts in decimal, as some real SMSCs do.
    by_number = {int(mid, 16): mid for mid in accepted}
    matched = 0
    for rid, status in receipts.items():
        mid = by_number.get(int(rid, 16))
        if mid is None and rid.isdigit():
            mid = by_number.get(int(rid))
        if mid is not None and ids_match(mid, rid):
            matched += 1
            statuses[status] += 1
    rows = [
        ("requests", count),
        ("sent (accepted by the SMSC)", len(accepted)),
        ("error (rejected)", sum(errors.values())),
        *((f"  {k}", v) for k, v in sorted(statuses.items(), key=lambda kv: -kv[1])),
        ("receipts matched to their message", matched),
        ("receipts missing", len(accepted) - matched),
        ("submit throughput (msg/s)", round(len(accepted) / submit_seconds)),
        ("end to end incl. receipts (s)", round(total_seconds, 2)),
    ]
    width = max(len(k) for k, _ in rows)
    print()
    print(f"{'smpp-bridge demo':{width}}   value")
    print("-" * (width + 12))
    for key, value in rows:
        print(f"{key:{width}}   {value}")
    return 0 if matched == len(accepted) and not errors else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--window", type=int, default=100)
    args = parser.parse_args()
    port = free_port()
    sim = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("smpp-bridge")),
            "simulator",
            "--port",
            str(port),
            "--config",
            str(ROOT / "examples" / "demo-sim.toml"),
            "--stats-interval",
            "3600",
        ],
        stderr=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if sim.poll() is not None or time.monotonic() > deadline:
                    print("the simulator did not start", file=sys.stderr)
                    return 1
                time.sleep(0.1)
        print(f"simulator on 127.0.0.1:{port} (pid {sim.pid}); sending {args.count} messages")
        return anyio.run(run, port, args.count, args.window, backend="trio")
    finally:
        sim.send_signal(signal.SIGINT)
        try:
            sim.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(sim.pid, signal.SIGKILL)


if __name__ == "__main__":
    sys.exit(main())
