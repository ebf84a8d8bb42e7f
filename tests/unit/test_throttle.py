"""Token buckets (budgets, nesting) and the adaptive AIMD throttle, on a fake time line.

The property tests drive the throttle against a simulated SMSC that refuses with
ESME_RTHROTTLED above a rate R (counted over a sliding second, independently of our bucket
code): the rate it settles at, how much it offers above R, and how fast it recovers once the
SMSC stops refusing.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smpp_bridge.pool.throttle import AdaptiveThrottle, TokenBucket, try_take_all, wait_time_all

# --- TokenBucket -------------------------------------------------------------------------------


def test_bucket_starts_full_and_empties() -> None:
    bucket = TokenBucket(rate=10, burst=3, now=100.0)
    assert [bucket.try_take(100.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.tokens(100.0) == pytest.approx(0.0)


def test_bucket_initial_tokens_clamped() -> None:
    assert TokenBucket(10, 3, 0.0, tokens=0).tokens(0.0) == 0
    assert TokenBucket(10, 3, 0.0, tokens=99).tokens(0.0) == 3
    assert TokenBucket(10, 3, 0.0, tokens=-5).tokens(0.0) == 0


def test_bucket_refills_at_rate_up_to_burst() -> None:
    bucket = TokenBucket(rate=10, burst=5, now=0.0, tokens=0)
    assert bucket.tokens(0.25) == pytest.approx(2.5)
    assert bucket.tokens(10.0) == 5  # capped, not 100


def test_wait_time_is_exact_and_zero_when_available() -> None:
    bucket = TokenBucket(rate=4, burst=2, now=0.0, tokens=0)
    assert bucket.wait_time(0.0) == pytest.approx(0.25)
    assert bucket.wait_time(0.0, 2) == pytest.approx(0.5)
    assert not bucket.try_take(0.2)
    assert bucket.wait_time(0.2) == pytest.approx(0.05)
    # Waiting exactly the advertised time is enough, despite float rounding.
    wait = bucket.wait_time(0.2)
    assert bucket.wait_time(0.2 + wait) == 0.0
    assert bucket.try_take(0.2 + wait)


def test_fractional_takes() -> None:
    bucket = TokenBucket(rate=1, burst=1, now=0.0)
    assert bucket.try_take(0.0, 0.5)
    assert bucket.try_take(0.0, 0.5)
    assert not bucket.try_take(0.0, 0.5)


def test_failed_take_takes_nothing() -> None:
    bucket = TokenBucket(rate=1, burst=3, now=0.0, tokens=2)
    assert not bucket.try_take(0.0, 3)
    assert bucket.tokens(0.0) == 2


def test_clock_going_backwards_mints_nothing() -> None:
    bucket = TokenBucket(rate=10, burst=10, now=50.0, tokens=0)
    assert bucket.tokens(40.0) == 0
    assert not bucket.try_take(45.0)
    # The later stamp is kept: refilling resumes from 50, not from 40.
    assert bucket.tokens(50.1) == pytest.approx(1.0)


def test_set_rate_credits_accrued_tokens_at_the_old_rate() -> None:
    bucket = TokenBucket(rate=10, burst=100, now=0.0, tokens=0)
    bucket.set_rate(1, now=2.0)  # 20 tokens earned at 10/s before the change
    assert bucket.rate == 1
    assert bucket.tokens(2.0) == pytest.approx(20)
    assert bucket.tokens(4.0) == pytest.approx(22)  # then 1/s


def test_set_rate_with_smaller_burst_trims_tokens() -> None:
    bucket = TokenBucket(rate=10, burst=10, now=0.0)
    bucket.set_rate(5, now=0.0, burst=2)
    assert bucket.burst == 2
    assert bucket.tokens(0.0) == 2
    bucket.set_rate(5, now=0.0, burst=8)  # a larger burst does not add tokens
    assert bucket.tokens(0.0) == 2


@pytest.mark.parametrize(("rate", "burst"), [(0, 1), (-1, 1), (1, 0), (math.inf, 1), (1, math.nan)])
def test_bucket_rejects_bad_parameters(rate: float, burst: float) -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate, burst, 0.0)


def test_bucket_rejects_impossible_takes() -> None:
    bucket = TokenBucket(rate=1, burst=2, now=0.0)
    for n in (3, 0, -1, math.nan):
        with pytest.raises(ValueError):
            bucket.try_take(0.0, n)
        with pytest.raises(ValueError):
            bucket.wait_time(0.0, n)
    with pytest.raises(ValueError):
        bucket.set_rate(0, 0.0)
    with pytest.raises(ValueError):
        bucket.set_rate(1, 0.0, burst=-1)


def test_take_all_is_all_or_nothing() -> None:
    account = TokenBucket(rate=1, burst=5, now=0.0)
    bind = TokenBucket(rate=1, burst=1, now=0.0)
    assert try_take_all([account, bind], 0.0)
    assert account.tokens(0.0) == 4
    # The bind is empty: the account keeps its token.
    assert not try_take_all([account, bind], 0.0)
    assert account.tokens(0.0) == 4
    assert try_take_all([], 0.0)


def test_wait_time_all_is_the_slowest() -> None:
    fast = TokenBucket(rate=10, burst=1, now=0.0, tokens=0)
    slow = TokenBucket(rate=2, burst=1, now=0.0, tokens=0)
    assert wait_time_all([fast, slow], 0.0) == pytest.approx(0.5)
    assert wait_time_all([], 0.0) == 0.0
    assert try_take_all([fast, slow], 0.5)


@settings(max_examples=60, deadline=None)
@given(
    rate=st.floats(0.5, 500),
    burst=st.floats(1, 50),
    steps=st.lists(st.tuples(st.floats(0, 0.2), st.sampled_from([0.5, 1, 2])), max_size=200),
)
def test_bucket_never_grants_more_than_rate_times_time_plus_burst(
    rate: float, burst: float, steps: list[tuple[float, float]]
) -> None:
    bucket = TokenBucket(rate, burst, 0.0)
    now = granted = 0.0
    for dt, n in steps:
        now += dt
        if n <= burst and bucket.try_take(now, n):
            granted += n
        assert granted <= burst + rate * now + 1e-6


# --- AdaptiveThrottle --------------------------------------------------------------------------


def test_throttle_starts_at_the_maximums() -> None:
    throttle = AdaptiveThrottle(max_rate=100, max_window=10)
    assert (throttle.rate, throttle.window, throttle.at_max) == (100, 10, True)


def test_backpressure_cuts_rate_and_window() -> None:
    throttle = AdaptiveThrottle(max_rate=100, max_window=10, decrease=0.5)
    assert throttle.on_backpressure(1.0)
    assert (throttle.rate, throttle.window) == (50, 5)
    assert not throttle.at_max


def test_backpressure_respects_floors() -> None:
    throttle = AdaptiveThrottle(
        max_rate=100, max_window=10, min_rate=30, min_window=4, cooldown=0.0
    )
    for i in range(10):
        throttle.on_backpressure(float(i))
    assert (throttle.rate, throttle.window) == (30, 4)
    # At the floor nothing changes any more, and the return value says so.
    assert not throttle.on_backpressure(20.0)


def test_a_burst_of_refusals_counts_once_per_cooldown() -> None:
    throttle = AdaptiveThrottle(max_rate=100, max_window=20, cooldown=1.0)
    decreased = [throttle.on_backpressure(5.0 + i * 0.005) for i in range(100)]
    assert decreased.count(True) == 1
    assert (throttle.rate, throttle.window) == (50, 10)
    # After the cooldown a new refusal counts again.
    assert throttle.on_backpressure(6.0)
    assert (throttle.rate, throttle.window) == (25, 5)


def test_refusals_of_requests_sent_before_the_cut_are_ignored() -> None:
    throttle = AdaptiveThrottle(max_rate=100, max_window=20, cooldown=0.5)
    throttle.on_backpressure(10.0, sent_at=9.9)
    # Long after the cooldown, but sent before the cut: already paid for.
    assert not throttle.on_backpressure(12.0, sent_at=9.95)
    assert throttle.rate == 50
    assert throttle.on_backpressure(12.0, sent_at=10.5)
    assert throttle.rate == 25


def test_recovery_is_additive_per_interval() -> None:
    throttle = AdaptiveThrottle(
        max_rate=100, max_window=10, rate_step=10, recovery_interval=1.0, decrease=0.5
    )
    throttle.on_backpressure(0.0)  # 50, 5
    assert not throttle.tick(0.99)
    assert throttle.on_success(1.0)
    assert (throttle.rate, throttle.window) == (60, 6)
    assert not throttle.tick(1.5)  # the half interval is not lost...
    assert throttle.tick(2.0)  # ...it completes here
    assert (throttle.rate, throttle.window) == (70, 7)
    assert throttle.tick(4.2)  # two intervals at once
    assert (throttle.rate, throttle.window) == (90, 9)
    assert throttle.tick(100.0)
    assert (throttle.rate, throttle.window, throttle.at_max) == (100, 10, True)
    assert not throttle.tick(200.0)


def test_default_rate_step_is_a_tenth_of_max() -> None:
    throttle = AdaptiveThrottle(max_rate=200, max_window=50, cooldown=0.0)
    throttle.on_backpressure(0.0)
    throttle.tick(1.0)
    assert throttle.rate == 120


def test_recovery_time_bounds_full_recovery() -> None:
    throttle = AdaptiveThrottle(
        max_rate=100, max_window=40, min_rate=1, rate_step=5, window_step=2, cooldown=0.0
    )
    for i in range(20):
        throttle.on_backpressure(i * 0.001)
    assert (throttle.rate, throttle.window) == (1, 1)
    bound = throttle.recovery_time()
    assert bound == 20.0  # rate: ceil(99/5) = 20 steps; window: ceil(39/2) = 20 steps
    start = 19 * 0.001
    throttle.tick(start + bound - 1.0)
    assert not throttle.at_max
    throttle.tick(start + bound)
    assert throttle.at_max


def test_congestion_state_bands() -> None:
    throttle = AdaptiveThrottle(max_rate=100, max_window=10, rate_step=10, cooldown=0.0)
    assert not throttle.on_congestion(50, 0.0)  # at max already: nothing to recover
    assert throttle.on_congestion(95, 1.0)  # nearing congestion: slow down
    assert throttle.rate == 50
    assert throttle.on_congestion(90, 1.1)  # 90 itself counts as "slow down"
    assert throttle.rate == 25
    # 80-89: hold. Time passes but nothing recovers while the SMSC says so...
    assert not throttle.on_congestion(85, 3.0)
    assert not throttle.on_congestion(89, 3.9)
    assert throttle.rate == 25
    # ...and recovery resumes a full interval after the last hold.
    assert not throttle.on_congestion(79, 4.5)
    assert throttle.on_congestion(20, 4.9)
    assert throttle.rate == 35


def test_congestion_counts_with_the_same_cooldown() -> None:
    throttle = AdaptiveThrottle(max_rate=100, max_window=10, cooldown=1.0)
    throttle.on_backpressure(0.0)
    assert not throttle.on_congestion(100, 0.5)
    assert throttle.rate == 50


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_rate": 0, "max_window": 1},
        {"max_rate": 10, "max_window": 0},
        {"max_rate": 10, "max_window": 5, "min_window": 6},
        {"max_rate": 10, "max_window": 5, "min_rate": 11},
        {"max_rate": 10, "max_window": 5, "decrease": 1.0},
        {"max_rate": 10, "max_window": 5, "decrease": 0.0},
        {"max_rate": 10, "max_window": 5, "cooldown": -1},
        {"max_rate": 10, "max_window": 5, "recovery_interval": 0},
        {"max_rate": 10, "max_window": 5, "rate_step": 0},
        {"max_rate": 10, "max_window": 5, "window_step": 0},
    ],
)
def test_throttle_rejects_bad_parameters(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        AdaptiveThrottle(**kwargs)  # type: ignore[arg-type]


# --- Simulation: an ESME with bucket + throttle against an SMSC that throttles above R ----------


@dataclass
class SimResult:
    sends: list[tuple[float, bool]]  # (time, accepted)
    max_rate_seen: float
    max_window_seen: int
    max_outstanding: int
    throttle: AdaptiveThrottle
    at_max_since: float | None  # first time after the lift the throttle was back at max


def simulate(
    *,
    max_rate: float,
    limit: float,
    latency: float,
    decrease: float,
    use_sent_at: bool,
    duration: float,
    lift_at: float | None = None,
) -> SimResult:
    """Event-driven: the ESME sends whenever its window and bucket allow; each submit is
    answered after ``latency``; the SMSC accepts at most ``limit`` per sliding second (no
    limit after ``lift_at``) and answers ESME_RTHROTTLED above it. Stops at ``duration``, or
    once the throttle is back at its maximums after the lift.

    The window is sized to carry ``max_rate`` twice over at this latency, and recovers in
    about ten steps like the rate does, so the simulated time stays short.
    """
    max_window = max(2, math.ceil(max_rate * latency * 2) + 2)
    throttle = AdaptiveThrottle(
        max_rate,
        max_window,
        now=0.0,
        decrease=decrease,
        window_step=max(1, math.ceil(max_window / 10)),
    )
    bucket = TokenBucket(throttle.rate, max(1.0, throttle.rate / 10), 0.0)
    smsc_accepted: deque[float] = deque()
    pending: deque[tuple[float, float, bool]] = deque()  # constant latency: FIFO
    sends: list[tuple[float, bool]] = []
    max_rate_seen, max_window_seen, max_outstanding = throttle.rate, throttle.window, 0
    at_max_since: float | None = None
    now = 0.0
    # Every loop sends, answers or moves time on; a bucket whose wait_time does not really
    # make a token available would spin here forever, so fail fast instead of hanging.
    budget = 10 * max_rate * duration + 10_000
    while now < duration:
        budget -= 1
        assert budget > 0, f"simulation stalled at t={now}"
        while pending and pending[0][0] <= now:
            answered, sent, ok = pending.popleft()
            if ok:
                changed = throttle.on_success(answered)
            else:
                changed = throttle.on_backpressure(answered, sent_at=sent if use_sent_at else None)
            if changed:
                bucket.set_rate(throttle.rate, answered, burst=max(1.0, throttle.rate / 10))
            max_rate_seen = max(max_rate_seen, throttle.rate)
            max_window_seen = max(max_window_seen, throttle.window)
            if lift_at is not None and now >= lift_at and throttle.at_max:
                at_max_since = now
                break
        if at_max_since is not None:
            break
        if len(pending) < throttle.window and bucket.try_take(now):
            while smsc_accepted and smsc_accepted[0] <= now - 1.0:
                smsc_accepted.popleft()
            ok = (lift_at is not None and now >= lift_at) or len(smsc_accepted) < limit
            if ok:
                smsc_accepted.append(now)
            pending.append((now + latency, now, ok))
            sends.append((now, ok))
            max_outstanding = max(max_outstanding, len(pending))
            continue
        candidates = [pending[0][0]] if pending else []
        if len(pending) < throttle.window:
            candidates.append(now + bucket.wait_time(now))
        now = min(candidates)
    return SimResult(sends, max_rate_seen, max_window_seen, max_outstanding, throttle, at_max_since)


SIM = {
    "max_rate": st.floats(20, 300),
    "fraction": st.floats(0.05, 0.9),
    "latency": st.floats(0.005, 0.25),
    "decrease": st.floats(0.5, 0.8),
    "use_sent_at": st.booleans(),
}


@settings(max_examples=25, deadline=None)
@given(**SIM)
def test_rate_converges_near_the_smsc_limit(
    max_rate: float, fraction: float, latency: float, decrease: float, use_sent_at: bool
) -> None:
    # SMSC limits of a few messages per second make "one recovery step above" meaningless
    # (a single burst token is a large share of the rate); real limits start around ten.
    limit = max(10, int(max_rate * fraction))
    result = simulate(
        max_rate=max_rate,
        limit=limit,
        latency=latency,
        decrease=decrease,
        use_sent_at=use_sent_at,
        duration=50.0,
    )
    # Never above the configured maximums, whatever the SMSC does.
    assert result.max_rate_seen <= max_rate
    assert result.max_window_seen <= result.throttle.max_window
    assert result.max_outstanding <= result.throttle.max_window
    # After settling (the first 20 s), the accepted rate is a good share of what the SMSC
    # allows, and what we offer stays within one recovery step above it.
    late = [ok for t, ok in result.sends if t >= 20.0]
    span = 30.0
    accepted = sum(late) / span
    offered = len(late) / span
    assert accepted >= 0.55 * limit
    assert accepted <= limit * (1 + 1 / span)
    # AIMD overshoots by up to a recovery step per interval before the next cut lands (two
    # steps when the step is large against the limit), plus the bucket's burst token.
    assert offered <= limit + 2 * result.throttle.rate_step + 1


@settings(max_examples=25, deadline=None)
@given(**SIM)
def test_recovers_to_max_in_bounded_time_once_throttling_stops(
    max_rate: float, fraction: float, latency: float, decrease: float, use_sent_at: bool
) -> None:
    limit = max(2, int(max_rate * fraction))
    lift_at = 15.0
    result = simulate(
        max_rate=max_rate,
        limit=limit,
        latency=latency,
        decrease=decrease,
        use_sent_at=use_sent_at,
        duration=lift_at + 30.0,
        lift_at=lift_at,
    )
    throttle = result.throttle
    # Refusals still in flight at the lift may cut once more; from then on recovery takes at
    # most recovery_time(), plus the interval already started and one response's latency.
    bound = latency + throttle.recovery_time() + throttle.recovery_interval + latency
    assert result.at_max_since is not None
    assert result.at_max_since <= lift_at + bound
    assert throttle.at_max
    assert result.max_rate_seen <= max_rate
    # Never faster than max_rate per sliding second (plus the bucket's burst).
    window = deque[float]()
    for t, _ in result.sends:
        window.append(t)
        while window[0] <= t - 1.0:
            window.popleft()
        assert len(window) <= max_rate + max(1.0, max_rate / 10) + 1


def test_simulation_really_throttles() -> None:
    """The simulated SMSC does refuse, and the throttle does go down: the properties above
    are not passing on a simulation that never exercises back-pressure."""
    result = simulate(
        max_rate=100, limit=20, latency=0.05, decrease=0.5, use_sent_at=False, duration=20.0
    )
    refused = sum(not ok for _, ok in result.sends)
    assert refused > 0
    assert result.throttle.rate < 100
