"""The byte stream under each simulated session: it marks batches and injects stream faults.

Wrapping the transport, not the driver, keeps the driver unchanged and costs one call per
receive and per send (per batch, never per PDU). It does three things:

- Each ``receive`` reads the clock once for the whole batch it returns (the token bucket and
  the delay scheduling use it instead of reading the clock per PDU).
- Each ``send`` records how many responses the session had queued when the bytes left, so the
  session knows how many requests the ESME still has outstanding (received, not yet answered
  on the wire): that is what window enforcement counts.
- Faults: a stall blocks ``receive`` and ``send`` (the ESME sees no reads, so TCP backpressure,
  and no answers, not even to enquire_link); garbled bytes go out ahead of the next write; a
  drop mutes every later write (``mute``) but one last batch, then half-closes (``send_last``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from typing import Any

import anyio
import anyio.abc


class SessionStream(anyio.abc.ByteStream):
    """Wraps the session's transport stream; see the module docstring."""

    def __init__(self, inner: anyio.abc.ByteStream) -> None:
        self.inner = inner
        self.now = anyio.current_time()
        # The session counts the answers it settles (sent or dropped) in ``queued``; ``written``
        # is how many of them had been settled when the last write started. A request received
        # and not among ``written`` is one the ESME may still be waiting on.
        self.queued = 0
        self.written = 0
        self._inject = b""
        self._resume: anyio.Event | None = None
        self._muted = False
        # ``send_last`` runs in a task of its own: never two writes on the socket at once.
        self._lock = anyio.Lock(fast_acquire=True)

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        # The driver reads the raw socket through this (TCP_NODELAY, quick ACKs).
        return self.inner.extra_attributes

    @property
    def stalled(self) -> bool:
        return self._resume is not None

    def stall(self) -> None:
        """Stop reading and writing until ``resume``."""
        if self._resume is None:
            self._resume = anyio.Event()

    def resume(self) -> None:
        if self._resume is not None:
            self._resume.set()
            self._resume = None

    @property
    def muted(self) -> bool:
        return self._muted

    def mute(self) -> None:
        """Discard every write that starts from now on (a write already started goes out)."""
        self._muted = True

    async def send_last(self, data: bytes) -> None:
        """Write ``data`` (even when muted), then half-close the socket (FIN) if it can."""
        while self._resume is not None:
            await self._resume.wait()
        async with self._lock:
            if data:
                await self.inner.send(data)
            # TLS has no half-close: the socket then stays open, and silent.
            with contextlib.suppress(NotImplementedError):
                await self.inner.send_eof()

    def inject(self, data: bytes) -> None:
        """Send ``data`` verbatim ahead of whatever the next write carries."""
        self._inject += data

    async def receive(self, max_bytes: int = 65536) -> bytes:
        while self._resume is not None:
            await self._resume.wait()
        data = await self.inner.receive(max_bytes)
        while self._resume is not None:
            # A stall that began while this receive was blocked holds back what it read.
            await self._resume.wait()
        self.now = anyio.current_time()
        return data

    async def send(self, item: bytes) -> None:
        if self._muted:
            return
        while self._resume is not None:
            await self._resume.wait()
        self.written = self.queued
        if self._inject:
            item = self._inject + item
            self._inject = b""
        async with self._lock:
            await self.inner.send(item)

    async def send_eof(self) -> None:
        await self.inner.send_eof()

    async def aclose(self) -> None:
        await self.inner.aclose()


__all__ = ["SessionStream"]
