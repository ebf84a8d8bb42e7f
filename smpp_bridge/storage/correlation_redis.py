"""The Redis correlation and parking store: one key per part mapping, a hash of id decisions,
parked receipts per owner; shared by every daemon on the same Redis.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Final

from ..pool import (
    DEFAULT_TTL,
    CorrelationRecord,
    MessageIdResolver,
    ParkedReceipt,
    canonical_id,
    decode_parked,
    decode_record,
    encode_parked,
    encode_record,
)
from .correlation_base import DurableCorrelationStore
from .redis_client import redis_client

if TYPE_CHECKING:
    import coredis

_REDIS_CHUNK: Final = 10_000  # keys per MGET: large batches without one huge reply


def _escape_account(account: str) -> str:
    # ':' separates key parts, so an account name may not contain a bare one.
    return account.replace("%", "%25").replace(":", "%3A")


class RedisCorrelationStore(DurableCorrelationStore):
    """Correlations in Redis, shared by every daemon that uses the same server.

    Keys are ``{prefix}:{account}:{canonical id}`` (``smppb:corr:...`` by default), values the
    record as JSON, each ``SET ... EX ttl`` (whole seconds, at least 1) in one pipeline per
    batch; lookups are one ``MGET`` per batch. Expiry is Redis's own.

    The client is a ``coredis.Redis`` (anyio-native, so it runs on trio and asyncio alike)
    that the caller has entered; ``RedisCorrelationStore.connect(url)`` makes and enters one
    for the duration of a block.

    Every call raises ``StoreClosedError`` after ``aclose``, and lets the client's errors
    (``coredis.exceptions.RedisError``, ``TimeoutError``, ``OSError``) through.
    """

    def __init__(
        self,
        client: coredis.Redis[bytes],
        *,
        prefix: str = "smppb:corr",
        ttl: float = DEFAULT_TTL,
        resolver: MessageIdResolver | None = None,
    ) -> None:
        super().__init__(ttl, resolver)
        self.client = client
        self.prefix = prefix

    @classmethod
    @asynccontextmanager
    async def connect(
        cls,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = "smppb:corr",
        ttl: float = DEFAULT_TTL,
        resolver: MessageIdResolver | None = None,
        connect_timeout: float = 5.0,
        stream_timeout: float = 30.0,
    ) -> AsyncIterator[RedisCorrelationStore]:
        """A store over a new client for ``url``, open for the duration of the block."""
        client = redis_client(url, connect_timeout=connect_timeout, stream_timeout=stream_timeout)
        async with client:
            store = cls(client, prefix=prefix, ttl=ttl, resolver=resolver)
            try:
                yield store
            finally:
                await store.aclose()

    def redis_key(self, account: str, key: str) -> str:
        return f"{self.prefix}:{_escape_account(account)}:{key}"

    @property
    def _decisions_key(self) -> str:
        # Not under any account's keys: an escaped account name never contains a bare ':'.
        return f"{self.prefix}:id-decisions"

    async def _read_decisions(self) -> dict[str, str]:
        raw = await self.client.hgetall(self._decisions_key)
        return {k.decode(): v.decode() for k, v in raw.items()}

    async def _write_decisions(self, decisions: dict[str, str]) -> None:
        # The first decision stored stays: every reader adopts the same one.
        for account, conversion in decisions.items():
            await self.client.hsetnx(self._decisions_key, account, conversion)

    async def _put_records(self, records: Sequence[CorrelationRecord], ttl: float) -> None:
        seconds = max(1, math.ceil(ttl))
        async with self.client.pipeline(transaction=False) as pipe:
            for record in records:
                pipe.set(
                    self.redis_key(record.account, record.key), encode_record(record), ex=seconds
                )

    async def _get_records(self, account: str, keys: list[str]) -> dict[str, CorrelationRecord]:
        found: dict[str, CorrelationRecord] = {}
        for start in range(0, len(keys), _REDIS_CHUNK):
            chunk = keys[start : start + _REDIS_CHUNK]
            values = await self.client.mget([self.redis_key(account, k) for k in chunk])
            for key, value in zip(chunk, values, strict=True):
                if value is not None:
                    found[key] = decode_record(value)
        return found

    async def delete_many(self, account: str, message_ids: Sequence[str]) -> None:
        self._check_open()
        keys = list(dict.fromkeys(self.redis_key(account, canonical_id(m)) for m in message_ids))
        for start in range(0, len(keys), _REDIS_CHUNK):
            await self.client.delete(keys[start : start + _REDIS_CHUNK])

    # -- parked receipts: one hash per owner, field = the receipt's key

    def parked_key(self, owner: str) -> str:
        return f"{self.prefix}:parked:{_escape_account(owner)}"

    async def park_many(self, owner: str, parked: Sequence[ParkedReceipt]) -> None:
        self._check_open()
        if not parked:
            return
        key = self.parked_key(owner)
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.hset(key, {p.key: encode_parked(p) for p in parked})
            # An owner that never comes back leaves nothing behind for longer than the TTL.
            pipe.expire(key, max(1, math.ceil(self.ttl)))

    async def unpark_many(self, owner: str, keys: Sequence[str]) -> None:
        self._check_open()
        if keys:
            key = self.parked_key(owner)
            for start in range(0, len(keys), _REDIS_CHUNK):
                await self.client.hdel(key, list(keys[start : start + _REDIS_CHUNK]))

    async def load_parked(self, owner: str) -> list[ParkedReceipt]:
        self._check_open()
        values = await self.client.hgetall(self.parked_key(owner))
        return sorted((decode_parked(v) for v in values.values()), key=lambda p: p.arrived_at)
