"""Timed work for the whole simulator — delayed responses, receipts, MO traffic — in one heap
served by one task, instead of a task (or a sleep) per message."""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Callable
from typing import Any

import anyio


class Scheduler:
    """Calls ``fn(arg)`` at ``due`` on the anyio clock. Run ``run()`` in a task group.

    Callbacks are synchronous and run in the scheduler's task, in due order (ties in the order
    they were scheduled). An exception in one ends ``run`` (and the simulator): a bug should
    fail a test, not vanish.
    """

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Callable[[Any], None], Any]] = []
        self._order = itertools.count()
        self._wake = anyio.Event()
        self._sleeping_until = math.inf

    def __len__(self) -> int:
        return len(self._heap)

    def call_at(self, due: float, fn: Callable[[Any], None], arg: Any = None) -> None:
        heapq.heappush(self._heap, (due, next(self._order), fn, arg))
        if due < self._sleeping_until:
            self._sleeping_until = due
            self._wake.set()

    async def run(self) -> None:
        heap = self._heap
        pop = heapq.heappop
        while True:
            now = anyio.current_time()
            while heap and heap[0][0] <= now:
                _, _, fn, arg = pop(heap)
                fn(arg)
            self._wake = anyio.Event()
            if heap:
                self._sleeping_until = heap[0][0]
                with anyio.move_on_after(self._sleeping_until - now):
                    await self._wake.wait()
            else:
                self._sleeping_until = math.inf
                await self._wake.wait()
            # Callbacks scheduled meanwhile may be due at once; let other tasks run first.
            await anyio.lowlevel.checkpoint()


__all__ = ["Scheduler"]
