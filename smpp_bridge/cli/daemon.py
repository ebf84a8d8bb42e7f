"""The daemon's commands: ``run``, ``enqueue``, ``events``, ``status`` and ``history``.

Each reads the same configuration file (``--config``, default ``$SMPP_BRIDGE_CONFIG`` or
``bridge.toml``) so it finds the same queues and stores the daemon uses.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import EXIT_OK, CliError, write_json

if TYPE_CHECKING:
    from ..bridge.config import BridgeConfig
    from . import Subparsers

DEFAULT_CONFIG = "bridge.toml"
# CSV columns that carry numbers or booleans in the JSON request.
_INT_FIELDS = frozenset({"validity", "priority", "maxParts"})
_BOOL_FIELDS = frozenset({"requestDlr"})


def _config_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config",
        default=os.environ.get("SMPP_BRIDGE_CONFIG", DEFAULT_CONFIG),
        help="configuration file (default $SMPP_BRIDGE_CONFIG or bridge.toml)",
    )


def register(subparsers: Subparsers) -> None:
    r = subparsers.add_parser(
        "run",
        help="run the sender daemon: queue in, SMPP through the pool, events out",
        description="Run until SIGTERM/SIGINT (graceful drain); a second signal exits at once.",
    )
    _config_arg(r)
    r.set_defaults(handler=_run)

    e = subparsers.add_parser(
        "enqueue",
        help="put send requests from a file (JSON lines or CSV) on the requests queue",
        description="Each JSON line is one request or a bulk array; a CSV file has a header "
        "row with the request's field names (from,to,text,clientId,...). '-' reads stdin. "
        "A line that is not a request (not UTF-8, not JSON, a lone surrogate, ...) is queued "
        "on its own, so the daemon answers it with one error event and the rest goes through; "
        "the JSON summary counts them and names the first lines.",
    )
    _config_arg(e)
    e.add_argument("file", help="JSON lines or CSV file, or - for standard input")
    e.add_argument(
        "--format", choices=("auto", "jsonl", "csv"), default="auto", help="default: by suffix"
    )
    e.add_argument(
        "--bulk", type=int, default=100, help="requests per queue entry, 1..100 (default 100)"
    )
    e.add_argument("--progress", action="store_true", help="progress bar even when not a TTY")
    e.set_defaults(handler=_enqueue)

    v = subparsers.add_parser(
        "events",
        help="print events (JSON lines) from the events queue",
        description="Prints the events kept in the events queue, oldest first; with --follow, "
        "keeps printing new ones until interrupted.",
    )
    _config_arg(v)
    v.add_argument("--follow", "-f", action="store_true", help="wait for new events")
    v.add_argument("--after", default=None, help="only events after this entry id")
    v.add_argument("--limit", type=int, default=None, help="stop after this many events")
    v.add_argument("--ids", action="store_true", help="print {entryId, event} objects")
    v.set_defaults(handler=_events)

    s = subparsers.add_parser(
        "status",
        help="one message's status and history, by clientId, request id or SMSC message id",
    )
    _config_arg(s)
    s.add_argument(
        "key",
        help="clientId (or the request id when it had none), or the SMSC's message id of any "
        "part (hex or decimal, padded or not)",
    )
    s.add_argument(
        "--account", default=None, help="with an SMSC message id: the account it came from"
    )
    s.set_defaults(handler=_status)

    h = subparsers.add_parser("history", help="recent messages, newest first")
    _config_arg(h)
    h.add_argument(
        "--since",
        default=None,
        help="ISO-8601 time, or a duration back from now: 90s, 15m, 2h, 7d",
    )
    h.add_argument("--status", default=None, help="only messages with this status")
    h.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    h.set_defaults(handler=_history)


# ---------------------------------------------------------------------- helpers


def load(path: str) -> BridgeConfig:
    """The configuration, or a CliError naming the file and what is wrong with it."""
    from ..bridge.config import ConfigError, load_config

    try:
        return load_config(path)
    except FileNotFoundError:
        raise CliError(f"no configuration file at {path}", config=path) from None
    except ConfigError as exc:
        raise CliError(str(exc), config=path) from None


def parse_since(text: str, now: float | None = None) -> float:
    """``--since``: an ISO-8601 instant or a duration back from now (``90s``, ``15m``, ...)."""
    now = time.time() if now is None else now
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    value = text.strip()
    if value and value[-1] in units and value[:-1].replace(".", "", 1).isdigit():
        return now - float(value[:-1]) * units[value[-1]]
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise CliError(f"--since: expected ISO-8601 or a duration like 15m, got {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


class _Alone:
    """An input that must not share a bulk array with valid requests: a line that is not UTF-8
    or not JSON, an empty array, an item that is not an object or cannot be written as strict
    UTF-8 JSON (a lone surrogate, NaN). It is published as its own queue entry, as close to
    what the producer wrote as a payload can be, so the daemon answers it with exactly one
    ``error`` event and the rest of its bulk goes through."""

    __slots__ = ("payload", "reason")

    def __init__(self, payload: bytes, reason: str) -> None:
        self.payload = payload
        self.reason = reason


def _records(path: str, fmt: str) -> Iterator[tuple[int, Any]]:
    """``(line number, request)`` from a JSON-lines or CSV file, one request at a time (a
    bulk line yields each of its items), or ``(line, _Alone)`` for an input that is not one.

    Never raises for what a line holds: nothing a producer wrote disappears without a trace.
    (A CSV row's number is the line it ends on.)
    """
    if fmt == "auto":
        fmt = "csv" if path.lower().endswith(".csv") else "jsonl"
    if fmt == "csv":
        yield from _csv_records(path)
        return
    stream = sys.stdin.buffer if path == "-" else open(path, "rb")  # noqa: SIM115
    with stream:
        for number, raw in enumerate(stream, 1):
            if number == 1:
                raw = raw.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte order mark
            line = raw.strip()
            if line:
                yield from _jsonl_records(number, line)


def _jsonl_records(number: int, line: bytes) -> Iterator[tuple[int, Any]]:
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        yield number, _Alone(line, f"not UTF-8 ({exc.reason} at byte {exc.start})")
        return
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as exc:
        yield number, _Alone(line, f"not JSON ({exc})")
        return
    if isinstance(value, list):
        if not value:
            yield number, _Alone(line, "an empty array")
        for item in value:
            yield number, item
    else:
        yield number, value


def _csv_records(path: str) -> Iterator[tuple[int, Any]]:
    # Bytes that are not UTF-8 survive as surrogates: the row is then published alone with
    # them escaped, and the daemon refuses it (utf-8-sig: Excel's byte order mark).
    if path == "-":
        stream = io.TextIOWrapper(
            sys.stdin.buffer, encoding="utf-8-sig", errors="surrogateescape", newline=""
        )
    else:
        stream = open(path, encoding="utf-8-sig", errors="surrogateescape", newline="")  # noqa: SIM115
    with stream:
        reader = csv.DictReader(stream)
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:  # e.g. a field over csv.field_size_limit(); reading goes on
                number = reader.line_num + 1
                yield number, _Alone(f"CSV line {number}: {exc}".encode(), f"not CSV ({exc})")
                continue
            yield reader.line_num, _csv_request(row)


def _csv_request(row: dict[str, str | None]) -> dict[str, Any]:
    request: dict[str, Any] = {}
    for key, value in row.items():
        if key is None or value is None or value == "":
            continue
        key = key.strip()
        if key in _INT_FIELDS:
            try:
                request[key] = int(value)
            except ValueError:
                request[key] = value  # the daemon names the field in its error event
        elif key in _BOOL_FIELDS:
            request[key] = value.strip().lower() in ("1", "true", "yes", "y")
        else:
            request[key] = value
    return request


_JSON_KINDS = {
    list: "an array",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "a boolean",
    type(None): "null",
}
# How many invalid inputs the summary names, with their line numbers.
_SHOWN_INVALID = 10


def _dumps(item: Any) -> bytes:
    """Strict JSON, UTF-8: what can share a bulk array (the daemon decodes the array whole)."""
    return json.dumps(item, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


def _encode(number: int, item: Any) -> bytes | _Alone:
    """A request's JSON when it can go into a bulk array, else how to publish it alone."""
    if isinstance(item, _Alone):
        return item
    try:
        if not isinstance(item, dict):
            # In an array of one, so the daemon answers "item 0: expected object" once
            # (an array alone would be read as a bulk of its items).
            kind = _JSON_KINDS.get(type(item), type(item).__name__)
            return _Alone(
                json.dumps([item], ensure_ascii=True).encode(), f"not a request object ({kind})"
            )
        try:
            return _dumps(item)
        except UnicodeEncodeError:
            reason = "not valid text: a lone surrogate (\\ud800-\\udfff) or bytes not UTF-8"
        except ValueError:
            reason = "not strict JSON (NaN or Infinity)"
        # \u escapes keep what the producer wrote; the daemon refuses it as not JSON.
        return _Alone(json.dumps(item, ensure_ascii=True).encode(), reason)
    except Exception as exc:  # anything else one input can do must not stop the file
        return _Alone(
            f"line {number}: could not be published ({type(exc).__name__})".encode(),
            f"could not be published ({type(exc).__name__}: {exc})",
        )


class _Tally:
    """What ``enqueue`` published, for its summary."""

    def __init__(self) -> None:
        self.line = 0
        self.enqueued = 0
        self.entries = 0
        self._invalid: list[tuple[int, str]] = []
        self._pending_invalid: list[tuple[int, str]] = []
        self._not_json = 0
        self._pending_not_json = 0

    def invalid(self, number: int, reason: str, *, not_json: bool) -> None:
        self._pending_invalid.append((number, reason))
        self._pending_not_json += not_json

    def published(self, counts: list[int]) -> None:
        self.enqueued += sum(counts)
        self.entries += len(counts)
        self._invalid += self._pending_invalid
        self._not_json += self._pending_not_json
        self._pending_invalid = []
        self._pending_not_json = 0

    def summary(self) -> dict[str, Any]:
        """``enqueued`` requests (each gets one event), of which ``invalid`` enqueue could
        already tell are not send requests (the daemon answers each with an ``error`` event;
        it validates the rest itself), the first of them with their line numbers."""
        return {
            "enqueued": self.enqueued,
            "requests": self.enqueued - len(self._invalid),
            "invalid": len(self._invalid),
            "first_invalid": [{"line": n, "reason": r} for n, r in self._invalid[:_SHOWN_INVALID]],
            "entries": self.entries,
            "not_json": self._not_json,
        }


class Progress:
    """A one-line progress bar on stderr."""

    def __init__(self, label: str, total: int | None, enabled: bool) -> None:
        self.label = label
        self.total = total
        self.enabled = enabled
        self.started = time.monotonic()
        self._last = 0.0

    def update(self, done: int, *, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last < 0.1:
            return
        self._last = now
        elapsed = max(now - self.started, 1e-9)
        rate = f"{done / elapsed:9.0f}/s"
        if self.total:
            width = 30
            filled = min(width, int(width * done / self.total))
            bar = "#" * filled + "." * (width - filled)
            sys.stderr.write(f"\r{self.label:9} [{bar}] {done:>8}/{self.total} {rate}")
        else:
            sys.stderr.write(f"\r{self.label:9} {done:>8} {rate}")
        sys.stderr.flush()

    def close(self, done: int) -> None:
        if self.enabled:
            self.update(done, force=True)
            sys.stderr.write("\n")
            sys.stderr.flush()


def _count_lines(path: str) -> int | None:
    if path == "-":
        return None
    with open(path, "rb") as f:
        return sum(1 for line in f if line.strip())


# ---------------------------------------------------------------------- commands


def _run(args: argparse.Namespace) -> int:
    import anyio

    from ..bridge.daemon import run_daemon
    from ..log import configure_logging

    config = load(args.config)
    level = os.environ.get("SMPP_BRIDGE_LOG_LEVEL", config.log.level)
    configure_logging(level, json=config.log.json_lines)
    try:
        anyio.run(lambda: run_daemon(config, hard_exit=True), backend="trio")
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        raise CliError(f"daemon failed to start: {exc}") from None
    return EXIT_OK


def _enqueue(args: argparse.Namespace) -> int:
    import anyio

    from ..storage.queues import open_queue

    if not 1 <= args.bulk <= 100:
        raise CliError("--bulk must be between 1 and 100")
    config = load(args.config)
    path: str = args.file
    if path != "-" and not Path(path).is_file():
        raise CliError(f"no such file: {path}")
    fmt: str = args.format
    csv_file = fmt == "csv" or (fmt == "auto" and path.lower().endswith(".csv"))
    total = _count_lines(path)
    if total is not None and csv_file:
        total = max(0, total - 1)
    progress = Progress("enqueue", total, args.progress or sys.stderr.isatty())
    q = config.queue

    async def main() -> dict[str, Any]:
        tally = _Tally()
        started = time.monotonic()
        async with await open_queue(
            q.backend,
            q.requests,
            path=q.path,
            url=q.url,
            prefix=q.prefix,
            visibility_timeout=q.visibility_timeout,
            max_deliveries=q.max_deliveries,
        ) as queue:
            # Queue payloads ready to publish, each with how many requests it carries.
            payloads: list[bytes] = []
            counts: list[int] = []
            bulk: list[bytes] = []

            def close_bulk() -> None:
                if bulk:
                    payloads.append(bulk[0] if len(bulk) == 1 else b"[" + b",".join(bulk) + b"]")
                    counts.append(len(bulk))
                    bulk.clear()

            async def flush() -> None:
                nonlocal payloads, counts
                try:
                    await queue.publish(payloads)
                except Exception as exc:
                    raise CliError(
                        f"enqueue stopped: the requests queue failed ({exc}); the requests "
                        "counted here were published, the rest of the file was not",
                        **tally.summary(),
                        stopped_at_line=tally.line,
                    ) from None
                tally.published(counts)
                payloads, counts = [], []
                progress.update(tally.enqueued)

            for number, item in _records(path, fmt):
                tally.line = number
                alone = _encode(number, item)
                if isinstance(alone, bytes):
                    bulk.append(alone)
                    if len(bulk) >= args.bulk:
                        close_bulk()
                else:
                    close_bulk()  # keep the file's order in the queue
                    payloads.append(alone.payload)
                    counts.append(1)
                    tally.invalid(
                        number,
                        alone.reason,
                        not_json=alone.reason.startswith(("not JSON", "not UTF-8")),
                    )
                if len(payloads) >= 50:
                    await flush()
            close_bulk()
            if payloads:
                await flush()
        progress.close(tally.enqueued)
        elapsed = time.monotonic() - started
        return {
            **tally.summary(),
            "queue": q.requests,
            "seconds": round(elapsed, 3),
            "per_second": round(tally.enqueued / elapsed) if elapsed > 0 else None,
        }

    result = anyio.run(main, backend="trio")
    write_json(result)
    return EXIT_OK


def _events(args: argparse.Namespace) -> int:
    import anyio

    from ..storage.queues import open_queue

    config = load(args.config)
    q = config.queue
    out = io.TextIOWrapper(sys.stdout.buffer, encoding="utf-8", line_buffering=True)

    async def main() -> None:
        printed = 0
        after: str | None = args.after
        async with await open_queue(
            q.backend,
            q.events,
            path=q.path,
            url=q.url,
            prefix=q.prefix,
            keep_acked=True,
            retain=q.events_retain,
        ) as queue:
            while True:
                want = 500 if args.limit is None else min(500, args.limit - printed)
                if want <= 0:
                    return
                entries = await queue.tail(after, want, wait=1.0 if args.follow else 0.0)
                for entry in entries:
                    text = entry.data.decode("utf-8", "replace")
                    if args.ids:
                        out.write(f'{{"entryId": {json.dumps(entry.id)}, "event": {text}}}\n')
                    else:
                        out.write(text + "\n")
                    after = entry.id
                printed += len(entries)
                if not entries and not args.follow:
                    return

    try:
        anyio.run(main, backend="trio")
    except KeyboardInterrupt:
        pass
    except ValueError as exc:  # an --after id this backend cannot have written
        raise CliError(f"--after: {exc}", after=args.after) from None
    finally:
        out.flush()
        out.detach()
    return EXIT_OK


def _status(args: argparse.Namespace) -> int:
    import anyio
    import msgspec

    from ..bridge.daemon import open_backends

    config = load(args.config)

    async def main() -> Any:
        async with open_backends(config, consumer="cli", correlation=False) as backends:
            store = backends.store
            found = await store.get(args.key)
            if found is None:
                # Not a clientId or request id: perhaps the SMSC's message id of a part.
                found = await store.get_by_message_id(args.key, args.account)
            return found

    found = anyio.run(main, backend="trio")
    if found is None:
        raise CliError(
            f"no message with clientId, request id or SMSC message id {args.key!r}", key=args.key
        )
    record, history = found
    result = msgspec.to_builtins(record)
    result["history"] = [msgspec.to_builtins(e) for e in history]
    write_json(result)
    return EXIT_OK


def _history(args: argparse.Namespace) -> int:
    import anyio
    import msgspec

    from ..bridge.daemon import open_backends

    config = load(args.config)
    since = parse_since(args.since) if args.since else None
    if args.limit < 1:
        raise CliError("--limit must be at least 1")

    async def main() -> Any:
        async with open_backends(config, consumer="cli", correlation=False) as backends:
            return await backends.store.history(since, args.limit, status=args.status)

    records = anyio.run(main, backend="trio")
    write_json({"messages": [msgspec.to_builtins(r) for r in records], "count": len(records)})
    return EXIT_OK


__all__ = ["parse_since", "register"]
