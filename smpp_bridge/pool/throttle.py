"""Rate limits for sending: token buckets (fixed TPS budgets) and an adaptive AIMD throttle.

``TokenBucket`` enforces a configured budget (messages per second with a burst allowance).
Budgets nest — a bind has its own and shares its account's — so a send takes a token from
every bucket on its path or from none (``try_take_all``), and waits for the slowest
(``wait_time_all``).

``AdaptiveThrottle`` finds the rate the SMSC actually accepts, like TCP congestion control:
ESME_RTHROTTLED / ESME_RMSGQFUL (or a v5.0 congestion_state of 90 and more) cut the rate and
the window multiplicatively, at most once per cooldown so one burst of refusals counts once;
time without trouble adds them back step by step up to the configured maximums.

Both are sans-clock: every method takes ``now`` (seconds, any monotonic origin).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

__all__ = ["AdaptiveThrottle", "TokenBucket", "try_take_all", "wait_time_all"]

# Float slack: refilling for exactly the computed wait can land a hair below a whole token.
_EPSILON = 1e-9


def _positive(name: str, value: float) -> None:
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite positive number, got {value!r}")


class TokenBucket:
    """``rate`` tokens per second, holding at most ``burst``; starts full unless ``tokens``
    says otherwise.

    A clock that steps backwards adds nothing (the bucket keeps its last refill time), so a
    caller mixing two clocks cannot mint tokens.
    """

    __slots__ = ("_burst", "_rate", "_stamp", "_tokens")

    def __init__(self, rate: float, burst: float, now: float, *, tokens: float | None = None):
        _positive("rate", rate)
        _positive("burst", burst)
        self._rate = float(rate)
        self._burst = float(burst)
        self._tokens = self._burst if tokens is None else min(self._burst, max(0.0, tokens))
        self._stamp = now

    @property
    def rate(self) -> float:
        return self._rate

    @property
    def burst(self) -> float:
        return self._burst

    def _refill(self, now: float) -> None:
        if now > self._stamp:
            self._tokens = min(self._burst, self._tokens + (now - self._stamp) * self._rate)
            self._stamp = now

    def _check_n(self, n: float) -> None:
        if not (math.isfinite(n) and n > 0):
            raise ValueError(f"n must be a finite positive number, got {n!r}")
        if n > self._burst + _EPSILON:
            # The bucket never holds that many: waiting would be forever.
            raise ValueError(f"cannot take {n} tokens from a bucket holding at most {self._burst}")

    def tokens(self, now: float) -> float:
        """Tokens available at ``now``."""
        self._refill(now)
        return self._tokens

    def available(self, now: float, n: float = 1) -> bool:
        """Whether ``n`` tokens could be taken at ``now`` (nothing is taken)."""
        self._check_n(n)
        self._refill(now)
        return self._tokens + _EPSILON >= n

    def try_take(self, now: float, n: float = 1) -> bool:
        """Take ``n`` tokens if they are there; False (and nothing taken) otherwise."""
        if not self.available(now, n):
            return False
        self._tokens = max(0.0, self._tokens - n)
        return True

    def wait_time(self, now: float, n: float = 1) -> float:
        """Seconds from ``now`` until ``n`` tokens are available; 0 if they are now."""
        if self.available(now, n):
            return 0.0
        return (n - self._tokens) / self._rate

    def set_rate(self, rate: float, now: float, *, burst: float | None = None) -> None:
        """Change the rate (and optionally the burst) from ``now`` on.

        Tokens earned up to ``now`` are credited at the old rate first, so the change only
        affects the future; a smaller burst trims the tokens held.
        """
        _positive("rate", rate)
        if burst is not None:
            _positive("burst", burst)
        self._refill(now)
        self._rate = float(rate)
        if burst is not None:
            self._burst = float(burst)
            self._tokens = min(self._tokens, self._burst)

    def __repr__(self) -> str:
        return (
            f"TokenBucket(rate={self._rate:g}, burst={self._burst:g}, "
            f"tokens={self._tokens:.3f}@{self._stamp:g})"
        )


def try_take_all(buckets: Iterable[TokenBucket], now: float, n: float = 1) -> bool:
    """Take ``n`` tokens from every bucket, or from none when any one is short.

    This is how nested budgets are charged (a bind's and its account's): a send that one
    level refuses must not consume the other level's budget.
    """
    chain = list(buckets)
    if not all(bucket.available(now, n) for bucket in chain):
        return False
    for bucket in chain:
        bucket.try_take(now, n)
    return True


def wait_time_all(buckets: Iterable[TokenBucket], now: float, n: float = 1) -> float:
    """Seconds from ``now`` until every bucket can give ``n`` tokens (the slowest decides)."""
    return max((bucket.wait_time(now, n) for bucket in buckets), default=0.0)


class AdaptiveThrottle:
    """Rate and window limits that back off when the SMSC pushes back and recover after.

    * ``on_backpressure(now)`` multiplies rate and window by ``decrease`` (not below
      ``min_rate`` / ``min_window``), at most once per ``cooldown`` seconds: everything in
      flight when the SMSC started refusing gets refused too, and all those answers together
      are one signal, not a hundred.
    * ``on_congestion(level, now)`` reads the v5.0 congestion_state (0–100): 90 and above
      counts as back-pressure, 80–89 is the optimum band the SMSC asks us to stay in (hold:
      no recovery), below 80 lets recovery continue.
    * ``tick(now)`` / ``on_success(now)``: each full ``recovery_interval`` since the last
      decrease (or hold) adds ``rate_step`` to the rate (default a tenth of ``max_rate``) and
      ``window_step`` to the window, up to ``max_rate`` / ``max_window``. From any state, both
      are back at their maximums after ``recovery_time()`` seconds without trouble.

    Every ``on_*``/``tick`` returns True when ``rate`` or ``window`` changed, so the caller can
    push the new rate into its ``TokenBucket`` (``bucket.set_rate(throttle.rate, now)``).
    """

    __slots__ = (
        "_anchor",
        "_last_decrease",
        "_rate",
        "_window",
        "cooldown",
        "decrease",
        "max_rate",
        "max_window",
        "min_rate",
        "min_window",
        "rate_step",
        "recovery_interval",
        "window_step",
    )

    def __init__(
        self,
        max_rate: float,
        max_window: int,
        *,
        now: float = 0.0,
        min_rate: float = 1.0,
        min_window: int = 1,
        decrease: float = 0.5,
        cooldown: float = 1.0,
        recovery_interval: float = 1.0,
        rate_step: float | None = None,
        window_step: int = 1,
    ) -> None:
        _positive("max_rate", max_rate)
        _positive("min_rate", min_rate)
        _positive("recovery_interval", recovery_interval)
        if min_rate > max_rate:
            raise ValueError(f"min_rate {min_rate} exceeds max_rate {max_rate}")
        if not 1 <= min_window <= max_window:
            raise ValueError(f"need 1 <= min_window <= max_window, got {min_window}, {max_window}")
        if not 0 < decrease < 1:
            raise ValueError(f"decrease must be within (0, 1), got {decrease!r}")
        if not (math.isfinite(cooldown) and cooldown >= 0):
            raise ValueError(f"cooldown must be a finite non-negative number, got {cooldown!r}")
        if window_step < 1:
            raise ValueError(f"window_step must be at least 1, got {window_step}")
        step = max_rate / 10 if rate_step is None else rate_step
        _positive("rate_step", step)
        self.max_rate = float(max_rate)
        self.max_window = max_window
        self.min_rate = float(min_rate)
        self.min_window = min_window
        self.decrease = decrease
        self.cooldown = cooldown
        self.recovery_interval = recovery_interval
        self.rate_step = step
        self.window_step = window_step
        self._rate = self.max_rate
        self._window = max_window
        self._last_decrease: float | None = None
        # Start of the recovery interval in progress.
        self._anchor = now

    @property
    def rate(self) -> float:
        """The current rate limit, messages per second."""
        return self._rate

    @property
    def window(self) -> int:
        """The current window limit: requests outstanding at once."""
        return self._window

    @property
    def at_max(self) -> bool:
        return self._rate >= self.max_rate and self._window >= self.max_window

    def recovery_time(self) -> float:
        """Seconds without trouble that bring both limits from their minimums to the maxima."""
        rate_steps = math.ceil((self.max_rate - self.min_rate) / self.rate_step)
        window_steps = math.ceil((self.max_window - self.min_window) / self.window_step)
        return max(rate_steps, window_steps) * self.recovery_interval

    def on_backpressure(self, now: float, *, sent_at: float | None = None) -> bool:
        """The SMSC refused with ESME_RTHROTTLED / ESME_RMSGQFUL (or reports congestion).

        Ignored within ``cooldown`` of the previous decrease, and — when the caller knows when
        the refused request was sent — for requests sent before that decrease: they were sent
        at the old pace, already paid for. Returns True when the limits were cut.
        """
        last = self._last_decrease
        if last is not None and (
            now - last < self.cooldown or (sent_at is not None and sent_at < last)
        ):
            return False
        old = (self._rate, self._window)
        self._rate = max(self.min_rate, self._rate * self.decrease)
        self._window = max(self.min_window, math.floor(self._window * self.decrease))
        self._last_decrease = now
        self._anchor = now
        return (self._rate, self._window) != old

    def on_congestion(self, level: int, now: float) -> bool:
        """A congestion_state TLV (0–100) arrived on a response."""
        if level >= 90:
            return self.on_backpressure(now)
        if level >= 80:
            # The SMSC's optimum band: stay where we are. Moving the anchor means recovery
            # resumes a full interval after the SMSC stops saying so.
            self._anchor = max(self._anchor, now)
            return False
        return self.tick(now)

    def on_success(self, now: float) -> bool:
        """A request was accepted: recovery continues."""
        return self.tick(now)

    def tick(self, now: float) -> bool:
        """Let time pass: add one step per full ``recovery_interval`` since the last
        decrease or hold, up to the maximums."""
        steps = math.floor((now - self._anchor) / self.recovery_interval)
        if steps <= 0:
            return False
        self._anchor += steps * self.recovery_interval
        old = (self._rate, self._window)
        self._rate = min(self.max_rate, self._rate + steps * self.rate_step)
        self._window = min(self.max_window, self._window + steps * self.window_step)
        return (self._rate, self._window) != old

    def __repr__(self) -> str:
        return (
            f"AdaptiveThrottle(rate={self._rate:g}/{self.max_rate:g}, "
            f"window={self._window}/{self.max_window})"
        )
