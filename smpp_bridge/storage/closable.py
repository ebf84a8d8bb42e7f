"""Closing and ``async with`` for every store and work queue."""

from __future__ import annotations

from types import TracebackType
from typing import Self

from ..errors import StoreClosedError


class ClosableStore:
    """Closing and ``async with`` for a store: after ``aclose`` every call raises
    ``StoreClosedError`` (the correlation and message stores share it; the work queues too,
    whose ``_check_open`` raises ``QueueClosedError`` instead)."""

    _closed = False

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosedError(f"{type(self).__name__} is closed")

    async def aclose(self) -> None:
        self._closed = True

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
