"""Exponential backoff with full jitter, and a small attempt counter for reconnecting binds.

Full jitter (delay drawn uniformly from 0 to the exponential ceiling) spreads the retries of
many binds or messages that failed together, so they do not come back in lock-step and knock
the SMSC over again. The "long" profile is for binds the SMSC refused as busy (already bound,
too many binds, throttled): it starts higher, caps higher and never goes below a floor, so a
refused bind never hammers however the dice fall.

Time is passed in and randomness comes from an injected ``random.Random``: nothing here reads
a clock, and a seeded generator makes every delay reproducible in tests.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

__all__ = ["Backoff", "BackoffState"]


def _check(name: str, value: float, *, positive: bool = False) -> None:
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        kind = "positive" if positive else "non-negative"
        raise ValueError(f"{name} must be a finite {kind} number, got {value!r}")


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delays for retry ``attempt`` (0 for the first retry): drawn uniformly from
    ``[floor, max(floor, min(cap, base * factor ** attempt))]``.

    With ``floor`` 0 (the normal profile's default) that is textbook full jitter. The long
    profile (``long=True``) uses ``long_base``, ``long_cap`` and ``long_floor`` with the same
    factor.
    """

    base: float = 0.5
    cap: float = 30.0
    factor: float = 2.0
    floor: float = 0.0
    long_base: float = 10.0
    long_cap: float = 600.0
    long_floor: float = 5.0

    def __post_init__(self) -> None:
        _check("base", self.base, positive=True)
        _check("cap", self.cap, positive=True)
        _check("floor", self.floor)
        _check("long_base", self.long_base, positive=True)
        _check("long_cap", self.long_cap, positive=True)
        _check("long_floor", self.long_floor)
        _check("factor", self.factor, positive=True)
        if self.factor < 1:
            raise ValueError(f"factor must be at least 1, got {self.factor!r}")
        if self.floor > self.cap or self.long_floor > self.long_cap:
            raise ValueError("a floor cannot exceed its cap")

    def ceiling(self, attempt: int, *, long: bool = False) -> float:
        """The upper bound of the delay for ``attempt``: ``min(cap, base * factor**attempt)``,
        never below the floor."""
        if attempt < 0:
            raise ValueError(f"attempt must be non-negative, got {attempt}")
        base, cap, floor = (
            (self.long_base, self.long_cap, self.long_floor)
            if long
            else (self.base, self.cap, self.floor)
        )
        try:
            raw = base * self.factor**attempt
        except OverflowError:
            # Attempts in the thousands overflow a float long after the cap was reached.
            raw = cap
        return max(floor, min(cap, raw))

    def delay(self, attempt: int, rng: random.Random, *, long: bool = False) -> float:
        """A jittered delay for ``attempt``, drawn with ``rng``."""
        high = self.ceiling(attempt, long=long)
        low = self.long_floor if long else self.floor
        return rng.uniform(low, high)


class BackoffState:
    """Attempt counting for one reconnecting thing (a bind): how long to wait after each
    failure, and when the count starts over.

    A success does not reset the count at once: it must hold for ``reset_after`` seconds. A
    bind that comes up and drops straight away (bad credentials on some SMSCs, a firewall
    cutting idle sessions, a flapping link) therefore keeps backing off instead of
    reconnecting at the shortest delay forever. ``max_attempts`` (None: unlimited) makes
    ``failure`` return None once that many consecutive failures were counted.
    """

    __slots__ = (
        "_attempts",
        "_rng",
        "_stable_at",
        "backoff",
        "max_attempts",
        "ready_at",
        "reset_after",
    )

    def __init__(
        self,
        backoff: Backoff,
        rng: random.Random,
        *,
        reset_after: float = 60.0,
        max_attempts: int | None = None,
    ) -> None:
        _check("reset_after", reset_after)
        if max_attempts is not None and max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")
        self.backoff = backoff
        self.reset_after = reset_after
        self.max_attempts = max_attempts
        self._rng = rng
        self._attempts = 0
        # When the current success will have held long enough to forget past failures.
        self._stable_at: float | None = None
        #: When the next attempt may start (None: now; set by ``failure``).
        self.ready_at: float | None = None

    @property
    def attempts(self) -> int:
        """Consecutive failures counted so far (as of the last call that passed ``now``)."""
        return self._attempts

    def refresh(self, now: float) -> None:
        """Forget past failures if the last success has held for ``reset_after``."""
        if self._stable_at is not None and now >= self._stable_at:
            self._attempts = 0
            self._stable_at = None

    def success(self, now: float) -> None:
        """The thing came up (a bind_resp OK). The count resets once this holds long enough."""
        self.refresh(now)
        self.ready_at = None
        if self._stable_at is None:
            self._stable_at = now + self.reset_after

    def failure(self, now: float, *, long: bool = False) -> float | None:
        """It failed (or went down) at ``now``: the delay before the next attempt, or None
        when ``max_attempts`` consecutive failures have been reached (give up).

        ``long`` draws from the long profile (a BUSY bind) while sharing the one count, so a
        bind alternating between network errors and busy refusals still backs off further.
        """
        self.refresh(now)
        # Down before the success held: the failures so far still count.
        self._stable_at = None
        if self.max_attempts is not None and self._attempts >= self.max_attempts:
            self.ready_at = None
            return None
        delay = self.backoff.delay(self._attempts, self._rng, long=long)
        self._attempts += 1
        self.ready_at = now + delay
        return delay
