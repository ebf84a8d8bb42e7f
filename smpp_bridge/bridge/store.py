"""The message store: each message's status and history, and clientId deduplication.

Before the daemon submits a batch it calls ``begin``: every request is recorded under its
*dedup key* (its ``clientId``, else its request id) unless that key was recorded within
``dedup_window`` seconds, in which case the earlier record comes back instead and the request
is not submitted again. That record's status tells what happened before: ``submitting`` with
no outcome means a crash came between submit and outcome (an unknown outcome). Events then
move the status along with ``apply`` and are kept as the message's history; ``get`` answers
"what happened to order-77?", ``get_by_message_id`` the same by an SMSC message id (as the
``sent`` event showed it, or as a receipt wrote it: case, zero padding and the hex/decimal
base are normalised as the pool's correlation does), ``history`` lists recent messages.

The SMSC-id index is written by ``apply`` in the same transaction (SQLite) or script (Redis)
as the event that names the id: no extra round trip per message.

Status only moves forward (``status_rank``): a receipt can overtake its own ``sent`` outcome,
so a late ``sent`` or ``buffered`` never overwrites ``delivered`` and a terminal status is only
replaced by another terminal one (the SMSC's last word). Events about one part of a
multi-part message (``segment`` set) join the history and the message ids but leave the
message's status to the message-level events.

Backends, one contract (``tests/integration/test_message_store.py``): ``SqliteMessageStore``
(the embedded default, WAL, one transaction per call), ``RedisMessageStore`` (shared by
every daemon on one Redis: a hash per message, the dedup key per message, history as a list,
a sorted set by creation time; each call is one Lua script, so concurrent daemons cannot
interleave inside an update) and ``MemoryMessageStore`` (one process, for tests and
``backend = "memory"``).
"""

from __future__ import annotations

import math
import re
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol, Self

import anyio
import anyio.lowlevel
import anyio.to_thread
import msgspec
import structlog

from ..codec.status import RANK, Status, status_rank
from ..errors import StoreClosedError
from ..pool.correlation import ClosableStore, canonical_id, possible_keys
from ..sqlite_calls import call_sqlite, immediate_transaction
from .envelope import Event, decode_event, encode_events

if TYPE_CHECKING:
    import coredis

log = structlog.get_logger("smpp_bridge.bridge.store")

DEFAULT_DEDUP_WINDOW: Final = 86400.0
DEFAULT_RETENTION: Final = 7 * 86400.0  # receipts can take days: keep records at least this
QUEUED: Final = Status.QUEUED
SUBMITTING: Final = Status.SUBMITTING
# How far along a status is (``Status.rank``): a status moves to one of equal or higher rank.
_RANKS: Final = RANK


class MessageRecord(msgspec.Struct, kw_only=True, rename="camel"):
    """What the store knows of one message (JSON names as in events: ``requestId``...)."""

    request_id: str
    client_id: str | None
    to: str
    from_: str = msgspec.field(name="from")
    status: str
    code: int = 0
    message_ids: list[str] = []
    parts: int = 0
    created_at: float
    updated_at: float
    reason: str | None = None
    account: str | None = None
    possible_duplicate: bool = False

    @property
    def dedup_key(self) -> str:
        """The key duplicates are detected by: the clientId, else the request id."""
        return self.client_id or self.request_id


class MessageStore(Protocol):
    """Batch interface of every message store backend (see the module docstring)."""

    async def begin(self, records: Sequence[MessageRecord]) -> dict[str, MessageRecord]:
        """Record ``records`` (with the status they carry) under their dedup keys; return
        ``{request_id: earlier record}`` for those whose key was recorded within the dedup
        window, earlier records of the same call included. Those are not recorded again.

        Keyed by the request id of the record given, never by the dedup key: two requests of
        one call sharing a clientId are two entries of the call, and only the second one
        finds an earlier record (the first one's), not the first one itself."""
        ...

    async def mark(self, request_ids: Sequence[str], status: str) -> None:
        """Set the status of these messages, forward only (``marked``: never to a lower
        ``status_rank``, so a terminal one is kept unless ``status`` is terminal too)."""
        ...

    async def apply(self, events: Sequence[Event]) -> None:
        """Move statuses along and append each event to its message's history (events
        without a ``request_id``, or of messages not in the store, are ignored)."""
        ...

    async def get(self, key: str) -> tuple[MessageRecord, list[Event]] | None:
        """A message and its history by clientId (the latest with it) or request id."""
        ...

    async def get_by_message_id(
        self, message_id: str, account: str | None = None
    ) -> tuple[MessageRecord, list[Event]] | None:
        """A message and its history by an SMSC message id of any of its parts, normalised as
        the pool's correlation does (``canonical_id``: blanks, case, zero padding; then the
        other bases of ``possible_keys``, the id as written first). Of several messages with
        that id (another account, another base), the one of ``account`` when given, else the
        most recently created."""
        ...

    async def history(
        self, since: float | None, limit: int = 100, status: str | None = None
    ) -> list[MessageRecord]:
        """Messages in order of ``created_at`` (then request id): the first ``limit`` created
        at or after ``since``, or with ``since`` None the last ``limit``; only those with
        ``status`` when given."""
        ...

    async def purge(self, older_than: float) -> int:
        """Forget messages created before ``older_than`` (epoch seconds); how many went."""
        ...

    async def aclose(self) -> None: ...


# ---------------------------------------------------------------------------------------------
# The rules, as pure functions (the Redis script mirrors them)


def event_message_ids(event: Event) -> list[str]:
    """The SMSC message ids an event names, in order, without repeats."""
    ids = [event.id] if event.id else []
    if event.message_ids:
        ids.extend(event.message_ids)
    return list(dict.fromkeys(ids))


def merge_event(record: MessageRecord, event: Event, now: float) -> None:
    """Apply one event (of this record's message) to ``record`` in place."""
    if event.segment is None and status_rank(event.status) >= status_rank(record.status):
        record.status = event.status
        record.code = event.code
        record.reason = event.reason or None
        if event.parts:
            record.parts = event.parts
        if event.account:
            record.account = event.account
    for message_id in event_message_ids(event):
        if message_id not in record.message_ids:
            record.message_ids.append(message_id)
    if event.possible_duplicate:
        record.possible_duplicate = True
    record.updated_at = now


def marked(record: MessageRecord, status: str, now: float) -> bool:
    """Set ``status`` on ``record`` unless that would move it back (``status_rank``: a
    terminal status is only replaced by another terminal one, and a message the SMSC took is
    never marked ``queued`` or ``submitting`` again, whose redelivery would send it as if for
    the first time); whether it did."""
    if status_rank(status) < status_rank(record.status):
        return False
    record.status = status
    record.updated_at = now
    return True


def message_id_keys(message_id: str) -> list[str]:
    """The index keys an SMSC id is looked up under, best first: its canonical form, then the
    keys of the other bases (a receipt's decimal id for a hex ``sent`` id, and the reverse)."""
    first = canonical_id(message_id)
    keys = [first] if first else []
    keys += [k for k in possible_keys(message_id) if k != first]
    return keys


def _pick(
    candidates: Iterable[tuple[MessageRecord, str]], account: str | None
) -> MessageRecord | None:
    """Of (record, the account it was indexed under), the one ``get_by_message_id`` returns."""
    best: MessageRecord | None = None
    for record, indexed in candidates:
        if account is not None and indexed != account:
            continue
        if best is None or (record.created_at, record.request_id) > (
            best.created_at,
            best.request_id,
        ):
            best = record
    return best


def _namespaced_key(record: MessageRecord) -> str:
    # clientIds and request ids live in separate key spaces: a clientId that happens to look
    # like a request id never collides with it.
    if record.client_id:
        return f"c:{record.client_id}"
    return f"r:{record.request_id}"


_RECORD_ENCODER: Final = msgspec.json.Encoder()
_RECORD_DECODER: Final = msgspec.json.Decoder(MessageRecord)


def encode_record(record: MessageRecord) -> bytes:
    return _RECORD_ENCODER.encode(record)


def decode_record(data: bytes | str) -> MessageRecord:
    return _RECORD_DECODER.decode(data)


def _check_window(dedup_window: float) -> None:
    if not dedup_window > 0 or not math.isfinite(dedup_window):
        raise ValueError(f"dedup_window: must be a positive number of seconds: {dedup_window}")


class _StoreBase(ClosableStore):
    """The dedup window and the clock, shared by the backends (closing comes with the base)."""

    def __init__(self, dedup_window: float, clock: Callable[[], float]) -> None:
        _check_window(dedup_window)
        self.dedup_window = dedup_window
        self._clock = clock


# ---------------------------------------------------------------------------------------------
# Memory


class MemoryMessageStore(_StoreBase):
    """Records in dicts: one process, nothing survives it (tests, ``backend = "memory"``)."""

    def __init__(
        self, dedup_window: float = DEFAULT_DEDUP_WINDOW, *, clock: Callable[[], float] = time.time
    ) -> None:
        super().__init__(dedup_window, clock)
        self._records: dict[str, MessageRecord] = {}
        self._events: dict[str, list[Event]] = {}
        self._keys: dict[str, tuple[float, str]] = {}  # namespaced dedup key → (when, request)
        self._by_id: dict[str, dict[str, str]] = {}  # canonical SMSC id → {account: request}

    async def begin(self, records: Sequence[MessageRecord]) -> dict[str, MessageRecord]:
        self._check_open()
        await anyio.lowlevel.checkpoint()
        now = self._clock()
        existing: dict[str, MessageRecord] = {}
        for record in records:
            key = _namespaced_key(record)
            seen = self._keys.get(key)
            if seen is not None and seen[0] > now - self.dedup_window:
                earlier = self._records.get(seen[1])
                if earlier is not None:
                    existing[record.request_id] = msgspec.structs.replace(earlier)
                    continue
            self._keys[key] = (now, record.request_id)
            self._records[record.request_id] = _copy(record)
            self._events.setdefault(record.request_id, [])
        return existing

    async def mark(self, request_ids: Sequence[str], status: str) -> None:
        self._check_open()
        await anyio.lowlevel.checkpoint()
        now = self._clock()
        for request_id in request_ids:
            record = self._records.get(request_id)
            if record is not None:
                marked(record, status, now)

    async def apply(self, events: Sequence[Event]) -> None:
        self._check_open()
        await anyio.lowlevel.checkpoint()
        now = self._clock()
        for event in events:
            if event.request_id is None:
                continue
            record = self._records.get(event.request_id)
            if record is None:
                continue
            known = len(record.message_ids)
            merge_event(record, event, now)
            for message_id in record.message_ids[known:]:
                key = canonical_id(message_id)
                if key:
                    self._by_id.setdefault(key, {})[record.account or ""] = record.request_id
            self._events[event.request_id].append(event)

    async def get(self, key: str) -> tuple[MessageRecord, list[Event]] | None:
        self._check_open()
        await anyio.lowlevel.checkpoint()
        found = self._keys.get(f"c:{key}")
        record = self._records.get(found[1]) if found is not None else None
        if record is None:
            record = self._records.get(key)
        if record is None:
            return None
        return _copy(record), list(self._events.get(record.request_id, ()))

    async def get_by_message_id(
        self, message_id: str, account: str | None = None
    ) -> tuple[MessageRecord, list[Event]] | None:
        self._check_open()
        await anyio.lowlevel.checkpoint()
        for key in message_id_keys(message_id):
            found = [
                (self._records[rid], indexed)
                for indexed, rid in self._by_id.get(key, {}).items()
                if rid in self._records
            ]
            record = _pick(found, account)
            if record is not None:
                return _copy(record), list(self._events.get(record.request_id, ()))
        return None

    async def history(
        self, since: float | None, limit: int = 100, status: str | None = None
    ) -> list[MessageRecord]:
        self._check_open()
        await anyio.lowlevel.checkpoint()
        rows = sorted(self._records.values(), key=lambda r: (r.created_at, r.request_id))
        if status is not None:
            rows = [r for r in rows if r.status == status]
        if since is None:
            chosen = rows[-limit:] if limit > 0 else []
        else:
            chosen = [r for r in rows if r.created_at >= since][: max(0, limit)]
        return [_copy(r) for r in chosen]

    async def purge(self, older_than: float) -> int:
        self._check_open()
        await anyio.lowlevel.checkpoint()
        gone = [rid for rid, r in self._records.items() if r.created_at < older_than]
        for request_id in gone:
            del self._records[request_id]
            self._events.pop(request_id, None)
        dead = set(gone)
        self._keys = {k: v for k, v in self._keys.items() if v[1] not in dead}
        for key in list(self._by_id):
            kept = {a: rid for a, rid in self._by_id[key].items() if rid not in dead}
            if kept:
                self._by_id[key] = kept
            else:
                del self._by_id[key]
        return len(gone)


def _copy(record: MessageRecord) -> MessageRecord:
    return msgspec.structs.replace(record, message_ids=list(record.message_ids))


# ---------------------------------------------------------------------------------------------
# SQLite

_IDENTIFIER: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SQL_CHUNK: Final = 500  # far below SQLite's bound-parameter limit


class SqliteMessageStore(_StoreBase):
    """Records in an SQLite file (WAL): the embedded default, shared by the processes on one
    machine (the daemon and the ``status``/``history`` commands).

    One connection, one call at a time (``sqlite_calls.call_sqlite``: inline on the event
    loop by default, ``inline=False`` for a worker thread); one transaction per call.
    ``clock`` is wall time: dedup instants are stored in the file and must survive a restart.
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
        if not _IDENTIFIER.fullmatch(table):
            raise ValueError(f"table: invalid name {table!r}")
        if synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"synchronous: invalid setting {synchronous!r}")
        self.path = str(path)
        self._t = table
        self._synchronous = synchronous.upper()
        self._conn: sqlite3.Connection | None = None
        self._lock = anyio.Lock(fast_acquire=True)
        self.inline = inline  # run calls on the event loop's thread (see sqlite_calls)

    # -- blocking parts, each run by ``call_sqlite`` under self._lock

    def _connection(self) -> sqlite3.Connection:
        if self._closed:
            raise StoreClosedError(f"{type(self).__name__} is closed")
        if self._conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            t = self._t
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute(f"PRAGMA synchronous={self._synchronous}")
                conn.execute("PRAGMA busy_timeout=5000")
                conn.execute(
                    f"CREATE TABLE IF NOT EXISTS {t} (request_id TEXT PRIMARY KEY,"
                    " client_id TEXT, status TEXT NOT NULL, created_at REAL NOT NULL,"
                    " record BLOB NOT NULL)"
                )
                conn.execute(f"CREATE INDEX IF NOT EXISTS {t}_created ON {t} (created_at)")
                conn.execute(
                    f"CREATE INDEX IF NOT EXISTS {t}_client ON {t} (client_id, created_at)"
                )
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
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    def _transaction(self, work: Callable[[sqlite3.Connection], Any]) -> Any:
        with immediate_transaction(self._connection()) as conn:
            return work(conn)

    def _load(self, conn: sqlite3.Connection, request_ids: Sequence[str]) -> dict[str, bytes]:
        found: dict[str, bytes] = {}
        for start in range(0, len(request_ids), _SQL_CHUNK):
            chunk = request_ids[start : start + _SQL_CHUNK]
            marks = ",".join("?" * len(chunk))
            found.update(
                conn.execute(
                    f"SELECT request_id, record FROM {self._t} WHERE request_id IN ({marks})",
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
        async with self._lock:
            await anyio.to_thread.run_sync(self._close_sync)


# ---------------------------------------------------------------------------------------------
# Redis

_LUA_RANKS: Final = "{" + ", ".join(f'["{s}"] = {r}' for s, r in sorted(_RANKS.items())) + "}"

# ARGV: prefix, now, window, ttl, then per record: namespaced key, request id, created_at,
# n, and n hash field/value arguments. Returns {position, HGETALL} of records that existed.
_BEGIN_LUA: Final = """
local prefix, now, window, ttl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local out = {}
local i, n = 5, 0
while i <= #ARGV do
  local dk = prefix .. ':k:' .. ARGV[i]
  local rid, created, count = ARGV[i + 1], ARGV[i + 2], tonumber(ARGV[i + 3])
  local first = i + 4
  i = first + count
  local found = false
  if not redis.call('SET', dk, ARGV[2] .. ' ' .. rid, 'NX', 'EX', ttl) then
    local cur = redis.call('GET', dk)
    local sp = cur and string.find(cur, ' ', 1, true)
    if sp and tonumber(string.sub(cur, 1, sp - 1)) > now - window then
      local fields = redis.call('HGETALL', prefix .. ':m:' .. string.sub(cur, sp + 1))
      if #fields > 0 then
        out[#out + 1] = {n, fields}
        found = true
      end
    end
    if not found then
      redis.call('SET', dk, ARGV[2] .. ' ' .. rid, 'EX', ttl)
    end
  end
  if not found then
    local mk = prefix .. ':m:' .. rid
    redis.call('DEL', mk)
    redis.call('HSET', mk, unpack(ARGV, first, first + count - 1))
    redis.call('EXPIRE', mk, ttl)
    redis.call('ZADD', KEYS[1], created, rid)
  end
  n = n + 1
end
return out
"""

# ARGV: prefix, now, then per event: request id, status, code, ids (JSON array or ""), parts,
# reason, account, possible duplicate ("1"/"0"), part-level ("1"/"0"), the event's JSON, and
# the ids' canonical keys (JSON array, parallel to ids, or ""): each id new to the message is
# indexed in ``{prefix}:i:{key}``, a hash of account → request id, expiring with the message.
_APPLY_LUA: Final = f"""
local RANK = {_LUA_RANKS}
local function rank(s) return RANK[s] or 0 end
local prefix, now = ARGV[1], ARGV[2]
local applied = 0
for i = 3, #ARGV, 11 do
  local rid = ARGV[i]
  local mk = prefix .. ':m:' .. rid
  local cur = redis.call('HGET', mk, 'status')
  if cur then
    applied = applied + 1
    local hk = prefix .. ':h:' .. rid
    redis.call('RPUSH', hk, ARGV[i + 9])
    local left = redis.call('TTL', mk)
    if left > 0 then redis.call('EXPIRE', hk, left) end
    local status = ARGV[i + 1]
    if ARGV[i + 8] == '0' and rank(status) >= rank(cur) then
      redis.call('HSET', mk, 'status', status, 'code', ARGV[i + 2])
      if ARGV[i + 5] ~= '' then
        redis.call('HSET', mk, 'reason', ARGV[i + 5])
      else
        redis.call('HDEL', mk, 'reason')
      end
      if ARGV[i + 4] ~= '' then redis.call('HSET', mk, 'parts', ARGV[i + 4]) end
      if ARGV[i + 6] ~= '' then redis.call('HSET', mk, 'account', ARGV[i + 6]) end
    end
    if ARGV[i + 3] ~= '' then
      local old = redis.call('HGET', mk, 'ids')
      local ids = {{}}
      if old and old ~= '' then ids = cjson.decode(old) end
      local seen = {{}}
      for _, v in ipairs(ids) do seen[v] = true end
      local changed = false
      local keys = cjson.decode(ARGV[i + 10])
      local account = redis.call('HGET', mk, 'account') or ''
      for n, v in ipairs(cjson.decode(ARGV[i + 3])) do
        if not seen[v] then
          ids[#ids + 1] = v
          seen[v] = true
          changed = true
          local key = keys[n]
          if key and key ~= '' then
            local ik = prefix .. ':i:' .. key
            redis.call('HSET', ik, account, rid)
            if left > 0 then redis.call('EXPIRE', ik, left) end
          end
        end
      end
      if changed then redis.call('HSET', mk, 'ids', cjson.encode(ids)) end
    end
    if ARGV[i + 7] == '1' then redis.call('HSET', mk, 'dup', '1') end
    redis.call('HSET', mk, 'updated', now)
  end
end
return applied
"""

# ARGV: prefix, now, status, request ids...
_MARK_LUA: Final = f"""
local RANK = {_LUA_RANKS}
local function rank(s) return RANK[s] or 0 end
local prefix, now, status = ARGV[1], ARGV[2], ARGV[3]
for i = 4, #ARGV do
  local mk = prefix .. ':m:' .. ARGV[i]
  local cur = redis.call('HGET', mk, 'status')
  if cur and rank(status) >= rank(cur) then
    redis.call('HSET', mk, 'status', status, 'updated', now)
  end
end
return 0
"""

# KEYS[1] the index; ARGV: prefix, older_than, how many at most. Returns how many went.
_PURGE_LUA: Final = """
local prefix = ARGV[1]
local rids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[2], 'LIMIT', 0,
  tonumber(ARGV[3]))
for _, rid in ipairs(rids) do
  local mk = prefix .. ':m:' .. rid
  local dk = prefix .. ':k:r:' .. rid
  local base = redis.call('HGET', mk, 'base')
  if base then
    local ok, rec = pcall(cjson.decode, base)
    if ok and type(rec) == 'table' and type(rec['clientId']) == 'string'
        and rec['clientId'] ~= '' then
      dk = prefix .. ':k:c:' .. rec['clientId']
    end
  end
  local cur = redis.call('GET', dk)
  local sp = cur and string.find(cur, ' ', 1, true)
  if sp and string.sub(cur, sp + 1) == rid then redis.call('DEL', dk) end
  redis.call('DEL', mk, prefix .. ':h:' .. rid)
  redis.call('ZREM', KEYS[1], rid)
end
return #rids
"""

_PURGE_CHUNK: Final = 1000
_HISTORY_CHUNK: Final = 200
_REDIS_BATCH: Final = 1000  # records or events per script call: no script runs for long


def _hash_fields(record: MessageRecord) -> list[str | bytes]:
    fields: list[str | bytes] = [
        "base",
        encode_record(record),
        "status",
        record.status,
        "code",
        str(record.code),
        "ids",
        msgspec.json.encode(record.message_ids) if record.message_ids else "",
        "parts",
        str(record.parts),
        "dup",
        "1" if record.possible_duplicate else "0",
        "updated",
        repr(record.updated_at),
    ]
    if record.reason is not None:
        fields += ["reason", record.reason]
    if record.account is not None:
        fields += ["account", record.account]
    return fields


def _record_from_hash(fields: Mapping[bytes, bytes]) -> MessageRecord | None:
    base = fields.get(b"base")
    if base is None:
        return None
    record = decode_record(base)
    record.status = fields[b"status"].decode()
    record.code = int(fields.get(b"code", b"0"))
    ids = fields.get(b"ids", b"")
    record.message_ids = msgspec.json.decode(ids, type=list[str]) if ids else []
    record.parts = int(fields.get(b"parts", b"0"))
    reason = fields.get(b"reason")
    record.reason = reason.decode() if reason is not None else None
    account = fields.get(b"account")
    record.account = account.decode() if account is not None else None
    record.possible_duplicate = fields.get(b"dup") == b"1"
    record.updated_at = float(fields.get(b"updated", b"0"))
    return record


def _pairs(flat: Sequence[bytes]) -> dict[bytes, bytes]:
    return dict(zip(flat[::2], flat[1::2], strict=True))


def _as_bytes(value: object) -> bytes:
    if isinstance(value, bytes):
        return value
    return str(value).encode()


class RedisMessageStore(_StoreBase):
    """Records in Redis, shared by every daemon on the same server (not Redis Cluster: a
    script touches the keys of many messages).

    Keys under ``prefix``: ``{prefix}:m:{request id}`` a hash per message, expiring after
    ``retention`` seconds (at least the dedup window); ``{prefix}:h:{request id}`` its
    history, a list of event JSON; ``{prefix}:k:c:{clientId}`` / ``{prefix}:k:r:{request
    id}`` the dedup key (``SET NX EX``, value "instant request-id": a key older than the
    window is taken over); ``{prefix}:idx`` a sorted set of request ids by ``created_at``.

    ``client_or_url``: a ``coredis.Redis`` the caller has entered, or a URL; with a URL the
    store makes its own client, which has to be entered and left in one task: use
    ``async with RedisMessageStore(url) as store`` or ``store = await
    RedisMessageStore.connect(url)`` ... ``await store.aclose()``.
    """

    def __init__(
        self,
        client_or_url: coredis.Redis[bytes] | str,
        prefix: str = "smpp-bridge",
        dedup_window: float = DEFAULT_DEDUP_WINDOW,
        *,
        retention: float = DEFAULT_RETENTION,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(dedup_window, clock)
        if not prefix:
            raise ValueError("prefix: empty")
        self.prefix = prefix
        self.retention = max(retention, dedup_window)
        self._ttl = max(1, math.ceil(self.retention))
        self._url: str | None = None
        self._client: coredis.Redis[bytes] | None = None
        self._stack: AsyncExitStack | None = None
        if isinstance(client_or_url, str):
            self._url = client_or_url
        else:
            self._client = client_or_url

    @classmethod
    async def connect(
        cls,
        url: str,
        prefix: str = "smpp-bridge",
        dedup_window: float = DEFAULT_DEDUP_WINDOW,
        *,
        retention: float = DEFAULT_RETENTION,
        clock: Callable[[], float] = time.time,
    ) -> RedisMessageStore:
        """A store over its own client for ``url``, connected now; ``aclose`` it from the
        same task."""
        store = cls(url, prefix, dedup_window, retention=retention, clock=clock)
        return await store.__aenter__()

    @property
    def index_key(self) -> str:
        return f"{self.prefix}:idx"

    @property
    def client(self) -> coredis.Redis[bytes]:
        self._check_open()
        if self._client is None:
            raise RuntimeError(
                "RedisMessageStore made from a URL is not connected: use it as `async with`, "
                "or make it with `await RedisMessageStore.connect(url)`"
            )
        return self._client

    async def __aenter__(self) -> Self:
        self._check_open()
        if self._url is not None and self._client is None:
            import coredis  # deferred: a fifth of a second to import, and only Redis users pay

            stack = AsyncExitStack()
            client: coredis.Redis[bytes] = coredis.Redis.from_url(
                self._url, decode_responses=False, connect_timeout=5.0, stream_timeout=30.0
            )
            await stack.enter_async_context(client)
            self._stack = stack
            self._client = client
        return self

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        stack, self._stack = self._stack, None
        if stack is not None:
            self._client = None
            await stack.aclose()

    async def _script(self, source: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        return await self.client.eval(source, keys=list(keys), args=list(args))

    async def begin(self, records: Sequence[MessageRecord]) -> dict[str, MessageRecord]:
        self._check_open()
        existing: dict[str, MessageRecord] = {}
        now = repr(self._clock())
        for start in range(0, len(records), _REDIS_BATCH):
            chunk = records[start : start + _REDIS_BATCH]
            args: list[Any] = [self.prefix, now, repr(self.dedup_window), self._ttl]
            for record in chunk:
                fields = _hash_fields(record)
                args += [
                    _namespaced_key(record),
                    record.request_id,
                    repr(record.created_at),
                    len(fields),
                    *fields,
                ]
            found = await self._script(_BEGIN_LUA, [self.index_key], args)
            for position, flat in found:
                earlier = _record_from_hash(_pairs(flat))
                if earlier is not None:
                    existing[chunk[int(position)].request_id] = earlier
        return existing

    async def mark(self, request_ids: Sequence[str], status: str) -> None:
        self._check_open()
        now = repr(self._clock())
        for start in range(0, len(request_ids), _REDIS_BATCH):
            chunk = list(request_ids[start : start + _REDIS_BATCH])
            await self._script(_MARK_LUA, [], [self.prefix, now, status, *chunk])

    async def apply(self, events: Sequence[Event]) -> None:
        self._check_open()
        relevant = [e for e in events if e.request_id is not None]
        now = repr(self._clock())
        for start in range(0, len(relevant), _REDIS_BATCH):
            chunk = relevant[start : start + _REDIS_BATCH]
            args: list[Any] = [self.prefix, now]
            for event, data in zip(chunk, encode_events(chunk), strict=True):
                ids = event_message_ids(event)
                args += [
                    event.request_id,
                    event.status,
                    str(event.code),
                    msgspec.json.encode(ids) if ids else "",
                    str(event.parts) if event.parts else "",
                    event.reason or "",
                    event.account or "",
                    "1" if event.possible_duplicate else "0",
                    "0" if event.segment is None else "1",
                    data,
                    msgspec.json.encode([canonical_id(i) for i in ids]) if ids else "",
                ]
            await self._script(_APPLY_LUA, [], args)

    async def get(self, key: str) -> tuple[MessageRecord, list[Event]] | None:
        self._check_open()
        client = self.client
        pointer = await client.get(f"{self.prefix}:k:c:{key}")
        request_ids = [key]
        if pointer is not None:
            request_ids.insert(0, pointer.split(b" ", 1)[1].decode())
        for request_id in request_ids:
            record = await self._record(request_id)
            if record is None:
                continue
            return record, await self._history_of(request_id)
        return None

    async def _record(self, request_id: str) -> MessageRecord | None:
        fields = await self.client.hgetall(f"{self.prefix}:m:{request_id}")
        return _record_from_hash({_as_bytes(k): _as_bytes(v) for k, v in fields.items()})

    async def _history_of(self, request_id: str) -> list[Event]:
        history = await self.client.lrange(f"{self.prefix}:h:{request_id}", 0, -1)
        return [decode_event(item) for item in history]

    async def get_by_message_id(
        self, message_id: str, account: str | None = None
    ) -> tuple[MessageRecord, list[Event]] | None:
        self._check_open()
        for key in message_id_keys(message_id):
            pointers = await self.client.hgetall(f"{self.prefix}:i:{key}")
            found: list[tuple[MessageRecord, str]] = []
            for indexed, request_id in pointers.items():
                record = await self._record(_as_bytes(request_id).decode())
                if record is not None:
                    found.append((record, _as_bytes(indexed).decode()))
            chosen = _pick(found, account)
            if chosen is not None:
                return chosen, await self._history_of(chosen.request_id)
        return None

    async def history(
        self, since: float | None, limit: int = 100, status: str | None = None
    ) -> list[MessageRecord]:
        from coredis.tokens import PureToken  # coredis is imported by now: a client exists

        self._check_open()
        client = self.client
        found: list[MessageRecord] = []
        stale: list[str] = []
        offset = 0
        chunk = max(_HISTORY_CHUNK, limit)
        while len(found) < limit:
            # ZRANGE ... BYSCORE [REV]: with REV the range is written from the top.
            members = await client.zrange(
                self.index_key,
                "+inf" if since is None else repr(since),
                "-inf" if since is None else "+inf",
                sortby=PureToken.BYSCORE,
                rev=since is None or None,
                offset=offset,
                count=chunk,
            )
            if not members:
                break
            request_ids = [_as_bytes(m).decode() for m in members]
            async with client.pipeline(transaction=False) as pipe:
                requests = [pipe.hgetall(f"{self.prefix}:m:{rid}") for rid in request_ids]
            for rid, request in zip(request_ids, requests, strict=True):
                fields = await request
                record = _record_from_hash({_as_bytes(k): _as_bytes(v) for k, v in fields.items()})
                if record is None:
                    stale.append(rid)  # expired: its index entry goes too
                elif status is None or record.status == status:
                    found.append(record)
                    if len(found) == limit:
                        break
            if len(members) < chunk:
                break
            offset += chunk
        if stale:
            await client.zrem(self.index_key, stale)
        return found if since is not None else found[::-1]

    async def purge(self, older_than: float) -> int:
        self._check_open()
        total = 0
        while True:
            count = int(
                await self._script(
                    _PURGE_LUA, [self.index_key], [self.prefix, repr(older_than), _PURGE_CHUNK]
                )
            )
            total += count
            if count < _PURGE_CHUNK:
                break
        if total:
            log.info("purged messages", count=total, older_than=older_than)
        return total


# ---------------------------------------------------------------------------------------------
# Factory


@asynccontextmanager
async def open_message_store(
    backend: Literal["sqlite", "redis", "memory"],
    *,
    path: str | Path | None = None,
    url: str | None = None,
    prefix: str = "smpp-bridge",
    dedup_window: float = DEFAULT_DEDUP_WINDOW,
    retention: float = DEFAULT_RETENTION,
) -> AsyncIterator[MessageStore]:
    """A message store of ``backend``, open for the duration of the block."""
    store: SqliteMessageStore | RedisMessageStore | MemoryMessageStore
    if backend == "sqlite":
        if path is None:
            raise ValueError("store.path: the sqlite backend needs a path")
        store = SqliteMessageStore(path, dedup_window)
    elif backend == "redis":
        if url is None:
            raise ValueError("store.url: the redis backend needs a url")
        store = RedisMessageStore(url, prefix, dedup_window, retention=retention)
    elif backend == "memory":
        store = MemoryMessageStore(dedup_window)
    else:
        raise ValueError(f"store.backend: unknown {backend!r} (known: sqlite, redis, memory)")
    async with store:
        yield store


__all__ = [
    "DEFAULT_DEDUP_WINDOW",
    "DEFAULT_RETENTION",
    "QUEUED",
    "SUBMITTING",
    "MemoryMessageStore",
    "MessageRecord",
    "MessageStore",
    "RedisMessageStore",
    "SqliteMessageStore",
    "StoreClosedError",
    "decode_record",
    "encode_record",
    "event_message_ids",
    "marked",
    "merge_event",
    "message_id_keys",
    "open_message_store",
    "status_rank",
]
