"""Test helpers that are public API: an in-memory byte stream pair, to run a client and an SMSC
against each other without sockets (and, with a fake clock, without waiting)."""

from __future__ import annotations

import anyio
import anyio.abc
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream


class MemoryByteStream(anyio.abc.ByteStream):
    """One end of an in-memory, unbounded, ordered byte pipe pair."""

    def __init__(
        self, send: MemoryObjectSendStream[bytes], receive: MemoryObjectReceiveStream[bytes]
    ) -> None:
        self._send = send
        self._receive = receive
        self._pending = b""

    async def send(self, item: bytes) -> None:
        try:
            await self._send.send(bytes(item))
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            raise anyio.BrokenResourceError from None

    async def receive(self, max_bytes: int = 65536) -> bytes:
        if not self._pending:
            try:
                self._pending = await self._receive.receive()
            except anyio.EndOfStream:
                raise
            except anyio.ClosedResourceError:
                raise anyio.EndOfStream from None
        data, self._pending = self._pending[:max_bytes], self._pending[max_bytes:]
        return data

    async def send_eof(self) -> None:
        self._send.close()

    async def aclose(self) -> None:
        self._send.close()
        self._receive.close()


def memory_stream_pair() -> tuple[MemoryByteStream, MemoryByteStream]:
    """Two connected byte streams: what one sends, the other receives."""
    a_send, b_recv = anyio.create_memory_object_stream[bytes](1_000_000)
    b_send, a_recv = anyio.create_memory_object_stream[bytes](1_000_000)
    return MemoryByteStream(a_send, a_recv), MemoryByteStream(b_send, b_recv)
