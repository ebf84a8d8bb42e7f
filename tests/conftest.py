"""Shared test configuration: anyio tests run on trio unless a test asks for asyncio."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import structlog


@pytest.fixture
def anyio_backend() -> str:
    return "trio"


@pytest.fixture(autouse=True)
def _structlog_reset() -> Iterator[None]:
    """A test that runs a CLI command in-process configures structlog to print to the stream
    pytest captured for it; later tests would log to that closed stream. Reset after each."""
    yield
    structlog.reset_defaults()
