"""The SQLite correlation and parking store: part mappings, id decisions and parked receipts in
tables of one database file (the daemon shares it with its message store).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import anyio

from ..pool import (
    DEFAULT_TTL,
    CorrelationRecord,
    MessageIdResolver,
    ParkedReceipt,
    canonical_id,
    decode_parked,
    decode_record,
    encode_parked,
    encode_record,
)
from .correlation_base import DurableCorrelationStore
from .sqlite_calls import (
    call_sqlite,
    check_identifier,
    check_synchronous,
    chunks,
    close_sqlite,
    connect,
    immediate_transaction,
    marks,
)


class SqliteCorrelationStore(DurableCorrelationStore):
    """Correlations in an SQLite file (WAL): the embedded default, durable across restarts.

    One connection, one call at a time (``smpp_bridge.storage.sqlite_calls``: in a worker thread, or
    inline on the event loop with ``inline`` — the default unless ``synchronous`` makes every
    commit wait for the disk); one transaction per batch. ``synchronous=FULL`` by default: a
    mapping is on disk before the caller acknowledges the queue message it came from (the
    daemon uses NORMAL: safe against its own crash, not a power cut). Expired rows are ignored
    on read and deleted by ``purge()``, which ``put_many`` runs every ``purge_interval``
    seconds. ``clock`` is wall time: expiry instants are stored in the file and must survive a
    restart.

    Raises ``ValueError`` for a bad table name or ``synchronous`` setting; every call raises
    ``StoreClosedError`` after ``aclose``, and lets SQLite's own errors (``sqlite3.Error``:
    a locked or full file) through.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        ttl: float = DEFAULT_TTL,
        resolver: MessageIdResolver | None = None,
        clock: Callable[[], float] = time.time,
        purge_interval: float = 300.0,
        table: str = "smppb_correlation",
        synchronous: str = "FULL",
        inline: bool | None = None,
    ) -> None:
        super().__init__(ttl, resolver)
        self._table = check_identifier(table)
        self._synchronous = check_synchronous(synchronous)
        self.path = str(path)
        self.purge_interval = purge_interval
        self._clock = clock
        # Calls run on the event loop unless every commit waits for the disk (FULL, EXTRA).
        self.inline = self._synchronous in ("OFF", "NORMAL") if inline is None else inline
        self._conn: sqlite3.Connection | None = None
        self._lock = anyio.Lock(fast_acquire=True)
        self._last_purge = clock()

    # -- blocking parts, each run in a worker thread under self._lock

    def _connection(self) -> sqlite3.Connection:
        # A call that queued on the lock before ``aclose`` must not reopen the file.
        self._check_open()
        if self._conn is None:
            self._conn = connect(self.path, self._synchronous, self._create_tables)
        return self._conn

    def _create_tables(self, conn: sqlite3.Connection) -> None:
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {self._table} ("
            " account TEXT NOT NULL, key TEXT NOT NULL, record BLOB NOT NULL,"
            " expires_at REAL NOT NULL, PRIMARY KEY (account, key)) WITHOUT ROWID"
        )
        conn.execute(
            f"CREATE INDEX IF NOT EXISTS {self._table}_expires ON {self._table} (expires_at)"
        )
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {self._table}_parked ("
            " owner TEXT NOT NULL, key TEXT NOT NULL, receipt BLOB NOT NULL,"
            " arrived_at REAL NOT NULL, PRIMARY KEY (owner, key)) WITHOUT ROWID"
        )
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {self._table}_ids ("
            " account TEXT PRIMARY KEY, conversion TEXT NOT NULL) WITHOUT ROWID"
        )

    def _put_sync(self, rows: list[tuple[str, str, bytes, float]], now: float, purge: bool) -> None:
        with immediate_transaction(self._connection()) as conn:
            conn.executemany(
                f"INSERT OR REPLACE INTO {self._table} (account, key, record, expires_at)"
                " VALUES (?, ?, ?, ?)",
                rows,
            )
            if purge:
                self._purge_in(conn, now)

    def _get_sync(self, account: str, keys: list[str], now: float) -> dict[str, bytes]:
        conn = self._connection()
        found: dict[str, bytes] = {}
        for chunk in chunks(keys):
            cursor = conn.execute(
                f"SELECT key, record FROM {self._table}"
                f" WHERE account = ? AND key IN ({marks(len(chunk))}) AND expires_at > ?",
                (account, *chunk, now),
            )
            found.update(cursor)
        return found

    def _delete_sync(self, account: str, keys: list[str]) -> None:
        with immediate_transaction(self._connection()) as conn:
            conn.executemany(
                f"DELETE FROM {self._table} WHERE account = ? AND key = ?",
                [(account, key) for key in keys],
            )

    def _purge_in(self, conn: sqlite3.Connection, now: float) -> int:
        cursor = conn.execute(f"DELETE FROM {self._table} WHERE expires_at <= ?", (now,))
        # Parked receipts of an owner that never came back go after a TTL too.
        conn.execute(f"DELETE FROM {self._table}_parked WHERE arrived_at <= ?", (now - self.ttl,))
        return cursor.rowcount

    def _purge_sync(self, now: float) -> int:
        return self._purge_in(self._connection(), now)

    def _park_sync(self, rows: list[tuple[str, str, bytes, float]]) -> None:
        with immediate_transaction(self._connection()) as conn:
            conn.executemany(
                f"INSERT OR REPLACE INTO {self._table}_parked (owner, key, receipt, arrived_at)"
                " VALUES (?, ?, ?, ?)",
                rows,
            )

    def _unpark_sync(self, owner: str, keys: list[str]) -> None:
        with immediate_transaction(self._connection()) as conn:
            conn.executemany(
                f"DELETE FROM {self._table}_parked WHERE owner = ? AND key = ?",
                [(owner, key) for key in keys],
            )

    def _load_parked_sync(self, owner: str) -> list[bytes]:
        conn = self._connection()
        cursor = conn.execute(
            f"SELECT receipt FROM {self._table}_parked WHERE owner = ? ORDER BY arrived_at",
            (owner,),
        )
        return [row[0] for row in cursor]

    def _read_decisions_sync(self) -> dict[str, str]:
        cursor = self._connection().execute(f"SELECT account, conversion FROM {self._table}_ids")
        return dict(cursor)

    def _write_decisions_sync(self, rows: list[tuple[str, str]]) -> None:
        with immediate_transaction(self._connection()) as conn:
            # The first decision stored stays: every reader adopts the same one.
            conn.executemany(
                f"INSERT OR IGNORE INTO {self._table}_ids (account, conversion) VALUES (?, ?)",
                rows,
            )

    def _close_sync(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # -- the async interface

    async def _read_decisions(self) -> dict[str, str]:
        return await call_sqlite(self._lock, self.inline, self._read_decisions_sync)

    async def _write_decisions(self, decisions: dict[str, str]) -> None:
        if decisions:
            rows = list(decisions.items())
            await call_sqlite(self._lock, self.inline, self._write_decisions_sync, rows)

    async def _put_records(self, records: Sequence[CorrelationRecord], ttl: float) -> None:
        now = self._clock()
        expires = now + ttl
        rows = [(r.account, r.key, encode_record(r), expires) for r in records]
        purge = now - self._last_purge >= self.purge_interval
        if purge:
            self._last_purge = now
        await call_sqlite(self._lock, self.inline, self._put_sync, rows, now, purge)

    async def _get_records(self, account: str, keys: list[str]) -> dict[str, CorrelationRecord]:
        raw = await call_sqlite(
            self._lock, self.inline, self._get_sync, account, keys, self._clock()
        )
        return {key: decode_record(data) for key, data in raw.items()}

    async def delete_many(self, account: str, message_ids: Sequence[str]) -> None:
        self._check_open()
        keys = list(dict.fromkeys(canonical_id(m) for m in message_ids))
        if not keys:
            return
        await call_sqlite(self._lock, self.inline, self._delete_sync, account, keys)

    async def park_many(self, owner: str, parked: Sequence[ParkedReceipt]) -> None:
        self._check_open()
        if not parked:
            return
        rows = [(owner, p.key, encode_parked(p), p.arrived_at) for p in parked]
        await call_sqlite(self._lock, self.inline, self._park_sync, rows)

    async def unpark_many(self, owner: str, keys: Sequence[str]) -> None:
        self._check_open()
        if not keys:
            return
        await call_sqlite(self._lock, self.inline, self._unpark_sync, owner, list(keys))

    async def load_parked(self, owner: str) -> list[ParkedReceipt]:
        self._check_open()
        raw = await call_sqlite(self._lock, self.inline, self._load_parked_sync, owner)
        return [decode_parked(data) for data in raw]

    async def purge(self) -> int:
        """Delete expired rows now; how many went."""
        self._check_open()
        now = self._clock()
        self._last_purge = now
        return await call_sqlite(self._lock, self.inline, self._purge_sync, now)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        await close_sqlite(self._lock, self._close_sync)
