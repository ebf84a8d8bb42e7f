"""Delivery receipts to events: correlation, parking, expiry and multipart status.

Pure: no I/O, no clock (``now`` is the caller's monotonic clock, event times are passed in).
The pool drives it in this order:

1. A batch of receipts arrives on a bind. The pool does one ``store.get_many(account, ids)``
   and hands the batch and what was found to ``receipts_arrived``: found ones become
   ``DlrEvent`` s at once; the others are *parked* (a receipt can beat its ``submit_sm_resp``,
   or the mapping can still be on its way to the store).
2. When the pool has stored a batch of mappings it calls ``mappings_stored(records, now)``:
   parked receipts that name one of them come out matched.
3. From a timer: ``relookups_due(now)`` lists the parked receipt ids worth another
   ``get_many`` (a mapping stored by another daemon, or an id that reads differently in hex and
   decimal, which an ``auto`` account matches only once its conversion is decided); the pool
   fetches them and calls ``receipts_found``. Each parked receipt is looked up again on a
   schedule (by default 1, 5, 15 and 60 s after arrival, then every 60 s) until it is matched or
   expires, and at once when ``auto`` decides its account. ``expire(now)`` gives up on receipts
   parked longer than ``unmatched_after``: they come out as *unmatched* events, published all the
   same, never dropped. ``next_deadline()`` says when to call again.

Parking is bounded (``max_parked``): past it the oldest parked receipt comes out unmatched.
A journaling correlator also lists what it parked and unparked (``take_parking_changes``) for
a store that keeps parked receipts across restarts, and parks again what such a store kept
(``restore``). With ``recent_settled`` it remembers the records of the last receipts that
settled their part, so a repeated receipt still finds its message after the caller deleted the
mapping.

A receipt for a part already settled (the same SMSC id again: redelivered after a dropped
connection whose deliver_sm_resp never went out, sent twice by a buggy SMSC, on any bind) is
recognised and not published again; ``duplicates`` counts them. A part is known settled from
memory (the last ``recent_settled`` parts) or from its record: the caller replaces a settled
part's mapping by a *tombstone* (``settled_record``), which outlives that memory. A receipt
for a settled part is a duplicate whatever its stat, so an intermediate receipt after a final
one never regresses the part; so is a receipt parked while an identical one (same id, same
stat) is already parked. A durable caller marks a part's record ``settling_record`` before it
publishes the final receipt: a repeat that finds that mark and is unknown to this correlator
(the publisher died before the tombstone and the deliver_sm_resp) comes out again, flagged
``possible_duplicate``.
Every matched event also carries the message-level status of its message
(``MessageStatusTracker``): one part of a multipart message failing fails the message, all
parts delivered delivers it, anything in between is ``buffered``.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import msgspec

from ..codec.receipt import FINAL_STATS, Receipt
from .correlation import (
    SETTLED_META,
    SETTLING_META,
    CorrelationRecord,
    MessageIdResolver,
    ParkedReceipt,
    possible_keys,
)
from .message_status import (
    FAILURE_STATUSES,
    FINAL_STATUSES,
    MessageStatus,
    MessageStatusTracker,
    aggregate_status,
)

DEFAULT_UNMATCHED_AFTER: Final = 120.0
DEFAULT_MAX_PARKED: Final = 100_000
# Seconds after arrival at which a parked receipt is looked up again; then every last interval.
DEFAULT_RELOOKUP_AFTER: Final = (1.0, 5.0, 15.0, 60.0)

# Final stats after which no other receipt for the part is expected, so its mapping may go.
# Not ACCEPTD: many SMSCs send it and later the real outcome.
SETTLED_STATS: Final = FINAL_STATS - {"ACCEPTD"}


def settled_record(record: CorrelationRecord, stat: str) -> CorrelationRecord:
    """The tombstone of a settled part: the least of its record (no client_id, no meta of
    its own), marked with the stat that settled it. Stored in place of the mapping, it lets a
    repeated receipt be recognised after the correlator's memory of recent parts has moved on
    (and by another daemon, or after a restart). Tombstones of one stat share one ``meta``
    dict: read it, never change it."""
    meta = _SETTLED_METAS.get(stat)
    if meta is None:
        meta = _SETTLED_METAS[stat] = {SETTLED_META: stat}
    return CorrelationRecord(
        account=record.account,
        message_id=record.message_id,
        request_id=record.request_id,
        part=record.part,
        parts=record.parts,
        meta=meta,
    )


_SETTLED_METAS: dict[str, dict[str, Any]] = {}


def settling_record(record: CorrelationRecord, stat: str) -> CorrelationRecord:
    """``record`` marked as having its final receipt (``stat``) published now: the caller
    stores it *before* publishing and the tombstone (``settled_record``) after. A process that
    dies in between (before the SMSC got its deliver_sm_resp, so the receipt comes again)
    leaves this mark, and the repeat is published once more flagged ``possible_duplicate``
    instead of as new: a crash costs a flagged duplicate, never a silent one (nor a lost
    receipt, which writing the tombstone first would risk)."""
    return msgspec.structs.replace(record, meta={**record.meta, SETTLING_META: stat})


def is_settled(record: CorrelationRecord) -> bool:
    """Whether ``record`` is a tombstone (``settled_record``)."""
    return bool(record.meta) and SETTLED_META in record.meta


def iso_utc(moment: float | datetime) -> str:
    """ISO-8601 in UTC with milliseconds and ``Z``: ``2026-04-21T10:15:00.000Z``. A float is
    seconds since the epoch; a naive datetime is taken as UTC."""
    if isinstance(moment, datetime):
        dt = moment.astimezone(UTC) if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    else:
        dt = datetime.fromtimestamp(moment, UTC)
    return f"{dt:%Y-%m-%dT%H:%M:%S}.{dt.microsecond // 1000:03d}Z"


class DlrEvent(msgspec.Struct, frozen=True, gc=False):
    """One receipt, correlated (``record`` set) or given up on (``record`` None, ``reason``
    says why). ``status``/``code`` are the receipt's (this part's); ``message`` is the
    message-level status after it (None when unmatched)."""

    account: str
    receipt: Receipt
    record: CorrelationRecord | None
    bind: str | None
    arrived_at: float
    message: MessageStatus | None = None
    reason: str | None = None
    # Its part was found marked ``settling_record`` by a process that is gone: this receipt
    # may have been published before (by that process, which crashed before answering it).
    possible_duplicate: bool = False

    @property
    def matched(self) -> bool:
        return self.record is not None

    @property
    def smsc_message_id(self) -> str:
        """The id the receipt itself carried (for an unmatched receipt, all there is)."""
        return self.receipt.message_id

    @property
    def status(self) -> str:
        return self.receipt.status

    @property
    def code(self) -> int:
        return self.receipt.error_code

    @property
    def message_id(self) -> str:
        """The SMSC id as the user saw it in the ``sent`` outcome (the receipt's if unmatched)."""
        return self.record.message_id if self.record is not None else self.receipt.message_id

    @property
    def client_id(self) -> str | None:
        return self.record.client_id if self.record is not None else None

    @property
    def request_id(self) -> str | None:
        return self.record.request_id if self.record is not None else None


@dataclass(slots=True, eq=False)
class _Parked:
    serial: int
    account: str
    receipt: Receipt
    bind: str | None
    arrived_at: float
    keys: tuple[str, ...]
    relookups: int = 0
    key: str = ""  # its name in a parked-receipt store (journaling correlators only)


class ReceiptCorrelator:
    """Matches receipts to records, parks the early ones, gives up on the hopeless ones.

    ``resolver`` should be the correlation store's (``store.resolver``), so that parked
    receipts are matched by the same rules and the same decided conversions as lookups, and
    are looked up again as soon as the store's observations decide their account. Matching
    goes through ``resolver.resolve`` only, which tries at most one key per receipt id: a
    receipt is never matched to a record its account's conversion does not lead to.

    ``recent_settled``: how many of the last receipts that settled their part (``SETTLED_STATS``)
    to remember with their record, so that a repeated receipt is matched even after the
    mapping was deleted from the store (0: none).

    ``journal``: keep a list of the receipts parked and unparked since the last
    ``take_parking_changes``, for a caller that keeps parked receipts in a store (so that a
    restart does not lose receipts the SMSC was already told we had); each is named
    ``key_prefix`` + its serial. ``restore`` parks again what such a store kept.
    """

    def __init__(
        self,
        *,
        unmatched_after: float = DEFAULT_UNMATCHED_AFTER,
        max_parked: int = DEFAULT_MAX_PARKED,
        resolver: MessageIdResolver | None = None,
        tracker: MessageStatusTracker | None = None,
        relookup_after: Sequence[float] = DEFAULT_RELOOKUP_AFTER,
        recent_settled: int = 0,
        journal: bool = False,
        key_prefix: str = "",
    ) -> None:
        if unmatched_after <= 0 or max_parked < 1:
            raise ValueError("unmatched_after must be positive and max_parked at least 1")
        if not relookup_after or any(d <= 0 for d in relookup_after):
            raise ValueError("relookup_after must be positive delays")
        if recent_settled < 0:
            raise ValueError("recent_settled must not be negative")
        self.recent_settled = recent_settled
        self._recent: dict[tuple[str, str], CorrelationRecord] = {}
        # Its keys oldest first: the dict's own order would do, but finding its first live
        # entry after many deletions at the front costs a scan over them.
        self._recent_order: deque[tuple[tuple[str, str], tuple[str, str]]] = deque()
        # The settled parts of ``_recent``, by (account, record key): a repeat whose mapping
        # is still in the store (or in flight to it) is recognised too.
        # (Each with its request id and part: a mapping stored again for the same part is no
        # new message.)
        self._settled_keys: dict[tuple[str, str], tuple[str, int]] = {}
        self.duplicates = 0  # receipts recognised as repeats, not published
        self.journal = journal
        self.key_prefix = key_prefix
        self._unsaved: dict[int, _Parked] = {}  # parked since the last take, in order
        self._released: list[str] = []  # keys of saved ones unparked since the last take
        self.unmatched_after = unmatched_after
        self.max_parked = max_parked
        self.resolver = resolver if resolver is not None else MessageIdResolver()
        self.tracker = tracker if tracker is not None else MessageStatusTracker()
        self.relookup_after = tuple(sorted(relookup_after))
        self._serial = 0
        # Arrival order is expiry order (one timeout for all): the first entry expires first.
        self._parked: dict[int, _Parked] = {}
        self._by_key: dict[tuple[str, str], dict[int, None]] = {}
        self._by_id: dict[tuple[str, str], dict[int, None]] = {}
        self._relookups: list[tuple[float, int, int]] = []  # (when, serial, relookups done)
        self._decisions_seen = self.resolver.decisions

    @property
    def parked(self) -> int:
        return len(self._parked)

    # -- receipts in

    def receipts_arrived(
        self,
        account: str,
        receipts: Sequence[Receipt],
        found: Mapping[str, CorrelationRecord],
        now: float,
        *,
        bind: str | None = None,
    ) -> list[DlrEvent]:
        """A batch of receipts and what ``get_many`` found for their ids (receipt id →
        record): events for the found ones (after any earlier parked receipt for the same
        id), the rest parked. Parking past ``max_parked`` pushes the oldest out unmatched."""
        events: list[DlrEvent] = []
        matched = self._matched
        for receipt in receipts:
            record = found.get(receipt.message_id)
            if record is not None and not self._parked:
                # The common case, without the detours below.
                event = matched(account, receipt, record, bind, now)
                if event is not None:
                    events.append(event)
            else:
                events.extend(self.receipt_arrived(account, receipt, record, now, bind=bind))
        return events

    def receipt_arrived(
        self,
        account: str,
        receipt: Receipt,
        record: CorrelationRecord | None,
        now: float,
        *,
        bind: str | None = None,
    ) -> list[DlrEvent]:
        """One receipt and its looked-up record (None: not found)."""
        if record is None and self._recent:
            # A repeat of a receipt that settled its part, whose mapping may be gone.
            record = self._recent.get((account, receipt.message_id))
        if record is not None:
            events = self._release_id(account, receipt.message_id, record) if self._parked else []
            event = self._matched(account, receipt, record, bind, now)
            if event is not None:
                events.append(event)
            return events
        return self._park(account, receipt, bind, now)

    def unpublished(self, events: Iterable[DlrEvent]) -> None:
        """Events the caller could not publish (its handler raised): each receipt is parked
        again, as it arrived (its deliver_sm may have been answered, so the SMSC need not send
        it again), and the part it settled is no longer taken as settled: it comes out at its
        next relookup (or expiry), and a repeat from the SMSC meanwhile is no duplicate of a
        published one. Parking may go past ``max_parked`` by these."""
        for event in events:
            account, record = event.account, event.record
            if record is not None:
                self._recent.pop((account, event.receipt.message_id), None)
                slot = (account, record.key)
                if self._settled_keys.get(slot) == (record.request_id, record.part):
                    del self._settled_keys[slot]
            self._park(account, event.receipt, event.bind, event.arrived_at, bounded=False)

    def _park(
        self,
        account: str,
        receipt: Receipt,
        bind: str | None,
        now: float,
        *,
        bounded: bool = True,
    ) -> list[DlrEvent]:
        events: list[DlrEvent] = []
        same = self._by_id.get((account, receipt.message_id))
        if same and any(self._parked[s].receipt.stat == receipt.stat for s in same):
            # The very receipt is parked already (sent twice before its mapping came).
            self.duplicates += 1
            return events
        while bounded and len(self._parked) >= self.max_parked:
            oldest = self._parked[next(iter(self._parked))]
            self._unpark(oldest)
            events.append(self._unmatched(oldest, "parking full: no mapping in time"))
        self._serial += 1
        # Indexed under every key any conversion could give, so that a mapping stored later
        # finds it even if the account's conversion is decided meanwhile; ``resolve`` then
        # applies the rules in force at match time.
        keys = possible_keys(receipt.message_id)
        parked = _Parked(self._serial, account, receipt, bind, now, keys)
        if self.journal:
            parked.key = f"{self.key_prefix}{parked.serial}"
            self._unsaved[parked.serial] = parked
        self._index(parked)
        heapq.heappush(self._relookups, (now + self.relookup_after[0], parked.serial, 0))
        return events

    def _index(self, parked: _Parked) -> None:
        account = parked.account
        self._parked[parked.serial] = parked
        for key in parked.keys:
            self._by_key.setdefault((account, key), {})[parked.serial] = None
        self._by_id.setdefault((account, parked.receipt.message_id), {})[parked.serial] = None

    def _unpark(self, parked: _Parked) -> None:
        del self._parked[parked.serial]
        if self.journal and self._unsaved.pop(parked.serial, None) is None:
            self._released.append(parked.key)
        for key in parked.keys:
            slot = (parked.account, key)
            serials = self._by_key[slot]
            del serials[parked.serial]
            if not serials:
                del self._by_key[slot]
        slot = (parked.account, parked.receipt.message_id)
        serials = self._by_id[slot]
        del serials[parked.serial]
        if not serials:
            del self._by_id[slot]

    def _release_id(
        self, account: str, receipt_id: str, record: CorrelationRecord
    ) -> list[DlrEvent]:
        """Parked receipts with exactly this id, matched to ``record``, oldest first."""
        serials = self._by_id.get((account, receipt_id))
        if not serials:
            return []
        events: list[DlrEvent] = []
        for serial in list(serials):
            parked = self._parked[serial]
            self._unpark(parked)
            event = self._matched(account, parked.receipt, record, parked.bind, parked.arrived_at)
            if event is not None:
                events.append(event)
        return events

    # -- mappings in

    def mappings_stored(self, records: Iterable[CorrelationRecord], now: float) -> list[DlrEvent]:
        """Mappings just stored: parked receipts they resolve come out matched, in arrival
        order. Those the resolver has no key for yet (an ``auto`` account not decided, an id
        that reads differently in hex and decimal) stay parked."""
        if self._settled_keys:
            # A fresh mapping under a settled key: the SMSC reuses its ids; a receipt for the
            # new message is no repeat of the old one's.
            settled = self._settled_keys
            for record in records:
                slot = (record.account, record.key)
                was = settled.get(slot)
                if was is not None and was != (record.request_id, record.part):
                    del settled[slot]
        if not self._parked:
            return []
        by_account: dict[str, dict[str, CorrelationRecord]] = {}
        for record in records:
            by_account.setdefault(record.account, {})[record.key] = record
        candidates: dict[int, None] = {}
        for account, keyed in by_account.items():
            for key in keyed:
                candidates.update(self._by_key.get((account, key), {}))
        events: list[DlrEvent] = []
        for serial in sorted(candidates):
            parked = self._parked.get(serial)
            if parked is None:
                continue  # released with an earlier one of the same id
            found = by_account[parked.account]
            match = self.resolver.resolve(parked.account, parked.receipt.message_id, found)
            if match is None:
                continue
            # Earlier receipts with the same id go first, this one among them.
            events.extend(self._release_id(parked.account, parked.receipt.message_id, match))
        return events

    def relookups_due(self, now: float) -> dict[str, list[str]]:
        """Parked receipt ids to look up again, per account (each id once); each receipt's
        next relookup is scheduled as it is returned. Every parked receipt of an account that
        ``auto`` decided since the last call is due at once."""
        due: dict[str, dict[str, None]] = {}
        heap = self._relookups
        self._bring_forward_decided(now)
        while heap and heap[0][0] <= now:
            _, serial, done = heapq.heappop(heap)
            parked = self._parked.get(serial)
            if parked is None or parked.relookups != done:
                continue
            due.setdefault(parked.account, {})[parked.receipt.message_id] = None
            parked.relookups += 1
            schedule = self.relookup_after
            n = parked.relookups
            if n < len(schedule):
                at = parked.arrived_at + schedule[n]
            else:
                at = parked.arrived_at + schedule[-1] * (n - len(schedule) + 2)
            # A caller that came late gets the next one a full first step later, not at once.
            heapq.heappush(heap, (max(at, now + schedule[0]), serial, n))
        return {account: list(ids) for account, ids in due.items()}

    def _bring_forward_decided(self, now: float) -> None:
        """A relookup now for the parked receipts of accounts decided since the last look
        (the entry they had becomes stale: ``relookups`` moves past it)."""
        resolver = self.resolver
        if resolver.decisions == self._decisions_seen:
            return
        decided = set(resolver.decided_since(self._decisions_seen))
        self._decisions_seen = resolver.decisions
        for parked in self._parked.values():
            if parked.account in decided:
                heapq.heappush(self._relookups, (now, parked.serial, parked.relookups))

    def receipts_found(
        self, account: str, found: Mapping[str, CorrelationRecord], now: float
    ) -> list[DlrEvent]:
        """What a relookup's ``get_many`` found (receipt id → record): those parked receipts
        come out matched."""
        events: list[DlrEvent] = []
        for receipt_id, record in found.items():
            events.extend(self._release_id(account, receipt_id, record))
        events.sort(key=lambda e: e.arrived_at)
        return events

    # -- a store of parked receipts

    @property
    def parking_changed(self) -> bool:
        """Whether ``take_parking_changes`` has anything to give."""
        return bool(self._unsaved or self._released)

    def take_parking_changes(self, wall_offset: float) -> tuple[list[ParkedReceipt], list[str]]:
        """What changed since the last call, for a journaling correlator: the receipts parked
        (to save; arrival times made wall-clock by adding ``wall_offset``) and the keys of
        saved ones that came out since (to delete). A receipt parked and released in between
        is in neither."""
        unsaved = [
            ParkedReceipt(
                key=p.key,
                account=p.account,
                receipt=p.receipt,
                bind=p.bind,
                arrived_at=p.arrived_at + wall_offset,
            )
            for p in self._unsaved.values()
        ]
        self._unsaved.clear()
        released, self._released = self._released, []
        return unsaved, released

    def restore(self, saved: Iterable[ParkedReceipt], now: float, wall: float) -> None:
        """Park again receipts a store kept (``take_parking_changes``), before any other
        receipt arrives: each keeps its key and its age (``wall`` is the wall clock at
        ``now``), and is looked up again at once; the too old expire at the next ``expire``."""
        for item in sorted(saved, key=lambda p: p.arrived_at):
            self._serial += 1
            arrived = now - max(0.0, wall - item.arrived_at)
            keys = possible_keys(item.receipt.message_id)
            parked = _Parked(
                self._serial, item.account, item.receipt, item.bind, arrived, keys, key=item.key
            )
            self._index(parked)
            heapq.heappush(self._relookups, (now, parked.serial, 0))

    # -- time

    def expire(self, now: float) -> list[DlrEvent]:
        """Receipts parked for ``unmatched_after`` or longer, as unmatched events."""
        events: list[DlrEvent] = []
        while self._parked:
            oldest = self._parked[next(iter(self._parked))]
            if oldest.arrived_at + self.unmatched_after > now:
                break
            self._unpark(oldest)
            events.append(self._unmatched(oldest, f"no mapping within {self.unmatched_after:g} s"))
        return events

    def next_deadline(self) -> float:
        """When ``expire`` or ``relookups_due`` next has something to do (inf: never; -inf:
        at once, an account was decided while receipts are parked)."""
        if self._parked and self.resolver.decisions != self._decisions_seen:
            return -math.inf
        heap = self._relookups
        while heap and (
            (parked := self._parked.get(heap[0][1])) is None or parked.relookups != heap[0][2]
        ):
            heapq.heappop(heap)
        deadline = heap[0][0] if heap else float("inf")
        if self._parked:
            oldest = self._parked[next(iter(self._parked))]
            deadline = min(deadline, oldest.arrived_at + self.unmatched_after)
        return deadline

    # -- events out

    def _matched(
        self,
        account: str,
        receipt: Receipt,
        record: CorrelationRecord,
        bind: str | None,
        arrived_at: float,
    ) -> DlrEvent | None:
        """The event of a receipt matched to ``record``; None (counted in ``duplicates``) when
        its part is settled already."""
        if (record.meta and SETTLED_META in record.meta) or (
            self._settled_keys and (account, record.key) in self._settled_keys
        ):
            self.duplicates += 1
            return None
        message = self.tracker.update(record, receipt.status, receipt.error_code)
        if self.recent_settled and receipt.stat in SETTLED_STATS:
            order = self._recent_order
            if len(order) >= self.recent_settled:
                old_id, old_key = order.popleft()
                self._recent.pop(old_id, None)
                self._settled_keys.pop(old_key, None)
            by_id = (account, receipt.message_id)
            by_key = (account, record.key)
            self._recent[by_id] = record
            self._settled_keys[by_key] = (record.request_id, record.part)
            order.append((by_id, by_key))
        if record.meta and SETTLING_META in record.meta:
            # Not settled by us (not in ``_settled_keys``): by a process that died while
            # publishing it.
            return DlrEvent(account, receipt, record, bind, arrived_at, message, None, True)
        return DlrEvent(account, receipt, record, bind, arrived_at, message)

    def _unmatched(self, parked: _Parked, reason: str) -> DlrEvent:
        return DlrEvent(
            parked.account,
            parked.receipt,
            None,
            parked.bind,
            parked.arrived_at,
            None,
            f"unmatched: {reason}",
        )


__all__ = [
    "DEFAULT_MAX_PARKED",
    "DEFAULT_RELOOKUP_AFTER",
    "DEFAULT_UNMATCHED_AFTER",
    "FAILURE_STATUSES",
    "FINAL_STATUSES",
    "SETTLED_META",
    "SETTLED_STATS",
    "DlrEvent",
    "MessageStatus",
    "MessageStatusTracker",
    "ReceiptCorrelator",
    "aggregate_status",
    "is_settled",
    "iso_utc",
    "settled_record",
    "settling_record",
]
