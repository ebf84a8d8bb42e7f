#!/usr/bin/env python3
"""Work-queue benchmark: publish, then consume + ack, in batches, on each backend.

Per backend: ``--count`` payloads of ``--size`` bytes are published in batches of ``--batch``
(one ``publish`` call each), then consumed and acknowledged in batches of the same size (one
``consume`` and one ``ack`` call each). Prints messages/s for each phase and for the whole
round trip, the best of ``--repeat`` runs. Also a mixed run: a publisher and a consumer at the
same time. SQLite runs on a fresh file in a temporary directory, Redis on ``--url`` under a
unique prefix that is deleted afterwards.

    .venv/bin/python tools/bench_queues.py [--count N] [--batch B] [--only sqlite,redis]

A benchmark, never a test: nothing here asserts.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import anyio

from smpp_bridge.storage.queues import RedisQueue, WorkQueue, open_queue


async def _drop_redis(queue: WorkQueue) -> None:
    if isinstance(queue, RedisQueue):
        await queue.client.delete([queue.stream, queue.dlq])


async def _open(backend: str, directory: Path, url: str, name: str) -> WorkQueue:
    return await open_queue(
        "sqlite" if backend == "sqlite" else "redis",
        name,
        path=str(directory / "bench.sqlite"),
        url=url,
        prefix=f"smppb-bench-{uuid.uuid4().hex[:12]}",
    )


async def consume_all(queue: WorkQueue, total: int, batch: int) -> None:
    """Consume and acknowledge, ``batch`` at a time, until ``total`` payloads are done."""
    got = 0
    while got < total:
        leased = await queue.consume(batch, wait=1.0)
        await queue.ack([entry.id for entry in leased])
        got += len(leased)


async def sequential(
    backend: str, directory: Path, url: str, args: argparse.Namespace
) -> dict[str, float]:
    payload = b"x" * args.size
    batch = [payload] * args.batch
    rounds = args.count // args.batch
    async with await _open(backend, directory, url, f"seq{uuid.uuid4().hex[:8]}") as queue:
        try:
            start = time.perf_counter()
            for _ in range(rounds):
                await queue.publish(batch)
            published = time.perf_counter()
            await consume_all(queue, rounds * args.batch, args.batch)
            done = time.perf_counter()
        finally:
            await _drop_redis(queue)
    total = rounds * args.batch
    return {
        "publish_per_s": total / (published - start),
        "consume_ack_per_s": total / (done - published),
        "round_trip_per_s": total / (done - start),
    }


async def mixed(
    backend: str, directory: Path, url: str, args: argparse.Namespace
) -> dict[str, float]:
    """A publisher and a consumer running at once, on two queue objects (as two processes
    would), until every payload is consumed and acknowledged."""
    payload = b"x" * args.size
    batch = [payload] * args.batch
    rounds = args.count // args.batch
    name = f"mix{uuid.uuid4().hex[:8]}"
    prefix = f"smppb-bench-{uuid.uuid4().hex[:12]}"
    common: dict[str, Any] = {
        "path": str(directory / "bench.sqlite"),
        "url": url,
        "prefix": prefix,
    }
    kind: Any = "sqlite" if backend == "sqlite" else "redis"
    async with (
        await open_queue(kind, name, **common) as producer,
        await open_queue(kind, name, **common) as consumer,
    ):
        try:
            start = time.perf_counter()

            async def produce() -> None:
                for _ in range(rounds):
                    await producer.publish(batch)

            async with anyio.create_task_group() as tg:
                tg.start_soon(produce)
                await consume_all(consumer, rounds * args.batch, args.batch)
            done = time.perf_counter()
        finally:
            await _drop_redis(producer)
    return {"mixed_per_s": rounds * args.batch / (done - start)}


async def main_async(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    results: dict[str, dict[str, float]] = {}
    for backend in args.only.split(","):
        best: dict[str, float] = {}
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory() as tmp:
                run = await sequential(backend, Path(tmp), args.url, args)
                run |= await mixed(backend, Path(tmp), args.url, args)
            for key, value in run.items():
                best[key] = max(best.get(key, 0.0), value)
        results[backend] = best
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--size", type=int, default=200, help="payload bytes")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--only", default="sqlite,redis")
    parser.add_argument("--url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = anyio.run(main_async, args, backend="trio")
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"{args.count} messages of {args.size} bytes, batches of {args.batch}")
    for backend, numbers in results.items():
        cells = "  ".join(f"{key} {value:>9,.0f}" for key, value in numbers.items())
        print(f"{backend:>7}: {cells}")


if __name__ == "__main__":
    main()
