"""The receipt path of the pool: deliver_sm receipts and MOs of a receive, correlated (one
store lookup per batch), published as ``DlrEvent`` batches before the SMSC is answered; parked
receipts saved in and deleted from the store, looked up again and expired once a second;
tombstones of settled parts; and the store calls every task of the pool makes, retried until
they go through.

``ReceiptPath`` is a part of ``BindPool`` (its base class): it works on the pool's own
attributes, declared here, so the hot path reads them as before, with no object in between.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import anyio

from ..client import parse_delivery, receipt_of
from ..codec.pdus import DataSm, DeliverSm, Pdu
from ..codec.receipt import Receipt
from .correlation import CorrelationRecord, CorrelationStore, MemoryCorrelationStore, ParkingStore
from .dlr import SETTLED_STATS, DlrEvent, ReceiptCorrelator, settled_record, settling_record
from .inbound import InboundAssembler, InboundMessage
from .persist import until_done
from .routing import Bind

if TYPE_CHECKING:
    from .config import PoolConfig
    from .pool import PoolHandler

T = TypeVar("T")


class ReceiptPath:
    """Receipts and MOs in, events out (see the module docstring)."""

    # The pool's, set in ``BindPool.__init__``.
    config: PoolConfig
    handler: PoolHandler
    instance: str
    forget_settled: bool
    store: CorrelationStore
    stats: dict[str, int]
    last_store_error: str | None
    _parking: ParkingStore | None
    _parking_lock: anyio.Lock
    _memory_store: MemoryCorrelationStore | None
    _forget: list[CorrelationRecord]
    _correlator: ReceiptCorrelator
    _assembler: InboundAssembler
    _settled: list[Any]
    _give_up_at: float | None

    if TYPE_CHECKING:

        async def _flush_settled(
            self,
        ) -> None: ...  # (the pool's: store the settled mappings, publish outcomes)

    async def _receipts_tick(self, now: float) -> None:
        """Once a second: parked receipts look again (another daemon, or a newly decided id
        conversion, may have the mapping now); those never found are published unmatched;
        parking and tombstones go to the store; MOs missing parts too long are published."""
        events: list[DlrEvent] = []
        correlator = self._correlator
        for account_name, ids in correlator.relookups_due(now).items():
            found = await self._stored("relookup", self.store.get_many, account_name, ids)
            events += correlator.receipts_found(account_name, found, now)
        # Taken out of the correlator and the assembler: published whoever is cancelled.
        with anyio.CancelScope(shield=True):
            events += correlator.expire(now)
            if events:
                await self._publish_dlrs(events)
            await self._sync_parking()
            await self._forget_settled()
            expired = self._assembler.expire(now)
            if expired:
                self.stats["inbound"] += len(expired)
                await self.handler.on_inbound(expired)

    async def _on_requests(self, bind: Bind, pdus: list[Pdu]) -> list[Pdu | int | None]:
        """Receipts and inbound messages of one receive: publish, then let the SMSC know
        (the driver answers every one once this returns)."""
        account = bind.account
        name = account.name
        profile = account.profile
        receipts: list[Receipt] = []
        inbound: list[InboundMessage] = []
        now = anyio.current_time()
        for pdu in pdus:
            if not isinstance(pdu, DeliverSm | DataSm):
                continue
            receipt = receipt_of(pdu, profile)
            if receipt is not None:
                receipts.append(receipt)
            else:
                inbound += self._assembler.add(
                    parse_delivery(pdu, profile), name, now, profile=profile
                )
        # Nothing here needs the bind's session: this runs after its connection is gone too
        # (the driver hands over what it read before the close), and is shielded, since what
        # the correlator and the assembler took in must be published even if the driver's
        # task is cancelled meanwhile (a drain, a connection lost). A receipt not published
        # is not answered either, so the SMSC sends it again; one published twice is
        # recognised as a repeat.
        with anyio.CancelScope(shield=True):
            if receipts:
                if self._settled:
                    # Responses of this very receive (or just before) may announce these
                    # receipts' messages: their mappings go in first, so the receipts find
                    # them instead of being parked, and "sent" is published before
                    # "delivered".
                    await self._flush_settled()
                ids = [r.message_id for r in receipts]
                found = await self._stored("receipt lookup", self.store.get_many, name, ids)
                correlator = self._correlator
                events = correlator.receipts_arrived(name, receipts, found, now, bind=bind.name)
                self.stats["duplicate_receipts"] = correlator.duplicates
                if events:
                    await self._publish_dlrs(events)
                # Receipts parked here are in the store before the SMSC hears we have them.
                await self._sync_parking()
            if inbound:
                self.stats["inbound"] += len(inbound)
                await self.handler.on_inbound(inbound)
        return [None] * len(pdus)

    async def _publish_dlrs(self, events: list[DlrEvent]) -> None:
        stats = self.stats
        stats["dlrs"] += len(events)
        # One pass: the parts these receipts settle, and the counts.
        settling: list[tuple[CorrelationRecord, str]] = []
        unmatched = flagged = 0
        for event in events:
            record = event.record
            if record is None:
                unmatched += 1
                continue
            if event.possible_duplicate:
                flagged += 1
            stat = event.receipt.stat
            if stat in SETTLED_STATS:
                settling.append((record, stat))
        if unmatched:
            stats["unmatched_receipts"] += unmatched
        if flagged:
            stats["flagged_receipts"] += flagged
        if settling and self._memory_store is None:
            # A durable store: the settling parts are marked there before anyone hears of
            # their receipts, so that a crash before the tombstone (and the deliver_sm_resp)
            # makes the repeat a flagged duplicate, not a second final (``settling_record``).
            marks = [settling_record(record, stat) for record, stat in settling]
            await self._stored("settling mark", self.store.put_many, marks, self._settled_ttl)
        try:
            await self.handler.on_dlrs(events)
        except BaseException:
            # Not published: parked again, to come out later, never taken for published.
            self._correlator.unpublished(events)
            raise
        stats["duplicate_receipts"] = self._correlator.duplicates
        # Published: a part whose receipt settled it needs its mapping no more, only a
        # tombstone, so that a repeat of the receipt is recognised (``forget_settled``: for
        # ``settled_ttl``; else the mapping is marked and kept as long as it was).
        if settling:
            forget = self._forget
            forget += [settled_record(record, stat) for record, stat in settling]
            if self._memory_store is not None:
                # In memory: at once, without awaiting.
                self._memory_store.put(forget, self._settled_ttl)
                forget.clear()

    @property
    def _settled_ttl(self) -> float | None:
        return self.config.settled_ttl if self.forget_settled else None

    async def _forget_settled(self) -> None:
        """Replace the mappings of settled parts by their tombstones (one store round trip
        once a second: not one per receipt batch)."""
        forget, self._forget = self._forget, []
        if forget:
            await self._stored("tombstone store", self.store.put_many, forget, self._settled_ttl)

    async def _stored(self, what: str, call: Callable[..., Awaitable[T]], *args: Any) -> T:
        """A correlation or parking store call, tried again until it goes through
        (``persist.until_done``): a store that fails (Redis restarting, SQLite locked)
        pauses the task that needs it (the settler, a bind's receipts, housekeeping), with
        what it holds kept, and never ends the pool. Each call here repeats safely: puts
        replace, gets read, parks and unparks are by key."""
        return await until_done(
            what, call, *args, on_error=self._store_failed, give_up=self._past_drain_deadline
        )

    def _past_drain_deadline(self) -> bool:
        return self._give_up_at is not None and anyio.current_time() >= self._give_up_at

    def _store_failed(self, error: str) -> None:
        self.stats["store_failures"] += 1
        self.last_store_error = error

    async def _sync_parking(self) -> None:
        """Make the store's parked receipts what the correlator has parked: save the new ones,
        delete those published since. Under a lock, so that a save and the delete of the same
        receipt reach the store in that order."""
        parking = self._parking
        if parking is None:
            return
        if not self._correlator.parking_changed and not self._parking_lock.locked():
            # (A save in progress may hold our receipts: then wait for it, below.)
            return
        async with self._parking_lock:
            saved, released = self._correlator.take_parking_changes(
                wall_clock() - anyio.current_time()
            )
            if saved:
                self.stats["parked"] += len(saved)
                await self._stored("parking", parking.park_many, self.instance, saved)
            if released:
                await self._stored("unparking", parking.unpark_many, self.instance, released)


def wall_clock() -> float:
    """Seconds since the epoch, for the records users read (timers use the anyio clock)."""
    return time.time()


__all__ = ["ReceiptPath", "wall_clock"]
