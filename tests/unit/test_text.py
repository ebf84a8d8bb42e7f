"""Encodings, encoding profiles, data_coding interpretation and automatic encoding choice."""

from __future__ import annotations

import msgspec
import pytest

from smpp_bridge.codec.text import (
    DEFAULT_PROFILE,
    REFERENCE_PROFILE,
    SPEC_PROFILE,
    EncodingProfile,
    choose_encoding,
    decode_text,
    encode_text,
    encoding_for_data_coding,
    profile_named,
    unit_count,
)
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
)


# --- profiles ---------------------------------------------------------------------------------


def test_predefined_profiles() -> None:
    assert SPEC_PROFILE.encodings == {"gsm7": 0, "ascii": 1, "latin1": 3, "ucs2": 8}
    assert SPEC_PROFILE.decodings[2] == "binary" and SPEC_PROFILE.decodings[4] == "binary"
    assert REFERENCE_PROFILE.encodings == {"gsm7": 0, "latin9": 3, "ucs2": 8}
    assert REFERENCE_PROFILE.decodings[3] == "latin9"
    assert DEFAULT_PROFILE is SPEC_PROFILE
    assert not SPEC_PROFILE.gsm7_packed and SPEC_PROFILE.shift_languages == ()
    assert profile_named("spec") is SPEC_PROFILE
    assert profile_named("default") is SPEC_PROFILE
    assert profile_named("Reference") is REFERENCE_PROFILE
    with pytest.raises(EncodingError, match="'acme'"):
        profile_named("acme")


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"encodings": {"utf8": 4}, "decodings": {}}, "'utf8'"),
        ({"encodings": {"gsm7": 256}, "decodings": {}}, "256"),
        ({"encodings": {"gsm7": -1}, "decodings": {}}, "-1"),
        ({"encodings": {}, "decodings": {300: "gsm7"}}, "300"),
        ({"encodings": {}, "decodings": {5: "jis"}}, "'jis'"),
        ({"encodings": {}, "decodings": {}, "shift_languages": (42,)}, "42"),
    ],
)
def test_profile_validation_names_the_bad_key(kwargs: dict[str, object], needle: str) -> None:
    with pytest.raises(EncodingError, match=needle):
        EncodingProfile(name="bad", **kwargs)  # type: ignore[arg-type]


def test_profile_round_trips_through_msgspec() -> None:
    raw = msgspec.json.encode(REFERENCE_PROFILE)
    assert msgspec.json.decode(raw, type=EncodingProfile) == REFERENCE_PROFILE
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(
            b'{"name":"x","encodings":{"nope":1},"decodings":{}}', type=EncodingProfile
        )


# --- encode_text ------------------------------------------------------------------------------


def test_encode_text_per_encoding() -> None:
    assert encode_text("Hi {x}", "gsm7") == b"Hi \x1b(x\x1b)"
    assert encode_text("hellohello", "gsm7", PACKED_PROFILE).hex() == "e8329bfd4697d9ec37"
    assert encode_text("a`", "ascii") == b"a`"
    assert encode_text("é¤", "latin1") == b"\xe9\xa4"
    assert encode_text("€Š", "latin9", REFERENCE_PROFILE) == b"\xa4\xa6"
    assert encode_text("a😀", "ucs2") == bytes.fromhex("0061d83dde00")


def test_encode_text_refuses_encodings_the_profile_lacks() -> None:
    with pytest.raises(EncodingError, match="'latin9' is not accepted by profile 'spec'"):
        encode_text("x", "latin9")
    with pytest.raises(EncodingError, match="'latin1' is not accepted by profile 'reference'"):
        encode_text("x", "latin1", REFERENCE_PROFILE)
    with pytest.raises(EncodingError, match="'binary'"):
        encode_text("x", "binary")


def test_encode_text_errors_name_character_and_index() -> None:
    with pytest.raises(EncodingError, match=r"'é' \(U\+00E9\) at index 1 .* ascii"):
        encode_text("aé", "ascii")
    with pytest.raises(EncodingError, match=r"index 2 .* latin1"):
        encode_text("ab€", "latin1")
    with pytest.raises(EncodingError, match=r"index 1 .* ucs2"):
        encode_text("a\ud800", "ucs2")


def test_encode_text_shift_languages_need_the_profile() -> None:
    assert encode_text("ş", "gsm7", SHIFT_PROFILE, locking=1) == b"\x1d"
    with pytest.raises(EncodingError, match="locking shift language 1 is not enabled"):
        encode_text("ş", "gsm7", locking=1)
    with pytest.raises(EncodingError, match="single shift language 2 is not enabled"):
        encode_text("á", "gsm7", REFERENCE_PROFILE, single=2)


# --- decode_text ------------------------------------------------------------------------------


def test_decode_text_follows_the_profile() -> None:
    assert decode_text(b"\xa4", 3) == "¤"
    assert decode_text(b"\xa4", 3, REFERENCE_PROFILE) == "€"
    assert decode_text(b"Hi \x1b(", 0) == "Hi {"
    assert decode_text(bytes.fromhex("e8329bfd4697d9ec37"), 0, PACKED_PROFILE) == "hellohello"
    assert decode_text(bytes.fromhex("0061d83dde00"), 8) == "a😀"
    assert decode_text(b"\x1d", 0, SHIFT_PROFILE, locking=1) == "ş"


@pytest.mark.parametrize(
    ("data_coding", "encoding"),
    [
        (0x00, "gsm7"),
        (0x01, "ascii"),
        (0x02, "binary"),
        (0x03, "latin1"),
        (0x04, "binary"),
        (0x05, "binary"),
        (0x06, "binary"),
        (0x08, "ucs2"),
        (0x0B, "binary"),
        (0x10, "gsm7"),
        (0x11, "gsm7"),
        (0x14, "binary"),
        (0x18, "ucs2"),
        (0x1C, "binary"),
        (0x30, "binary"),
        (0x48, "ucs2"),
        (0x80, "binary"),
        (0xC0, "gsm7"),
        (0xD8, "gsm7"),
        (0xE0, "ucs2"),
        (0xF0, "gsm7"),
        (0xF1, "gsm7"),
        (0xF4, "binary"),
        (0xF6, "binary"),
    ],
)
def test_data_coding_interpretation(data_coding: int, encoding: str) -> None:
    assert encoding_for_data_coding(data_coding) == encoding


def test_profile_decodings_take_precedence_and_smpp_values_fill_gaps() -> None:
    assert encoding_for_data_coding(3, REFERENCE_PROFILE) == "latin9"
    assert encoding_for_data_coding(1, REFERENCE_PROFILE) == "ascii"
    custom = EncodingProfile("c", {"gsm7": 0}, {0: "latin1", 0xF0: "ucs2"})
    assert encoding_for_data_coding(0, custom) == "latin1"
    assert encoding_for_data_coding(0xF0, custom) == "ucs2"


def test_decode_text_gsm_dcs_groups() -> None:
    assert decode_text(b"Hi\x00", 0x10) == "Hi@"
    assert decode_text(b"\x00\xe9", 0x18) == "é"
    assert decode_text(b"Hi\x00", 0xF1) == "Hi@"
    assert decode_text(b"\x00\xff", 0xF6) == "\x00ÿ"
    assert decode_text(b"Hi", 0xC8) == "Hi"


def test_decode_text_is_tolerant() -> None:
    assert decode_text(b"\x00a\x00", 8) == "a\ufffd"
    assert decode_text(b"\xd8\x3d\x00a", 8) == "\ufffda"
    assert decode_text(b"a\x80", 1) == "a\ufffd"
    assert decode_text(b"\xff\x00", 0xBB) == "ÿ\x00"
    assert decode_text(b"\x9b", 0) == ""


# --- choose_encoding --------------------------------------------------------------------------


def test_auto_prefers_gsm7() -> None:
    choice = choose_encoding("Your code is 1234")
    assert (choice.encoding, choice.data_coding, choice.parts, choice.units) == ("gsm7", 0, 1, 17)


def test_auto_picks_latin9_when_allowed_else_ucs2() -> None:
    text = "Šta je œuvre ž"
    choice = choose_encoding(text, REFERENCE_PROFILE)
    assert (choice.encoding, choice.data_coding) == ("latin9", 3)
    assert choose_encoding(text, SPEC_PROFILE).encoding == "ucs2"


def test_auto_prefers_8_bit_over_ucs2_on_a_tie_and_ascii_over_latin() -> None:
    assert choose_encoding("olá").encoding == "latin1"
    assert choose_encoding("olá", REFERENCE_PROFILE).encoding == "latin9"
    assert choose_encoding("a`b").encoding == "ascii"


def test_auto_uses_fewer_parts_even_if_less_preferred() -> None:
    # 100 "{" need 200 septets (2 parts); IA5 takes 100 octets in 1 part.
    choice = choose_encoding("{" * 100)
    assert (choice.encoding, choice.data_coding, choice.parts) == ("ascii", 1, 1)
    assert choose_encoding("{" * 100, REFERENCE_PROFILE).encoding == "latin9"


def test_auto_uses_shift_tables_only_when_the_profile_lists_them() -> None:
    text = "Şişli'de güzel bir gün"
    assert choose_encoding(text).encoding == "ucs2"
    choice = choose_encoding(text, SHIFT_PROFILE)
    assert choice.encoding == "gsm7"
    assert (choice.locking_shift, choice.single_shift) == (0, 1)
    assert choice.units == len(text) + 2


def test_auto_prefers_the_shift_combination_with_fewer_parts() -> None:
    # "^" is a single septet in the Portuguese locking table: 100 septets + UDH = 1 part.
    choice = choose_encoding("^" * 100, SHIFT_PROFILE)
    assert (choice.encoding, choice.locking_shift, choice.single_shift, choice.parts) == (
        "gsm7",
        3,
        0,
        1,
    )
    # Plain GSM 7-bit would need 2 parts.
    assert choose_encoding("^" * 100, SHIFT_PROFILE, encodings=["gsm7"], locking=0).parts == 2


def test_choose_encoding_errors() -> None:
    gsm_only = EncodingProfile("g", {"gsm7": 0}, {0: "gsm7"})
    with pytest.raises(EncodingError, match=r"profile 'g'.*'😀'"):
        choose_encoding("a😀", gsm_only)
    with pytest.raises(EncodingError, match="not enabled"):
        choose_encoding("a", SPEC_PROFILE, locking=1)
    with pytest.raises(EncodingError, match="'klingon'"):
        choose_encoding("a", encodings=["klingon"])


def test_unit_count() -> None:
    assert unit_count("a{", "gsm7") == 3
    assert unit_count("a😀", "ucs2") == 3
    assert unit_count("é", "latin1") == 1
    assert unit_count("€", "latin1") is None


def test_part_counts_at_exact_multiples() -> None:
    assert choose_encoding("a" * 306).parts == 2
    assert choose_encoding("a" * 307).parts == 3
    assert choose_encoding("я" * 134).parts == 2
    assert choose_encoding("я" * 135).parts == 3
    assert choose_encoding("a" * 304, concat="udh16").parts == 2
    assert choose_encoding("a" * 305, concat="udh16").parts == 3


def test_latin9_is_preferred_over_latin1_when_both_fit() -> None:
    both = EncodingProfile("both", {"latin1": 3, "latin9": 0x0E, "ucs2": 8}, {})
    assert choose_encoding("café", both).encoding == "latin9"
    assert choose_encoding("¤", both).encoding == "latin1"
