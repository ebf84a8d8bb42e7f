"""What every SQLite backend shares: opening its connection, checking its settings, and calling
a blocking SQLite function from async code.

A short SQLite transaction in WAL mode (``synchronous=NORMAL``) costs tens of microseconds, a
hop to a worker thread and back (``anyio.to_thread`` on trio) about 300 µs on the machines we
measure on: so by default the call runs inline, on the event loop's thread, and the loop gets a
checkpoint right after. ``inline=False`` sends it to a worker thread instead — for a file that
other processes may keep locked for long (a call waits up to the connection's busy timeout) or
a connection doing slow work (``synchronous=FULL`` on a slow disk). Either way the caller's
``lock`` keeps one call at a time on the connection.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Final, TypeVar

import anyio
import anyio.lowlevel
import anyio.to_thread

R = TypeVar("R")
T = TypeVar("T")

SYNCHRONOUS: Final = ("OFF", "NORMAL", "FULL", "EXTRA")
IDENTIFIER: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Far below SQLite's bound-parameter limit (32766 since 3.32, 999 before).
SQL_CHUNK: Final = 500


def check_identifier(name: str, error: str = "invalid table name {!r}") -> str:
    """``name`` if it may be written into SQL unquoted (a table name), else ``ValueError``
    with ``error`` formatted with it."""
    if not IDENTIFIER.fullmatch(name):
        raise ValueError(error.format(name))
    return name


def check_synchronous(value: str, error: str = "invalid synchronous setting {!r}") -> str:
    """SQLite's ``synchronous`` setting, upper-cased; ``ValueError`` with ``error`` formatted
    with it unless it is one of ``SYNCHRONOUS``."""
    setting = value.upper()
    if setting not in SYNCHRONOUS:
        raise ValueError(error.format(value))
    return setting


def connect(
    path: str,
    synchronous: str,
    schema: Callable[[sqlite3.Connection], object],
    *,
    busy_timeout_ms: int = 5000,
    journal_mode: Callable[[str], object] | None = None,
) -> sqlite3.Connection:
    """A connection to the file ``path`` in autocommit mode (every backend opens its
    transactions explicitly), usable from any thread (``call_sqlite`` keeps one call at a
    time), set up the same way for every backend: ``busy_timeout`` first (other processes
    share the file, and switching to WAL takes a lock), ``journal_mode=WAL`` (its answer
    passed to ``journal_mode`` when given: a file system without WAL keeps another mode),
    ``synchronous``; then ``schema(conn)``. Closed again if any of it fails."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if journal_mode is not None:
            journal_mode(str(mode))
        conn.execute(f"PRAGMA synchronous={check_synchronous(synchronous)}")
        schema(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def chunks(values: Sequence[T], size: int = SQL_CHUNK) -> Iterator[Sequence[T]]:
    """``values`` in slices of at most ``size``: each fits in one statement's parameters."""
    for start in range(0, len(values), size):
        yield values[start : start + size]


def marks(count: int) -> str:
    """``count`` comma-separated ``?`` placeholders, for ``IN (...)``."""
    return ",".join("?" * count)


async def call_sqlite(lock: anyio.Lock, inline: bool, fn: Callable[..., R], *args: object) -> R:
    """``fn(*args)`` under ``lock``, inline or in a worker thread (see the module doc)."""
    async with lock:
        if not inline:
            return await anyio.to_thread.run_sync(fn, *args)
        result = fn(*args)
    await anyio.lowlevel.checkpoint()
    return result


async def close_sqlite(lock: anyio.Lock, close: Callable[[], object]) -> None:
    """``close()`` in a worker thread once the call on the connection (if any) is done: a
    checkpoint of the WAL on close may take a while."""
    async with lock:
        await anyio.to_thread.run_sync(close)


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


__all__ = [
    "IDENTIFIER",
    "SQL_CHUNK",
    "SYNCHRONOUS",
    "call_sqlite",
    "check_identifier",
    "check_synchronous",
    "chunks",
    "close_sqlite",
    "connect",
    "immediate_transaction",
    "marks",
]
