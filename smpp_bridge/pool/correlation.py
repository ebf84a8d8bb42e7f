"""Correlation: from an SMSC message_id back to the request it came from.

Every accepted part gets a ``CorrelationRecord`` stored under its account and the *canonical*
form of the message_id the SMSC returned in ``submit_sm_resp`` (trimmed, lower case, leading
zeros stripped). A receipt names the message in its own way, which for some SMSCs is another
base: hex in the response and decimal in the receipt, or the reverse.
``MessageIdResolver`` (in ``message_ids``) turns a receipt's id into the one key to look up,
per account, and is re-exported here.

Stores (``CorrelationStore``) work in batches: one ``put_many`` per settled batch, one
``get_many`` per batch of receipts. Backends: ``MemoryCorrelationStore`` (bounded, one process),
``SqliteCorrelationStore`` (embedded default, WAL) and ``RedisCorrelationStore`` (several
daemons sharing one Redis; ``SET key value EX ttl`` per record, ``MGET`` for lookups). Each
also keeps parked receipts (``ParkingStore``): receipts that came before their mapping and were
already acknowledged to the SMSC, kept until they are published, so a restart loses none.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final, Protocol, TypeVar, runtime_checkable

import anyio
import anyio.lowlevel
import anyio.to_thread
import msgspec

from ..codec.receipt import Receipt
from ..storage.closable import ClosableStore
from .message_ids import (
    DEFAULT_DECIDE_AFTER,
    Conversion,
    IdMode,
    IdSightings,
    MessageIdResolver,
    canonical_id,
    convert_id,
    possible_keys,
    unambiguous_key,
)

DEFAULT_TTL_DAYS: Final = 7
DEFAULT_TTL: Final = DEFAULT_TTL_DAYS * 86400.0  # seconds; receipts can take days to come
# The key in ``CorrelationRecord.meta`` that makes a record the tombstone of a settled part
# (``pool.dlr.settled_record``); its value is the stat that settled it.
SETTLED_META: Final = "settled"
# The key in ``CorrelationRecord.meta`` of a part whose final receipt is being published
# (``pool.dlr.settling_record``): written before the publication, replaced by the tombstone
# after it. Found after a crash, it means "maybe published already".
SETTLING_META: Final = "settling"

R = TypeVar("R")


class CorrelationRecord(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """One accepted part: what its SMSC message_id leads back to.

    ``message_id`` is kept as the SMSC returned it (events show it as the user saw it in the
    ``sent`` outcome); ``part`` is the 0-based index of the part in its message and ``parts``
    the message's number of parts; ``submitted_at`` is wall-clock seconds since the epoch.
    """

    account: str
    message_id: str
    request_id: str
    client_id: str | None = None
    part: int = 0
    parts: int = 1
    submitted_at: float = 0.0
    meta: dict[str, Any] = msgspec.field(default_factory=dict)

    @property
    def key(self) -> str:
        """The canonical key this record is stored under."""
        return canonical_id(self.message_id)


_RECORD_ENCODER: Final = msgspec.json.Encoder()
_RECORD_DECODER: Final = msgspec.json.Decoder(CorrelationRecord)


def encode_record(record: CorrelationRecord) -> bytes:
    return _RECORD_ENCODER.encode(record)


def decode_record(data: bytes) -> CorrelationRecord:
    return _RECORD_DECODER.decode(data)


class ParkedReceipt(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """A receipt that came before its mapping, as a ``ParkingStore`` keeps it until it is
    matched or given up: the SMSC was told we have it, so a restart must not lose it.

    ``key`` names it among its owner's; ``arrived_at`` is wall-clock seconds since the epoch.
    """

    key: str
    account: str
    receipt: Receipt
    bind: str | None = None
    arrived_at: float = 0.0


_PARKED_ENCODER: Final = msgspec.json.Encoder()
_PARKED_DECODER: Final = msgspec.json.Decoder(ParkedReceipt)


def encode_parked(parked: ParkedReceipt) -> bytes:
    return _PARKED_ENCODER.encode(parked)


def decode_parked(data: bytes) -> ParkedReceipt:
    return _PARKED_DECODER.decode(data)


class CorrelationStore(Protocol):
    """Batch interface of every correlation backend.

    ``put_many`` stores records under (account, canonical submit id), replacing what was
    there, for ``ttl`` seconds (the store's default when None). ``get_many`` takes receipt
    ids as the SMSC wrote them and returns, for those that resolve, receipt id → record.
    ``delete_many`` takes submit ids (a record's ``message_id``).

    Every backend lets its resolver see the ids go by, for ``auto``: ``put_many`` calls
    ``resolver.observe_records(records)``, and ``get_many`` calls
    ``resolver.observe_receipt_ids(account, message_ids)`` before ``resolver.lookup_keys``.
    """

    @property
    def resolver(self) -> MessageIdResolver: ...

    async def put_many(
        self, records: Sequence[CorrelationRecord], ttl: float | None = None
    ) -> None: ...

    async def get_many(
        self, account: str, message_ids: Sequence[str]
    ) -> dict[str, CorrelationRecord]: ...

    async def delete_many(self, account: str, message_ids: Sequence[str]) -> None: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class ParkingStore(Protocol):
    """Parked receipts kept across restarts, per owner (the pool instance that parked them:
    several daemons sharing one store each have their own).

    A pool saves each receipt it parks with ``park_many`` before it answers the SMSC, deletes
    it with ``unpark_many`` once it is published (matched or unmatched), and at start parks
    again what ``load_parked`` gives back. Every backend here implements it.
    """

    async def park_many(self, owner: str, parked: Sequence[ParkedReceipt]) -> None: ...

    async def unpark_many(self, owner: str, keys: Sequence[str]) -> None: ...

    async def load_parked(self, owner: str) -> list[ParkedReceipt]: ...


# Seconds between two reads of the decisions kept in a durable store, while a receipt of an
# undecided ``auto`` account waits (another daemon may have decided it meanwhile).
DECISIONS_RELOAD: Final = 1.0


class _StoreBase(ClosableStore):
    """What every correlation backend shares: the resolver and the default TTL."""

    def __init__(self, ttl: float, resolver: MessageIdResolver | None) -> None:
        if ttl <= 0:
            raise ValueError("ttl must be positive")
        self.ttl = ttl
        self.resolver = resolver if resolver is not None else MessageIdResolver()
        self._decisions_saved = 0  # resolver.decisions when they were last written
        self._decisions_read_at = -math.inf  # monotonic

    # Durable backends keep ``auto``'s decisions, so that a restarted daemon (or one that only
    # receives) matches receipts of messages sent before at once, instead of parking them
    # until it has seen ``decide_after`` ids of its own, or past ``unmatched_after``.

    async def _read_decisions(self) -> dict[str, str]:
        return {}

    async def _write_decisions(self, decisions: dict[str, str]) -> None:
        pass

    async def _sync_decisions(self, account: str | None = None) -> None:
        """Write what this process decided since the last write; and when ``account`` (about
        to be looked up) is an undecided ``auto`` one, read what the store knows (at most
        once per ``DECISIONS_RELOAD``)."""
        resolver = self.resolver
        if resolver.decisions != self._decisions_saved:
            upto = resolver.decisions
            decided = resolver.decided()
            since = resolver.decided_since(self._decisions_saved)
            await self._write_decisions({a: decided[a].value for a in since if a in decided})
            # Only once written: a failed write is made again by the call's retry.
            self._decisions_saved = max(self._decisions_saved, upto)
        if account is not None and resolver.conversion(account) is None:
            now = time.monotonic()
            if now - self._decisions_read_at >= DECISIONS_RELOAD:
                self._decisions_read_at = now
                # (What is adopted is written back once with the next write: harmless.)
                resolver.adopt(await self._read_decisions())


class MemoryCorrelationStore(_StoreBase):
    """Correlations in a dict: for tests, the library without a daemon, and single processes
    that accept losing mappings on restart. At most ``max_entries`` records (the oldest stored
    go first); TTL checked on read against ``clock`` (monotonic by default)."""

    def __init__(
        self,
        *,
        ttl: float = DEFAULT_TTL,
        max_entries: int = 1_000_000,
        resolver: MessageIdResolver | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(ttl, resolver)
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.max_entries = max_entries
        self._clock = clock
        # Insertion order is age order: a re-put moves the key to the end.
        self._entries: dict[tuple[str, str], tuple[CorrelationRecord, float]] = {}
        self._parked: dict[str, dict[str, ParkedReceipt]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def count(self, *, settled: bool) -> int:
        """Records kept that are (``settled``) or are not tombstones of settled parts (see
        ``pool.dlr.settled_record``): what still waits for receipts is ``count(settled=False)``."""
        return sum(
            bool(record.meta and SETTLED_META in record.meta) is settled
            for record, _ in self._entries.values()
        )

    def put(self, records: Iterable[CorrelationRecord], ttl: float | None = None) -> None:
        """Synchronous ``put_many``."""
        self._check_open()
        if not isinstance(records, Sequence):
            records = list(records)
        self.resolver.observe_records(records)
        now = self._clock()
        expires = now + (self.ttl if ttl is None else ttl)
        entries = self._entries
        for record in records:
            slot = (record.account, record.key)
            entries.pop(slot, None)
            entries[slot] = (record, expires)
        # Expired entries at the old end go first; then the oldest, down to the bound.
        while entries:
            oldest = next(iter(entries))
            if entries[oldest][1] > now and len(entries) <= self.max_entries:
                break
            del entries[oldest]

    def get(self, account: str, message_ids: Sequence[str]) -> dict[str, CorrelationRecord]:
        """Synchronous ``get_many``."""
        self._check_open()
        resolver = self.resolver
        resolver.observe_receipt_ids(account, message_ids)
        now = self._clock()
        entries = self._entries
        found: dict[str, CorrelationRecord] = {}
        # ``lookup_keys`` then ``resolve_many`` in one pass: one key per id, worked out once.
        key_for = resolver.key_for
        for receipt_id in message_ids:
            if receipt_id in found:
                continue
            key = key_for(account, receipt_id)
            if key is None:
                resolver.deferred += 1
                continue
            slot = (account, key)
            entry = entries.get(slot)
            if entry is None:
                continue
            if entry[1] <= now:
                del entries[slot]
                continue
            found[receipt_id] = entry[0]
        return found

    def delete(self, account: str, message_ids: Iterable[str]) -> None:
        """Synchronous ``delete_many``."""
        self._check_open()
        for message_id in message_ids:
            self._entries.pop((account, canonical_id(message_id)), None)

    async def put_many(
        self, records: Sequence[CorrelationRecord], ttl: float | None = None
    ) -> None:
        await anyio.lowlevel.checkpoint()
        self.put(records, ttl)

    async def get_many(
        self, account: str, message_ids: Sequence[str]
    ) -> dict[str, CorrelationRecord]:
        await anyio.lowlevel.checkpoint()
        return self.get(account, message_ids)

    async def delete_many(self, account: str, message_ids: Sequence[str]) -> None:
        await anyio.lowlevel.checkpoint()
        self.delete(account, message_ids)

    # -- parked receipts (kept as long as this object: nothing survives the process)

    async def park_many(self, owner: str, parked: Sequence[ParkedReceipt]) -> None:
        await anyio.lowlevel.checkpoint()
        self._check_open()
        kept = self._parked.setdefault(owner, {})
        for item in parked:
            kept[item.key] = item

    async def unpark_many(self, owner: str, keys: Sequence[str]) -> None:
        await anyio.lowlevel.checkpoint()
        self._check_open()
        kept = self._parked.get(owner, {})
        for key in keys:
            kept.pop(key, None)

    async def load_parked(self, owner: str) -> list[ParkedReceipt]:
        await anyio.lowlevel.checkpoint()
        self._check_open()
        return list(self._parked.get(owner, {}).values())


__all__ = [
    "DEFAULT_DECIDE_AFTER",
    "DEFAULT_TTL",
    "DEFAULT_TTL_DAYS",
    "SETTLED_META",
    "SETTLING_META",
    "Conversion",
    "CorrelationRecord",
    "CorrelationStore",
    "IdMode",
    "IdSightings",
    "MemoryCorrelationStore",
    "MessageIdResolver",
    "ParkedReceipt",
    "ParkingStore",
    "canonical_id",
    "convert_id",
    "decode_parked",
    "decode_record",
    "encode_parked",
    "encode_record",
    "possible_keys",
    "unambiguous_key",
]
