"""The work-queue contract every backend keeps, and what the backends share.

A work queue moves opaque payloads (bytes) from publishers to consumers, in batches, at least
once. ``consume`` *leases* entries for ``visibility_timeout`` seconds: the consumer then
``ack``\\ s them (done, removed), ``release``\\ s them (give back, possibly after a delay),
``extend``\\ s the lease while still working, or ``dead_letter``\\ s them. A lease that runs out
(a crashed consumer) makes the entry deliverable again, with ``attempts`` one higher; an entry
that would be delivered a ``max_deliveries + 1``-th time goes to the dead-letter store
instead. Nothing is ever dropped silently: what cannot be delivered (too many deliveries, a
corrupted entry) is dead-lettered with a reason.

A queue opened with ``keep_acked=True`` is also a log: acknowledged entries stay readable by
``tail`` (``smpp-bridge events --follow``), and the newest ``retain`` entries are kept, acked or
not (a log nobody consumes must not grow forever; Redis trims like ``MAXLEN ~``, SQLite
exactly and logs how many of the trimmed entries were never acknowledged). A queue opened
without it deletes entries on ``ack`` and ignores ``retain``.
"""

from __future__ import annotations

import os
import re
import socket
import threading
from collections.abc import Sequence
from types import TracebackType
from typing import Final, Protocol, Self, TypedDict

import msgspec

from ...errors import QueueBackendError, QueueClosedError, QueueError
from ..closable import ClosableStore

# Bounds on one call: large enough for any batch the daemon uses, small enough that a
# mistaken argument cannot ask a backend for millions of entries at once.
MAX_BATCH: Final = 10_000
NAME_PATTERN: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
PREFIX_PATTERN: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}")


class Leased(msgspec.Struct, frozen=True):
    """One entry handed to a consumer, leased until it acks, releases or the lease runs out.

    ``id`` is the backend's entry id, the same on every redelivery (an SQLite rowid as text, a
    Redis stream id). ``attempts`` is 1 on the first delivery, 2 on the first redelivery, ...
    ``enqueued_at`` is the publish time (epoch seconds).
    """

    id: str
    data: bytes
    attempts: int
    enqueued_at: float


class DeadLetter(msgspec.Struct, frozen=True):
    """An entry taken off its queue for good: its id and payload, how many times it was
    delivered, why it was dead-lettered and when (epoch seconds)."""

    id: str
    data: bytes
    attempts: int
    reason: str
    dead_at: float


class Entry(msgspec.Struct, frozen=True):
    """An entry read by ``tail``: not leased, not consumed."""

    id: str
    data: bytes


class WorkQueue(Protocol):
    """A batch-oriented work queue with leases (see the module docstring)."""

    name: str

    async def publish(self, payloads: Sequence[bytes]) -> list[str]:
        """Append ``payloads`` in order, in one round trip; their ids, in the same order."""
        ...

    async def consume(self, max_count: int, *, wait: float = 1.0) -> list[Leased]:
        """Lease up to ``max_count`` entries, waiting up to ``wait`` seconds for at least one
        (``[]`` when none came). Fresh entries come in publish order."""
        ...

    async def ack(self, ids: Sequence[str]) -> None:
        """Done with these entries: remove them (a ``keep_acked`` queue keeps them for
        ``tail``)."""
        ...

    async def release(self, ids: Sequence[str], *, delay: float = 0.0) -> None:
        """Give leases back: the entries are delivered again after ``delay`` seconds."""
        ...

    async def extend(self, ids: Sequence[str]) -> None:
        """Renew these leases for another ``visibility_timeout``."""
        ...

    async def dead_letter(self, items: Sequence[tuple[str, str]]) -> None:
        """Move ``(id, reason)`` entries to the dead-letter store, off the queue."""
        ...

    async def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        """The oldest ``limit`` dead letters, oldest first."""
        ...

    async def depth(self) -> int:
        """Entries not acknowledged yet: ready and leased."""
        ...

    async def oldest_age(self) -> float:
        """Seconds since the oldest unacknowledged entry was published; 0 when none."""
        ...

    async def tail(self, after: str | None, limit: int = 100, *, wait: float = 0.0) -> list[Entry]:
        """Up to ``limit`` entries published after id ``after`` (None: from the oldest kept),
        without leasing them; waits up to ``wait`` seconds for at least one."""
        ...

    async def aclose(self) -> None:
        """Release the backend's resources; later calls raise ``QueueClosedError``."""
        ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


# -- shared helpers

_consumer_lock = threading.Lock()
_consumer_count = 0


def default_consumer() -> str:
    """``hostname-pid`` for the first queue opened in this process, ``hostname-pid-N`` after:
    two queue objects in one process must not share a consumer name, or one would take the
    other's leases for its own."""
    global _consumer_count  # noqa: PLW0603 - a process-wide counter is the point
    with _consumer_lock:
        _consumer_count += 1
        count = _consumer_count
    base = f"{socket.gethostname()}-{os.getpid()}"
    return base if count == 1 else f"{base}-{count}"


def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise ValueError(
            f"invalid queue name {name!r}: use 1-64 letters, digits, '_', '.' or '-',"
            " starting with a letter or digit"
        )
    return name


def check_prefix(prefix: str) -> str:
    if not isinstance(prefix, str) or not PREFIX_PATTERN.fullmatch(prefix):
        raise ValueError(
            f"invalid queue prefix {prefix!r}: use 1-100 letters, digits, '_', '.', ':' or '-',"
            " starting with a letter or digit"
        )
    return prefix


def check_consumer(consumer: str | None) -> str:
    if consumer is None:
        return default_consumer()
    if not isinstance(consumer, str) or not consumer or len(consumer) > 200:
        raise ValueError(f"invalid consumer name {consumer!r}: use 1-200 characters")
    if not consumer.isprintable():
        raise ValueError(f"invalid consumer name {consumer!r}: control characters")
    return consumer


def check_settings(visibility_timeout: float, max_deliveries: int, retain: int) -> None:
    if not visibility_timeout > 0:
        raise ValueError(f"visibility_timeout must be > 0 seconds; got {visibility_timeout!r}")
    _check_positive_int("max_deliveries", max_deliveries)
    _check_positive_int("retain", retain)


def _check_positive_int(what: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int; got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{what} must be at least 1; got {value}")


def check_count(what: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int; got {type(value).__name__}")
    if not 1 <= value <= MAX_BATCH:
        raise ValueError(f"{what} must be between 1 and {MAX_BATCH}; got {value}")
    return value


def check_seconds(what: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{what} must be a number of seconds; got {type(value).__name__}")
    if not value >= 0:  # also rejects NaN
        raise ValueError(f"{what} must be >= 0 seconds; got {value!r}")
    return float(value)


def check_payloads(payloads: Sequence[bytes]) -> list[bytes]:
    if isinstance(payloads, (bytes, bytearray, memoryview, str)):
        raise TypeError("payloads must be a sequence of bytes objects, not a single value")
    out: list[bytes] = []
    for index, payload in enumerate(payloads):
        if isinstance(payload, bytes):
            out.append(payload)
        elif isinstance(payload, (bytearray, memoryview)):
            out.append(bytes(payload))
        else:
            raise TypeError(f"payloads[{index}] is {type(payload).__name__}, expected bytes")
    return out


def check_ids(ids: Sequence[str]) -> list[str]:
    """The ids as a list, duplicates removed (order kept); each must be a string."""
    if isinstance(ids, (str, bytes)):
        raise TypeError("ids must be a sequence of entry ids, not a single string")
    for index, entry_id in enumerate(ids):
        if not isinstance(entry_id, str):
            raise TypeError(f"ids[{index}] is {type(entry_id).__name__}, expected str")
    return list(dict.fromkeys(ids))


def check_dead_items(items: Sequence[tuple[str, str]]) -> dict[str, str]:
    """``{id: reason}`` (the last reason wins for a repeated id)."""
    out: dict[str, str] = {}
    for index, item in enumerate(items):
        if not isinstance(item, tuple) or len(item) != 2:
            raise TypeError(f"items[{index}] must be an (id, reason) tuple; got {item!r}")
        entry_id, reason = item
        if not isinstance(entry_id, str) or not isinstance(reason, str):
            raise TypeError(f"items[{index}] must be (str, str); got {item!r}")
        out[entry_id] = reason
    return out


def over_delivered(deliveries: int) -> str:
    return f"delivered {deliveries} times without ack"


class QueueOptions(TypedDict, total=False):
    """The settings every backend takes, besides the queue's name: ``open_queue`` and the
    backends' constructors pass them on to ``QueueBase``, which holds their defaults and
    checks them."""

    prefix: str
    consumer: str | None
    visibility_timeout: float
    max_deliveries: int
    retain: int
    keep_acked: bool


class QueueBase(ClosableStore):
    """What every backend has: its settings, the closed state, the context manager (closing
    as every store closes, with ``QueueClosedError`` and ``open()`` on entry).

    The settings (``QueueOptions``, checked here for every backend: ``ValueError`` or
    ``TypeError`` for a bad one): ``prefix`` namespaces tables and keys
    (``{prefix}:q:{name}``); ``consumer`` names this reader (default ``hostname-pid``; must
    be unique among running consumers); ``visibility_timeout`` is a lease's length in
    seconds, ``max_deliveries`` how many deliveries an entry gets before it is dead-lettered;
    ``keep_acked`` makes the queue a log as well, keeping the newest ``retain`` entries.
    After ``aclose`` every call raises ``QueueClosedError``.
    """

    backend: str = ""

    def __init__(
        self,
        name: str,
        *,
        prefix: str = "smpp-bridge",
        consumer: str | None = None,
        visibility_timeout: float = 60.0,
        max_deliveries: int = 5,
        retain: int = 1_000_000,
        keep_acked: bool = False,
    ) -> None:
        check_settings(visibility_timeout, max_deliveries, retain)
        self.name = check_name(name)
        self.prefix = check_prefix(prefix)
        self.consumer = check_consumer(consumer)
        self.visibility_timeout = float(visibility_timeout)
        self.max_deliveries = max_deliveries
        self.retain = retain
        self.keep_acked = bool(keep_acked)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} consumer={self.consumer!r}>"

    def _check_open(self) -> None:
        if self._closed:
            raise QueueClosedError(f"{self.backend} queue {self.name!r} is closed")

    async def open(self) -> None:
        """Prepare the backend (idempotent)."""

    async def __aenter__(self) -> Self:
        await self.open()
        return self


__all__ = [
    "MAX_BATCH",
    "DeadLetter",
    "Entry",
    "Leased",
    "QueueBackendError",
    "QueueBase",
    "QueueClosedError",
    "QueueError",
    "QueueOptions",
    "WorkQueue",
]
