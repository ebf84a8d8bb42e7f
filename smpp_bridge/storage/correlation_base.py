"""What the durable correlation stores (SQLite, Redis) share: the order of a batch call.

Every backend lets its resolver see the ids go by and keeps ``auto``'s decisions in step
before it touches its storage (``CorrelationStore``'s contract); ``DurableCorrelationStore``
does that once, and a backend writes only how rows are stored and found.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..pool import CorrelationRecord
from ..pool.correlation import _StoreBase


class DurableCorrelationStore(_StoreBase):
    """``put_many`` and ``get_many`` around a backend's ``_put_records`` and ``_get_records``.

    Both raise ``StoreClosedError`` once the store is closed, and let the backend's own
    errors through (``sqlite3.Error``, ``coredis`` errors)."""

    async def _put_records(self, records: Sequence[CorrelationRecord], ttl: float) -> None:
        raise NotImplementedError

    async def _get_records(self, account: str, keys: list[str]) -> dict[str, CorrelationRecord]:
        """The records stored under these canonical keys of ``account`` (not expired)."""
        raise NotImplementedError

    async def put_many(
        self, records: Sequence[CorrelationRecord], ttl: float | None = None
    ) -> None:
        self._check_open()
        if not records:
            return
        self.resolver.observe_records(records)
        await self._sync_decisions()
        await self._put_records(records, self.ttl if ttl is None else ttl)

    async def get_many(
        self, account: str, message_ids: Sequence[str]
    ) -> dict[str, CorrelationRecord]:
        self._check_open()
        self.resolver.observe_receipt_ids(account, message_ids)
        await self._sync_decisions(account)
        keys = self.resolver.lookup_keys(account, message_ids)
        found = await self._get_records(account, keys) if keys else {}
        return self.resolver.resolve_many(account, message_ids, found)


__all__ = ["DurableCorrelationStore"]
