"""Segmentation capacities, pair-safe cutting, UDH/SAR/payload modes and reassembly."""

from __future__ import annotations

import random
import re

import pytest

from smpp_bridge.codec.gsm7 import encode_gsm7, pack_septets
from smpp_bridge.codec.segment import (
    ConcatInfo,
    DecodedText,
    Segment,
    SplitMessage,
    TextSplitter,
    build_udh,
    decode_short_message,
    join_texts,
    missing_parts,
    parse_udh,
    part_capacities,
    split_text,
    with_reference,
)
from smpp_bridge.codec.text import REFERENCE_PROFILE, SPEC_PROFILE, EncodingProfile
from smpp_bridge.codec.tlv import Tag, Tlv, find_tlv
from smpp_bridge.errors import EncodingError

SHIFT_PROFILE = EncodingProfile(
    name="shift",
    encodings={"gsm7": 0, "ucs2": 8},
    decodings={0: "gsm7", 8: "ucs2"},
    shift_languages=(1, 2, 3),
)
PACKED_PROFILE = EncodingProfile(
    name="packed",
    encodings={"gsm7": 0, "ucs2": 8},
    decodings={0: "gsm7", 8: "ucs2"},
    gsm7_packed=True,
    shift_languages=(1,),
)


def roundtrip(message: SplitMessage, profile: EncodingProfile = SPEC_PROFILE) -> str:
    parts = []
    for segment in message.segments:
        parts.append(
            decode_short_message(
                segment.short_message,
                message.data_coding,
                segment.esm_class,
                profile,
                tlvs=segment.tlvs,
            )
        )
    random.Random(7).shuffle(parts)
    return join_texts(parts)


# --- capacities -------------------------------------------------------------------------------


def test_capacity_table() -> None:
    assert part_capacities("gsm7", "udh8") == (160, 153)
    assert part_capacities("gsm7", "udh16") == (160, 152)
    assert part_capacities("latin1", "udh8") == (140, 134)
    assert part_capacities("binary", "udh16") == (140, 133)
    assert part_capacities("ucs2", "udh8") == (70, 67)
    assert part_capacities("ucs2", "udh16") == (70, 66)
    # Sheet 8: national language shift IEs.
    assert part_capacities("gsm7", "udh8", 1) == (155, 149)
    assert part_capacities("gsm7", "udh8", 2) == (152, 146)
    assert part_capacities("gsm7", "udh16", 1) == (155, 148)
    assert part_capacities("gsm7", "udh16", 2) == (152, 145)
    # SAR reserves room for a 16-bit concatenation UDH the SMSC adds; no shift IEs with SAR.
    assert part_capacities("gsm7", "sar") == (160, 152)
    assert part_capacities("ucs2", "sar") == (70, 66)
    assert part_capacities("gsm7", "sar", 1) == (155, None)
    assert part_capacities("gsm7", "payload") == (160, 153)


@pytest.mark.parametrize(
    ("char", "encoding", "whole", "udh8", "udh16"),
    [
        ("a", "gsm7", 160, 153, 152),
        ("a", "latin1", 140, 134, 133),
        ("я", "ucs2", 70, 67, 66),
    ],
)
def test_boundary_texts(char: str, encoding: str, whole: int, udh8: int, udh16: int) -> None:
    one = split_text(char * whole, encoding=encoding)
    assert len(one.segments) == 1
    assert one.segments[0].udh == b"" and one.segments[0].esm_class == 0
    assert one.segments[0].units == whole

    for concat, per_part in (("udh8", udh8), ("udh16", udh16)):
        over = split_text(char * (whole + 1), encoding=encoding, concat=concat)  # type: ignore[arg-type]
        assert [s.units for s in over.segments] == [per_part, whole + 1 - per_part]
        assert all(s.esm_class == 0x40 for s in over.segments)
        two = split_text(char * (2 * per_part), encoding=encoding, concat=concat)  # type: ignore[arg-type]
        assert len(two.segments) == 2
        three = split_text(char * (2 * per_part + 1), encoding=encoding, concat=concat)  # type: ignore[arg-type]
        assert [s.units for s in three.segments] == [per_part, per_part, 1]


def test_udh8_and_udh16_layout() -> None:
    message = split_text("a" * 200, reference=0x1A7)
    first, second = message.segments
    assert first.udh == bytes.fromhex("050003a70201")
    assert second.udh == bytes.fromhex("050003a70202")
    assert first.short_message == first.udh + b"a" * 153
    assert message.units == 200 and (message.encoding, message.data_coding) == ("gsm7", 0)

    wide = split_text("a" * 200, concat="udh16", reference=0x12345)
    assert wide.segments[0].udh == bytes.fromhex("0608042345 0201".replace(" ", ""))
    assert wide.segments[1].short_message[:7] == bytes.fromhex("06080423450202")


# --- never split a pair -----------------------------------------------------------------------


def test_esc_pair_on_the_153_boundary_moves_to_the_next_part() -> None:
    text = "a" * 152 + "{" + "b" * 10
    message = split_text(text)
    first, second = message.segments
    assert first.units == 152
    assert first.short_message == first.udh + b"a" * 152
    assert second.short_message[6:8] == b"\x1b\x28"
    assert second.units == 12
    assert roundtrip(message) == text

    # One septet earlier the pair fits exactly into part one.
    fits = split_text("a" * 151 + "{" + "b" * 10)
    assert fits.segments[0].units == 153
    assert fits.segments[0].short_message.endswith(b"\x1b\x28")


def test_emoji_on_the_67_unit_edge_moves_to_the_next_part() -> None:
    text = "a" * 66 + "😀" + "b" * 10
    message = split_text(text)
    assert message.encoding == "ucs2"
    first, second = message.segments
    assert first.units == 66
    assert second.short_message[6:10] == bytes.fromhex("d83dde00")
    assert roundtrip(message) == text


# --- national language shift tables -----------------------------------------------------------


def test_turkish_single_part_needs_a_udh() -> None:
    text = "Şişli'de güzel bir gün, İstanbul ğ"
    message = split_text(text, profile=SHIFT_PROFILE)
    assert message.encoding == "gsm7"
    assert (message.locking_shift, message.single_shift) == (0, 1)
    (segment,) = message.segments
    assert segment.esm_class == 0x40
    assert segment.udh == bytes.fromhex("03240101")
    assert segment.short_message[4:6] == b"\x1b\x53"  # Ş through the single shift
    assert roundtrip(message, SHIFT_PROFILE) == text


def test_turkish_locking_shift_multipart() -> None:
    text = "ş" * 156
    message = split_text(text, profile=SHIFT_PROFILE)
    assert (message.locking_shift, message.single_shift) == (1, 0)
    assert [s.units for s in message.segments] == [149, 7]
    assert message.segments[0].udh == bytes.fromhex("080003000201250101")
    assert message.segments[0].short_message[9:] == b"\x1d" * 149
    assert roundtrip(message, SHIFT_PROFILE) == text
    assert len(split_text("ş" * 155, profile=SHIFT_PROFILE).segments) == 1


def test_spanish_single_shift() -> None:
    text = "Canción para María: ¡qué día más lindo!"
    message = split_text(text, profile=SHIFT_PROFILE)
    assert (message.encoding, message.locking_shift, message.single_shift) == ("gsm7", 0, 2)
    assert message.segments[0].udh == bytes.fromhex("03240102")
    assert message.units == len(text) + 4  # ó, í, á, á need ESC; é is in the default table
    assert roundtrip(message, SHIFT_PROFILE) == text


def test_portuguese_shift_tables() -> None:
    short = "Não é possível, irmã! Ação às três."
    message = split_text(short, profile=SHIFT_PROFILE)
    assert (message.encoding, message.locking_shift, message.single_shift) == ("gsm7", 0, 3)
    assert roundtrip(message, SHIFT_PROFILE) == short
    # Long: the locking table saves a part (2 parts instead of 3 with the single table).
    long_text = "ãõ" * 80
    message = split_text(long_text, profile=SHIFT_PROFILE)
    assert (message.locking_shift, message.single_shift, len(message.segments)) == (3, 0, 2)
    assert message.segments[0].udh == bytes.fromhex("080003000201250103")
    assert roundtrip(message, SHIFT_PROFILE) == long_text


def test_pinned_shift_tables_and_both_ies() -> None:
    # ã is not in the Turkish locking table; the Portuguese single shift table has it.
    message = split_text("ãş", profile=SHIFT_PROFILE, encoding="gsm7", locking=1, single=3)
    assert message.segments[0].udh == bytes.fromhex("06240103250101")
    assert message.segments[0].short_message[7:] == b"\x1b\x7b\x1d"
    assert message.units == 3
    with pytest.raises(EncodingError, match="apply to gsm7"):
        split_text("x", encoding="ucs2", locking=1)


def test_sar_refuses_shift_tables_on_multipart_but_allows_one_part() -> None:
    one = split_text("ş", profile=SHIFT_PROFILE, concat="sar")
    assert one.segments[0].udh == bytes.fromhex("03240101") and one.segments[0].tlvs == ()
    with pytest.raises(EncodingError, match="SAR"):
        split_text("ş" * 200, profile=SHIFT_PROFILE, encoding="gsm7", concat="sar")
    # Auto falls back to an encoding that can go without a UDH.
    assert split_text("ş" * 200, profile=SHIFT_PROFILE, concat="sar").encoding == "ucs2"


# --- SAR and payload --------------------------------------------------------------------------


def test_sar_segments() -> None:
    text = "x" * 153 + "y" * 153
    message = split_text(text, concat="sar", reference=0x12345)
    assert [s.units for s in message.segments] == [152, 152, 2]
    for seq, segment in enumerate(message.segments, 1):
        assert segment.esm_class == 0 and segment.udh == b""
        assert find_tlv(segment.tlvs, Tag.sar_msg_ref_num) == Tlv(0x020C, b"\x23\x45")
        assert find_tlv(segment.tlvs, Tag.sar_total_segments) == Tlv(0x020E, b"\x03")
        assert find_tlv(segment.tlvs, Tag.sar_segment_seqnum) == Tlv(0x020F, bytes((seq,)))
    assert message.segments[0].short_message == b"x" * 152
    assert roundtrip(message) == text


def test_payload_mode() -> None:
    text = "z" * 400
    message = split_text(text, concat="payload")
    (segment,) = message.segments
    assert segment.short_message == b"" and segment.esm_class == 0 and segment.udh == b""
    assert segment.tlvs == (Tlv(Tag.message_payload, b"z" * 400),)
    assert segment.units == 400 == message.units
    assert roundtrip(message) == text


def test_payload_mode_with_shift_table_carries_its_udh() -> None:
    text = "ğ" * 300
    message = split_text(text, profile=SHIFT_PROFILE, concat="payload")
    (segment,) = message.segments
    assert segment.esm_class == 0x40 and segment.udh == bytes.fromhex("03250101")
    assert segment.tlvs[0].value == segment.udh + b"\x0c" * 300
    assert roundtrip(message, SHIFT_PROFILE) == text


@pytest.mark.parametrize("concat", ["udh8", "udh16", "sar", "payload"])
def test_a_text_that_fits_one_part_is_one_plain_short_message(concat: str) -> None:
    message = split_text("a" * 160, concat=concat)  # type: ignore[arg-type]
    (segment,) = message.segments
    assert segment == Segment(b"a" * 160, 0, (), 160, b"")


def test_payload_mode_still_limits_the_parts_the_smsc_will_cut() -> None:
    with pytest.raises(EncodingError, match="needs 7 parts, more than the limit of 6"):
        split_text("a" * 1000, concat="payload", max_parts=6)
    assert split_text("a" * 1000, concat="payload", max_parts=7).units == 1000


# --- limits and arguments ---------------------------------------------------------------------


def test_too_many_parts() -> None:
    with pytest.raises(EncodingError, match="needs 4 parts, more than the limit of 3"):
        split_text("a" * 500, max_parts=3)
    assert len(split_text("a" * 459, max_parts=3).segments) == 3
    with pytest.raises(EncodingError, match="256 parts"):
        split_text("a" * (153 * 255 + 1))
    with pytest.raises(EncodingError, match="max_parts"):
        split_text("a", max_parts=0)
    with pytest.raises(EncodingError, match="concatenation mode"):
        split_text("a", concat="udh32")  # type: ignore[arg-type]


def test_reference_masking() -> None:
    assert split_text("a" * 161, reference=0x1FF).segments[0].udh[3] == 0xFF
    assert split_text("a" * 161, concat="udh16", reference=-1).segments[0].udh[3:5] == b"\xff\xff"


def test_explicit_encoding_must_be_accepted_and_exact() -> None:
    assert split_text("é", encoding="latin1").data_coding == 3
    assert split_text("€", encoding="latin9", profile=REFERENCE_PROFILE).segments[0].units == 1
    with pytest.raises(EncodingError, match="not accepted"):
        split_text("é", encoding="latin9")
    with pytest.raises(EncodingError, match="'€'"):
        split_text("€", encoding="latin1")
    with pytest.raises(EncodingError, match="'😀'"):
        split_text("😀", encoding="gsm7")


def test_empty_text() -> None:
    message = split_text("")
    assert message.segments == (Segment(b"", 0, (), 0, b""),)


# --- packed GSM 7-bit -------------------------------------------------------------------------


def test_packed_single_part() -> None:
    message = split_text("hellohello", profile=PACKED_PROFILE)
    assert message.segments[0].short_message.hex() == "e8329bfd4697d9ec37"
    assert roundtrip(message, PACKED_PROFILE) == "hellohello"


def test_packed_multipart_uses_fill_bits() -> None:
    text = "a" * 152 + "{" + "b" * 20
    message = split_text(text, profile=PACKED_PROFILE)
    first, second = message.segments
    assert first.units == 152
    septets = encode_gsm7("a" * 152)
    assert first.short_message == first.udh + pack_septets(septets, pad_bits=1)
    assert len(split_text("a" * 306, profile=PACKED_PROFILE).segments[0].short_message) == 140
    assert second.short_message[6] & 0x01 == 0  # the fill bit
    assert roundtrip(message, PACKED_PROFILE) == text


def test_packed_with_shift_ie() -> None:
    text = "ş" * 160
    message = split_text(text, profile=PACKED_PROFILE)
    assert message.locking_shift == 1
    assert message.segments[0].udh == bytes.fromhex("080003000201250101")
    assert roundtrip(message, PACKED_PROFILE) == text


# --- UDH parsing ------------------------------------------------------------------------------


def test_parse_udh_concat_ports_and_shifts() -> None:
    raw = bytes.fromhex("0e 00 03 2a 03 02 05 04 0b 84 23 f0 24 01 01 25 01 03".replace(" ", ""))
    udh, rest = parse_udh(raw[:15] + b"tail")
    assert rest == b"tail"
    assert udh.raw == raw[:15]
    assert udh.ies == (
        (0x00, b"\x2a\x03\x02"),
        (0x05, bytes.fromhex("0b8423f0")),
        (0x24, b"\x01"),
    )
    assert udh.concat == ConcatInfo(0x2A, 3, 2, False)
    assert udh.ports == (2948, 9200)
    assert (udh.single_shift, udh.locking_shift) == (1, 0)

    udh16, _ = parse_udh(bytes.fromhex("0d08041234030204021014250101") + b"x")
    assert udh16.concat == ConcatInfo(0x1234, 3, 2, True)
    assert udh16.ports == (0x10, 0x14)
    assert udh16.locking_shift == 1


@pytest.mark.parametrize("seq_total", [(0, 3), (4, 3), (1, 0)])
def test_concat_ie_with_bad_seq_is_ignored(seq_total: tuple[int, int]) -> None:
    seq, total = seq_total
    udh, _ = parse_udh(build_udh([(0x00, bytes((9, total, seq)))]))
    assert udh.concat is None


def test_last_valid_concat_ie_wins() -> None:
    raw = build_udh([(0x00, b"\x01\x02\x01"), (0x08, b"\x00\x07\x02\x02"), (0x00, b"\x09\x02\x00")])
    udh, _ = parse_udh(raw)
    assert udh.concat == ConcatInfo(7, 2, 2, True)


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        (b"", "empty"),
        (b"\x05\x00\x03\x01", "UDH length 5 runs past"),
        (b"\x03\x00\x03\x01", "claims 3 octets, only 1 left"),
        (b"\x01\x00", "IE header at offset 1"),
    ],
)
def test_malformed_udh(data: bytes, needle: str) -> None:
    with pytest.raises(EncodingError, match=needle):
        parse_udh(data)
    with pytest.raises(EncodingError):
        decode_short_message(data, 0, 0x40)


# --- decoding and reassembly ------------------------------------------------------------------


def test_decode_short_message_without_udh_keeps_udh_like_bytes() -> None:
    decoded = decode_short_message(b"\x05\x00\x03\x01\x02\x01hi", 0, 0)
    assert decoded.udh is None and decoded.concat is None
    assert decoded.text.endswith("hi")


def test_decode_short_message_uses_message_payload_and_sar_tlvs() -> None:
    tlvs = (
        Tlv.make("message_payload", b"\x00h\x00i"),
        Tlv.make("sar_msg_ref_num", 513),
        Tlv.make("sar_total_segments", 2),
        Tlv.make("sar_segment_seqnum", 2),
    )
    decoded = decode_short_message(b"", 8, 0, tlvs=tlvs)
    assert decoded.text == "hi"
    assert decoded.concat == ConcatInfo(513, 2, 2, True)
    # Incomplete SAR sets are ignored.
    assert decode_short_message(b"x", 0, 0, tlvs=tlvs[1:3]).concat is None


def test_join_rejoins_pairs_a_foreign_sender_split() -> None:
    esc_parts = [
        decode_short_message(build_udh([(0, b"\x05\x02\x02")]) + b"\x28b", 0, 0x40),
        decode_short_message(build_udh([(0, b"\x05\x02\x01")]) + b"a\x1b", 0, 0x40),
    ]
    assert esc_parts[1].text == "a"
    assert join_texts(esc_parts) == "a{b"
    surrogate_parts = [
        decode_short_message(build_udh([(0, b"\x06\x02\x01")]) + b"\xd8\x3d", 8, 0x40),
        decode_short_message(build_udh([(0, b"\x06\x02\x02")]) + b"\xde\x00", 8, 0x40),
    ]
    assert join_texts(surrogate_parts) == "😀"


def test_join_orders_dedupes_and_checks_message_identity() -> None:
    def part(text: str, seq: int, ref: int = 1, total: int = 3) -> DecodedText:
        return DecodedText(text, None, ConcatInfo(ref, total, seq))

    parts = [part("c", 3), part("a", 1), part("b", 2), part("B", 2)]
    assert join_texts(parts) == "abc"
    assert missing_parts(parts) == ()
    assert missing_parts(parts[:2]) == (2,)
    with pytest.raises(EncodingError, match="different messages"):
        join_texts([part("a", 1), part("b", 2, ref=2)])
    assert join_texts([]) == ""
    assert missing_parts([DecodedText("solo")]) == ()


# -- TextSplitter: split_text from memory, the reference stamped again


_SPLITTER_TEXTS = [
    "",
    "Your code is 1234",
    "a" * 160,
    "a" * 161,
    "{" * 90,
    "ñ" * 71,
    "Привет, мир! " * 30,
    "x" * 600,
    "ş" * 155,
    "Hola 😀 " * 40,
    "ç€ł" * 70,
]


@pytest.mark.parametrize(
    "profile", [SPEC_PROFILE, REFERENCE_PROFILE, SHIFT_PROFILE, PACKED_PROFILE]
)
@pytest.mark.parametrize("concat", ["udh8", "udh16", "sar", "payload"])
def test_splitter_gives_what_split_text_gives(profile: EncodingProfile, concat: str) -> None:
    splitter = TextSplitter(profile)
    rng = random.Random(7)
    for text in _SPLITTER_TEXTS * 3:  # each text from memory too
        for encoding in ("auto", "gsm7", "ucs2"):
            reference = rng.randrange(0x10000)
            try:
                want = split_text(
                    text,
                    profile=profile,
                    encoding=encoding,
                    concat=concat,  # type: ignore[arg-type]
                    reference=reference,
                )
            except EncodingError as exc:
                with pytest.raises(EncodingError, match=re.escape(str(exc))):
                    splitter.split(text, encoding=encoding, concat=concat, reference=reference)  # type: ignore[arg-type]
                continue
            got = splitter.split(text, encoding=encoding, concat=concat, reference=reference)  # type: ignore[arg-type]
            assert got == want, (text, encoding, concat, reference)


def test_splitter_is_bounded_and_skips_long_texts() -> None:
    splitter = TextSplitter(SPEC_PROFILE, size=3, max_length=100)
    for i in range(10):
        splitter.split(f"text {i}")
    assert len(splitter) == 3
    splitter.split("b" * 101)
    assert len(splitter) == 3
    assert splitter.split("b" * 101, reference=5) == split_text("b" * 101, reference=5)
    with pytest.raises(ValueError):
        TextSplitter(size=0)


def test_with_reference_leaves_one_part_and_payload_alone() -> None:
    one = split_text("short")
    assert with_reference(one, "udh8", 99) is one
    payload = split_text("a" * 400, concat="payload")
    assert with_reference(payload, "payload", 99) is payload
    two = split_text("a" * 400, concat="udh16", reference=1)
    assert with_reference(two, "udh16", 0xBEEF) == split_text(
        "a" * 400, concat="udh16", reference=0xBEEF
    )
