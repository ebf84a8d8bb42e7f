"""Two small concurrency helpers the layers above the session share."""

from __future__ import annotations

from types import TracebackType

import anyio


class Signal:
    """A wake-up that can be waited for again and again: ``fire()`` wakes whoever waits now,
    and the next ``wait()`` waits for the next ``fire()`` (an ``anyio.Event`` re-armed on
    every fire, the pattern the pool, the driver and the simulator each wrote by hand)."""

    __slots__ = ("_event",)

    def __init__(self) -> None:
        self._event = anyio.Event()

    def fire(self) -> None:
        """Wake every current waiter; later waiters wait for the next fire."""
        event, self._event = self._event, anyio.Event()
        event.set()

    async def wait(self) -> None:
        """Wait for the next ``fire()``."""
        await self._event.wait()

    def event(self) -> anyio.Event:
        """The event the next ``fire()`` sets (to wait on it outside a ``wait()`` call, or to
        take it before doing something whose result a fire would announce)."""
        return self._event


class BodyError:
    """Keeps an error of an ``async with`` body so it can be raised as it was after the task
    group around it has closed, rather than wrapped in an exception group::

        saved = BodyError()
        async with anyio.create_task_group() as tg:
            await tg.start(service.run)
            with saved:
                try:
                    yield service
                finally:
                    await service.close()
        saved.reraise()
    """

    __slots__ = ("error",)

    def __init__(self) -> None:
        self.error: BaseException | None = None

    def __enter__(self) -> BodyError:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        if exc is not None:
            self.error = exc
            return True
        return False

    def reraise(self) -> None:
        """Raise the kept error, if any."""
        if self.error is not None:
            raise self.error


__all__ = ["BodyError", "Signal"]
