"""A pool in a process of its own that dies by SIGKILL right after publishing receipts: what
``kill -9`` does to a daemon between making a final report durable and answering its
deliver_sm. The SMSC then sends those receipts again, to whichever process binds next.

    python -m tests.crash_pool PORT OUT --store sqlite:PATH|redis:PREFIX [--send N]
        [--kill-after K] [--instance NAME]

Every batch the pool publishes is written to OUT as JSON lines (one per receipt: its request,
part, stat, ``possible_duplicate`` and the batch number), flushed and fsynced before the
handler returns; with ``--kill-after K`` the process kills itself in the first ``on_dlrs``
that brings its published receipts to K or more, after writing them and before returning (so
before the deliver_sm_resp). Without it, the process runs until SIGTERM, then drains.

Used by ``tests/integration/test_pool_crash.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from typing import IO, Any

import anyio
import coredis

from smpp_bridge.pool import (
    AccountConfig,
    CorrelationStore,
    DlrEvent,
    OutboundMessage,
    PoolConfig,
    SubmitOutcome,
    open_pool,
)
from smpp_bridge.storage.correlation_redis import RedisCorrelationStore
from smpp_bridge.storage.correlation_sqlite import SqliteCorrelationStore

REDIS_URL = "redis://127.0.0.1:6379/0"


class Handler:
    def __init__(self, out: IO[str], kill_after: int | None) -> None:
        self.out = out
        self.kill_after = kill_after
        self.published = 0
        self.batches = 0

    def _write(self, lines: list[dict[str, Any]]) -> None:
        self.out.write("".join(json.dumps(line) + "\n" for line in lines))
        self.out.flush()
        os.fsync(self.out.fileno())

    async def on_outcomes(self, outcomes: list[SubmitOutcome]) -> None:
        self._write([{"outcome": o.status, "request": o.message.id} for o in outcomes])

    async def on_dlrs(self, events: list[DlrEvent]) -> None:
        self.batches += 1
        self._write(
            [
                {
                    "request": e.request_id,
                    "part": e.record.part if e.record is not None else None,
                    "stat": e.receipt.stat,
                    "possible_duplicate": e.possible_duplicate,
                    "batch": self.batches,
                    "pid": os.getpid(),
                }
                for e in events
            ]
        )
        self.published += len(events)
        if self.kill_after is not None and self.published >= self.kill_after:
            os.kill(os.getpid(), signal.SIGKILL)

    async def on_inbound(self, messages: list[Any]) -> None:
        pass


async def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="crash_pool")
    parser.add_argument("port", type=int)
    parser.add_argument("out")
    parser.add_argument("--store", required=True)
    parser.add_argument("--send", type=int, default=0)
    parser.add_argument("--kill-after", type=int)
    parser.add_argument("--instance", default="crash")
    args = parser.parse_args(argv)
    config = PoolConfig(
        accounts=(
            AccountConfig(
                name="main",
                system_id="esme",
                password="pw",
                port=args.port,
                binds=1,
                window=50,
                enquire_link_interval=None,
            ),
        ),
        reconnect_base=0.05,
        reconnect_cap=0.3,
    )
    kind, _, where = args.store.partition(":")
    with open(args.out, "a", encoding="utf-8") as out:
        handler = Handler(out, args.kill_after)
        if kind == "redis":
            async with coredis.Redis.from_url(REDIS_URL, decode_responses=False) as client:
                await run(config, handler, RedisCorrelationStore(client, prefix=where), args)
        else:
            await run(config, handler, SqliteCorrelationStore(where), args)
    return 0


async def run(
    config: PoolConfig, handler: Handler, store: CorrelationStore, args: argparse.Namespace
) -> None:
    async with open_pool(config, handler, store=store, instance=args.instance) as pool:
        await pool.wait_ready(timeout=10)
        await pool.send_many(
            [
                OutboundMessage(
                    id=f"r{i}", source="ACME", destination=f"+3460{i:07d}", text=f"code {i}"
                )
                for i in range(args.send)
            ]
        )
        with anyio.open_signal_receiver(signal.SIGTERM) as signals:
            print("ready", flush=True)
            async for _ in signals:
                break
        print(json.dumps({"stats": pool.stats, "parked": pool.stats["parked"]}), flush=True)
    await store.aclose()


if __name__ == "__main__":
    sys.exit(anyio.run(main, sys.argv[1:], backend="trio"))
