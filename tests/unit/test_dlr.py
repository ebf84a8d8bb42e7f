"""Receipt correlation (parking, relookups, expiry, bounds), multipart status and events."""

from __future__ import annotations

import math
import random
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smpp_bridge.codec.receipt import Receipt
from smpp_bridge.pool import (
    CorrelationRecord,
    DlrEvent,
    IdMode,
    MemoryCorrelationStore,
    MessageIdResolver,
)
from smpp_bridge.pool.correlation import DEFAULT_DECIDE_AFTER, Conversion
from smpp_bridge.pool.dlr import (
    DEFAULT_UNMATCHED_AFTER,
    MessageStatusTracker,
    ReceiptCorrelator,
    aggregate_status,
    is_settled,
    iso_utc,
    settled_record,
    settling_record,
)

ACCOUNT = "acme"
T0 = 100.0  # the caller's monotonic clock
WALL = datetime(2026, 4, 21, 10, 15, tzinfo=UTC).timestamp()


def receipt(message_id: str, stat: str = "DELIVRD", err: str = "000") -> Receipt:
    return Receipt(message_id=message_id, stat=stat, err=err)


def record(
    message_id: str,
    request_id: str = "req-1",
    part: int = 0,
    parts: int = 1,
    account: str = ACCOUNT,
) -> CorrelationRecord:
    return CorrelationRecord(
        account=account,
        message_id=message_id,
        request_id=request_id,
        client_id=f"client-{request_id}",
        part=part,
        parts=parts,
        submitted_at=WALL - 60,
    )


def ids(events: list[DlrEvent]) -> list[tuple[str, str | None]]:
    return [(e.receipt.message_id, e.request_id) for e in events]


# -- matched at once, parked, matched later


def test_found_receipt_is_matched_at_once() -> None:
    corr = ReceiptCorrelator()
    rec = record("AB12")
    events = corr.receipts_arrived(ACCOUNT, [receipt("ab12")], {"ab12": rec}, T0, bind="acme#0")
    assert len(events) == 1
    event = events[0]
    assert event.matched and event.record == rec and event.bind == "acme#0"
    assert (event.status, event.code, event.client_id) == ("delivered", 0, "client-req-1")
    assert event.message is not None and event.message.status == "delivered"
    assert corr.parked == 0 and corr.next_deadline() == float("inf")


def test_receipt_before_mapping_is_parked_then_matched() -> None:
    # A configured mode: in auto, "42" would wait for the account's conversion to be decided.
    corr = ReceiptCorrelator(resolver=MessageIdResolver(default=IdMode.EXACT))
    assert corr.receipts_arrived(ACCOUNT, [receipt("0042")], {}, T0, bind="b1") == []
    assert corr.parked == 1
    # A mapping of another message, and one of another account, release nothing.
    assert corr.mappings_stored([record("43"), record("42", account="other")], T0 + 0.1) == []
    assert corr.parked == 1
    events = corr.mappings_stored([record("42", "req-42")], T0 + 0.2)
    assert ids(events) == [("0042", "req-42")]
    assert events[0].arrived_at == T0 and events[0].bind == "b1"
    assert corr.parked == 0 and corr.next_deadline() == float("inf")
    assert corr.expire(T0 + 10_000) == []


def test_parked_receipts_of_one_id_come_out_in_arrival_order() -> None:
    corr = ReceiptCorrelator()
    corr.receipts_arrived(ACCOUNT, [receipt("7", "ENROUTE"), receipt("8")], {}, T0)
    corr.receipts_arrived(ACCOUNT, [receipt("7", "DELIVRD")], {}, T0 + 1)
    events = corr.mappings_stored([record("7", "seven"), record("8", "eight")], T0 + 2)
    # Per message id, arrival order: the DELIVRD for 7 never overtakes its ENROUTE.
    assert [(e.receipt.message_id, e.status) for e in events] == [
        ("7", "buffered"),
        ("7", "delivered"),
        ("8", "delivered"),
    ]
    assert events[-1].message is not None and events[-1].message.status == "delivered"


def test_found_receipt_releases_earlier_parked_ones_first() -> None:
    corr = ReceiptCorrelator()
    corr.receipts_arrived(ACCOUNT, [receipt("9", "ENROUTE")], {}, T0)
    rec = record("9")
    events = corr.receipts_arrived(ACCOUNT, [receipt("9")], {"9": rec}, T0 + 3)
    assert [(e.status, e.arrived_at) for e in events] == [("buffered", T0), ("delivered", T0 + 3)]
    assert corr.parked == 0


def test_parked_matching_uses_the_account_mode() -> None:
    resolver = MessageIdResolver({ACCOUNT: IdMode.HEX_TO_DECIMAL})
    corr = ReceiptCorrelator(resolver=resolver)
    corr.receipts_arrived(ACCOUNT, [receipt("255"), receipt("16")], {}, T0)
    # "16" is stored as a hex id: in this account it is twenty-two, not sixteen's receipt.
    events = corr.mappings_stored([record("00FF", "ff"), record("16", "x16")], T0 + 1)
    assert ids(events) == [("255", "ff")]
    assert corr.parked == 1


def test_ambiguous_parked_receipt_waits_for_the_decision() -> None:
    store = MemoryCorrelationStore(resolver=MessageIdResolver(decide_after=3))
    resolver = store.resolver
    corr = ReceiptCorrelator(resolver=resolver)

    def arrive(receipt_ids: list[str], now: float) -> list[DlrEvent]:
        receipts = [receipt(i) for i in receipt_ids]
        return corr.receipts_arrived(ACCOUNT, receipts, store.get(ACCOUNT, receipt_ids), now)

    def stored(records: list[CorrelationRecord], now: float) -> list[DlrEvent]:
        store.put(records)
        return corr.mappings_stored(records, now)

    # Receipt "10" beats its mapping; decimal "10" and "16" are stored: hex "10" could be
    # sixteen, or ten, or hex "a" read as decimal. Nothing is decided: it stays parked.
    assert arrive(["10"], T0) == []
    assert stored([record("10", "ten"), record("16", "sixteen")], T0 + 1) == []
    assert corr.parked == 1 and resolver.conversion(ACCOUNT) is None
    assert corr.relookups_due(T0 + 1) == {ACCOUNT: ["10"]}
    assert corr.receipts_found(ACCOUNT, store.get(ACCOUNT, ["10"]), T0 + 1) == []
    # A receipt id with letters and a third decimal submit id: decimal-to-hex. The mapping
    # stored after the decision releases its parked receipt at once...
    assert arrive(["1f"], T0 + 2) == []
    assert resolver.conversion(ACCOUNT) is None
    assert ids(stored([record("31", "thirty-one")], T0 + 3)) == [("1f", "thirty-one")]
    assert resolver.conversion(ACCOUNT) is Conversion.DECIMAL_TO_HEX
    # ...and the older one is due for a relookup now, not at its next scheduled one (5 s).
    assert corr.next_deadline() == -math.inf
    assert corr.relookups_due(T0 + 3) == {ACCOUNT: ["10"]}
    events = corr.receipts_found(ACCOUNT, store.get(ACCOUNT, ["10"]), T0 + 3)
    assert ids(events) == [("10", "sixteen")]
    assert corr.parked == 0 and corr.next_deadline() == float("inf")


def test_parked_receipts_are_retried_until_they_expire() -> None:
    corr = ReceiptCorrelator(unmatched_after=600)
    corr.receipts_arrived(ACCOUNT, [receipt("10")], {}, T0)
    due = []
    now = T0
    while corr.parked:
        now = corr.next_deadline()
        if corr.relookups_due(now):
            due.append(now - T0)
        corr.expire(now)
    # The default schedule, then every 60 s: nothing parked is forgotten before it expires.
    assert due == [1, 5, 15, 60, *range(120, 601, 60)]


# -- relookups


def test_relookup_schedule_and_found_later() -> None:
    corr = ReceiptCorrelator(relookup_after=(1.0, 5.0))
    # Two receipts for "a" (an identical second one would be a repeat, not parked).
    corr.receipts_arrived(ACCOUNT, [receipt("a", "ENROUTE"), receipt("a"), receipt("b")], {}, T0)
    corr.receipts_arrived("other", [receipt("c")], {}, T0 + 0.5)
    assert corr.next_deadline() == T0 + 1.0
    assert corr.relookups_due(T0 + 0.9) == {}
    assert corr.relookups_due(T0 + 1.0) == {ACCOUNT: ["a", "b"]}
    assert corr.next_deadline() == T0 + 1.5
    assert corr.relookups_due(T0 + 1.5) == {"other": ["c"]}
    assert corr.relookups_due(T0 + 4.9) == {}
    assert corr.relookups_due(T0 + 5.0) == {ACCOUNT: ["a", "b"]}
    # After the schedule: every last delay (5 s after arrival, then 10, 15, ...).
    assert corr.relookups_due(T0 + 9.9) == {"other": ["c"]}
    assert corr.relookups_due(T0 + 10.0) == {ACCOUNT: ["a", "b"]}
    events = corr.receipts_found(ACCOUNT, {"a": record("a", "ra")}, T0 + 10)
    assert ids(events) == [("a", "ra"), ("a", "ra")]
    assert corr.parked == 2
    assert corr.relookups_due(T0 + 100) == {ACCOUNT: ["b"], "other": ["c"]}


def test_late_relookup_call_does_not_fire_again_at_once() -> None:
    corr = ReceiptCorrelator(relookup_after=(1.0, 2.0))
    corr.receipts_arrived(ACCOUNT, [receipt("a")], {}, T0)
    assert corr.relookups_due(T0 + 50) == {ACCOUNT: ["a"]}
    assert corr.relookups_due(T0 + 50) == {}
    assert corr.relookups_due(T0 + 51) == {ACCOUNT: ["a"]}


# -- giving up: timeout and bound


def test_unmatched_after_timeout_is_published_not_dropped() -> None:
    corr = ReceiptCorrelator(unmatched_after=600)
    corr.receipts_arrived(ACCOUNT, [receipt("dead", "UNDELIV", "011")], {}, T0, bind="acme#1")
    corr.receipts_arrived(ACCOUNT, [receipt("later")], {}, T0 + 10)
    assert corr.expire(T0 + 599.9) == []
    events = corr.expire(T0 + 600)
    assert len(events) == 1
    event = events[0]
    assert not event.matched and event.record is None and event.message is None
    assert (event.status, event.code, event.client_id) == ("failed", 11, None)
    assert event.reason == "unmatched: no mapping within 600 s"
    # What the daemon's event is built from: the receipt's own id, its bind, the reason.
    assert (event.message_id, event.smsc_message_id, event.request_id) == ("dead", "dead", None)
    assert (event.bind, event.arrived_at) == ("acme#1", T0)
    assert corr.parked == 1
    # Once expired, a late mapping finds nothing left to match.
    assert corr.mappings_stored([record("dead")], T0 + 601) == []
    assert corr.next_deadline() == T0 + 11  # the survivor's first relookup


def test_next_deadline_is_the_earlier_of_relookup_and_expiry() -> None:
    corr = ReceiptCorrelator(unmatched_after=3, relookup_after=(5.0,))
    corr.receipts_arrived(ACCOUNT, [receipt("x")], {}, T0)
    assert corr.next_deadline() == T0 + 3
    corr = ReceiptCorrelator(unmatched_after=30, relookup_after=(5.0,))
    corr.receipts_arrived(ACCOUNT, [receipt("x")], {}, T0)
    assert corr.next_deadline() == T0 + 5


def test_parking_is_bounded_oldest_out_first() -> None:
    corr = ReceiptCorrelator(max_parked=3)
    out: list[DlrEvent] = []
    for i in range(5):
        out += corr.receipts_arrived(ACCOUNT, [receipt(f"m{i}")], {}, T0 + i)
    assert corr.parked == 3
    assert [e.receipt.message_id for e in out] == ["m0", "m1"]
    assert all(not e.matched and e.reason and "parking full" in e.reason for e in out)
    events = corr.mappings_stored([record(f"m{i}", f"r{i}") for i in range(5)], T0 + 10)
    assert ids(events) == [("m2", "r2"), ("m3", "r3"), ("m4", "r4")]


def test_correlator_rejects_bad_settings() -> None:
    with pytest.raises(ValueError):
        ReceiptCorrelator(unmatched_after=0)
    with pytest.raises(ValueError):
        ReceiptCorrelator(max_parked=0)
    with pytest.raises(ValueError):
        ReceiptCorrelator(relookup_after=())


@settings(max_examples=100, deadline=None)
@given(
    script=st.lists(
        st.tuples(st.sampled_from(["receipt", "mapping", "tick"]), st.integers(0, 9)),
        max_size=60,
    ),
    max_parked=st.integers(1, 8),
)
def test_every_receipt_comes_out_exactly_once(
    script: list[tuple[str, int]], max_parked: int
) -> None:
    """Whatever the interleaving, each receipt is published once: matched to its own message
    or, after the timeout or when parking is full, unmatched; or it is a repeat (counted):
    of a receipt that settled its part, or of one still parked. No message's receipt is
    published matched twice."""
    corr = ReceiptCorrelator(unmatched_after=5, max_parked=max_parked, recent_settled=10)
    stored: set[int] = set()
    sent: list[int] = []
    out: list[DlrEvent] = []
    now = T0
    for action, n in script:
        now += 1
        if action == "receipt":
            sent.append(n)
            found = {str(n): record(str(n), f"r{n}")} if n in stored else {}
            out += corr.receipts_arrived(ACCOUNT, [receipt(str(n))], found, now)
        elif action == "mapping":
            stored.add(n)
            out += corr.mappings_stored([record(str(n), f"r{n}")], now)
        else:
            out += corr.expire(now)
        assert corr.parked <= max_parked
    out += corr.expire(now + 5)
    assert corr.parked == 0
    assert len(out) + corr.duplicates == len(sent)
    assert {int(e.receipt.message_id) for e in out} == set(sent)
    matched = [e.receipt.message_id for e in out if e.matched]
    assert len(matched) == len(set(matched))
    for e in out:
        assert e.request_id in (None, f"r{e.receipt.message_id}")


# -- multipart status


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        (["delivered"], ("delivered", True)),
        (["buffered"], ("buffered", False)),
        (["accepted"], ("accepted", True)),
        (["unknown"], ("unknown", False)),
        (["expired"], ("expired", True)),
        ([None, None], ("buffered", False)),
        (["delivered", None], ("buffered", False)),
        (["delivered", "buffered"], ("buffered", False)),
        (["delivered", "delivered"], ("delivered", True)),
        (["delivered", "accepted"], ("accepted", True)),
        (["delivered", "unknown"], ("buffered", False)),
        (["unknown", "unknown"], ("unknown", False)),
        (["failed", None], ("failed", True)),
        (["delivered", "rejected"], ("rejected", True)),
        ([None, "canceled", "delivered"], ("canceled", True)),
        (["expired", "failed"], ("expired", True)),
    ],
)
def test_aggregate_status_truth_table(parts: list[str | None], expected: tuple[str, bool]) -> None:
    assert aggregate_status(parts) == expected


def test_first_failure_by_arrival_decides() -> None:
    assert aggregate_status(["expired", "failed"], [1, 0]) == ("failed", True)


def test_tracker_multipart_sequence() -> None:
    tracker = MessageStatusTracker()
    p0, p1, p2 = (record(f"id{i}", "m", part=i, parts=3) for i in range(3))
    s = tracker.update(p1, "delivered", 0)
    assert (s.status, s.final, s.changed, s.message_id) == ("buffered", False, True, "id1")
    assert s.part_statuses == (None, "delivered", None)
    s = tracker.update(p0, "buffered", 0)
    assert (s.status, s.changed, s.message_id) == ("buffered", False, "id0")
    s = tracker.update(p0, "delivered", 0)
    assert (s.status, s.changed) == ("buffered", False)
    s = tracker.update(p2, "delivered", 0)
    assert (s.status, s.final, s.changed) == ("delivered", True, True)
    # A repeated receipt does not start the message over; an intermediate one after a final
    # one does not take a part back.
    s = tracker.update(p2, "delivered", 0)
    assert (s.status, s.changed) == ("delivered", False)
    s = tracker.update(p1, "buffered", 0)
    assert (s.status, s.changed, s.part_statuses[1]) == ("delivered", False, "delivered")


def test_tracker_one_failed_part_fails_the_message_at_once() -> None:
    tracker = MessageStatusTracker()
    p0, p1 = (record(f"id{i}", "m", part=i, parts=2) for i in range(2))
    s = tracker.update(p1, "expired", 0)
    assert (s.status, s.final, s.code) == ("expired", True, 0)
    s = tracker.update(p0, "failed", 34)
    assert (s.status, s.changed) == ("expired", False)  # the first failure stands
    assert s.part_statuses == ("failed", "expired")


def test_tracker_failure_code_and_accounts_apart() -> None:
    tracker = MessageStatusTracker()
    s = tracker.update(record("x", "m", part=0, parts=2), "rejected", 11)
    assert (s.status, s.code) == ("rejected", 11)
    s = tracker.update(record("x", "m", part=0, parts=2, account="other"), "delivered", 0)
    assert (s.status, s.account) == ("buffered", "other")
    assert len(tracker) == 2


def test_tracker_is_bounded() -> None:
    tracker = MessageStatusTracker(max_messages=2)
    for name in ("a", "b", "c"):
        tracker.update(record(name, name, part=0, parts=2), "delivered", 0)
    assert len(tracker) == 2
    # "a" was forgotten: its second part alone does not complete it.
    s = tracker.update(record("a2", "a", part=1, parts=2), "delivered", 0)
    assert s.status == "buffered"
    with pytest.raises(ValueError):
        MessageStatusTracker(max_messages=0)


def test_correlator_events_carry_message_status() -> None:
    corr = ReceiptCorrelator()
    p0, p1 = (record(f"p{i}", "long", part=i, parts=2) for i in range(2))
    e0 = corr.receipts_arrived(ACCOUNT, [receipt("p0")], {"p0": p0}, T0)[0]
    assert e0.message is not None
    assert (e0.status, e0.message.status, e0.message.changed) == ("delivered", "buffered", True)
    e1 = corr.receipts_arrived(ACCOUNT, [receipt("p1", "UNDELIV", "034")], {"p1": p1}, T0 + 1)[0]
    assert e1.message is not None
    assert (e1.status, e1.code, e1.message.status, e1.message.final) == (
        "failed",
        34,
        "failed",
        True,
    )


# -- events


def test_iso_utc() -> None:
    assert iso_utc(WALL) == "2026-04-21T10:15:00.000Z"
    assert iso_utc(WALL + 0.2505) == "2026-04-21T10:15:00.250Z"
    assert iso_utc(datetime(2026, 4, 21, 12, 15, tzinfo=timezone(timedelta(hours=2)))) == (
        "2026-04-21T10:15:00.000Z"
    )
    assert iso_utc(datetime(2026, 4, 21, 10, 15)) == "2026-04-21T10:15:00.000Z"


def test_matched_event_per_part_and_per_message() -> None:
    corr = ReceiptCorrelator()
    rec = record("00AB", "long", part=1, parts=2)
    event = corr.receipts_arrived(ACCOUNT, [receipt("ab")], {"ab": rec}, T0, bind="acme#0")[0]
    # Per part: the id as the user saw it in the sent outcome, the receipt's status, its part.
    assert (event.message_id, event.smsc_message_id) == ("00AB", "ab")
    assert (event.client_id, event.request_id) == ("client-long", "long")
    assert (event.status, event.code, event.bind, event.reason) == ("delivered", 0, "acme#0", None)
    assert event.record is not None
    assert (event.record.part, event.record.parts) == (1, 2)
    assert event.record.submitted_at == WALL - 60
    # Per message: one part of two delivered is buffered, not final.
    message = event.message
    assert message is not None
    assert (message.message_id, message.client_id, message.request_id) == (
        "00AB",
        "client-long",
        "long",
    )
    assert (message.status, message.code, message.parts, message.final) == ("buffered", 0, 2, False)
    assert message.submitted_at == WALL - 60
    assert message.part_statuses == (None, "delivered")
    single = corr.receipts_arrived(ACCOUNT, [receipt("1")], {"1": record("1", "one")}, T0)[0]
    assert single.record is not None and single.record.parts == 1
    assert single.message is not None and single.message.parts == 1
    assert (single.message.status, single.message.final) == ("delivered", True)


@pytest.mark.parametrize(("resp_base", "receipt_base"), [(16, 10), (10, 16), (10, 10), (16, 16)])
def test_sequential_ids_racing_their_mappings_all_find_their_message(
    resp_base: int, receipt_base: int
) -> None:
    """The pool's whole loop on an SMSC that counts ids up from 1 (where "10" and "16" both
    exist) and sends half the receipts before the submit_sm_resp: in ``auto``, with relookups,
    every receipt finds its own message and none another's."""
    rng = random.Random(7)
    store = MemoryCorrelationStore()
    corr = ReceiptCorrelator(resolver=store.resolver)

    def spell(n: int, base: int) -> str:
        return format(n, "x") if base == 16 else str(n)

    out: list[DlrEvent] = []
    now = T0

    def arrive(numbers: list[int]) -> None:
        receipts = [receipt(spell(i, receipt_base)) for i in numbers]
        found = store.get(ACCOUNT, [r.message_id for r in receipts])
        out.extend(corr.receipts_arrived(ACCOUNT, receipts, found, now))

    def tick() -> None:
        for account, due in corr.relookups_due(now).items():
            out.extend(corr.receipts_found(account, store.get(account, due), now))
        out.extend(corr.expire(now))

    for start in range(1, 1001, 50):
        numbers = list(range(start, start + 50))
        early = [i for i in numbers if rng.random() < 0.5]
        arrive(early)
        records = [record(spell(i, resp_base), str(i)) for i in numbers]
        store.put(records)
        out.extend(corr.mappings_stored(records, now))
        arrive([i for i in numbers if i not in early])
        now += 0.5
        tick()
    while corr.parked:
        now += 1
        tick()
    assert len(out) == 1000
    assert [e for e in out if not e.matched] == []
    assert all(e.receipt.message_id == spell(int(e.request_id or ""), receipt_base) for e in out)


# -- the race: receipts before their mappings, on every kind of SMSC, in auto

# (submit format, receipt format) → the conversion ``auto`` must decide
CONVENTIONS = {
    ("decimal", "decimal"): Conversion.SAME,
    ("hex", "hex"): Conversion.SAME,
    ("hex", "decimal"): Conversion.HEX_TO_DECIMAL,
    ("decimal", "hex"): Conversion.DECIMAL_TO_HEX,
    ("uuid", "uuid"): Conversion.SAME,
}


def spell(n: int, fmt: str, pad: int = 0, upper: bool = False) -> str:
    digits = format(n, "x") if fmt == "hex" else str(n)
    digits = digits.zfill(pad)
    return digits.upper() if upper else digits


@dataclass
class Smsc:
    """One account's messages as an SMSC numbers them: (submit id, receipt id, request id)."""

    account: str
    convention: tuple[str, str]
    messages: list[tuple[str, str, str]]


def smsc(
    account: str, convention: tuple[str, str], source: str, count: int, rng: random.Random
) -> Smsc:
    if convention[0] == "uuid":
        drawn: dict[str, None] = {}
        while len(drawn) < count:
            drawn[str(uuid.UUID(int=rng.getrandbits(128)))] = None
        upper = rng.random() < 0.5
        pairs = [(u, u.upper() if upper else u) for u in drawn]
    else:
        if source == "sequential":
            start = rng.choice([0, 0x33, rng.randrange(1000), rng.randrange(2**40)])
            numbers = list(range(start, start + count))
        else:
            unique: dict[int, None] = {}
            while len(unique) < count:
                unique[rng.getrandbits(rng.choice([32, 48]))] = None
            numbers = list(unique)
        styles = [(rng.choice([0, 0, 10, 16]), rng.random() < 0.5) for _ in range(2)]
        pairs = [
            (spell(n, convention[0], *styles[0]), spell(n, convention[1], *styles[1]))
            for n in numbers
        ]
    return Smsc(account, convention, [(s, r, f"{account}-{i}") for i, (s, r) in enumerate(pairs)])


@settings(max_examples=200, deadline=None)
@given(
    accounts=st.lists(
        st.tuples(
            st.sampled_from(sorted(CONVENTIONS)),
            st.sampled_from(["sequential", "random"]),
            st.integers(0, 2 * DEFAULT_DECIDE_AFTER + 20),
        ),
        min_size=1,
        max_size=2,
    ),
    spread=st.sampled_from([0.0, 2.0, 20.0, 10_000.0]),
    lost=st.sampled_from([0.0, 0.1]),
    rng=st.randoms(use_true_random=False),
)
def test_receipts_racing_their_mappings_never_match_another_message(
    accounts: list[tuple[tuple[str, str], str, int]],
    spread: float,
    lost: float,
    rng: random.Random,
) -> None:
    """The pool's loop (``get_many`` → ``receipts_arrived``; ``put_many`` → ``mappings_stored``;
    ``relookups_due`` → ``get_many`` → ``receipts_found``; ``expire``) on SMSCs of every
    convention, ids counting up or random, one or two receipts a message arriving before or
    after its mapping (``spread`` messages either way; 10 000 is any order), some mappings
    never stored: no receipt is ever matched to another message's record; every receipt comes
    out once; with enough ids seen, the account is decided right and every receipt whose
    mapping was stored is matched to it."""
    store = MemoryCorrelationStore()
    corr = ReceiptCorrelator(resolver=store.resolver)
    smscs = [smsc(f"acct{k}", conv, src, n, rng) for k, (conv, src, n) in enumerate(accounts)]

    # (when, kind, account, submit id, receipt id, request id, stat)
    script: list[tuple[float, str, str, str, str, str, str]] = []
    stored: set[tuple[str, str]] = set()  # (account, request id)
    expected: dict[tuple[str, str], str] = {}  # (account, receipt id) → request id
    sent: Counter[tuple[str, str, str]] = Counter()  # (account, receipt id, stat)
    for s in smscs:
        for i, (submit_id, receipt_id, request_id) in enumerate(s.messages):
            expected[(s.account, receipt_id)] = request_id
            if rng.random() >= lost:
                stored.add((s.account, request_id))
                script.append(
                    (i + rng.uniform(0, 1), "put", s.account, submit_id, "", request_id, "")
                )
            stats = ["DELIVRD"] if rng.random() < 0.5 else ["ENROUTE", "DELIVRD"]
            at = i + rng.uniform(-spread, spread)
            for stat in stats:
                sent[(s.account, receipt_id, stat)] += 1
                script.append((at, "receipt", s.account, submit_id, receipt_id, request_id, stat))
                at += rng.uniform(0, 3)
    script.sort(key=lambda step: step[0])

    out: list[DlrEvent] = []
    now = T0

    def tick() -> None:
        for account, due in corr.relookups_due(now).items():
            out.extend(corr.receipts_found(account, store.get(account, due), now))
        out.extend(corr.expire(now))

    while script:
        # A batch: consecutive steps of one kind and account, as a bind's read or a settled
        # batch would give them.
        first = script[0]
        size = 1
        limit = rng.randint(1, 20)
        while size < min(limit, len(script)) and script[size][1:3] == first[1:3]:
            size += 1
        batch, script = script[:size], script[size:]
        now += rng.uniform(0, 0.5)
        account = first[2]
        if first[1] == "put":
            records = [
                CorrelationRecord(account=account, message_id=step[3], request_id=step[5])
                for step in batch
            ]
            store.put(records)
            out.extend(corr.mappings_stored(records, now))
        else:
            receipts = [receipt(step[4], step[6]) for step in batch]
            found = store.get(account, [r.message_id for r in receipts])
            out.extend(corr.receipts_arrived(account, receipts, found, now))
        if rng.random() < 0.3:
            tick()
    while corr.parked:  # until everything parked is matched or has expired
        now = max(now, corr.next_deadline())
        tick()

    # Never another message's record: a matched receipt's record is its own message's.
    for event in out:
        if event.record is not None:
            assert event.request_id == expected[(event.account, event.receipt.message_id)]
    # Every receipt comes out once.
    assert Counter((e.account, e.receipt.message_id, e.receipt.stat) for e in out) == sent
    # Enough ids seen: decided right, and every receipt with a stored mapping matched to it.
    resolver = store.resolver
    for s in smscs:
        count = len(s.messages)
        submitted = sum((s.account, m[2]) in stored for m in s.messages)
        if s.convention[0] == "uuid":
            enough = count > 0 and submitted > 0
        else:
            enough = min(count, submitted) >= resolver.decide_after
        decided = resolver.conversion(s.account)
        assert decided in (None, CONVENTIONS[s.convention])
        if enough:
            assert decided is CONVENTIONS[s.convention]
            for event in out:
                if event.account != s.account:
                    continue
                own = expected[(s.account, event.receipt.message_id)]
                assert event.matched == ((s.account, own) in stored), event


def test_hex_responses_decimal_receipts_all_before_their_mappings() -> None:
    """The simulator's case: ids 0x33, 0x34, ... in submit_sm_resp, decimal in receipts, every
    receipt ahead of its submit_sm_resp, the responses in uneven batches (some a few seconds
    late): ``auto`` decides hex-to-decimal, every receipt finds its own message, none
    another's."""
    rng = random.Random(2000)
    store = MemoryCorrelationStore()
    corr = ReceiptCorrelator(resolver=store.resolver)
    numbers = list(range(0x33, 0x33 + 2000))
    late = {n for n in numbers if rng.random() < 0.2}
    out: list[DlrEvent] = []
    now = T0
    pending: list[int] = []
    for start in range(0, 2000, 25):
        batch = numbers[start : start + 25]
        receipts = [receipt(str(n)) for n in batch]
        found = store.get(ACCOUNT, [r.message_id for r in receipts])
        out += corr.receipts_arrived(ACCOUNT, receipts, found, now)
        ready = [n for n in pending if rng.random() < 0.3] + [n for n in batch if n not in late]
        pending = [n for n in pending + batch if n in late and n not in ready]
        records = [record(format(n, "X"), str(n)) for n in ready]
        store.put(records)
        out += corr.mappings_stored(records, now)
        now += 0.05
        for account, due in corr.relookups_due(now).items():
            out += corr.receipts_found(account, store.get(account, due), now)
    records = [record(format(n, "X"), str(n)) for n in pending]
    store.put(records)
    out += corr.mappings_stored(records, now)
    while corr.parked:
        now = max(now, corr.next_deadline())
        for account, due in corr.relookups_due(now).items():
            out += corr.receipts_found(account, store.get(account, due), now)
        out += corr.expire(now)
    assert store.resolver.conversion(ACCOUNT) is Conversion.HEX_TO_DECIMAL
    assert len(out) == 2000
    assert [e for e in out if not e.matched] == []
    assert all(e.request_id == e.receipt.message_id for e in out)


def test_receipt_ahead_of_its_late_mapping_never_takes_a_neighbours_record() -> None:
    """The mechanism of the bug: hex ids in responses, decimal in receipts; the response for
    0x12 is late, its neighbours' are stored. Receipt "18" (0x12) is also the spelling of
    0x18's key, the only one of its keys stored: it must wait for its own mapping, not take
    0x18's record (nor teach the account that receipts are written like responses)."""
    store = MemoryCorrelationStore()
    corr = ReceiptCorrelator(resolver=store.resolver)

    def stored(numbers: list[int], now: float) -> list[DlrEvent]:
        records = [record(format(n, "x"), f"req-{n:x}") for n in numbers]
        store.put(records)
        return corr.mappings_stored(records, now)

    def arrive(numbers: list[int], now: float) -> list[DlrEvent]:
        receipts = [receipt(str(n)) for n in numbers]
        found = store.get(ACCOUNT, [r.message_id for r in receipts])
        return corr.receipts_arrived(ACCOUNT, receipts, found, now)

    neighbours = [n for n in range(0x10, 0x20) if n != 0x12]
    assert stored(neighbours, T0) == []
    assert arrive([0x12], T0) == []  # "18": 0x18's key is stored, its own is not
    assert corr.parked == 1
    # Many more messages, their receipts with them: hex-to-decimal is decided, and each
    # receipt finds its own message; "18" still has no mapping of its own.
    more = list(range(0x100, 0x180))
    assert stored(more, T0 + 1) == []
    events = arrive(neighbours + more, T0 + 1)
    assert store.resolver.conversion(ACCOUNT) is Conversion.HEX_TO_DECIMAL
    assert [e.request_id for e in events] == [f"req-{n:x}" for n in neighbours + more]
    assert corr.relookups_due(T0 + 1) == {ACCOUNT: ["18"]}
    assert corr.receipts_found(ACCOUNT, store.get(ACCOUNT, ["18"]), T0 + 1) == []
    # Its own mapping, at last.
    assert ids(stored([0x12], T0 + 2)) == [("18", "req-12")]
    assert corr.parked == 0


# -- a journal of parked receipts for a store, and restoring them


def test_journal_lists_parked_and_released_receipts() -> None:
    corr = ReceiptCorrelator(journal=True, key_prefix="run1:")
    corr.receipts_arrived(ACCOUNT, [receipt("zz1"), receipt("zz2")], {}, T0, bind="acme#0")
    saved, released = corr.take_parking_changes(WALL - T0)
    assert [(p.key, p.receipt.message_id, p.bind) for p in saved] == [
        ("run1:1", "zz1", "acme#0"),
        ("run1:2", "zz2", "acme#0"),
    ]
    assert [p.arrived_at for p in saved] == [WALL, WALL]
    assert released == []
    assert corr.take_parking_changes(WALL - T0) == ([], [])
    # One comes out matched, the other expires: both are to be deleted.
    corr.mappings_stored([record("zz1")], T0 + 1)
    corr.expire(T0 + corr.unmatched_after)
    assert corr.take_parking_changes(WALL - T0) == ([], ["run1:1", "run1:2"])


def test_journal_skips_a_receipt_released_before_it_was_saved() -> None:
    corr = ReceiptCorrelator(journal=True)
    corr.receipts_arrived(ACCOUNT, [receipt("zz1")], {}, T0)
    corr.mappings_stored([record("zz1")], T0)
    assert corr.take_parking_changes(0.0) == ([], [])


def test_without_journal_nothing_is_listed() -> None:
    corr = ReceiptCorrelator()
    corr.receipts_arrived(ACCOUNT, [receipt("zz1")], {}, T0)
    assert corr.take_parking_changes(0.0) == ([], [])


def test_restored_receipts_keep_their_key_and_age_and_are_looked_up_at_once() -> None:
    first = ReceiptCorrelator(journal=True, key_prefix="a:")
    first.receipts_arrived(ACCOUNT, [receipt("zz1", "UNDELIV")], {}, T0, bind="acme#1")
    first.receipts_arrived(ACCOUNT, [receipt("zz2")], {}, T0 + 5)
    saved, _ = first.take_parking_changes(WALL - T0)
    # A new process, whose monotonic clock starts elsewhere, 100 s of wall time later.
    later = ReceiptCorrelator(journal=True, key_prefix="b:", unmatched_after=600)
    now = 7.0
    later.restore(saved, now, WALL + 100)
    assert later.parked == 2
    assert later.relookups_due(now) == {ACCOUNT: ["zz1", "zz2"]}
    (event,) = later.receipts_found(ACCOUNT, {"zz1": record("zz1")}, now)
    assert (event.status, event.bind, event.arrived_at) == ("failed", "acme#1", now - 100)
    assert later.take_parking_changes(0.0) == ([], ["a:1"])
    # The other one is 95 s old: it expires 505 s from now, not 600.
    assert later.expire(now + 504) == []
    (expired,) = later.expire(now + 505)
    assert not expired.matched and expired.receipt.message_id == "zz2"
    assert later.take_parking_changes(0.0) == ([], ["a:2"])


# -- repeated receipts after the mapping is gone


def test_recent_settled_receipts_recognise_their_repeats() -> None:
    corr = ReceiptCorrelator(recent_settled=2)
    rec = record("m1")
    (first,) = corr.receipts_arrived(ACCOUNT, [receipt("m1")], {"m1": rec}, T0)
    assert first.matched
    # The mapping was deleted; the SMSC sends the receipt again: recognised, not published,
    # and neither is an intermediate one after it, nor a repeat whose mapping is still there.
    assert corr.receipts_arrived(ACCOUNT, [receipt("m1")], {}, T0 + 1) == []
    assert corr.receipts_arrived(ACCOUNT, [receipt("m1", "ENROUTE")], {"m1": rec}, T0 + 1) == []
    assert corr.duplicates == 2 and corr.parked == 0
    # Only settling receipts settle a part (not ACCEPTD), and only the last two are kept.
    (accepted,) = corr.receipts_arrived(
        ACCOUNT, [receipt("m2", "ACCEPTD")], {"m2": record("m2")}, T0
    )
    assert accepted.status == "accepted"
    assert corr.receipts_arrived(ACCOUNT, [receipt("m2")], {}, T0 + 1) == []  # parked
    for name in ("m3", "m4"):
        corr.receipts_arrived(ACCOUNT, [receipt(name)], {name: record(name)}, T0)
    assert corr.receipts_arrived(ACCOUNT, [receipt("m1")], {}, T0 + 2) == []
    assert corr.parked == 2 and corr.duplicates == 2


def test_a_tombstone_recognises_repeats_past_the_memory_of_recent_parts() -> None:
    corr = ReceiptCorrelator(recent_settled=1)
    rec = record("m1")
    corr.receipts_arrived(ACCOUNT, [receipt("m1")], {"m1": rec}, T0)
    corr.receipts_arrived(ACCOUNT, [receipt("m2")], {"m2": record("m2")}, T0)  # m1 forgotten
    tomb = settled_record(rec, "DELIVRD")
    assert is_settled(tomb) and not is_settled(rec)
    assert (tomb.key, tomb.request_id, tomb.client_id) == (rec.key, rec.request_id, None)
    assert corr.receipts_arrived(ACCOUNT, [receipt("m1", "UNDELIV")], {"m1": tomb}, T0) == []
    assert corr.duplicates == 1
    # Parked before its tombstone was found (a relookup finds it): a repeat too.
    assert corr.receipts_arrived(ACCOUNT, [receipt("m1")], {}, T0 + 1) == []
    assert corr.receipts_found(ACCOUNT, {"m1": tomb}, T0 + 2) == []
    assert corr.duplicates == 2 and corr.parked == 0


def test_a_settling_mark_found_by_another_process_flags_the_repeat() -> None:
    """The publisher marked the part settling, published, and died before its tombstone and
    deliver_sm_resp: the process that gets the repeat publishes it again, flagged; one that
    published it itself (in its memory) suppresses it."""
    rec = record("m1")
    mark = settling_record(rec, "DELIVRD")
    assert (mark.client_id, mark.request_id) == (rec.client_id, rec.request_id)
    assert not is_settled(mark)
    fresh = ReceiptCorrelator(recent_settled=10)
    (event,) = fresh.receipts_arrived(ACCOUNT, [receipt("m1")], {"m1": mark}, T0)
    assert event.possible_duplicate and event.request_id == rec.request_id
    assert fresh.receipts_arrived(ACCOUNT, [receipt("m1")], {"m1": mark}, T0 + 1) == []
    publisher = ReceiptCorrelator(recent_settled=10)
    (first,) = publisher.receipts_arrived(ACCOUNT, [receipt("m1")], {"m1": rec}, T0)
    assert not first.possible_duplicate
    assert publisher.receipts_arrived(ACCOUNT, [receipt("m1")], {"m1": mark}, T0 + 1) == []
    assert publisher.duplicates == 1


def test_an_event_that_could_not_be_published_comes_out_again() -> None:
    """The handler raised: the receipt is parked again and the part is not taken as settled,
    so neither a relookup nor the SMSC's repeat is suppressed as a duplicate of it."""
    corr = ReceiptCorrelator(recent_settled=10, resolver=MessageIdResolver(default=IdMode.EXACT))
    rec = record("m1")
    events = corr.receipts_arrived(ACCOUNT, [receipt("m1")], {"m1": rec}, T0)
    corr.unpublished(events)
    assert corr.parked == 1 and corr.duplicates == 0
    assert corr.relookups_due(T0 + 1.0) == {ACCOUNT: ["m1"]}
    (again,) = corr.receipts_found(ACCOUNT, {"m1": rec}, T0 + 1.0)
    assert again.request_id == rec.request_id and corr.parked == 0
    # Unpublished once more, then the SMSC sends it again: one event, the parked copy's (the
    # repeat is the duplicate of that one).
    corr.unpublished([again])
    (repeat,) = corr.receipts_arrived(ACCOUNT, [receipt("m1")], {"m1": rec}, T0 + 2)
    assert repeat.arrived_at == T0 and corr.parked == 0 and corr.duplicates == 1


def test_a_receipt_sent_twice_in_one_batch_is_published_once() -> None:
    corr = ReceiptCorrelator(recent_settled=10)
    rec = record("m1")
    twice = [receipt("m1"), receipt("m1")]
    assert len(corr.receipts_arrived(ACCOUNT, twice, {"m1": rec}, T0)) == 1
    # Both before the mapping: one parked, one recognised; the mapping releases one event.
    assert corr.receipts_arrived(ACCOUNT, [receipt("m5"), receipt("m5")], {}, T0) == []
    assert corr.parked == 1
    (event,) = corr.mappings_stored([record("m5", "r5")], T0 + 1)
    assert event.request_id == "r5" and corr.duplicates == 2


def test_an_id_the_smsc_uses_again_for_a_new_message_is_no_repeat() -> None:
    corr = ReceiptCorrelator(recent_settled=10)
    corr.receipts_arrived(ACCOUNT, [receipt("m1")], {"m1": record("m1", "old")}, T0)
    new = record("m1", "new")
    corr.mappings_stored([new], T0 + 10)  # stored for a new submit
    (event,) = corr.receipts_arrived(ACCOUNT, [receipt("m1")], {"m1": new}, T0 + 11)
    assert event.request_id == "new" and corr.duplicates == 0


def test_an_unmatched_event_names_the_smsc_id_and_the_account() -> None:
    corr = ReceiptCorrelator(unmatched_after=120)
    assert corr.unmatched_after == DEFAULT_UNMATCHED_AFTER == 120
    corr.receipts_arrived(ACCOUNT, [receipt("00ZZ9")], {}, T0, bind="acme#1")
    assert corr.expire(T0 + 119.9) == []
    (event,) = corr.expire(T0 + 120)
    assert not event.matched
    assert (event.account, event.smsc_message_id, event.message_id) == (ACCOUNT, "00ZZ9", "00ZZ9")
    assert event.bind == "acme#1" and event.reason == "unmatched: no mapping within 120 s"


def test_one_part_messages_are_not_kept_by_the_tracker() -> None:
    tracker = MessageStatusTracker()
    status = tracker.update(record("m1"), "delivered", 0)
    assert (status.status, status.final, status.changed, status.parts) == (
        "delivered",
        True,
        True,
        1,
    )
    assert status.part_statuses == ("delivered",) and status.message_id == "m1"
    assert len(tracker) == 0
