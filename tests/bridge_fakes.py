"""Test doubles for the daemon's parts: an in-memory ``WorkQueue`` that keeps the contract of
``smpp_bridge.storage.queues`` (leases with a visibility timeout, delivery attempts, release
with a delay, extend, dead letters after ``max_deliveries``), plus call records and scripted
failures so tests can see batching and exercise error paths.

Time is anyio's clock, so leases expire on trio's MockClock as well as on the real one.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType

import anyio

from smpp_bridge.errors import QueueBackendError, QueueClosedError
from smpp_bridge.storage.queues.base import DeadLetter, Entry, Leased

__all__ = ["MemoryWorkQueue", "QueueDown"]


class QueueDown(QueueBackendError):
    """A scripted backend failure."""


@dataclass
class _Item:
    data: bytes
    enqueued_at: float
    deliveries: int = 0
    lease_until: float | None = None  # leased until then (anyio clock)
    ready_at: float = 0.0  # not deliverable before (release with a delay)
    acked: bool = False


class MemoryWorkQueue:
    """One process's view of a queue held in memory. ``calls`` counts calls per method and
    ``batches`` records the ids of every ack/release/extend/dead_letter call. ``fail_next``
    maps a method name to how many of its next calls raise ``QueueDown``. ``on_extend`` is
    called (synchronously) with the ids of each extend call."""

    def __init__(
        self,
        name: str = "test",
        *,
        visibility_timeout: float = 60.0,
        max_deliveries: int = 5,
        keep_acked: bool = False,
        wall: Callable[[], float] = time.time,
    ) -> None:
        if visibility_timeout <= 0 or max_deliveries < 1:
            raise ValueError("visibility_timeout must be positive and max_deliveries >= 1")
        self.name = name
        self.visibility_timeout = visibility_timeout
        self.max_deliveries = max_deliveries
        self.keep_acked = keep_acked
        self._wall = wall
        self._items: dict[int, _Item] = {}
        self._next_id = 1
        self._dead: list[DeadLetter] = []
        self._changed = anyio.Event()
        self.closed = False
        self.calls: Counter[str] = Counter()
        self.batches: dict[str, list[list[str]]] = {
            "ack": [],
            "release": [],
            "extend": [],
            "dead_letter": [],
        }
        self.fail_next: Counter[str] = Counter()
        self.on_extend: Callable[[Sequence[str]], None] | None = None

    # -------------------------------------------------------------- helpers

    def _enter(self, method: str) -> None:
        if self.closed:
            raise QueueClosedError(f"memory queue {self.name!r} is closed")
        self.calls[method] += 1
        if self.fail_next[method] > 0:
            self.fail_next[method] -= 1
            raise QueueDown(f"scripted failure of {method}")

    def _wake(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    def _live(self) -> dict[int, _Item]:
        return {k: v for k, v in self._items.items() if not v.acked}

    @staticmethod
    def _key(entry_id: str) -> int | None:
        try:
            return int(entry_id)
        except ValueError:
            return None

    # -------------------------------------------------------------- the WorkQueue contract

    async def publish(self, payloads: Sequence[bytes]) -> list[str]:
        self._enter("publish")
        ids = []
        now = self._wall()
        for payload in payloads:
            if not isinstance(payload, bytes):
                raise TypeError(f"payloads must be bytes, got {type(payload).__name__}")
            key = self._next_id
            self._next_id += 1
            self._items[key] = _Item(payload, now)
            ids.append(str(key))
        self._wake()
        return ids

    def _take(self, max_count: int) -> list[Leased]:
        now = anyio.current_time()
        out: list[Leased] = []
        dead: list[int] = []
        for key, item in self._items.items():
            if len(out) >= max_count:
                break
            if item.acked or item.ready_at > now:
                continue
            if item.lease_until is not None and item.lease_until > now:
                continue
            if item.deliveries >= self.max_deliveries:
                reason = f"delivered {item.deliveries} times without ack"
                self._dead.append(
                    DeadLetter(str(key), item.data, item.deliveries, reason, self._wall())
                )
                dead.append(key)
                continue
            item.deliveries += 1
            item.lease_until = now + self.visibility_timeout
            out.append(Leased(str(key), item.data, item.deliveries, item.enqueued_at))
        for key in dead:
            del self._items[key]
        return out

    def _next_change(self) -> float:
        """When the next entry becomes deliverable without a publish (lease or delay ends)."""
        soonest = float("inf")
        for item in self._items.values():
            if item.acked:
                continue
            at = max(item.ready_at, item.lease_until or 0.0)
            soonest = min(soonest, at)
        return soonest

    async def consume(self, max_count: int, *, wait: float = 1.0) -> list[Leased]:
        self._enter("consume")
        if max_count < 1:
            raise ValueError(f"max_count must be at least 1, got {max_count}")
        deadline = anyio.current_time() + wait
        while True:
            out = self._take(max_count)
            now = anyio.current_time()
            if out or now >= deadline:
                return out
            changed = self._changed
            with anyio.move_on_after(min(deadline, self._next_change()) - now):
                await changed.wait()

    async def ack(self, ids: Sequence[str]) -> None:
        self._enter("ack")
        self.batches["ack"].append(list(ids))
        for entry_id in ids:
            key = self._key(entry_id)
            if key is None or key not in self._items:
                continue
            if self.keep_acked:
                self._items[key].acked = True
            else:
                del self._items[key]

    async def release(self, ids: Sequence[str], *, delay: float = 0.0) -> None:
        self._enter("release")
        self.batches["release"].append(list(ids))
        ready_at = anyio.current_time() + delay
        for entry_id in ids:
            key = self._key(entry_id)
            item = self._items.get(key) if key is not None else None
            if item is not None and not item.acked:
                item.lease_until = None
                item.ready_at = ready_at
        self._wake()

    async def extend(self, ids: Sequence[str]) -> None:
        self._enter("extend")
        self.batches["extend"].append(list(ids))
        until = anyio.current_time() + self.visibility_timeout
        for entry_id in ids:
            key = self._key(entry_id)
            item = self._items.get(key) if key is not None else None
            if item is not None and item.lease_until is not None and not item.acked:
                item.lease_until = until
        if self.on_extend is not None:
            self.on_extend(list(ids))

    async def dead_letter(self, items: Sequence[tuple[str, str]]) -> None:
        self._enter("dead_letter")
        self.batches["dead_letter"].append([entry_id for entry_id, _ in items])
        for entry_id, reason in items:
            key = self._key(entry_id)
            item = self._items.pop(key, None) if key is not None else None
            if item is not None and not item.acked:
                self._dead.append(
                    DeadLetter(entry_id, item.data, item.deliveries, reason, self._wall())
                )

    async def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        self._enter("dead_letters")
        return self._dead[:limit]

    async def depth(self) -> int:
        self._enter("depth")
        return len(self._live())

    async def oldest_age(self) -> float:
        self._enter("oldest_age")
        live = self._live()
        if not live:
            return 0.0
        return max(0.0, self._wall() - min(item.enqueued_at for item in live.values()))

    async def tail(self, after: str | None, limit: int = 100, *, wait: float = 0.0) -> list[Entry]:
        self._enter("tail")
        start = 0 if after is None else int(after)
        deadline = anyio.current_time() + wait
        while True:
            out = [Entry(str(k), v.data) for k, v in self._items.items() if k > start][:limit]
            now = anyio.current_time()
            if out or now >= deadline:
                return out
            changed = self._changed
            with anyio.move_on_after(deadline - now):
                await changed.wait()

    async def aclose(self) -> None:
        self.closed = True

    async def __aenter__(self) -> MemoryWorkQueue:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -------------------------------------------------------------- inspection for tests

    def leased_ids(self) -> list[str]:
        """Ids currently under an unexpired lease."""
        now = anyio.current_time()
        return [
            str(k)
            for k, v in self._items.items()
            if not v.acked and v.lease_until is not None and v.lease_until > now
        ]

    def deliveries(self) -> dict[str, int]:
        """How many times each live entry was handed out."""
        return {str(k): v.deliveries for k, v in self._live().items()}
