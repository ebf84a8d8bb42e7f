"""The group commit: many tasks' events, one write.

Every bind's receipt handler, the settler of outcomes and the consumer publish events; each
call would be its own queue publish and store write. ``GroupCommit`` gathers what arrives
while a write is running into the next one, so writes grow with load while each caller waits
one flush. A failing flush is tried again, the same batch, until it goes through.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import anyio
import structlog

from .envelope import Event

log = structlog.get_logger("smpp_bridge.bridge")


class GroupCommit:
    """Many tasks' events, one write: ``submit`` adds to the batch being gathered and waits
    until a flush that includes it has finished. One flush runs at a time; whatever arrives
    meanwhile goes into the next one. Batches grow with load, latency stays one flush.

    A flush that fails is tried again, the same batch, with backoff (``retry_base`` doubling
    up to ``retry_cap``), until it goes through: a caller never returns before its events are
    written (so it never acknowledges what was not), and a backend hiccup is a pause, not a
    lost outcome or receipt nor a crashed pool. ``flush`` gets the ``CommitBatch`` and records
    the steps it has done in ``batch.steps``, so that a retry does not repeat them (no event
    published twice because the store write after it failed).

    (Not ``pool.persist.until_done``: that one re-raises a closed backend's error and backs
    off by fixed constants, while a commit retries every ``Exception``, closed store
    included, with its own ``retry_base``/``retry_cap``, and logs the batch it holds.)"""

    def __init__(
        self,
        flush: Callable[[CommitBatch], Awaitable[None]],
        *,
        retry_base: float = 0.05,
        retry_cap: float = 2.0,
        on_error: Callable[[Exception], None] | None = None,
    ) -> None:
        self._flush = flush
        self._batch = CommitBatch()
        self._wake = anyio.Event()
        self._retry_base = retry_base
        self._retry_cap = retry_cap
        self._on_error = on_error
        self.flushes = 0
        self.failures = 0

    async def submit(self, events: list[Event], store: bool) -> None:
        """Add ``events`` (also to the store when ``store``) to the batch being gathered and
        wait until a flush that holds them has gone through. Raises nothing of its own (a
        failing flush is retried, the caller waits); cancellation leaves the events in
        the batch."""
        batch = self._batch
        batch.events += events
        if store:
            batch.stored += events
        self._wake.set()
        await batch.done.wait()

    async def run(self) -> None:
        """Flush batches, one at a time, until cancelled; never raises otherwise."""
        while True:
            await self._wake.wait()
            self._wake = anyio.Event()
            batch, self._batch = self._batch, CommitBatch()
            delay = self._retry_base
            while True:
                try:
                    await self._flush(batch)
                    break
                except Exception as exc:  # tried again: the callers wait
                    self.failures += 1
                    if self._on_error is not None:
                        self._on_error(exc)
                    log.warning(
                        "event write failed: trying again",
                        error=str(exc),
                        events=len(batch.events),
                        done=sorted(batch.steps),
                        retry_in=delay,
                    )
                    await anyio.sleep(delay)
                    delay = min(delay * 2, self._retry_cap)
            self.flushes += 1
            batch.done.set()


@dataclass(eq=False, slots=True)
class CommitBatch:
    """One group commit: every event, those also to be stored, and the steps already done."""

    events: list[Event] = field(default_factory=list)
    stored: list[Event] = field(default_factory=list)
    steps: set[str] = field(default_factory=set)
    done: anyio.Event = field(default_factory=anyio.Event)


__all__ = ["CommitBatch", "GroupCommit"]
