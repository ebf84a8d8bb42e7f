"""``classify_claim``: every case a claimed request can be, from what the store had before."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smpp_bridge.bridge.claim import OUTCOMES, SETTLED, Claim, classify_claim
from smpp_bridge.bridge.store import MessageRecord
from smpp_bridge.codec.status import Status

NOW = 1_700_000_000.0


def record(
    request_id: str = "e1:0",
    status: str = Status.SUBMITTING,
    created_at: float = NOW,
    client_id: str | None = "order-1",
) -> MessageRecord:
    return MessageRecord(
        request_id=request_id,
        client_id=client_id,
        to="+34600000001",
        from_="ACME",
        status=status,
        created_at=created_at,
        updated_at=created_at,
    )


CLAIM = record()


@pytest.mark.parametrize(
    ("before", "policy", "case"),
    [
        (None, "retry", Claim.FRESH),
        (None, "report", Claim.FRESH),
        # This very claim, recorded by a try of ``begin`` whose reply was lost.
        (record(), "report", Claim.FRESH),
        (record(status=Status.QUEUED), "report", Claim.HANDED_BACK),
        (record(status=Status.QUEUED, created_at=NOW - 5), "retry", Claim.HANDED_BACK),
        (record(status=Status.SENT, created_at=NOW - 5), "retry", Claim.ANSWERED),
        (record(status=Status.ERROR, created_at=NOW - 5), "retry", Claim.ANSWERED),
        (record(status=Status.UNKNOWN, created_at=NOW - 5), "retry", Claim.ANSWERED),
        (record(status=Status.DELIVERED, created_at=NOW - 5), "retry", Claim.SETTLED_BY_RECEIPTS),
        (record(status=Status.BUFFERED, created_at=NOW - 5), "report", Claim.SETTLED_BY_RECEIPTS),
        (record(status=Status.ACCEPTED, created_at=NOW - 5), "retry", Claim.SETTLED_BY_RECEIPTS),
        (record(status=Status.FAILED, created_at=NOW - 5), "retry", Claim.SETTLED_BY_RECEIPTS),
        # Claimed by an earlier try (another created_at), outcome never recorded.
        (record(created_at=NOW - 5), "retry", Claim.RESEND),
        (record(created_at=NOW - 5), "report", Claim.UNKNOWN),
        (record(status="not-a-status", created_at=NOW - 5), "report", Claim.UNKNOWN),
        # Another request with the same clientId: whatever its status, a duplicate.
        (record("e0:3", status=Status.SUBMITTING), "retry", Claim.DUPLICATE),
        (record("e0:3", status=Status.QUEUED), "retry", Claim.DUPLICATE),
        (record("e0:3", status=Status.DELIVERED), "report", Claim.DUPLICATE),
    ],
)
def test_every_case(before: MessageRecord | None, policy: str, case: Claim) -> None:
    assert classify_claim(CLAIM, before, policy) is case  # type: ignore[arg-type]


def test_which_cases_send() -> None:
    assert {c for c in Claim if c.sends} == {Claim.FRESH, Claim.HANDED_BACK, Claim.RESEND}


def test_outcomes_are_settled() -> None:
    # ANSWERED is checked before SETTLED_BY_RECEIPTS: an outcome status is settled too, and
    # ``unknown`` (the submit's own outcome) must not be taken for a receipt's.
    assert OUTCOMES <= SETTLED
    assert Status.QUEUED not in SETTLED and Status.SUBMITTING not in SETTLED


statuses = st.sampled_from([*Status, "garbage"])
records = st.builds(
    record,
    request_id=st.sampled_from(["e1:0", "e0:3"]),
    status=statuses,
    created_at=st.sampled_from([NOW, NOW - 5]),
)
policies = st.sampled_from(["retry", "report"])


@given(st.none() | records, policies)
def test_every_input_gets_exactly_one_class(before: MessageRecord | None, policy: str) -> None:
    case = classify_claim(CLAIM, before, policy)  # type: ignore[arg-type]
    assert isinstance(case, Claim)
    # Pure: the same input, the same answer.
    assert classify_claim(CLAIM, before, policy) is case  # type: ignore[arg-type]


@given(records, policies)
def test_a_record_already_settled_is_never_resent(before: MessageRecord, policy: str) -> None:
    case = classify_claim(CLAIM, before, policy)  # type: ignore[arg-type]
    if before.status in SETTLED:
        assert not case.sends


@given(records, policies)
def test_only_the_retry_policy_resends_an_unknown_outcome(
    before: MessageRecord, policy: str
) -> None:
    case = classify_claim(CLAIM, before, policy)  # type: ignore[arg-type]
    if case is Claim.RESEND:
        assert policy == "retry"
    if case is Claim.UNKNOWN:
        assert policy == "report"


@given(records, policies)
def test_another_request_is_always_a_duplicate(before: MessageRecord, policy: str) -> None:
    case = classify_claim(CLAIM, before, policy)  # type: ignore[arg-type]
    assert (case is Claim.DUPLICATE) == (before.request_id != CLAIM.request_id)
