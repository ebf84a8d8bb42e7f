"""The real Redis the tests use (127.0.0.1:6379; CI starts one): skip without it, except under
CI, where its absence fails the test; and cleanup of a test's own key prefix."""

from __future__ import annotations

import os
import socket

import coredis
import pytest

REDIS_URL = "redis://127.0.0.1:6379/0"


def redis_available() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5):
            return True
    except OSError:
        return False


def need_redis() -> None:
    """Skip the calling test without Redis; under CI (``$CI`` set) fail it instead."""
    if not redis_available():
        if os.environ.get("CI"):
            pytest.fail("no Redis at 127.0.0.1:6379 under CI")
        pytest.skip("no Redis at 127.0.0.1:6379")


async def delete_prefix(client: coredis.Redis[bytes], prefix: str) -> int:
    """Delete every key under ``prefix:``; how many there were."""
    keys = [key async for key in client.scan_iter(match=f"{prefix}:*")]
    if keys:
        await client.delete(keys)
    return len(keys)
