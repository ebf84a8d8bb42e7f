"""The SQLite message store: messages, their ids and their history in tables of one database file,
written in one transaction per batch.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import anyio

from ..bridge.envelope import Event, decode_event, encode_events
from ..bridge.store import (
    DEFAULT_DEDUP_WINDOW,
    MessageRecord,
    _namespaced_key,
    _pick,
    _StoreBase,
    decode_record,
    encode_record,
    log,
    marked,
    merge_event,
    message_id_keys,
)
from ..pool import canonical_id
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


class SqliteMessageStore(_StoreBase):
    """Records in an SQLite file (WAL): the embedded default, shared by the processes on one
    machine (the daemon and the ``status``/``history`` commands).

    One connection, one call at a time (``sqlite_calls.call_sqlite``: inline on the event
    loop by default, ``inline=False`` for a worker thread); one transaction per call.
    ``clock`` is wall time: dedup instants are stored in the file and must survive a restart.

    Raises ``ValueError`` for a bad table name, ``synchronous`` setting or dedup window; every
    call raises ``StoreClosedError`` after ``aclose``, and lets SQLite's own errors
    (``sqlite3.Error``) through.
    """

    def __init__(
        self,
        path: str | Path,
        dedup_window: float = DEFAULT_DEDUP_WINDOW,
        *,
        clock: Callable[[], float] = time.time,
        table: str = "smppb_messages",
        synchronous: str = "NORMAL",
        inline: bool = True,
    ) -> None:
        super().__init__(dedup_window, clock)
        self._t = check_identifier(table, "table: invalid name {!r}")
        self._synchronous = check_synchronous(synchronous, "synchronous: invalid setting {!r}")
        self.path = str(path)
        self._conn: sqlite3.Connection | None = None
        self._lock = anyio.Lock(fast_acquire=True)
        self.inline = inline  # run calls on the event loop's thread (see sqlite_calls)

    # -- blocking parts, each run by ``call_sqlite`` under self._lock

    def _connection(self) -> sqlite3.Connection:
        # A call that queued on the lock before ``aclose`` must not reopen the file.
        self._check_open()
        if self._conn is None:
            self._conn = connect(self.path, self._synchronous, self._create_tables)
        return self._conn

    def _create_tables(self, conn: sqlite3.Connection) -> None:
        t = self._t
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {t} (request_id TEXT PRIMARY KEY,"
            " client_id TEXT, status TEXT NOT NULL, created_at REAL NOT NULL,"
            " record BLOB NOT NULL)"
        )
        conn.execute(f"CREATE INDEX IF NOT EXISTS {t}_created ON {t} (created_at)")
        conn.execute(f"CREATE INDEX IF NOT EXISTS {t}_client ON {t} (client_id, created_at)")
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {t}_keys (key TEXT PRIMARY KEY,"
            " request_id TEXT NOT NULL, at REAL NOT NULL) WITHOUT ROWID"
        )
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {t}_events (seq INTEGER PRIMARY KEY"
            " AUTOINCREMENT, request_id TEXT NOT NULL, event BLOB NOT NULL)"
        )
        conn.execute(
            f"CREATE INDEX IF NOT EXISTS {t}_events_request ON {t}_events (request_id, seq)"
        )
        # SMSC message ids (canonical_id) → their message, per account.
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {t}_ids (key TEXT NOT NULL, account TEXT NOT"
            " NULL, request_id TEXT NOT NULL, PRIMARY KEY (key, account)) WITHOUT ROWID"
        )

    def _transaction(self, work: Callable[[sqlite3.Connection], Any]) -> Any:
        with immediate_transaction(self._connection()) as conn:
            return work(conn)

    def _load(self, conn: sqlite3.Connection, request_ids: Sequence[str]) -> dict[str, bytes]:
        found: dict[str, bytes] = {}
        for chunk in chunks(request_ids):
            found.update(
                conn.execute(
                    f"SELECT request_id, record FROM {self._t}"
                    f" WHERE request_id IN ({marks(len(chunk))})",
                    chunk,
                )
            )
        return found

    def _save(self, conn: sqlite3.Connection, records: Iterable[MessageRecord]) -> None:
        conn.executemany(
            f"INSERT OR REPLACE INTO {self._t} (request_id, client_id, status, created_at,"
            " record) VALUES (?, ?, ?, ?, ?)",
            [
                (r.request_id, r.client_id, r.status, r.created_at, encode_record(r))
                for r in records
            ],
        )

    def _begin_sync(self, records: Sequence[MessageRecord], now: float) -> dict[str, bytes]:
        t = self._t
        horizon = now - self.dedup_window

        def work(conn: sqlite3.Connection) -> dict[str, bytes]:
            existing: dict[str, bytes] = {}
            for record in records:
                key = _namespaced_key(record)
                row = conn.execute(
                    f"SELECT k.at, m.record FROM {t}_keys k JOIN {t} m USING (request_id)"
                    " WHERE k.key = ?",
                    (key,),
                ).fetchone()
                if row is not None and row[0] > horizon:
                    existing[record.request_id] = row[1]
                    continue
                conn.execute(
                    f"INSERT OR REPLACE INTO {t}_keys (key, request_id, at) VALUES (?, ?, ?)",
                    (key, record.request_id, now),
                )
                # Later records of this call must see this one.
                self._save(conn, [record])
            return existing

        result: dict[str, bytes] = self._transaction(work)
        return result

    def _mark_sync(self, request_ids: Sequence[str], status: str, now: float) -> None:
        def work(conn: sqlite3.Connection) -> None:
            changed = []
            for data in self._load(conn, request_ids).values():
                record = decode_record(data)
                if marked(record, status, now):
                    changed.append(record)
            self._save(conn, changed)

        self._transaction(work)

    def _apply_sync(self, events: Sequence[tuple[Event, bytes]], now: float) -> None:
        def work(conn: sqlite3.Connection) -> None:
            ids = list(dict.fromkeys(e.request_id for e, _ in events if e.request_id))
            records = {rid: decode_record(data) for rid, data in self._load(conn, ids).items()}
            history: list[tuple[str, bytes]] = []
            indexed: list[tuple[str, str, str]] = []
            for event, data in events:
                record = records.get(event.request_id or "")
                if record is None:
                    continue
                known = len(record.message_ids)
                merge_event(record, event, now)
                for message_id in record.message_ids[known:]:
                    key = canonical_id(message_id)
                    if key:
                        indexed.append((key, record.account or "", record.request_id))
                history.append((record.request_id, data))
            self._save(conn, records.values())
            conn.executemany(
                f"INSERT INTO {self._t}_events (request_id, event) VALUES (?, ?)", history
            )
            if indexed:
                conn.executemany(
                    f"INSERT OR REPLACE INTO {self._t}_ids (key, account, request_id)"
                    " VALUES (?, ?, ?)",
                    indexed,
                )

        self._transaction(work)

    def _get_sync(self, key: str) -> tuple[bytes, list[bytes]] | None:
        conn = self._connection()
        t = self._t
        row = conn.execute(
            f"SELECT request_id, record FROM {t} WHERE client_id = ?"
            " ORDER BY created_at DESC LIMIT 1",
            (key,),
        ).fetchone()
        if row is None:
            row = conn.execute(
                f"SELECT request_id, record FROM {t} WHERE request_id = ?", (key,)
            ).fetchone()
        if row is None:
            return None
        events = conn.execute(
            f"SELECT event FROM {t}_events WHERE request_id = ? ORDER BY seq", (row[0],)
        ).fetchall()
        return row[1], [e[0] for e in events]

    def _get_by_message_id_sync(
        self, keys: list[str], account: str | None
    ) -> tuple[bytes, list[bytes]] | None:
        conn = self._connection()
        t = self._t
        for key in keys:
            rows = conn.execute(
                f"SELECT i.account, m.record FROM {t}_ids i JOIN {t} m USING (request_id)"
                " WHERE i.key = ?",
                (key,),
            ).fetchall()
            record = _pick(((decode_record(r[1]), r[0]) for r in rows), account)
            if record is not None:
                events = conn.execute(
                    f"SELECT event FROM {t}_events WHERE request_id = ? ORDER BY seq",
                    (record.request_id,),
                ).fetchall()
                return encode_record(record), [e[0] for e in events]
        return None

    def _history_sync(self, since: float | None, limit: int, status: str | None) -> list[bytes]:
        where: list[str] = []
        params: list[Any] = []
        if since is not None:
            where.append("created_at >= ?")
            params.append(since)
        if status is not None:
            where.append("status = ?")
            params.append(status)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        order = "ASC" if since is not None else "DESC"
        rows = (
            self._connection()
            .execute(
                f"SELECT record FROM {self._t}{clause}"
                f" ORDER BY created_at {order}, request_id {order} LIMIT ?",
                (*params, max(0, limit)),
            )
            .fetchall()
        )
        found = [r[0] for r in rows]
        return found if since is not None else found[::-1]

    def _purge_sync(self, older_than: float) -> int:
        t = self._t

        def work(conn: sqlite3.Connection) -> int:
            old = f"SELECT request_id FROM {t} WHERE created_at < ?"
            conn.execute(f"DELETE FROM {t}_events WHERE request_id IN ({old})", (older_than,))
            conn.execute(f"DELETE FROM {t}_keys WHERE request_id IN ({old})", (older_than,))
            conn.execute(f"DELETE FROM {t}_ids WHERE request_id IN ({old})", (older_than,))
            return conn.execute(f"DELETE FROM {t} WHERE created_at < ?", (older_than,)).rowcount

        count: int = self._transaction(work)
        return count

    def _close_sync(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def _run(self, func: Callable[..., Any], *args: Any) -> Any:
        self._check_open()
        return await call_sqlite(self._lock, self.inline, func, *args)

    # -- the async interface

    async def begin(self, records: Sequence[MessageRecord]) -> dict[str, MessageRecord]:
        if not records:
            self._check_open()
            return {}
        raw: dict[str, bytes] = await self._run(self._begin_sync, records, self._clock())
        return {key: decode_record(data) for key, data in raw.items()}

    async def mark(self, request_ids: Sequence[str], status: str) -> None:
        if request_ids:
            await self._run(self._mark_sync, list(request_ids), status, self._clock())

    async def apply(self, events: Sequence[Event]) -> None:
        relevant = [e for e in events if e.request_id is not None]
        if relevant:
            pairs = list(zip(relevant, encode_events(relevant), strict=True))
            await self._run(self._apply_sync, pairs, self._clock())

    async def get(self, key: str) -> tuple[MessageRecord, list[Event]] | None:
        found: tuple[bytes, list[bytes]] | None = await self._run(self._get_sync, key)
        if found is None:
            return None
        return decode_record(found[0]), [decode_event(e) for e in found[1]]

    async def get_by_message_id(
        self, message_id: str, account: str | None = None
    ) -> tuple[MessageRecord, list[Event]] | None:
        keys = message_id_keys(message_id)
        if not keys:
            self._check_open()
            return None
        found: tuple[bytes, list[bytes]] | None = await self._run(
            self._get_by_message_id_sync, keys, account
        )
        if found is None:
            return None
        return decode_record(found[0]), [decode_event(e) for e in found[1]]

    async def history(
        self, since: float | None, limit: int = 100, status: str | None = None
    ) -> list[MessageRecord]:
        rows: list[bytes] = await self._run(self._history_sync, since, limit, status)
        return [decode_record(r) for r in rows]

    async def purge(self, older_than: float) -> int:
        count: int = await self._run(self._purge_sync, older_than)
        if count:
            log.info("purged messages", count=count, older_than=older_than)
        return count

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        await close_sqlite(self._lock, self._close_sync)
