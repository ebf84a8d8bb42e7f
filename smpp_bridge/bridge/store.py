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
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Final, Protocol

import anyio
import anyio.lowlevel
import anyio.to_thread
import msgspec
import structlog

from ..codec.status import RANK, Status, status_rank
from ..pool import canonical_id, possible_keys
from ..storage.closable import ClosableStore
from .envelope import Event

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

__all__ = [
    "DEFAULT_DEDUP_WINDOW",
    "DEFAULT_RETENTION",
    "QUEUED",
    "SUBMITTING",
    "MemoryMessageStore",
    "MessageRecord",
    "MessageStore",
    "decode_record",
    "encode_record",
    "event_message_ids",
    "marked",
    "merge_event",
    "message_id_keys",
    "status_rank",
]
