"""Inbound (MO) reassembly — UDH 8/16-bit, SAR, order, duplicates, timeouts, memory bound — and
opt-out recognition."""

from __future__ import annotations

import random
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smpp_bridge.client import Delivery, parse_delivery
from smpp_bridge.codec.gsm7 import encode_gsm7
from smpp_bridge.codec.pdus import DataSm, DeliverSm
from smpp_bridge.codec.segment import Concat, build_udh, split_text
from smpp_bridge.codec.text import REFERENCE_PROFILE, SPEC_PROFILE, EncodingProfile
from smpp_bridge.codec.tlv import Tlv
from smpp_bridge.pool import InboundMessage
from smpp_bridge.pool.inbound import DEFAULT_OPT_OUT_KEYWORDS, InboundAssembler, OptOut

PHONE = "34600000001"
SHORT_CODE = "ACME"
LONG_TEXT = "Hello from a phone, this is a long reply that needs several parts. " * 4


def deliver(
    short_message: bytes = b"",
    *,
    source: str = PHONE,
    destination: str = SHORT_CODE,
    data_coding: int = 0,
    esm_class: int = 0,
    tlvs: Sequence[Tlv] = (),
    profile: EncodingProfile = SPEC_PROFILE,
) -> Delivery:
    pdu = DeliverSm(
        source_addr=source,
        destination_addr=destination,
        esm_class=esm_class,
        data_coding=data_coding,
        short_message=short_message,
        tlvs=tuple(tlvs),
    )
    return parse_delivery(pdu, profile)


def parts_of(
    text: str,
    concat: Concat = "udh8",
    reference: int = 7,
    *,
    source: str = PHONE,
    destination: str = SHORT_CODE,
    encoding: str = "auto",
    profile: EncodingProfile = SPEC_PROFILE,
) -> list[Delivery]:
    """The deliver_sm parts a phone's long message arrives as, in order."""
    message = split_text(
        text, concat=concat, reference=reference, encoding=encoding, profile=profile
    )
    return [
        deliver(
            segment.short_message,
            source=source,
            destination=destination,
            data_coding=message.data_coding,
            esm_class=segment.esm_class,
            tlvs=segment.tlvs,
            profile=profile,
        )
        for segment in message.segments
    ]


def udh8(reference: int, total: int, seqnum: int) -> bytes:
    return build_udh([(0x00, bytes((reference, total, seqnum)))])


def feed(
    assembler: InboundAssembler,
    deliveries: Sequence[Delivery],
    account: str = "acme",
    now: float = 0.0,
) -> list[InboundMessage]:
    out: list[InboundMessage] = []
    for delivery in deliveries:
        out.extend(assembler.add(delivery, account, now))
    return out


# --- single part ---------------------------------------------------------------------------------


def test_single_part_comes_out_at_once() -> None:
    assembler = InboundAssembler()
    out = assembler.add(deliver(b"Hi there"), "acme", 12.5)
    assert out == [InboundMessage("acme", PHONE, SHORT_CODE, "Hi there", parts=1, received_at=12.5)]
    assert assembler.pending == 0
    assert assembler.next_deadline() is None


def test_data_sm_payload_single_part() -> None:
    pdu = DataSm(
        source_addr=PHONE,
        destination_addr=SHORT_CODE,
        data_coding=8,
        tlvs=(Tlv.make("message_payload", "¿Qué tal? 😀".encode("utf-16-be")),),
    )
    out = InboundAssembler().add(parse_delivery(pdu, SPEC_PROFILE), "acme", 0.0)
    assert [m.text for m in out] == ["¿Qué tal? 😀"]


def test_malformed_udh_is_published_as_the_raw_text() -> None:
    delivery = deliver(b"\x09\x00\x03AB", esm_class=0x40)
    assert delivery.error is not None
    out = InboundAssembler().add(delivery, "acme", 0.0)
    assert [(m.text, m.parts, m.incomplete) for m in out] == [(delivery.text, 1, False)]


def test_receipts_are_refused() -> None:
    receipt = deliver(b"id:1 sub:001 dlvrd:001 stat:DELIVRD err:000", esm_class=0x04)
    with pytest.raises(ValueError, match="receipt"):
        InboundAssembler().add(receipt, "acme", 0.0)


# --- concatenated --------------------------------------------------------------------------------


@pytest.mark.parametrize("concat", ["udh8", "udh16", "sar"])
def test_parts_in_order(concat: Concat) -> None:
    parts = parts_of(LONG_TEXT, concat)
    assert len(parts) >= 2
    assembler = InboundAssembler()
    outs = [assembler.add(p, "acme", float(i)) for i, p in enumerate(parts)]
    assert all(out == [] for out in outs[:-1])
    [message] = outs[-1]
    assert message == InboundMessage(
        "acme", PHONE, SHORT_CODE, LONG_TEXT, parts=len(parts), received_at=0.0
    )
    assert assembler.pending == 0


@pytest.mark.parametrize("concat", ["udh8", "udh16", "sar"])
def test_parts_out_of_order(concat: Concat) -> None:
    parts = parts_of(LONG_TEXT, concat)
    shuffled = list(reversed(parts))
    out = feed(InboundAssembler(), shuffled)
    assert [m.text for m in out] == [LONG_TEXT]


def test_sar_deliveries_really_carry_no_udh_concat() -> None:
    """The SAR case is only meaningful because parse_delivery leaves Delivery.concat empty
    for SAR parts: the assembler must read the TLVs itself."""
    parts = parts_of(LONG_TEXT, "sar")
    assert all(p.concat is None for p in parts)
    assert all(p.pdu.tlv(0x020C) is not None for p in parts)


def test_sar_on_data_sm() -> None:
    texts = ["first half, ", "second half"]
    deliveries = [
        parse_delivery(
            DataSm(
                source_addr=PHONE,
                destination_addr=SHORT_CODE,
                data_coding=0,
                tlvs=(
                    Tlv.make("message_payload", encode_gsm7(text)),
                    Tlv.make("sar_msg_ref_num", 0x1234),
                    Tlv.make("sar_total_segments", 2),
                    Tlv.make("sar_segment_seqnum", seq),
                ),
            ),
            SPEC_PROFILE,
        )
        for seq, text in ((2, texts[1]), (1, texts[0]))
    ]
    out = feed(InboundAssembler(), deliveries)
    assert [(m.text, m.parts) for m in out] == [("".join(texts), 2)]


def test_incomplete_sar_tlvs_make_a_single_part() -> None:
    delivery = deliver(
        encode_gsm7("lonely"),
        tlvs=(Tlv.make("sar_msg_ref_num", 1), Tlv.make("sar_total_segments", 2)),
    )
    out = InboundAssembler().add(delivery, "acme", 0.0)
    assert [(m.text, m.parts) for m in out] == [("lonely", 1)]


def test_escape_pair_split_across_parts_is_rejoined() -> None:
    # A sender that cut "abc€def" between ESC (0x1B) and 0x65.
    one = deliver(udh8(9, 2, 1) + encode_gsm7("abc") + b"\x1b", esm_class=0x40)
    two = deliver(udh8(9, 2, 2) + b"\x65" + encode_gsm7("def"), esm_class=0x40)
    assert one.text + two.text != "abc€def"  # each part alone cannot show the €
    out = feed(InboundAssembler(), [two, one])
    assert [m.text for m in out] == ["abc€def"]


def test_surrogate_pair_split_across_parts_is_rejoined() -> None:
    data = "a😀b".encode("utf-16-be")
    one = deliver(udh8(3, 2, 1) + data[:4], esm_class=0x40, data_coding=8)
    two = deliver(udh8(3, 2, 2) + data[4:], esm_class=0x40, data_coding=8)
    out = feed(InboundAssembler(), [one, two])
    assert [m.text for m in out] == ["a😀b"]


def test_duplicate_parts_are_ignored() -> None:
    parts = parts_of(LONG_TEXT, "udh8")
    assembler = InboundAssembler()
    assert assembler.add(parts[0], "acme", 0.0) == []
    assert assembler.add(parts[0], "acme", 0.1) == []
    out = feed(assembler, [parts[0], *parts[1:], parts[-1]])
    assert [m.text for m in out] == [LONG_TEXT]
    assert assembler.pending == 0


def test_the_first_copy_of_a_part_wins() -> None:
    # A second, different part 1 under the same key (a reference collision) does not replace
    # the part already held: what was published stays consistent with what arrived first.
    first = deliver(udh8(6, 2, 1) + encode_gsm7("first "), esm_class=0x40)
    clash = deliver(udh8(6, 2, 1) + encode_gsm7("other "), esm_class=0x40)
    two = deliver(udh8(6, 2, 2) + encode_gsm7("end"), esm_class=0x40)
    out = feed(InboundAssembler(), [first, clash, two])
    assert [m.text for m in out] == ["first end"]


def test_a_part_resent_after_completion_is_dropped() -> None:
    parts = parts_of(LONG_TEXT, "udh8")
    assembler = InboundAssembler(timeout=60.0)
    assert len(feed(assembler, parts, now=0.0)) == 1
    # The SMSC did not get our deliver_sm_resp for the last part and sends it again.
    assert assembler.add(parts[-1], "acme", 5.0) == []
    assert assembler.pending == 0
    assert assembler.expire(500.0) == []


def test_a_reused_reference_with_new_content_is_a_new_message() -> None:
    assembler = InboundAssembler(timeout=60.0)
    first = parts_of(LONG_TEXT, "udh8", reference=0)
    second_text = "Another long reply, from the same phone with the same reference. " * 4
    second = parts_of(second_text, "udh8", reference=0)
    assert len(first) == len(second)
    out = feed(assembler, first, now=0.0) + feed(assembler, second, now=1.0)
    assert [m.text for m in out] == [LONG_TEXT, second_text]


def test_long_after_completion_the_same_part_is_new_again() -> None:
    parts = parts_of(LONG_TEXT, "udh8")
    assembler = InboundAssembler(timeout=60.0)
    feed(assembler, parts, now=0.0)
    assert assembler.add(parts[0], "acme", 61.0) == []
    assert assembler.pending == 1  # a new group, not swallowed as a retransmission


def test_8_and_16_bit_references_do_not_collide() -> None:
    text_a = "Message A travels with an eight bit reference number in its header. " * 3
    text_b = "Message B travels with a sixteen bit reference, same number though. " * 3
    a = parts_of(text_a, "udh8", reference=5)
    b = parts_of(text_b, "udh16", reference=5)
    assert len(a) == len(b) >= 2
    interleaved = [p for pair in zip(a, b, strict=True) for p in pair]
    out = feed(InboundAssembler(), interleaved)
    assert [m.text for m in out] == [text_a, text_b]
    assert not any(m.incomplete for m in out)


@pytest.mark.parametrize(
    ("other_source", "other_destination", "other_account"),
    [("34600000002", SHORT_CODE, "acme"), (PHONE, "OTHER", "acme"), (PHONE, SHORT_CODE, "beta")],
)
def test_same_reference_from_other_senders_does_not_collide(
    other_source: str, other_destination: str, other_account: str
) -> None:
    text_b = "A different conversation that happens to use the same reference. " * 3
    a = parts_of(LONG_TEXT, "udh8", reference=1)
    b = parts_of(text_b, "udh8", reference=1, source=other_source, destination=other_destination)
    assembler = InboundAssembler()
    out: list[InboundMessage] = []
    for pa, pb in zip(a, b, strict=False):
        out += assembler.add(pa, "acme", 0.0)
        out += assembler.add(pb, other_account, 0.0)
    for rest, account in ((a[len(b) :], "acme"), (b[len(a) :], other_account)):
        out += feed(assembler, rest, account)
    assert sorted(m.text for m in out) == sorted([LONG_TEXT, text_b])
    assert {(m.account, m.source, m.destination) for m in out if m.text == text_b} == {
        (other_account, other_source, other_destination)
    }


def test_a_different_total_is_a_different_message() -> None:
    one = deliver(udh8(4, 2, 1) + encode_gsm7("two-part "), esm_class=0x40)
    other = deliver(udh8(4, 3, 2) + encode_gsm7("three-part"), esm_class=0x40)
    assembler = InboundAssembler()
    assert feed(assembler, [one, other]) == []
    assert assembler.pending == 2


def test_profile_given_to_add_decodes_like_the_delivery() -> None:
    text = "Preu: 10€ per unitat. " * 10
    parts = parts_of(text, "udh8", encoding="latin9", profile=REFERENCE_PROFILE)
    assembler = InboundAssembler()
    out: list[InboundMessage] = []
    for part in parts:
        out += assembler.add(part, "acme", 0.0, profile=REFERENCE_PROFILE)
    assert [m.text for m in out] == [text]


def test_profile_mismatch_keeps_the_deliveries_text() -> None:
    # Parsed under the reference profile (3 = Latin-9) but the assembler assumes the spec one
    # (3 = Latin-1, where 0xA4 is "¤", not "€"): the Delivery's own text must win.
    text = "Preu: 10€ per unitat. " * 10
    parts = parts_of(text, "udh8", encoding="latin9", profile=REFERENCE_PROFILE)
    out = feed(InboundAssembler(profile=SPEC_PROFILE), parts)
    assert [m.text for m in out] == [text]


# --- timeouts and memory -------------------------------------------------------------------------


def three_parts(reference: int = 1, source: str = PHONE) -> list[Delivery]:
    return [
        deliver(udh8(reference, 3, n) + encode_gsm7(text), esm_class=0x40, source=source)
        for n, text in ((1, "one "), (2, "two "), (3, "three"))
    ]


def test_missing_part_is_published_incomplete_after_the_timeout() -> None:
    one, _, three = three_parts()
    assembler = InboundAssembler(timeout=120.0)
    assert assembler.add(three, "acme", 10.0) == []
    assert assembler.add(one, "acme", 15.0) == []
    assert assembler.next_deadline() == 130.0  # from the first part to arrive
    assert assembler.expire(129.9) == []
    assert assembler.expire(130.0) == [
        InboundMessage(
            "acme",
            PHONE,
            SHORT_CODE,
            "one three",
            parts=3,
            incomplete=True,
            missing=(2,),
            received_at=10.0,
        )
    ]
    assert assembler.pending == 0
    assert assembler.next_deadline() is None
    assert assembler.expire(1000.0) == []


def test_several_missing_parts_are_all_listed() -> None:
    parts = parts_of(LONG_TEXT * 2, "udh16")
    assert len(parts) >= 3
    assembler = InboundAssembler(timeout=5.0)
    assembler.add(parts[1], "acme", 0.0)
    [message] = assembler.expire(5.0)
    assert message.incomplete
    assert message.missing == tuple(n for n in range(1, len(parts) + 1) if n != 2)
    assert message.text == parts[1].text


def test_a_gap_is_not_joined_across() -> None:
    # Part 1 ends in ESC, part 2 is lost: part 3's first septet is not the ESC's partner.
    one = deliver(udh8(2, 3, 1) + encode_gsm7("abc") + b"\x1b", esm_class=0x40)
    three = deliver(udh8(2, 3, 3) + encode_gsm7("edef"), esm_class=0x40)
    assembler = InboundAssembler(timeout=1.0)
    feed(assembler, [one, three])
    [message] = assembler.expire(1.0)
    assert message.text == "abcedef"
    assert message.missing == (2,)


def test_expire_only_takes_what_is_due_in_order() -> None:
    assembler = InboundAssembler(timeout=10.0)
    for i in range(5):
        assembler.add(three_parts(reference=i)[0], "acme", float(i))
    assert assembler.next_deadline() == 10.0
    due = assembler.expire(12.0)
    assert [m.received_at for m in due] == [0.0, 1.0, 2.0]
    assert assembler.pending == 2
    assert assembler.next_deadline() == 13.0


def test_over_max_pending_the_oldest_goes_out_early() -> None:
    assembler = InboundAssembler(timeout=100.0, max_pending=2)
    assert assembler.add(three_parts(1)[0], "acme", 0.0) == []
    assert assembler.add(three_parts(2)[1], "acme", 1.0) == []
    [evicted] = assembler.add(three_parts(3)[2], "acme", 2.0)
    assert (evicted.text, evicted.missing, evicted.received_at) == ("one ", (2, 3), 0.0)
    assert evicted.incomplete
    assert assembler.pending == 2
    assert assembler.next_deadline() == 101.0


def test_a_completing_part_and_an_eviction_come_out_together() -> None:
    assembler = InboundAssembler(max_pending=1)
    one, two, _ = three_parts(1)
    feed(assembler, [one, two])
    [other] = three_parts(2)[:1]
    [evicted] = assembler.add(other, "acme", 0.0)
    assert evicted.missing == (3,)
    # Memory for completed groups is bounded too.
    out = feed(assembler, three_parts(2)[1:])
    assert [m.text for m in out] == ["one two three"]
    assert assembler.pending == 0


def test_flush_publishes_everything_waiting() -> None:
    assembler = InboundAssembler()
    assembler.add(three_parts(1)[0], "acme", 0.0)
    assembler.add(three_parts(2)[1], "acme", 0.0)
    flushed = assembler.flush()
    assert [(m.text, m.missing) for m in flushed] == [("one ", (2, 3)), ("two ", (1, 3))]
    assert assembler.pending == 0


def test_assembler_validation() -> None:
    with pytest.raises(ValueError):
        InboundAssembler(timeout=0)
    with pytest.raises(ValueError):
        InboundAssembler(max_pending=0)


TEXTS = st.text(
    alphabet=st.sampled_from([*"abcXYZ 019.,!?@€[]{}^~|\\", "é", "😀", "Ж"]),
    min_size=1,
    max_size=500,
)


@settings(max_examples=60, deadline=None)
@given(
    text=TEXTS,
    concat=st.sampled_from(["udh8", "udh16", "sar"]),
    reference=st.integers(0, 0xFFFF),
    seed=st.integers(0, 2**32),
)
def test_any_order_with_duplicates_gives_the_text_once(
    text: str, concat: Concat, reference: int, seed: int
) -> None:
    parts = parts_of(text, concat, reference)
    rng = random.Random(seed)
    # A repeated single-part message is indistinguishable from a new one: only parts of a
    # concatenated message can be recognised as repeats.
    repeats = rng.randrange(3) if len(parts) > 1 else 0
    arrivals = parts + [rng.choice(parts) for _ in range(repeats)]
    rng.shuffle(arrivals)
    assembler = InboundAssembler()
    out = feed(assembler, arrivals)
    assert [(m.text, m.parts, m.incomplete) for m in out] == [(text, len(parts), False)]
    assert assembler.pending == 0


# --- opt-out -------------------------------------------------------------------------------------

STOPS = [
    "STOP",
    "stop",
    "  Stop \n",
    "STOP!",
    "Stop.",
    "*STOP*",
    '"stop"',
    "stop, thanks",
    "STOP please",
    "STOP ALL",
    "stopall",
    "¡Baja!",
    "baja por favor",
    "UNSUBSCRIBE",
    "Opt-out",
    "opt out please",
    "OPTOUT",
    "ＳＴＯＰ",  # full-width letters, as some handsets send
    "Stop😀",
]
NOT_STOPS = [
    "",
    "   ",
    "don't stop",
    "Please stop",
    "nonstop",
    "stopping by later",
    "STOPS",
    "I want to opt in",
    "bajar",
    "Hi",
    "...",
    "opt",
]


@pytest.mark.parametrize("text", STOPS)
def test_opt_out_matches(text: str) -> None:
    opt_out = OptOut()
    assert opt_out.matches(text)
    assert opt_out.status(text) == "stop"


@pytest.mark.parametrize("text", NOT_STOPS)
def test_opt_out_does_not_match(text: str) -> None:
    opt_out = OptOut()
    assert not opt_out.matches(text)
    assert opt_out.status(text) == "inbound"


def test_custom_keywords_accents_and_case() -> None:
    opt_out = OptOut(["Arrêt", "désabonner"])
    assert opt_out.matches("ARRET")
    assert opt_out.matches("arrêt!")
    assert opt_out.matches("Desabonner svp")
    assert not opt_out.matches("STOP")


def test_whole_message_only_mode() -> None:
    opt_out = OptOut(["STOP", "CANCEL", "OPT OUT"], first_word=False)
    assert opt_out.matches(" Cancel! ")
    assert opt_out.matches("opt-out")
    assert not opt_out.matches("cancel my order please")
    assert not opt_out.matches("stop it")


def test_default_keywords_include_the_usual_ones() -> None:
    assert {"STOP", "BAJA", "UNSUBSCRIBE"} <= set(DEFAULT_OPT_OUT_KEYWORDS)


def test_status_of_an_incomplete_message_without_its_start() -> None:
    opt_out = OptOut()
    start_lost = InboundMessage("a", PHONE, SHORT_CODE, "STOP", 2, True, (1,), 0.0)
    end_lost = InboundMessage("a", PHONE, SHORT_CODE, "STOP", 2, True, (2,), 0.0)
    complete = InboundMessage("a", PHONE, SHORT_CODE, "Stop", 1)
    assert opt_out.status_of(start_lost) == "inbound"
    assert opt_out.status_of(end_lost) == "stop"
    assert opt_out.status_of(complete) == "stop"


@pytest.mark.parametrize("keywords", [[], ["!!!"], ["STOP", ""]])
def test_opt_out_validation(keywords: list[str]) -> None:
    with pytest.raises(ValueError):
        OptOut(keywords)
