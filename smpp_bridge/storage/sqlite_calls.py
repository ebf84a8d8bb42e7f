"""Calling a blocking SQLite function from async code: the one place that decides how.

A short SQLite transaction in WAL mode (``synchronous=NORMAL``) costs tens of microseconds, a
hop to a worker thread and back (``anyio.to_thread`` on trio) about 300 µs on the machines we
measure on: so by default the call runs inline, on the event loop's thread, and the loop gets a
checkpoint right after. ``inline=False`` sends it to a worker thread instead — for a file that
other processes may keep locked for long (a call waits up to the connection's busy timeout) or
a connection doing slow work (``synchronous=FULL`` on a slow disk). Either way the caller's
``lock`` keeps one call at a time on the connection.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import anyio
import anyio.lowlevel
import anyio.to_thread

R = TypeVar("R")


async def call_sqlite(lock: anyio.Lock, inline: bool, fn: Callable[..., R], *args: object) -> R:
    """``fn(*args)`` under ``lock``, inline or in a worker thread (see the module doc)."""
    async with lock:
        if not inline:
            return await anyio.to_thread.run_sync(fn, *args)
        result = fn(*args)
    await anyio.lowlevel.checkpoint()
    return result


@contextmanager
def immediate_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` (the write lock up front), ``COMMIT`` on success, ``ROLLBACK`` on
    any error unless SQLite already rolled back (disk full and I/O errors do)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


__all__ = ["call_sqlite", "immediate_transaction"]
