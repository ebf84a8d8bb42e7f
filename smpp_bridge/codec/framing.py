"""A streaming framer: any chunking of bytes in, complete PDU frames out.

Frames are sliced straight out of the received chunk when they are whole in it (the common case
under load: one receive carries many PDUs); only a trailing partial frame is kept, in a
``bytearray`` that grows amortised, so a large frame arriving one byte at a time costs linear
time. A ``command_length`` below 16 or above ``max_length`` is rejected as soon as the header is
readable, without buffering the body: framing is lost, and the error is fatal and sticky. Frames
completed before the bad header are still returned first (so the output never depends on how the
stream was chunked); the error is then raised by the next ``feed`` and is visible at once as
``error``.
"""

from __future__ import annotations

import struct

from ..errors import RemoteProtocolError
from .constants import DEFAULT_MAX_COMMAND_LENGTH, HEADER_LENGTH, CommandStatus

_LENGTH = struct.Struct(">I").unpack_from
_HEADER = struct.Struct(">IIII").unpack_from


class Framer:
    """Splits a byte stream into SMPP frames (``bytes``, header included)."""

    __slots__ = ("_broken", "_buf", "_need", "max_length")

    def __init__(self, max_length: int = DEFAULT_MAX_COMMAND_LENGTH) -> None:
        if max_length < HEADER_LENGTH:
            raise ValueError(f"max_length must be at least {HEADER_LENGTH}")
        self.max_length = max_length
        self._buf = bytearray()
        self._need = HEADER_LENGTH  # octets the buffer must hold before parsing again
        self._broken: RemoteProtocolError | None = None

    @property
    def error(self) -> RemoteProtocolError | None:
        """The fatal framing error, once a bad ``command_length`` has been seen; else None."""
        return self._broken

    @property
    def buffered(self) -> int:
        """Octets received but not yet returned as a frame."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytes]:
        """Add received bytes; return every frame completed by them, in order."""
        if self._broken is not None:
            raise self._broken
        if self._buf:
            self._buf += data
            if len(self._buf) < self._need:
                return []
            data = bytes(self._buf)
            self._buf.clear()
        frames: list[bytes] = []
        pos = 0
        end = len(data)
        max_length = self.max_length
        while end - pos >= HEADER_LENGTH:
            (length,) = _LENGTH(data, pos)
            if length < HEADER_LENGTH or length > max_length:
                _, cid, _, seq = _HEADER(data, pos)
                self._broken = RemoteProtocolError(
                    f"command_length {length} is outside 16..{max_length}; framing is lost",
                    command_status=CommandStatus.ESME_RINVCMDLEN,
                    sequence_number=seq,
                    command_id=cid,
                    fatal=True,
                )
                # Nothing after a bad header can be trusted, so nothing is kept; but the frames
                # completed before it are good and are delivered (the next feed raises).
                if frames:
                    return frames
                raise self._broken
            nxt = pos + length
            if nxt > end:
                self._need = length
                break
            frames.append(data[pos:nxt])
            pos = nxt
        else:
            self._need = HEADER_LENGTH
        if pos < end:
            self._buf += data[pos:] if pos else data
        return frames
