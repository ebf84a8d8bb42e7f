"""The pool's pure decisions: what a part's answer calls for (``decide``) and what a settled
message's outcome is (``final_status``), table-driven and by property."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smpp_bridge.codec.constants import CommandStatus as S
from smpp_bridge.codec.status import Status
from smpp_bridge.pool.classify import DEFAULT_POLICY, StatusPolicy
from smpp_bridge.pool.config import UnknownPolicy
from smpp_bridge.pool.job import Outcome, decide, final_status

MAX = 5


def decide_default(
    status: int | None, attempts: int = 0, *, nack: bool = False, unknown: UnknownPolicy = "retry"
) -> Outcome:
    return decide(
        status,
        nack=nack,
        attempts=attempts,
        max_retries=MAX,
        policy=DEFAULT_POLICY,
        unknown=unknown,
    )


@pytest.mark.parametrize(
    ("status", "attempts", "unknown", "expected"),
    [
        (0, 0, "retry", Outcome.SETTLE),
        (0, MAX, "report", Outcome.SETTLE),  # accepted, whatever the count
        (S.ESME_RTHROTTLED, 0, "retry", Outcome.BACKPRESSURE),
        (S.ESME_RMSGQFUL, MAX + 3, "retry", Outcome.BACKPRESSURE),  # a push-back has no cap
        (S.ESME_RSYSERR, 0, "retry", Outcome.RETRY),
        (S.ESME_RSYSERR, MAX - 1, "retry", Outcome.RETRY),
        (S.ESME_RSYSERR, MAX, "retry", Outcome.FAIL),  # retries spent
        (S.ESME_RINVDSTADR, 0, "retry", Outcome.FAIL),  # permanent
        (None, 0, "retry", Outcome.RETRY),  # no answer, resent as a possible duplicate
        (None, MAX, "retry", Outcome.FAIL),
        (None, 0, "report", Outcome.FAIL),  # no answer, reported unknown
    ],
)
def test_decide_table(
    status: int | None, attempts: int, unknown: UnknownPolicy, expected: Outcome
) -> None:
    assert decide_default(status, attempts, unknown=unknown) is expected


def test_decide_follows_the_accounts_overrides() -> None:
    policy = StatusPolicy.overriding(transient=(0x400,), permanent=("ESME_RSYSERR",))
    for status, expected in ((0x400, Outcome.RETRY), (S.ESME_RSYSERR, Outcome.FAIL)):
        outcome = decide(
            status, nack=False, attempts=0, max_retries=MAX, policy=policy, unknown="retry"
        )
        assert outcome is expected


statuses = st.one_of(st.none(), st.integers(0, 0xFFFFFFFF), st.sampled_from(list(S)))


@given(
    status=statuses,
    attempts=st.integers(0, 20),
    max_retries=st.integers(0, 10),
    nack=st.booleans(),
    unknown=st.sampled_from(["retry", "report"]),
)
def test_every_input_yields_exactly_one_decision(
    status: int | None, attempts: int, max_retries: int, nack: bool, unknown: UnknownPolicy
) -> None:
    outcome = decide(
        status,
        nack=nack,
        attempts=attempts,
        max_retries=max_retries,
        policy=DEFAULT_POLICY,
        unknown=unknown,
    )
    assert isinstance(outcome, Outcome)
    # Settled exactly when accepted; a retry never past the cap.
    assert (outcome is Outcome.SETTLE) == (status == 0)
    if outcome is Outcome.RETRY:
        assert attempts < max_retries
    if outcome is Outcome.BACKPRESSURE:
        assert status is not None and status != 0


@given(
    answers=st.lists(statuses.filter(lambda s: s != 0), min_size=1, max_size=40),
    max_retries=st.integers(0, 8),
)
def test_a_part_refused_again_and_again_ends_within_max_retries(
    answers: list[int | None], max_retries: int
) -> None:
    """Counting attempts as the pool does (each retry, push-backs included, adds one), the
    retries that are not push-backs never go past ``max_retries``: the part fails by then."""
    retried = 0
    for attempts, status in enumerate(answers):
        outcome = decide(
            status,
            nack=False,
            attempts=attempts,
            max_retries=max_retries,
            policy=DEFAULT_POLICY,
            unknown="retry",
        )
        if outcome is Outcome.FAIL:
            break
        assert outcome in (Outcome.RETRY, Outcome.BACKPRESSURE)
        retried += outcome is Outcome.RETRY
        assert retried <= max_retries


@pytest.mark.parametrize(
    ("code", "unknown", "reason", "accepted", "expected"),
    [
        (0, False, None, True, Status.SENT),
        (0x0B, False, "command_status 0x0000000B", True, Status.ERROR),  # a code first
        (0x0B, True, "x", False, Status.ERROR),
        (0, True, "response timeout", True, Status.UNKNOWN),
        (0, True, None, False, Status.UNKNOWN),
        (0, False, "cannot encode", False, Status.ERROR),  # nothing accepted
        (0, False, "not resent: drained", True, Status.SENT),  # a part accepted: sent
    ],
)
def test_final_status_order(
    code: int, unknown: bool, reason: str | None, accepted: bool, expected: Status
) -> None:
    assert final_status(code, unknown, reason, accepted) is expected


@given(st.integers(0, 0xFFFF), st.booleans(), st.one_of(st.none(), st.text()), st.booleans())
def test_final_status_is_one_of_three(
    code: int, unknown: bool, reason: str | None, accepted: bool
) -> None:
    assert final_status(code, unknown, reason, accepted) in (
        Status.SENT,
        Status.ERROR,
        Status.UNKNOWN,
    )
