"""Message id normalisation, how ``auto`` decides, and the in-memory store on a fake clock."""

from __future__ import annotations

import random
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smpp_bridge.errors import StoreClosedError
from smpp_bridge.pool import (
    DEFAULT_TTL,
    CorrelationRecord,
    IdMode,
    MemoryCorrelationStore,
    MessageIdResolver,
    canonical_id,
    decode_record,
    encode_record,
    possible_keys,
)
from smpp_bridge.pool.correlation import (
    DEFAULT_DECIDE_AFTER,
    Conversion,
    IdSightings,
    convert_id,
    unambiguous_key,
)

ACCOUNT = "acme"


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def record(
    message_id: str, request_id: str | None = None, account: str = ACCOUNT
) -> CorrelationRecord:
    return CorrelationRecord(
        account=account,
        message_id=message_id,
        request_id=request_id or f"req-{message_id}",
        client_id=f"client-{message_id}",
    )


def write(n: int, base: int, zeros: int, upper: bool) -> str:
    """``n`` the way an SMSC might write it: in ``base``, zero padded, hex in either case."""
    digits = format(n, "x") if base == 16 else str(n)
    if upper:
        digits = digits.upper()
    return "0" * zeros + digits


# Small numbers collide across bases ("10" is ten and sixteen); large ones are realistic.
numbers = st.one_of(st.integers(0, 300), st.integers(0, 10**15))
id_sets = st.sets(numbers, min_size=1, max_size=40)
styles = st.tuples(st.integers(0, 4), st.booleans())  # (zero padding, upper case)

# (mode, base of submit_sm_resp ids, base of receipt ids)
FIXED = [
    (IdMode.EXACT, 10, 10),
    (IdMode.EXACT, 16, 16),
    (IdMode.HEX_TO_DECIMAL, 16, 10),
    (IdMode.DECIMAL_TO_HEX, 10, 16),
]
SMSC_CONVENTIONS = [(10, 10), (16, 16), (16, 10), (10, 16)]


# -- canonical form and conversions


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("0001234", "1234"),
        (" 00ABCdef\t", "abcdef"),
        ("000", "0"),
        ("0", "0"),
        ("", ""),
        ("  ", ""),
        ("6f1d-00A", "6f1d-00a"),
    ],
)
def test_canonical_id(raw: str, canonical: str) -> None:
    assert canonical_id(raw) == canonical


@settings(max_examples=500)
@given(st.text(alphabet=st.sampled_from("0123456789abcdefABCDEF xyzİßé²٣ \t_-"), max_size=8))
def test_canonical_id_shortcut_agrees_with_the_definition(raw: str) -> None:
    # Trimmed, lower case, leading zeros stripped ("0" stays "0"), whatever path it takes.
    lowered = raw.strip().lower()
    stripped = lowered.lstrip("0")
    assert canonical_id(raw) == (stripped if stripped or not lowered else "0")


@pytest.mark.parametrize(
    ("receipt_id", "conversion", "key"),
    [
        ("16", Conversion.HEX_TO_DECIMAL, "10"),
        ("0255", Conversion.HEX_TO_DECIMAL, "ff"),
        ("ff", Conversion.HEX_TO_DECIMAL, None),
        ("00FF", Conversion.DECIMAL_TO_HEX, "255"),
        ("10", Conversion.DECIMAL_TO_HEX, "16"),
        ("xyz", Conversion.DECIMAL_TO_HEX, None),
        ("000", Conversion.DECIMAL_TO_HEX, "0"),
        ("", Conversion.HEX_TO_DECIMAL, None),
        ("00AbC", Conversion.SAME, "abc"),
    ],
)
def test_convert_id(receipt_id: str, conversion: Conversion, key: str | None) -> None:
    assert convert_id(receipt_id, conversion) == key


def test_possible_keys_covers_every_base() -> None:
    assert set(possible_keys("10")) == {"10", "a", "16"}
    assert possible_keys("7") == ("7",)
    assert possible_keys("f00d-1") == ("f00d-1",)


def test_record_json_round_trip_keeps_every_field() -> None:
    original = CorrelationRecord(
        account="a",
        message_id="00Ab",
        request_id="r1",
        client_id=None,
        part=2,
        parts=3,
        submitted_at=1_700_000_000.25,
        meta={"bind": "a#1", "n": [1, 2]},
    )
    data = encode_record(original)
    assert b'"clientId":null' in data and b'"submittedAt"' in data
    assert decode_record(data) == original
    assert original.key == "ab"


# -- fixed modes: exactly its own record, never a neighbour's


@settings(max_examples=150, deadline=None)
@given(
    case=st.sampled_from(FIXED),
    ids=id_sets,
    resp_style=styles,
    receipt_style=styles,
)
def test_fixed_modes_find_exactly_their_record(
    case: tuple[IdMode, int, int],
    ids: set[int],
    resp_style: tuple[int, bool],
    receipt_style: tuple[int, bool],
) -> None:
    mode, resp_base, receipt_base = case
    store = MemoryCorrelationStore(resolver=MessageIdResolver({ACCOUNT: mode}))
    mine = {n: record(write(n, resp_base, *resp_style), f"req-{n}") for n in ids}
    # The same ids in another account, written the other way: must never leak across.
    theirs = [record(write(n, receipt_base, 0, False), f"other-{n}", "other") for n in ids]
    store.put([*mine.values(), *theirs])
    receipts = {write(n, receipt_base, *receipt_style): n for n in ids}
    found = store.get(ACCOUNT, list(receipts))
    assert {rid: rec.request_id for rid, rec in found.items()} == {
        rid: f"req-{n}" for rid, n in receipts.items()
    }


@settings(max_examples=100, deadline=None)
@given(
    ids=st.sets(
        st.text("abcdefghijklmnopqrstuvwxyzABCDEF0123456789-", min_size=1, max_size=20),
        min_size=1,
        max_size=30,
    ),
    upper=st.booleans(),
)
def test_exact_mode_matches_any_id_case_and_zero_insensitively(ids: set[str], upper: bool) -> None:
    store = MemoryCorrelationStore(resolver=MessageIdResolver(default=IdMode.EXACT))
    distinct = {canonical_id(i): i for i in ids}  # ids that differ only by case/zeros are one
    store.put([record(i, f"req-{canonical_id(i)}") for i in distinct.values()])
    for key, original in distinct.items():
        receipt_id = "00" + (original.upper() if upper else original.lower())
        found = store.get(ACCOUNT, [receipt_id])
        assert found[receipt_id].request_id == f"req-{key}"


# -- auto: realistic id sources (an SMSC counting up, or drawing random ids)

# (submit format, receipt format) → the conversion ``auto`` must decide
CONVENTIONS = {
    ("decimal", "decimal"): Conversion.SAME,
    ("hex", "hex"): Conversion.SAME,
    ("hex", "decimal"): Conversion.HEX_TO_DECIMAL,
    ("decimal", "hex"): Conversion.DECIMAL_TO_HEX,
    ("uuid", "uuid"): Conversion.SAME,
}
N = DEFAULT_DECIDE_AFTER


def smsc_ids(
    convention: tuple[str, str], source: str, count: int, rng: random.Random
) -> list[tuple[str, str]]:
    """``count`` (submit id, receipt id) pairs as an SMSC with this convention writes them:
    numbers counting up from anywhere, or drawn at random; each side zero padded and cased
    its own way."""
    if convention[0] == "uuid":
        ids: dict[str, None] = {}
        while len(ids) < count:
            ids[str(uuid.UUID(int=rng.getrandbits(128)))] = None
        upper = rng.random() < 0.5
        return [(i, i.upper() if upper else i) for i in ids]
    if source == "sequential":
        start = rng.choice([rng.randrange(100), rng.randrange(2**40)])
        numbers = list(range(start, start + count))
    else:
        drawn: dict[int, None] = {}
        while len(drawn) < count:
            drawn[rng.getrandbits(32)] = None
        numbers = list(drawn)
    styles = [(rng.choice([0, 0, 8, 10, 16]), rng.random() < 0.5) for _ in range(2)]
    return [
        (
            write(n, 16 if convention[0] == "hex" else 10, *styles[0]),
            write(n, 16 if convention[1] == "hex" else 10, *styles[1]),
        )
        for n in numbers
    ]


def test_unambiguous_key() -> None:
    uuid_id = "6F1DBF4E-0B4C-4D7E-9A57-4A1F0C2B9E11"
    cases: dict[str, str | None] = {
        "7": "7",
        "007": "7",
        "0": "0",
        "000": "0",
        uuid_id: uuid_id.lower(),
    }
    cases |= {"MSG-42": "msg-42", "10": None, "a": None, "ff": None, "0x1F": "x1f"}
    cases |= {"": None, "  ": None, "1234567890": None}
    for receipt_id, key in cases.items():
        assert unambiguous_key(receipt_id) == key, receipt_id
        # The definition: every key any conversion makes of the id is that one key.
        if key is not None:
            assert possible_keys(receipt_id) == (key,)
        elif receipt_id.strip():
            assert len(possible_keys(receipt_id)) > 1


def test_undecided_auto_matches_only_ids_that_read_one_way() -> None:
    resolver = MessageIdResolver()
    store = MemoryCorrelationStore(resolver=resolver)
    store.put([record(i) for i in ("10", "16", "7")])
    # "10" is this account's ten, its sixteen, or hex "10" read as decimal: no guess, and no
    # fetch either.
    assert resolver.lookup_keys(ACCOUNT, ["10", "0A", "16"]) == []
    assert store.get(ACCOUNT, ["10", "0A", "16"]) == {}
    assert resolver.deferred == 3
    # One reading only: its own record, whatever the bases.
    assert store.get(ACCOUNT, ["007"])["007"].message_id == "7"
    assert resolver.conversion(ACCOUNT) is None
    uuid_id = "6f1dbf4e-0b4c-4d7e-9a57-4a1f0c2b9e11"
    store.put([record(uuid_id)])
    assert store.get(ACCOUNT, [uuid_id.upper()])[uuid_id.upper()].message_id == uuid_id


@pytest.mark.parametrize(
    ("submits", "receipts", "decided"),
    [
        # hex letters in submit ids, none in N decimal receipt ids
        (["33", "3a"], [str(n) for n in range(51, 51 + N)], Conversion.HEX_TO_DECIMAL),
        # the mirror
        ([str(n) for n in range(51, 51 + N)], ["33", "3A"], Conversion.DECIMAL_TO_HEX),
        # letters on both sides, or ids that are no number on both: no conversion fits
        (["3a"], ["ff"], Conversion.SAME),
        (["6f1d-4e"], ["6F1D-4E"], Conversion.SAME),
        (["6f1d-4e"], ["3a"], Conversion.SAME),
        # decimal only on both sides, N distinct ids each
        ([str(n) for n in range(N)], [str(n) for n in range(100, 100 + N)], Conversion.SAME),
    ],
)
def test_auto_decides_from_id_formats(
    submits: list[str], receipts: list[str], decided: Conversion
) -> None:
    resolver = MessageIdResolver()
    resolver.observe_submit_ids(ACCOUNT, submits[:-1])
    resolver.observe_receipt_ids(ACCOUNT, receipts[:-1])
    assert resolver.conversion(ACCOUNT) is None  # one id short
    assert resolver.decisions == 0
    resolver.observe_submit_ids(ACCOUNT, submits[-1:])
    resolver.observe_receipt_ids(ACCOUNT, receipts[-1:])
    assert resolver.conversion(ACCOUNT) is decided
    assert resolver.decided_since(0) == [ACCOUNT] and resolver.decisions == 1
    assert resolver.sightings(ACCOUNT) is None  # observation stops
    assert resolver.conversion("other") is None  # per account


@pytest.mark.parametrize(
    ("submits", "receipts"),
    [
        # letters in submits, decimal receipts: but only N - 1 distinct ones (repeats and
        # zero padding do not count twice)
        (["3a"], [str(n) for n in range(N - 1)] + ["0", "00", "1"]),
        # a no-number id on one side only: no conversion explains it, nor does "same" alone
        (["6f1d-4e"], [str(n) for n in range(N)]),
        ([str(n) for n in range(N)], ["6f1d-4e", "12"]),
        # decimal on both sides, but one side short
        ([str(n) for n in range(N)], [str(n) for n in range(N - 1)]),
        # hex letters in receipts, decimal submits short of N
        ([str(n) for n in range(N - 1)], ["3a"]),
        ([], []),
    ],
)
def test_auto_stays_undecided_without_the_evidence(submits: list[str], receipts: list[str]) -> None:
    resolver = MessageIdResolver()
    resolver.observe_submit_ids(ACCOUNT, submits)
    resolver.observe_receipt_ids(ACCOUNT, receipts)
    assert resolver.conversion(ACCOUNT) is None
    assert resolver.decided_since(0) == []


def test_sightings_and_decide_after() -> None:
    resolver = MessageIdResolver(decide_after=3)
    assert resolver.sightings(ACCOUNT) == IdSightings()
    resolver.observe_records([record("00FF"), record("12"), record("x-1", account="b")])
    resolver.observe_receipt_ids(ACCOUNT, ["1", "01", "2"])
    assert resolver.sightings(ACCOUNT) == IdSightings(
        submit_decimal=1, submit_letters=True, receipt_decimal=2
    )
    assert resolver.sightings("b") == IdSightings(submit_other=True)
    resolver.observe_receipt_ids(ACCOUNT, ["3", "4", "5"])  # counted up to decide_after
    assert resolver.conversion(ACCOUNT) is Conversion.HEX_TO_DECIMAL
    assert resolver.sightings(ACCOUNT) is None
    with pytest.raises(ValueError):
        MessageIdResolver(decide_after=0)


def test_a_batch_is_decided_on_all_of_it() -> None:
    # N decimal receipts, then a hex one in the same batch: letters on both sides, "same";
    # never hex-to-decimal on the first part of the batch.
    resolver = MessageIdResolver()
    resolver.observe_submit_ids(ACCOUNT, ["3a"])
    resolver.observe_receipt_ids(ACCOUNT, [*(str(n) for n in range(N)), "ff"])
    assert resolver.conversion(ACCOUNT) is Conversion.SAME


def test_decided_auto_tries_only_its_key_and_never_guesses() -> None:
    resolver = MessageIdResolver()
    store = MemoryCorrelationStore(resolver=resolver)
    store.put([record(format(n, "x")) for n in range(0x33, 0x33 + N)])  # hex responses
    # Decimal receipts: the batch is observed before it is looked up, so it is decided, and
    # found, at once.
    found = store.get(ACCOUNT, [str(n) for n in range(0x33, 0x33 + N)])
    assert resolver.conversion(ACCOUNT) is Conversion.HEX_TO_DECIMAL
    assert all(found[str(n)].message_id == format(n, "x") for n in range(0x33, 0x33 + N))
    # Only the decided key: sixteen's receipt, its mapping gone, cannot pick up the record of
    # 0x16 stored under the same spelling.
    store.put([record("16", "twenty-two")])
    assert resolver.key_for(ACCOUNT, "16") == "10"
    assert store.get(ACCOUNT, ["16"]) == {}
    # An id the decided conversion cannot read is no guess in auto; a configured mode takes
    # the canonical form.
    assert resolver.key_for(ACCOUNT, "3a") is None
    assert store.get(ACCOUNT, ["3a"]) == {}
    configured = MessageIdResolver({ACCOUNT: IdMode.HEX_TO_DECIMAL})
    assert configured.key_for(ACCOUNT, "3A") == "3a"


def test_configured_accounts_are_not_watched() -> None:
    resolver = MessageIdResolver({ACCOUNT: "decimal-to-hex"})
    resolver.observe_submit_ids(ACCOUNT, ["3a"])
    resolver.observe_receipt_ids(ACCOUNT, ["ff"])
    assert resolver.sightings(ACCOUNT) is None
    assert resolver.conversion(ACCOUNT) is Conversion.DECIMAL_TO_HEX
    assert resolver.decisions == 0


def test_fixed_mode_falls_back_to_canonical_when_conversion_impossible() -> None:
    resolver = MessageIdResolver({ACCOUNT: "hex-to-decimal"})
    assert resolver.key_for(ACCOUNT, "255") == "ff"
    assert resolver.key_for(ACCOUNT, "ABC") == "abc"
    assert resolver.conversion(ACCOUNT) is Conversion.HEX_TO_DECIMAL


def test_set_mode_validates_and_forgets() -> None:
    resolver = MessageIdResolver()
    resolver.observe_submit_ids(ACCOUNT, ["3a"])
    resolver.observe_receipt_ids(ACCOUNT, ["ff"])
    assert resolver.conversion(ACCOUNT) is Conversion.SAME
    resolver.set_mode(ACCOUNT, "exact")
    assert resolver.mode(ACCOUNT) is IdMode.EXACT
    resolver.set_mode(ACCOUNT, IdMode.AUTO)
    assert resolver.conversion(ACCOUNT) is None
    assert resolver.sightings(ACCOUNT) == IdSightings()
    with pytest.raises(ValueError):
        resolver.set_mode(ACCOUNT, "octal")


def test_lookup_keys_are_distinct_across_a_batch() -> None:
    resolver = MessageIdResolver(default=IdMode.DECIMAL_TO_HEX)
    assert resolver.lookup_keys(ACCOUNT, ["10", "010", "a", "0A"]) == ["16", "10"]


@settings(max_examples=300, deadline=None)
@given(
    convention=st.sampled_from(sorted(CONVENTIONS)),
    source=st.sampled_from(["sequential", "random"]),
    count=st.integers(0, 3 * N),
    rng=st.randoms(use_true_random=False),
)
def test_auto_never_decides_a_wrong_conversion(
    convention: tuple[str, str], source: str, count: int, rng: random.Random
) -> None:
    """Submit and receipt ids of an SMSC seen in any order and batching (receipts before or
    after their message's submit id): at every step ``auto`` is undecided or right, and with
    N of each seen, decided."""
    pairs = smsc_ids(convention, source, count, rng)
    seen = [("submit", s) for s, _ in pairs] + [("receipt", r) for _, r in pairs]
    rng.shuffle(seen)
    resolver = MessageIdResolver()
    while seen:
        size = rng.randint(1, 20)
        batch, seen = seen[:size], seen[size:]
        resolver.observe_submit_ids(ACCOUNT, [i for side, i in batch if side == "submit"])
        resolver.observe_receipt_ids(ACCOUNT, [i for side, i in batch if side == "receipt"])
        assert resolver.conversion(ACCOUNT) in (None, CONVENTIONS[convention])
    if count >= N or (convention[0] == "uuid" and count):
        assert resolver.conversion(ACCOUNT) is CONVENTIONS[convention]


@settings(max_examples=200, deadline=None)
@given(
    convention=st.sampled_from(SMSC_CONVENTIONS),
    ids=id_sets,
    resp_style=styles,
    receipt_style=styles,
    order=st.randoms(use_true_random=False),
)
def test_undecided_auto_never_matches_another_record_whatever_the_ids(
    convention: tuple[int, int],
    ids: set[int],
    resp_style: tuple[int, bool],
    receipt_style: tuple[int, bool],
    order: random.Random,
) -> None:
    """Any ids at all (small ones collide across bases most), without the counted evidence: a
    lookup finds its own record or nothing, never a neighbour's. (Only hex ids on both sides
    can decide anything here, and that decision, "same", is right.)"""
    resp_base, receipt_base = convention
    resolver = MessageIdResolver(decide_after=10**9)  # no decision from counts
    store = MemoryCorrelationStore(resolver=resolver)
    store.put([record(write(n, resp_base, *resp_style), f"req-{n}") for n in ids])
    receipts = [(write(n, receipt_base, *receipt_style), n) for n in sorted(ids)]
    order.shuffle(receipts)
    for receipt_id, n in receipts:
        found = store.get(ACCOUNT, [receipt_id])
        if found:
            assert found[receipt_id].request_id == f"req-{n}"
        else:
            assert resolver.key_for(ACCOUNT, receipt_id) is None
    both_hex = (Conversion.SAME,) if convention == (16, 16) else ()
    assert resolver.conversion(ACCOUNT) in (None, *both_hex)


@settings(max_examples=200, deadline=None)
@given(
    convention=st.sampled_from(sorted(CONVENTIONS)),
    source=st.sampled_from(["sequential", "random"]),
    count=st.integers(1, 3 * N),
    rng=st.randoms(use_true_random=False),
)
def test_auto_finds_exactly_its_record_once_decided(
    convention: tuple[str, str], source: str, count: int, rng: random.Random
) -> None:
    """Every mapping stored, then the receipts looked up in random batches: each finds its own
    record or, before the decision, nothing; after it, everything is found."""
    pairs = smsc_ids(convention, source, count, rng)
    store = MemoryCorrelationStore()
    store.put([record(s, f"req-{i}") for i, (s, _) in enumerate(pairs)])
    receipts = [(r, i) for i, (_, r) in enumerate(pairs)]
    rng.shuffle(receipts)
    while receipts:
        size = rng.randint(1, 20)
        batch, receipts = receipts[:size], receipts[size:]
        found = store.get(ACCOUNT, [r for r, _ in batch])
        for receipt_id, i in batch:
            if receipt_id in found:
                assert found[receipt_id].request_id == f"req-{i}"
    if store.resolver.conversion(ACCOUNT) is not None:
        found = store.get(ACCOUNT, [r for _, r in pairs])
        assert {r: rec.request_id for r, rec in found.items()} == {
            r: f"req-{i}" for i, (_, r) in enumerate(pairs)
        }
    if count >= N:
        assert store.resolver.conversion(ACCOUNT) is CONVENTIONS[convention]


def test_the_store_observes_what_it_stores_and_looks_up() -> None:
    store = MemoryCorrelationStore()
    resolver = store.resolver
    store.put(record(format(n, "X")) for n in range(0x33, 0x40))  # any iterable
    assert resolver.sightings(ACCOUNT) == IdSightings(submit_decimal=7, submit_letters=True)
    assert store.get(ACCOUNT, ["51", "52"]) == {}  # 0x33 and 0x34, or 0x51 and 0x52...
    assert resolver.sightings(ACCOUNT) == IdSightings(
        submit_decimal=7, submit_letters=True, receipt_decimal=2
    )
    assert len(store) == 13


# -- the memory store, on a fake clock


def test_memory_store_ttl_on_read() -> None:
    clock = FakeClock()
    store = MemoryCorrelationStore(ttl=100.0, clock=clock)
    store.put([record("1")])
    store.put([record("2")], ttl=10.0)
    clock.now += 9.9
    assert set(store.get(ACCOUNT, ["1", "2"])) == {"1", "2"}
    clock.now += 0.1
    assert set(store.get(ACCOUNT, ["1", "2"])) == {"1"}
    clock.now += 90.0
    assert store.get(ACCOUNT, ["1", "2"]) == {}
    assert len(store) == 0  # expired entries found on read are dropped


def test_memory_store_default_ttl_is_seven_days() -> None:
    clock = FakeClock()
    store = MemoryCorrelationStore(clock=clock)
    assert store.ttl == DEFAULT_TTL == 7 * 86400
    store.put([record("1")])
    clock.now += 7 * 86400 - 1
    assert store.get(ACCOUNT, ["1"])
    clock.now += 1
    assert store.get(ACCOUNT, ["1"]) == {}


def test_memory_store_bound_evicts_oldest() -> None:
    clock = FakeClock()
    store = MemoryCorrelationStore(max_entries=3, clock=clock)
    store.put([record("1"), record("2"), record("3")])
    store.put([record("1", "req-1-again")])  # a re-put is young again
    store.put([record("4")])
    assert len(store) == 3
    assert set(store.get(ACCOUNT, ["1", "2", "3", "4"])) == {"1", "3", "4"}
    assert store.get(ACCOUNT, ["1"])["1"].request_id == "req-1-again"
    store.put([record("5")], ttl=1.0)
    clock.now += 2
    store.put([record("6")])
    assert set(store.get(ACCOUNT, ["3", "4", "5", "6"])) == {"4", "6"}


def test_memory_store_delete_by_submit_id_in_any_padding() -> None:
    store = MemoryCorrelationStore()
    store.put([record("00ABC"), record("def")])
    store.delete(ACCOUNT, ["abc"])
    assert set(store.get(ACCOUNT, ["abc", "def"])) == {"def"}


def test_memory_store_rejects_bad_settings() -> None:
    with pytest.raises(ValueError):
        MemoryCorrelationStore(max_entries=0)
    with pytest.raises(ValueError):
        MemoryCorrelationStore(ttl=0)


@pytest.mark.anyio
async def test_memory_store_async_interface_and_close() -> None:
    async with MemoryCorrelationStore() as store:
        await store.put_many([record("1")])
        assert (await store.get_many(ACCOUNT, ["01"]))["01"].message_id == "1"
        await store.delete_many(ACCOUNT, ["1"])
        assert await store.get_many(ACCOUNT, ["1"]) == {}
    with pytest.raises(StoreClosedError):
        await store.get_many(ACCOUNT, ["1"])
