"""``smpp-bridge send`` and ``smpp-bridge bench``: one message, or a load run, against any SMSC."""

from __future__ import annotations

import argparse
import itertools
import math
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ..codec.status import Status
from . import CliError, write_json

if TYPE_CHECKING:
    from ..client import Delivery
    from . import Subparsers


def _connection_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1", help="SMSC host (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=2775, help="SMSC port (default 2775)")
    p.add_argument("--system-id", required=True, help="bind system_id")
    p.add_argument("--password", default="", help="bind password")
    p.add_argument("--system-type", default="", help="bind system_type")
    p.add_argument("--tls", action="store_true", help="connect with TLS (certificates verified)")
    p.add_argument(
        "--profile", default="spec", help="encoding profile: spec (default) or reference"
    )


def register(subparsers: Subparsers) -> None:
    p = subparsers.add_parser(
        "send",
        help="send one message (segmented if long) and print its parts as JSON",
        description="Bind, send one message, optionally wait for its delivery receipt(s).",
    )
    _connection_args(p)
    p.add_argument("--from", dest="source", required=True, help="sender (alphanumeric or +E.164)")
    p.add_argument("--to", dest="destination", required=True, help="recipient, +E.164")
    p.add_argument("--text", required=True, help="message text")
    p.add_argument("--encoding", default="auto", help="auto (default), gsm7, latin9, ucs2, ...")
    p.add_argument(
        "--concat", default="udh8", choices=("udh8", "udh16", "sar", "payload"), help="long text"
    )
    p.add_argument(
        "--wait-dlr", type=float, default=0.0, metavar="SECONDS", help="wait for receipts"
    )
    p.set_defaults(handler=_send)

    b = subparsers.add_parser(
        "bench",
        help="pipeline many submit_sm through one or more binds and print throughput as JSON",
        description="Load test any SMSC: windowed submits over B binds, optional receipts.",
    )
    _connection_args(b)
    b.add_argument("--count", type=int, default=10_000, help="messages in all (default 10000)")
    b.add_argument("--window", type=int, default=100, help="window per bind (default 100)")
    b.add_argument("--binds", type=int, default=1, help="binds in parallel (default 1)")
    b.add_argument("--dlr", action="store_true", help="request receipts and wait for them")
    b.add_argument("--dlr-timeout", type=float, default=60.0, help="seconds to wait for receipts")
    b.add_argument(
        "--json", action="store_true", help="JSON output (the default; kept for scripts)"
    )
    b.add_argument("--text", default="Benchmark message from smpp-bridge", help="message text")
    b.add_argument(
        "--path",
        choices=("pool", "session"),
        default="pool",
        help="pool (default): through the bind pool, receipts correlated to their message; "
        "session: straight through the sessions, receipts only counted",
    )
    b.add_argument(
        "--max-awaiting",
        type=int,
        default=0,
        metavar="N",
        help="with --dlr: pause sending while N accepted messages still wait for their "
        "receipt, the steady state of a real SMSC (0, the default: no limit; a run faster than "
        "the receipts then piles them up, in the SMSC and in the pool's correlation store)",
    )
    b.add_argument(
        "--batch",
        type=int,
        default=1,
        help="pool path: hand messages over in batches of this many (BindPool.send_many); "
        "1 (default): one BindPool.send per message",
    )
    b.set_defaults(handler=_bench)


def _profile(name: str) -> Any:
    from ..codec.text import profile_named
    from ..errors import EncodingError

    try:
        return profile_named(name)
    except (EncodingError, KeyError, ValueError) as exc:
        raise CliError(f"unknown profile {name!r}: {exc}") from None


def ids_match(submitted: str, receipted: str) -> bool:
    """Whether a receipt's id names a submitted message_id: exact (ignoring case and leading
    zeros), or the same number written in hex in one place and decimal in the other."""
    a, b = submitted.strip().lower(), receipted.strip().lower()
    if a.lstrip("0") == b.lstrip("0"):
        return True
    try:
        if a.isdigit() and int(a) == int(b, 16):
            return True
        return b.isdigit() and int(b) == int(a, 16)
    except ValueError:
        return False


def _send(args: argparse.Namespace) -> int:
    import anyio

    from ..client import open_session
    from ..errors import SmppError

    profile = _profile(args.profile)
    receipts: list[Delivery] = []

    async def on_delivery(d: Delivery) -> None:
        if d.receipt is not None:
            receipts.append(d)

    async def run() -> dict[str, Any]:
        async with open_session(
            args.host,
            args.port,
            args.system_id,
            args.password,
            "trx" if args.wait_dlr > 0 else "tx",
            tls=bool(args.tls),
            system_type=args.system_type,
            profile=profile,
            on_delivery=on_delivery,
            enquire_link_interval=None,
        ) as client:
            pdus = client.build_text(
                args.source,
                args.destination,
                args.text,
                encoding=args.encoding,
                concat=args.concat,
                registered_delivery=1 if args.wait_dlr > 0 else 0,
            )
            responses = [await client.submit(p) for p in pdus]
            ids = [r.message_id for r in responses]
            out: dict[str, Any] = {
                "parts": len(pdus),
                "data_coding": pdus[0].data_coding,
                "message_ids": ids,
            }
            if args.wait_dlr > 0:
                with anyio.move_on_after(args.wait_dlr):
                    while not all(
                        any(ids_match(i, d.receipt.message_id) for d in receipts if d.receipt)
                        for i in ids
                    ):
                        await anyio.sleep(0.05)
                dlrs = [
                    {
                        "id": d.receipt.message_id,
                        "status": d.receipt.status,
                        "stat": d.receipt.stat,
                        "err": d.receipt.err,
                    }
                    for d in receipts
                    if d.receipt is not None
                    and any(ids_match(i, d.receipt.message_id) for i in ids)
                ]
                out["dlrs"] = dlrs
                out["dlr"] = dlrs[0] if len(dlrs) == 1 else None
            return out

    try:
        result = anyio.run(run, backend="trio")
    except (SmppError, OSError) as exc:
        raise CliError(str(exc), kind=type(exc).__name__) from None
    write_json(result)
    return 0


class Latencies:
    """Latencies in logarithmic buckets (1 % wide): percentiles in bounded memory, however many
    messages a run sends (a list of every sample would grow the very RSS the bench reports)."""

    _STEP = math.log(1.01)

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.total = 0

    def add(self, seconds: float) -> None:
        bucket = int(math.log(seconds) / self._STEP) if seconds > 1e-7 else -1611
        self.counts[bucket] = self.counts.get(bucket, 0) + 1
        self.total += 1

    def percentile(self, q: float) -> float:
        """The ``q`` quantile (0..1) in seconds, to 1 %; nan when nothing was added."""
        if not self.total:
            return math.nan
        rank = max(1, math.ceil(q * self.total))
        seen = 0
        for bucket in sorted(self.counts):
            seen += self.counts[bucket]
            if seen >= rank:
                return math.exp((bucket + 0.5) * self._STEP)
        return math.nan

    def as_ms(self) -> dict[str, float]:
        return {
            "p50": round(self.percentile(0.50) * 1000, 3),
            "p99": round(self.percentile(0.99) * 1000, 3),
        }


def _rss_kib() -> int:
    """Resident memory of this process in KiB (Linux), 0 where unknown."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
    except (OSError, ValueError, IndexError):
        return 0
    import os

    return pages * os.sysconf("SC_PAGE_SIZE") // 1024


def _timed_run(run: Callable[[], Awaitable[float]]) -> tuple[float, float]:
    """(what ``run`` returns, the CPU seconds it took) run on trio. Raises ``CliError`` for an
    SMPP or socket error."""
    import anyio

    from ..errors import SmppError

    cpu0 = time.process_time()
    try:
        elapsed = anyio.run(run, backend="trio")
    except (SmppError, OSError) as exc:
        raise CliError(str(exc), kind=type(exc).__name__) from None
    return elapsed, time.process_time() - cpu0


def _bench(args: argparse.Namespace) -> int:
    if args.count < 1 or args.window < 1 or args.binds < 1:
        raise CliError("--count, --window and --binds must be at least 1")
    if args.max_awaiting < 0:
        raise CliError("--max-awaiting must not be negative")
    if args.path == "pool":
        return _bench_pool(args)
    return _bench_session(args)


def _bench_pool(args: argparse.Namespace) -> int:
    import anyio

    from ..pool import (
        AccountConfig,
        DlrEvent,
        InboundMessage,
        OutboundMessage,
        PoolConfig,
        SubmitOutcome,
        open_pool,
    )

    sent_at: dict[str, float] = {}
    latencies = Latencies()
    statuses: dict[str, int] = {}
    settled = dlr_matched = dlr_unmatched = 0
    done = anyio.Event()
    rss: dict[str, int] = {}
    pool_stats: dict[str, int] = {}
    warm_at = max(1, args.count // 10)
    receipts_came = anyio.Event()
    cap = args.max_awaiting if args.dlr else 0

    async def wait_for_receipts() -> None:
        """While ``cap`` accepted messages wait for their receipts, wait for some to come."""
        nonlocal receipts_came
        while statuses.get(Status.SENT, 0) - dlr_matched - dlr_unmatched >= cap:
            receipts_came = anyio.Event()
            await receipts_came.wait()

    class Handler:
        async def on_outcomes(self, outcomes: list[SubmitOutcome]) -> None:
            nonlocal settled
            now = anyio.current_time()
            for o in outcomes:
                statuses[o.status] = statuses.get(o.status, 0) + 1
                latencies.add(now - sent_at.pop(o.message.id, now))
            settled += len(outcomes)
            self._check()

        async def on_dlrs(self, events: list[DlrEvent]) -> None:
            nonlocal dlr_matched, dlr_unmatched
            for e in events:
                if e.matched:
                    dlr_matched += 1
                else:
                    dlr_unmatched += 1
            receipts_came.set()
            self._check()

        async def on_inbound(self, messages: list[InboundMessage]) -> None:
            return None

        def _check(self) -> None:
            if "warm" not in rss and settled >= warm_at:
                rss["warm"] = _rss_kib()
            if settled >= args.count and (
                not args.dlr or dlr_matched + dlr_unmatched >= statuses.get(Status.SENT, 0)
            ):
                done.set()

    config = PoolConfig(
        accounts=(
            AccountConfig(
                name="bench",
                host=args.host,
                port=args.port,
                system_id=args.system_id,
                password=args.password,
                system_type=args.system_type,
                tls=bool(args.tls),
                profile=args.profile,
                binds=args.binds,
                window=args.window,
            ),
        )
    )

    async def run() -> float:
        async with open_pool(config, Handler()) as pool:
            await pool.wait_ready()
            rss["start"] = _rss_kib()
            start = anyio.current_time()
            batch = max(1, args.batch)
            for first in range(0, args.count, batch):
                if cap:
                    await wait_for_receipts()
                now = anyio.current_time()
                messages = []
                for i in range(first, min(first + batch, args.count)):
                    mid = f"b{i}"
                    sent_at[mid] = now
                    messages.append(
                        OutboundMessage(
                            id=mid,
                            source="BENCH",
                            destination=f"+346{i % 100_000_000:08d}",
                            text=args.text,
                            request_dlr=bool(args.dlr),
                        )
                    )
                if batch == 1:
                    await pool.send(messages[0])
                else:
                    await pool.send_many(messages)
            with anyio.move_on_after(args.dlr_timeout):
                await done.wait()
            elapsed = anyio.current_time() - start
            rss["end"] = _rss_kib()
            pool_stats.update(pool.stats)
            return elapsed

    elapsed, cpu = _timed_run(run)
    sent = statuses.get(Status.SENT, 0)
    write_json(
        {
            "path": "pool",
            "sent": settled,
            "acked": sent,
            "failed": settled - sent,
            "statuses": statuses,
            "dlrs": dlr_matched + dlr_unmatched,
            "dlrs_matched": dlr_matched,
            "dlrs_unmatched": dlr_unmatched,
            "seconds": round(elapsed, 3),
            "msgs_per_s": round(sent / elapsed, 1) if elapsed > 0 else None,
            "latency_ms": latencies.as_ms(),
            "cpu_s": round(cpu, 3),
            "cpu_us_per_msg": round(cpu / max(settled, 1) * 1e6, 2),
            "rss_kib": rss,
            "pool": pool_stats,
            "binds": args.binds,
            "window": args.window,
        }
    )
    return 0


def _bench_session(args: argparse.Namespace) -> int:
    import anyio

    from ..client import SubmitResult, open_session
    from ..codec.pdus import SubmitSm

    profile = _profile(args.profile)
    dlrs = 0
    latencies = Latencies()
    acked = failed = sent = 0
    rss: dict[str, int] = {}
    warm_at = max(1, args.count // 10)
    cap = args.max_awaiting if args.dlr else 0

    async def on_delivery(d: Delivery) -> None:
        nonlocal dlrs
        if d.receipt is not None:
            dlrs += 1

    async def one_bind(count: int) -> None:
        nonlocal acked, failed, sent
        async with open_session(
            args.host,
            args.port,
            args.system_id,
            args.password,
            "trx",
            tls=bool(args.tls),
            system_type=args.system_type,
            window=args.window,
            profile=profile,
            on_delivery=on_delivery,
        ) as client:
            template = client.build_text(
                "BENCH", "+34600000000", args.text, registered_delivery=int(args.dlr)
            )[0]
            # With a cap on messages awaiting receipts, the run goes in chunks, each started
            # once the receipts have caught up enough.
            chunk = max(1, cap // 2) if cap else count
            for start in range(0, count, chunk):
                while cap and acked - dlrs > cap - chunk:
                    await anyio.sleep(0.002)
                pdus = (
                    SubmitSm(
                        source_addr_ton=template.source_addr_ton,
                        source_addr=template.source_addr,
                        dest_addr_ton=1,
                        dest_addr_npi=1,
                        destination_addr=f"346{i % 100_000_000:08d}",
                        esm_class=template.esm_class,
                        registered_delivery=template.registered_delivery,
                        data_coding=template.data_coding,
                        short_message=template.short_message,
                    )
                    for i in range(start, min(start + chunk, count))
                )
                # Tags are drawn lazily, as each request is sent: the send time.
                send_times = (anyio.current_time() for _ in itertools.count())
                batch: list[SubmitResult]
                async for batch in client.submit_stream(pdus, tags=send_times):
                    now = anyio.current_time()
                    for r in batch:
                        sent += 1
                        if r.ok:
                            acked += 1
                        else:
                            failed += 1
                        if isinstance(r.tag, float):
                            latencies.add(now - r.tag)
                    if "warm" not in rss and sent >= warm_at:
                        rss["warm"] = _rss_kib()
            if args.dlr:
                with anyio.move_on_after(args.dlr_timeout):
                    while dlrs < acked:
                        await anyio.sleep(0.01)

    async def run() -> float:
        rss["start"] = _rss_kib()
        start = anyio.current_time()
        share, extra = divmod(args.count, args.binds)
        async with anyio.create_task_group() as tg:
            for b in range(args.binds):
                tg.start_soon(one_bind, share + (1 if b < extra else 0))
        elapsed = anyio.current_time() - start
        rss["end"] = _rss_kib()
        return elapsed

    elapsed, cpu = _timed_run(run)
    write_json(
        {
            "path": "session",
            "sent": sent,
            "acked": acked,
            "failed": failed,
            "dlrs": dlrs,
            "seconds": round(elapsed, 3),
            "msgs_per_s": round(acked / elapsed, 1) if elapsed > 0 else None,
            "latency_ms": latencies.as_ms(),
            "cpu_s": round(cpu, 3),
            "cpu_us_per_msg": round(cpu / max(sent, 1) * 1e6, 2),
            "rss_kib": rss,
            "binds": args.binds,
            "window": args.window,
        }
    )
    return 0
