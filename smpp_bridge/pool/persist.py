"""Backend calls that must go through: a store or a queue that fails is a pause, not an end.

The pool's correlation store and the daemon's queues and message store are called from tasks
whose end would end the process (the settler, a bind's receipt handler, the consumer), with
work in hand that must not be dropped: mappings to store before an outcome is published,
receipts to look up before their deliver_sm_resp, claims and acknowledgements. ``until_done``
tries such a call again, with exponential backoff, until it goes through; a backend that is
closed (a shutdown) is not waited for. Only calls that are safe to repeat belong here: puts
that replace, reads, idempotent deletes and acknowledgements, claims their caller recognises
as its own (see ``bridge.app.Bridge._take``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar

import anyio
import structlog

from ..errors import StoreClosedError

log = structlog.get_logger("smpp_bridge.persist")

T = TypeVar("T")

RETRY_BASE: Final = 0.05  # seconds before the first retry; doubled each time
RETRY_CAP: Final = 2.0


async def until_done(
    what: str,
    call: Callable[..., Awaitable[T]],
    *args: Any,
    closed: tuple[type[BaseException], ...] = (StoreClosedError,),
    on_error: Callable[[str], None] | None = None,
    give_up: Callable[[], bool] | None = None,
    **kwargs: Any,
) -> T:
    """``await call(*args, **kwargs)``, tried again after each failure (an ``Exception``
    other than ``closed``, which is raised at once) until it returns. Each failure is logged
    as ``"<what> failed: trying again"`` and given to ``on_error`` as
    ``"<what> failed: <error>"``. ``give_up``: asked after each failure; true re-raises it
    (a shutdown past its deadline: what the call was for is left to redelivery)."""
    delay = RETRY_BASE
    while True:
        try:
            return await call(*args, **kwargs)
        except closed:
            raise
        except Exception as exc:
            if on_error is not None:
                on_error(f"{what} failed: {exc}")
            if give_up is not None and give_up():
                log.error(f"{what} failed: giving up, shutting down", error=str(exc))
                raise
            log.warning(f"{what} failed: trying again", error=str(exc), retry_in=delay)
            await anyio.sleep(delay)
            delay = min(delay * 2, RETRY_CAP)


__all__ = ["RETRY_BASE", "RETRY_CAP", "until_done"]
