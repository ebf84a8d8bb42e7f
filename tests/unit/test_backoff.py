"""Full-jitter exponential backoff (bounds, distribution, long profile) and the attempt
counter that resets only after a success has held."""

from __future__ import annotations

import math
import random
import statistics

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smpp_bridge.pool import Backoff
from smpp_bridge.pool.backoff import BackoffState

# --- Backoff -----------------------------------------------------------------------------------


def test_ceiling_grows_exponentially_up_to_the_cap() -> None:
    backoff = Backoff(base=0.5, cap=30.0, factor=2.0)
    assert [backoff.ceiling(n) for n in range(8)] == [0.5, 1, 2, 4, 8, 16, 30, 30]


def test_ceiling_with_another_factor() -> None:
    backoff = Backoff(base=1.0, cap=100.0, factor=3.0)
    assert [backoff.ceiling(n) for n in range(6)] == [1, 3, 9, 27, 81, 100]


def test_factor_one_is_constant() -> None:
    backoff = Backoff(base=2.0, cap=10.0, factor=1.0)
    assert {backoff.ceiling(n) for n in range(50)} == {2.0}


def test_long_profile_has_its_own_base_cap_and_floor() -> None:
    backoff = Backoff(long_base=10.0, long_cap=600.0, long_floor=5.0)
    assert [backoff.ceiling(n, long=True) for n in (0, 1, 5, 6, 50)] == [10, 20, 320, 600, 600]
    rng = random.Random(3)
    draws = [backoff.delay(0, rng, long=True) for _ in range(2000)]
    assert min(draws) >= 5.0
    assert max(draws) <= 10.0


def test_huge_attempts_stay_at_the_cap() -> None:
    backoff = Backoff(base=0.5, cap=30.0)
    # 2.0 ** 5000 overflows a float; the cap is the answer long before that.
    assert backoff.ceiling(5000) == 30.0
    assert 0 <= backoff.delay(10**6, random.Random(1)) <= 30.0


def test_floor_above_ceiling_wins() -> None:
    backoff = Backoff(base=0.1, cap=30.0, floor=2.0)
    assert backoff.ceiling(0) == 2.0
    assert backoff.delay(0, random.Random(0)) == 2.0


@settings(max_examples=200, deadline=None)
@given(
    base=st.floats(0.001, 100),
    cap_over_base=st.floats(1, 1000),
    factor=st.floats(1, 10),
    floor_share=st.floats(0, 1),
    attempt=st.integers(0, 3000),
    long=st.booleans(),
    seed=st.integers(0, 2**32),
)
def test_delay_always_within_floor_and_ceiling(
    *,
    base: float,
    cap_over_base: float,
    factor: float,
    floor_share: float,
    attempt: int,
    long: bool,
    seed: int,
) -> None:
    cap = base * cap_over_base
    backoff = Backoff(
        base=base,
        cap=cap,
        factor=factor,
        floor=0.0 if long else cap * floor_share,
        long_base=base,
        long_cap=cap,
        long_floor=cap * floor_share if long else 0.0,
    )
    ceiling = backoff.ceiling(attempt, long=long)
    # Independent formula, in logarithms so no attempt overflows.
    if attempt * math.log(factor) >= math.log(cap / base):
        expected = cap
    else:
        expected = base * factor**attempt
    floor = backoff.long_floor if long else backoff.floor
    assert ceiling == pytest.approx(max(floor, expected), rel=1e-9)
    delay = backoff.delay(attempt, random.Random(seed), long=long)
    assert floor <= delay <= ceiling


def test_full_jitter_distribution_is_uniform_over_zero_to_ceiling() -> None:
    backoff = Backoff(base=1.0, cap=8.0)
    rng = random.Random(20260421)
    draws = [backoff.delay(3, rng) for _ in range(10_000)]  # ceiling 8
    assert min(draws) >= 0 and max(draws) <= 8
    # Uniform(0, 8): mean 4, standard deviation 8/sqrt(12) ~ 2.31.
    assert statistics.fmean(draws) == pytest.approx(4.0, rel=0.02)
    assert statistics.pstdev(draws) == pytest.approx(8 / math.sqrt(12), rel=0.03)
    # Each quarter of the range gets about a quarter of the draws (not bunched at the top,
    # as "equal jitter" or a fixed delay would be).
    quarters = [sum(1 for d in draws if q * 2 <= d < (q + 1) * 2) for q in range(4)]
    assert all(abs(count - 2500) < 200 for count in quarters), quarters


def test_same_seed_same_delays() -> None:
    backoff = Backoff()
    first = [backoff.delay(n, random.Random(42)) for n in range(10)]
    again = [backoff.delay(n, random.Random(42)) for n in range(10)]
    assert first == again


@pytest.mark.parametrize(
    "kwargs",
    [
        {"base": 0},
        {"base": -1},
        {"cap": 0},
        {"factor": 0.5},
        {"factor": math.nan},
        {"floor": -1},
        {"floor": 40, "cap": 30},
        {"long_floor": 700},
        {"long_base": math.inf},
    ],
)
def test_backoff_rejects_bad_parameters(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Backoff(**kwargs)


def test_negative_attempt_is_an_error() -> None:
    with pytest.raises(ValueError):
        Backoff().ceiling(-1)


# --- BackoffState ------------------------------------------------------------------------------


def make_state(**kwargs: float | int | None) -> BackoffState:
    return BackoffState(Backoff(base=1.0, cap=100.0), random.Random(5), **kwargs)  # type: ignore[arg-type]


def test_failures_count_and_delays_follow_the_attempts() -> None:
    state = make_state()
    delays = [state.failure(10.0 * i) for i in range(6)]
    assert state.attempts == 6
    for attempt, delay in enumerate(delays):
        assert delay is not None
        assert 0 <= delay <= min(100.0, 2.0**attempt)
    assert state.ready_at == pytest.approx(50.0 + (delays[-1] or 0))


def test_success_resets_only_after_holding() -> None:
    state = make_state(reset_after=60.0)
    for _ in range(4):
        state.failure(0.0)
    state.success(100.0)
    assert state.ready_at is None
    # Down again 30 s later: too soon, the count goes on.
    state.failure(130.0)
    assert state.attempts == 5
    state.success(200.0)
    state.refresh(259.9)
    assert state.attempts == 5
    state.refresh(260.0)
    assert state.attempts == 0
    # The next failure starts from attempt 0 again (ceiling base = 1 s).
    delay = state.failure(1000.0)
    assert delay is not None and delay <= 1.0
    assert state.attempts == 1


def test_failure_after_a_held_success_starts_over_without_refresh() -> None:
    state = make_state(reset_after=10.0)
    for _ in range(3):
        state.failure(0.0)
    state.success(5.0)
    state.failure(15.0)  # held exactly 10 s: forgotten, this is attempt 0
    assert state.attempts == 1


def test_repeated_success_reports_do_not_extend_the_hold() -> None:
    state = make_state(reset_after=10.0)
    state.failure(0.0)
    state.success(1.0)
    state.success(9.0)  # e.g. every enquire_link_resp reported as a success
    state.refresh(11.0)
    assert state.attempts == 0


def test_max_attempts_gives_up() -> None:
    state = make_state(max_attempts=3)
    assert [state.failure(0.0) is None for _ in range(5)] == [False, False, False, True, True]
    assert state.ready_at is None


def test_long_failures_share_the_count() -> None:
    backoff = Backoff(base=1.0, cap=100.0, long_base=10.0, long_cap=600.0, long_floor=5.0)
    state = BackoffState(backoff, random.Random(9))
    state.failure(0.0)
    state.failure(0.0)
    delay = state.failure(0.0, long=True)  # third failure: long ceiling 10 * 2**2 = 40
    assert delay is not None and 5.0 <= delay <= 40.0
    assert state.attempts == 3


def test_state_rejects_bad_parameters() -> None:
    with pytest.raises(ValueError):
        make_state(max_attempts=0)
    with pytest.raises(ValueError):
        make_state(reset_after=-1.0)
