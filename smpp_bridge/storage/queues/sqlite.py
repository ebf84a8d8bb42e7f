"""Work queues in an SQLite file: the embedded default, no server needed.

One file (WAL, ``busy_timeout``, ``synchronous=NORMAL`` by default) serves every queue and
every process that opens it: the daemon, ``smpp-bridge enqueue``, ``smpp-bridge events``. Each
queue is a table ``"{prefix}:q:{name}"`` (rowid = entry id, ``AUTOINCREMENT`` so an id is never
reused) with its lease in two columns, ``lease_until`` (epoch seconds; 0 = never leased) and
``consumer``; its dead letters are in ``"{prefix}:dlq:{name}"``. An entry is *ready* when it is
not acknowledged and ``lease_until <= now``: fresh entries (``lease_until = 0``) in id order,
expired or released ones by due time. A partial index on ``(lease_until, id)`` over the
unacknowledged rows makes both lookups index seeks, however long the backlog.

On a ``keep_acked`` queue, ``ack`` (and dead-lettering) marks rows ``acked`` instead of
deleting them, and each ``publish`` deletes the rows older than the newest ``retain``.

Every call is one transaction (``BEGIN IMMEDIATE``: leases are taken under the write lock, so
two consumers, in this process or another, never lease the same entry) run in a worker thread
on the one connection, serialized by an ``anyio.Lock``. ``consume`` and ``tail`` with ``wait``
sleep between cheap checks: ``PRAGMA data_version`` (changes when another connection commits)
every ``poll_interval`` seconds, the next lease expiry, and an in-process event a local
``publish`` or ``release`` sets.

A released entry keeps its consumer until someone leases it again, as in Redis's pending list:
until then the releasing consumer may still ``extend`` (take back) or ``release`` it.

Leases are wall-clock instants in the file, so they survive restarts. The first ``consume`` of
a queue object makes leases still held under its consumer name by an earlier process due at
once (a daemon restarted with a configured name picks its own work up without waiting for the
visibility timeout); consumer names must therefore be unique among running consumers.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, TypeVar, Unpack

import anyio
import anyio.to_thread
import structlog

from ...errors import QueueBackendError, QueueClosedError, QueueError
from ..sqlite_calls import (
    call_sqlite,
    check_synchronous,
    chunks,
    close_sqlite,
    connect,
    immediate_transaction,
    marks,
)
from .base import (
    DeadLetter,
    Entry,
    Leased,
    QueueBase,
    QueueOptions,
    check_count,
    check_dead_items,
    check_ids,
    check_payloads,
    check_seconds,
    over_delivered,
)

log = structlog.get_logger("smpp_bridge.bridge.queues")

R = TypeVar("R")

_PAYLOAD_TYPES: Final = frozenset(("blob", "text"))
# Every column read through a CAST, so no stored value (text that is not UTF-8, a number where
# a blob belongs) can make the fetch itself fail: a bad row is dead-lettered, never a crash.
_ROW: Final = (
    "id, typeof(data), CAST(data AS BLOB), CAST(enqueued_at AS REAL), CAST(deliveries AS INTEGER)"
)

_Row = tuple[int, str, bytes | None, float | None, int | None]


@dataclass
class _Taken:
    leased: list[Leased] = field(default_factory=list)
    dead: list[tuple[str, str]] = field(default_factory=list)  # (id, reason) for the log
    recovered: int = 0
    undated: int = 0
    next_due: float | None = None  # earliest lease expiry, when nothing was leased
    version: int = 0


def _parse_id(entry_id: str) -> int:
    if not entry_id.isascii() or not entry_id.isdigit() or len(entry_id) > 19:
        raise ValueError(f"invalid SQLite queue entry id {entry_id!r}: expected a decimal rowid")
    return int(entry_id)


class SqliteQueue(QueueBase):
    """A ``WorkQueue`` in the SQLite file ``path`` (see the module docstring).

    ``await queue.open()`` (or ``async with queue``) creates the tables if needed;
    ``open_queue("sqlite", ...)`` does it for you. ``synchronous`` is SQLite's setting for this
    connection (``NORMAL``: an application crash loses nothing, a power cut may lose the last
    transactions; ``FULL`` survives power cuts at some cost). ``busy_timeout`` is how long a
    call waits for another process's write lock before failing with ``QueueBackendError``.
    ``inline`` runs each call on the event loop's thread (the default: cheaper than a worker
    thread hop; see ``smpp_bridge.storage.sqlite_calls``); ``False`` uses a worker thread.

    Raises ``ValueError`` or ``TypeError`` for a bad setting or argument; every call raises
    ``QueueClosedError`` after ``aclose``, and ``QueueBackendError`` when SQLite fails (a
    file locked past ``busy_timeout``, a full disk).
    """

    backend = "sqlite"

    def __init__(
        self,
        path: str | Path,
        name: str,
        *,
        synchronous: str = "NORMAL",
        busy_timeout: float = 5.0,
        poll_interval: float = 0.025,
        inline: bool = True,
        **options: Unpack[QueueOptions],
    ) -> None:
        super().__init__(name, **options)
        if not str(path):
            raise ValueError("SQLite queue path must not be empty")
        self._synchronous = check_synchronous(synchronous)
        if not busy_timeout >= 0:
            raise ValueError(f"busy_timeout must be >= 0 seconds; got {busy_timeout!r}")
        if not poll_interval > 0:
            raise ValueError(f"poll_interval must be > 0 seconds; got {poll_interval!r}")
        self.path = str(path)
        self.poll_interval = float(poll_interval)
        self._busy_ms = int(busy_timeout * 1000)
        self._table_name = f"{self.prefix}:q:{self.name}"
        self._table = f'"{self._table_name}"'
        self._dlq = f'"{self.prefix}:dlq:{self.name}"'
        self._index = f'"{self.prefix}:q:{self.name}:ready"'
        self._conn: sqlite3.Connection | None = None
        self._lock = anyio.Lock(fast_acquire=True)
        self.inline = inline  # run calls on the event loop's thread (see sqlite_calls)
        self._recovered = False
        # Set (and dropped) by a local publish or release; created by whoever waits.
        self._wakeup: anyio.Event | None = None

    # -- blocking parts, each run by ``call_sqlite`` under self._lock

    def _connection(self) -> sqlite3.Connection:
        if self._closed:
            # A call that queued on the lock before ``aclose`` must not reopen the file.
            raise QueueClosedError(f"sqlite queue {self.name!r} is closed")
        if self._conn is not None:
            return self._conn
        self._conn = connect(
            self.path,
            self._synchronous,
            self._create_tables,
            busy_timeout_ms=self._busy_ms,
            journal_mode=self._check_journal_mode,
        )
        return self._conn

    def _check_journal_mode(self, mode: str) -> None:
        if mode.lower() not in ("wal", "memory"):
            log.warning("sqlite_not_wal", path=self.path, journal_mode=mode)

    def _create_tables(self, conn: sqlite3.Connection) -> None:
        with immediate_transaction(conn):
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {self._table} ("
                " id INTEGER PRIMARY KEY AUTOINCREMENT,"
                " data BLOB NOT NULL,"
                " enqueued_at REAL NOT NULL,"
                " lease_until REAL NOT NULL DEFAULT 0,"
                " consumer TEXT,"
                " deliveries INTEGER NOT NULL DEFAULT 0,"
                " acked INTEGER NOT NULL DEFAULT 0)"
            )
            conn.execute(
                f"CREATE INDEX IF NOT EXISTS {self._index}"
                f" ON {self._table} (lease_until, id) WHERE acked = 0"
            )
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {self._dlq} ("
                " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
                " id TEXT NOT NULL,"
                " data BLOB NOT NULL,"
                " attempts INTEGER NOT NULL,"
                " reason TEXT NOT NULL,"
                " dead_at REAL NOT NULL)"
            )

    def _transaction(self, body: Callable[[sqlite3.Connection], R]) -> R:
        with immediate_transaction(self._connection()) as conn:
            return body(conn)

    def _remove(self, conn: sqlite3.Connection, ids: Sequence[int]) -> None:
        """Take entries off the queue: delete them, or mark them acknowledged on a log."""
        for chunk in chunks(ids):
            if self.keep_acked:
                conn.execute(
                    f"UPDATE {self._table} SET acked = 1, consumer = NULL, lease_until = 0"
                    f" WHERE id IN ({marks(len(chunk))})",
                    chunk,
                )
            else:
                conn.execute(f"DELETE FROM {self._table} WHERE id IN ({marks(len(chunk))})", chunk)

    def _bury(
        self, conn: sqlite3.Connection, rows: list[tuple[int, bytes, int, str]], now: float
    ) -> None:
        """Move ``(id, data, deliveries, reason)`` rows to the dead-letter table."""
        if not rows:
            return
        conn.executemany(
            f"INSERT INTO {self._dlq} (id, data, attempts, reason, dead_at) VALUES (?,?,?,?,?)",
            [(str(i), data, deliveries, reason, now) for i, data, deliveries, reason in rows],
        )
        self._remove(conn, [row[0] for row in rows])

    def _publish_sync(self, payloads: list[bytes]) -> tuple[int, int, int]:
        def body(conn: sqlite3.Connection) -> tuple[int, int, int]:
            now = time.time()
            before = conn.execute(
                "SELECT seq FROM sqlite_sequence WHERE name = ?", (self._table_name,)
            ).fetchone()
            conn.executemany(
                f"INSERT INTO {self._table} (data, enqueued_at) VALUES (?, ?)",
                [(p, now) for p in payloads],
            )
            last: int = conn.execute("SELECT last_insert_rowid()").fetchone()[0]
            # Under the write lock, AUTOINCREMENT hands out consecutive ids after the last one
            # ever used; anything else would mean ids we cannot report.
            first = last - len(payloads) + 1
            if first != (before[0] if before else 0) + 1:
                raise QueueError(
                    f"sqlite queue {self.name!r}: inserted ids end at {last}, not consecutive"
                    f" after {before[0] if before else 0} for {len(payloads)} entries"
                )
            dropped = 0
            if self.keep_acked:
                cutoff = last - self.retain
                if cutoff > 0:
                    dropped = conn.execute(
                        f"SELECT count(*) FROM {self._table} WHERE id <= ? AND acked = 0",
                        (cutoff,),
                    ).fetchone()[0]
                    conn.execute(f"DELETE FROM {self._table} WHERE id <= ?", (cutoff,))
            return first, last, dropped

        return self._transaction(body)

    def _consume_sync(self, max_count: int) -> _Taken:
        taken = _Taken()
        table = self._table
        due_sql = (
            f"SELECT {_ROW} FROM {table} WHERE acked = 0 AND lease_until > 0"
            " AND lease_until <= ? ORDER BY lease_until, id LIMIT ?"
        )
        fresh_sql = (
            f"SELECT {_ROW} FROM {table} WHERE acked = 0 AND lease_until = 0 ORDER BY id LIMIT ?"
        )

        def body(conn: sqlite3.Connection) -> _Taken:
            # Read under the write lock: however long the wait for it, leases start now.
            now = time.time()
            if not self._recovered:
                taken.recovered = conn.execute(
                    f"UPDATE {table} SET lease_until = ?"
                    " WHERE acked = 0 AND consumer = ? AND lease_until > ?",
                    (now, self.consumer, now),
                ).rowcount
            until = now + self.visibility_timeout
            while len(taken.leased) < max_count:
                need = max_count - len(taken.leased)
                rows: list[_Row] = conn.execute(due_sql, (now, need)).fetchall()
                if len(rows) < need:
                    rows += conn.execute(fresh_sql, (need - len(rows),)).fetchall()
                if not rows:
                    break
                lease: list[int] = []
                dead: list[tuple[int, bytes, int, str]] = []
                for row_id, kind, data, enqueued_at, deliveries in rows:
                    deliveries = deliveries or 0
                    if kind not in _PAYLOAD_TYPES or data is None:
                        reason = f"corrupted entry: payload is {kind.upper()}, expected BLOB"
                        dead.append((row_id, data or b"", deliveries, reason))
                    elif deliveries >= self.max_deliveries:
                        dead.append((row_id, data, deliveries, over_delivered(deliveries)))
                    else:
                        if not enqueued_at or enqueued_at <= 0:
                            taken.undated += 1
                            enqueued_at = now
                        lease.append(row_id)
                        taken.leased.append(Leased(str(row_id), data, deliveries + 1, enqueued_at))
                self._bury(conn, dead, now)
                taken.dead.extend((str(row[0]), row[3]) for row in dead)
                for chunk in chunks(lease):
                    conn.execute(
                        f"UPDATE {table} SET lease_until = ?, consumer = ?,"
                        " deliveries = CAST(deliveries AS INTEGER) + 1"
                        f" WHERE id IN ({marks(len(chunk))})",
                        (until, self.consumer, *chunk),
                    )
            if not taken.leased:
                # Under the write lock nobody else commits: a later change is news.
                taken.version = conn.execute("PRAGMA data_version").fetchone()[0]
                taken.next_due = conn.execute(
                    f"SELECT min(lease_until) FROM {table} WHERE acked = 0 AND lease_until > ?",
                    (now,),
                ).fetchone()[0]
            return taken

        result = self._transaction(body)
        self._recovered = True
        return result

    def _ack_sync(self, ids: list[int]) -> None:
        self._transaction(lambda conn: self._remove(conn, ids))

    def _lease_for_sync(self, ids: list[int], seconds: float) -> int:
        """Lease the entries this consumer holds for ``seconds`` from now (release: the
        delay, extend: the visibility timeout); how many it held."""

        def body(conn: sqlite3.Connection) -> int:
            until = time.time() + seconds
            count = 0
            for chunk in chunks(ids):
                count += conn.execute(
                    f"UPDATE {self._table} SET lease_until = ?"
                    f" WHERE id IN ({marks(len(chunk))}) AND acked = 0 AND consumer = ?",
                    (until, *chunk, self.consumer),
                ).rowcount
            return count

        return self._transaction(body)

    def _dead_letter_sync(self, items: dict[int, str]) -> list[int]:
        def body(conn: sqlite3.Connection) -> list[int]:
            now = time.time()
            found: list[tuple[int, bytes, int, str]] = []
            ids = list(items)
            for chunk in chunks(ids):
                cursor = conn.execute(
                    f"SELECT {_ROW} FROM {self._table}"
                    f" WHERE id IN ({marks(len(chunk))}) AND acked = 0",
                    chunk,
                )
                for row_id, _kind, data, _enqueued_at, deliveries in cursor:
                    found.append((row_id, data or b"", deliveries or 0, items[row_id]))
            self._bury(conn, found, now)
            present = {row[0] for row in found}
            return [i for i in ids if i not in present]

        return self._transaction(body)

    def _dead_letters_sync(self, limit: int) -> list[DeadLetter]:
        conn = self._connection()
        rows = conn.execute(
            "SELECT CAST(id AS BLOB), CAST(data AS BLOB), CAST(attempts AS INTEGER),"
            f" CAST(reason AS BLOB), CAST(dead_at AS REAL) FROM {self._dlq}"
            " ORDER BY seq LIMIT ?",
            (limit,),
        ).fetchall()
        return [
            DeadLetter(
                (entry_id or b"").decode("utf-8", "replace"),
                data or b"",
                attempts or 0,
                (reason or b"").decode("utf-8", "replace"),
                dead_at or 0.0,
            )
            for entry_id, data, attempts, reason, dead_at in rows
        ]

    def _depth_sync(self) -> int:
        conn = self._connection()
        count: int = conn.execute(f"SELECT count(*) FROM {self._table} WHERE acked = 0").fetchone()[
            0
        ]
        return count

    def _oldest_sync(self) -> float | None:
        conn = self._connection()
        # Fresh entries: an index seek; leased ones: a walk over the in-flight entries only.
        row = conn.execute(
            f"SELECT CAST(enqueued_at AS REAL) FROM {self._table} WHERE id = (SELECT min(m) FROM"
            f" (SELECT min(id) AS m FROM {self._table} WHERE acked = 0 AND lease_until = 0"
            f" UNION ALL SELECT min(id) FROM {self._table} INDEXED BY {self._index}"
            " WHERE acked = 0 AND lease_until > 0))"
        ).fetchone()
        return None if row is None else float(row[0] or 0.0)

    def _tail_sync(self, after: int, limit: int) -> tuple[list[Entry], int]:
        conn = self._connection()
        version = conn.execute("PRAGMA data_version").fetchone()[0]
        rows = conn.execute(
            f"SELECT id, CAST(data AS BLOB) FROM {self._table} WHERE id > ? ORDER BY id LIMIT ?",
            (after, limit),
        ).fetchall()
        return [Entry(str(row_id), data or b"") for row_id, data in rows], version

    def _version_sync(self) -> int:
        version: int = self._connection().execute("PRAGMA data_version").fetchone()[0]
        return version

    def _close_sync(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # -- plumbing

    async def _call(self, op: str, fn: Callable[..., R], *args: object) -> R:
        self._check_open()
        try:
            return await call_sqlite(self._lock, self.inline, fn, *args)
        except sqlite3.Error as exc:
            raise QueueBackendError(
                f"sqlite queue {self.name!r} ({self.path}): {op} failed: {exc}"
            ) from exc

    def _waiter(self) -> anyio.Event:
        if self._wakeup is None:
            self._wakeup = anyio.Event()
        return self._wakeup

    def _wake(self) -> None:
        if self._wakeup is not None:
            self._wakeup.set()
            self._wakeup = None

    async def _wait_for_news(
        self, deadline: float, version: int, next_due: float | None, wakeup: anyio.Event
    ) -> bool:
        """Sleep until something may have changed (True) or ``deadline`` passed (False)."""
        while True:
            remaining = deadline - anyio.current_time()
            if remaining <= 0:
                return False
            step = min(remaining, self.poll_interval)
            if next_due is not None:
                due_in = next_due - time.time()
                if due_in <= 0:
                    return True
                step = min(step, due_in)
            with anyio.move_on_after(step):
                await wakeup.wait()
                return True
            if next_due is not None and next_due <= time.time():
                return True
            if await self._call("poll", self._version_sync) != version:
                return True

    # -- the WorkQueue interface

    async def open(self) -> None:
        await self._call("open", self._connection)

    async def publish(self, payloads: Sequence[bytes]) -> list[str]:
        self._check_open()
        data = check_payloads(payloads)
        if not data:
            return []
        first, last, dropped = await self._call("publish", self._publish_sync, data)
        self._wake()
        if dropped:
            log.warning(
                "queue_trimmed_unacked", queue=self.name, entries=dropped, retain=self.retain
            )
        return [str(i) for i in range(first, last + 1)]

    async def consume(self, max_count: int, *, wait: float = 1.0) -> list[Leased]:
        check_count("max_count", max_count)
        wait = check_seconds("wait", wait)
        self._check_open()
        deadline = anyio.current_time() + wait
        while True:
            wakeup = self._waiter()
            taken = await self._call("consume", self._consume_sync, max_count)
            if taken.recovered:
                log.info("queue_leases_recovered", queue=self.name, entries=taken.recovered)
            if taken.dead:
                log.warning(
                    "queue_dead_lettered",
                    queue=self.name,
                    entries=len(taken.dead),
                    first=taken.dead[0][0],
                    reason=taken.dead[0][1],
                )
            if taken.undated:
                log.warning("queue_entries_undated", queue=self.name, entries=taken.undated)
            if taken.leased or wait == 0:
                return taken.leased
            if not await self._wait_for_news(deadline, taken.version, taken.next_due, wakeup):
                return []

    async def ack(self, ids: Sequence[str]) -> None:
        self._check_open()
        rowids = [_parse_id(i) for i in check_ids(ids)]
        if rowids:
            await self._call("ack", self._ack_sync, rowids)

    async def release(self, ids: Sequence[str], *, delay: float = 0.0) -> None:
        self._check_open()
        delay = check_seconds("delay", delay)
        rowids = [_parse_id(i) for i in check_ids(ids)]
        if not rowids:
            return
        count = await self._call("release", self._lease_for_sync, rowids, delay)
        self._wake()
        if count < len(rowids):
            log.warning("queue_release_not_held", queue=self.name, entries=len(rowids) - count)

    async def extend(self, ids: Sequence[str]) -> None:
        self._check_open()
        rowids = [_parse_id(i) for i in check_ids(ids)]
        if not rowids:
            return
        count = await self._call("extend", self._lease_for_sync, rowids, self.visibility_timeout)
        if count < len(rowids):
            # Acked meanwhile, dead-lettered, or leased by another consumer after ours ran out.
            log.warning("queue_lease_lost", queue=self.name, entries=len(rowids) - count)

    async def dead_letter(self, items: Sequence[tuple[str, str]]) -> None:
        self._check_open()
        reasons = {_parse_id(i): reason for i, reason in check_dead_items(items).items()}
        if not reasons:
            return
        missing = await self._call("dead_letter", self._dead_letter_sync, reasons)
        log.info("queue_dead_lettered", queue=self.name, entries=len(reasons) - len(missing))
        if missing:
            log.warning(
                "queue_dead_letter_missing",
                queue=self.name,
                entries=len(missing),
                first=str(missing[0]),
            )

    async def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        check_count("limit", limit)
        return await self._call("dead_letters", self._dead_letters_sync, limit)

    async def depth(self) -> int:
        return await self._call("depth", self._depth_sync)

    async def oldest_age(self) -> float:
        enqueued_at = await self._call("oldest_age", self._oldest_sync)
        if enqueued_at is None:
            return 0.0
        return max(0.0, time.time() - enqueued_at)

    async def tail(self, after: str | None, limit: int = 100, *, wait: float = 0.0) -> list[Entry]:
        check_count("limit", limit)
        wait = check_seconds("wait", wait)
        self._check_open()
        start = 0 if after is None else _parse_id(after)
        deadline = anyio.current_time() + wait
        while True:
            wakeup = self._waiter()
            entries, version = await self._call("tail", self._tail_sync, start, limit)
            if entries or wait == 0:
                return entries
            if not await self._wait_for_news(deadline, version, None, wakeup):
                return []

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._wake()
        await close_sqlite(self._lock, self._close_sync)


__all__ = ["SqliteQueue"]
