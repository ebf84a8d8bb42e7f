"""Making the ``coredis`` client of a Redis backend from a URL: the one place that says how
(bytes replies, the connect and read timeouts), and that imports ``coredis`` only when a Redis
backend is actually opened.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import coredis


def redis_client(
    url: str, *, connect_timeout: float = 5.0, stream_timeout: float = 30.0
) -> coredis.Redis[bytes]:
    """A client for ``url`` answering bytes (``decode_responses=False``), not entered yet:
    its connections live in a task group, so the caller enters and leaves it in one task.
    ``stream_timeout`` bounds a read, and must stay above any blocking command's wait."""
    import coredis  # deferred: a fifth of a second to import, and only Redis users pay

    return coredis.Redis.from_url(
        url,
        decode_responses=False,
        connect_timeout=connect_timeout,
        stream_timeout=stream_timeout,
    )


__all__ = ["redis_client"]
