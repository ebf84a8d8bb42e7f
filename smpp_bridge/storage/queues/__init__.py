"""Work queues for the daemon: send requests in, events out, webhook outbox.

``open_queue`` opens one queue on a backend: ``"sqlite"`` (a file, no server: the embedded
default) or ``"redis"`` (Redis Streams: several daemons share one queue). Both keep one contract
(``WorkQueue`` in ``base``): batches, leases with a visibility timeout, at-least-once delivery,
dead letters with a reason, and a ``tail`` for reading a queue as a log.
"""

from __future__ import annotations

from typing import Literal, Unpack

from ...errors import QueueBackendError, QueueClosedError, QueueError
from .base import MAX_BATCH, DeadLetter, Entry, Leased, QueueOptions, WorkQueue
from .redis import RedisQueue
from .sqlite import SqliteQueue

BACKENDS = ("sqlite", "redis")


async def open_queue(
    backend: Literal["sqlite", "redis"],
    name: str,
    *,
    path: str | None = None,
    url: str | None = None,
    **options: Unpack[QueueOptions],
) -> WorkQueue:
    """Open the queue ``name`` on ``backend``, ready to use; close it with ``aclose()`` or use
    it as ``async with await open_queue(...) as queue``.

    ``path`` is the SQLite file (sqlite), ``url`` the Redis URL (redis); the other is ignored.
    ``options`` are the settings every backend takes (``QueueOptions``, each one's default in
    ``QueueBase``): ``prefix`` namespaces tables and keys (``{prefix}:q:{name}``);
    ``consumer`` names this reader (default ``hostname-pid``; must be unique among running
    consumers). ``visibility_timeout`` is a lease's length in seconds, ``max_deliveries`` how
    many deliveries an entry gets before it is dead-lettered. ``keep_acked`` makes the queue
    a log as well: acknowledged entries stay visible to ``tail``, and the newest ``retain``
    entries are kept (older ones are trimmed, acknowledged or not).

    A Redis queue opened here owns its client, whose lifetime is a task group: close the queue
    in the task that opened it, after whatever was opened later.

    Raises ``ValueError`` (or ``TypeError``) for an unknown backend, a missing path or url, or
    a bad setting; ``QueueBackendError`` when the backend cannot be opened.
    """
    if backend == "sqlite":
        if not path:
            raise ValueError(f"queue {name!r}: the sqlite backend needs a path")
        queue = SqliteQueue(path, name, **options)
        try:
            await queue.open()
        except BaseException:
            await queue.aclose()
            raise
        return queue
    if backend == "redis":
        if not url:
            raise ValueError(f"queue {name!r}: the redis backend needs a url")
        return await RedisQueue.connect(url, name, **options)
    raise ValueError(f"unknown queue backend {backend!r}: expected one of {', '.join(BACKENDS)}")


__all__ = [
    "BACKENDS",
    "MAX_BATCH",
    "DeadLetter",
    "Entry",
    "Leased",
    "QueueBackendError",
    "QueueClosedError",
    "QueueError",
    "QueueOptions",
    "RedisQueue",
    "SqliteQueue",
    "WorkQueue",
    "open_queue",
]
