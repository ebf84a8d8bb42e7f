"""Opening a message store by backend name."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Literal

from ..bridge.store import (
    DEFAULT_DEDUP_WINDOW,
    DEFAULT_RETENTION,
    MemoryMessageStore,
    MessageStore,
)
from .messages_redis import (
    RedisMessageStore,
)
from .messages_sqlite import SqliteMessageStore


@asynccontextmanager
async def open_message_store(
    backend: Literal["sqlite", "redis", "memory"],
    *,
    path: str | Path | None = None,
    url: str | None = None,
    prefix: str = "smpp-bridge",
    dedup_window: float = DEFAULT_DEDUP_WINDOW,
    retention: float = DEFAULT_RETENTION,
) -> AsyncIterator[MessageStore]:
    """A message store of ``backend``, open for the duration of the block.

    Raises ``ValueError`` for an unknown backend, or one without the path or url it needs."""
    store: SqliteMessageStore | RedisMessageStore | MemoryMessageStore
    if backend == "sqlite":
        if path is None:
            raise ValueError("store.path: the sqlite backend needs a path")
        store = SqliteMessageStore(path, dedup_window)
    elif backend == "redis":
        if url is None:
            raise ValueError("store.url: the redis backend needs a url")
        store = RedisMessageStore(url, prefix, dedup_window, retention=retention)
    elif backend == "memory":
        store = MemoryMessageStore(dedup_window)
    else:
        raise ValueError(f"store.backend: unknown {backend!r} (known: sqlite, redis, memory)")
    async with store:
        yield store
