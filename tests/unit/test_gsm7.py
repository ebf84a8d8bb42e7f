"""GSM 7-bit tables, septet encode/decode and packing, checked against hand-worked vectors."""

from __future__ import annotations

import pytest

from smpp_bridge.codec.gsm7 import (
    DEFAULT_ALPHABET,
    DEFAULT_EXTENSION,
    LOCKING_SHIFT_TABLES,
    PORTUGUESE_LOCKING,
    PORTUGUESE_SINGLE,
    SINGLE_SHIFT_TABLES,
    SPANISH_SINGLE,
    TURKISH_LOCKING,
    TURKISH_SINGLE,
    decode_gsm7,
    encode_gsm7,
    gsm7_septets,
    is_gsm7,
    pack_septets,
    udh_fill_bits,
    unpack_septets,
)
from smpp_bridge.errors import EncodingError


def reference_pack(septets: bytes, pad_bits: int = 0) -> bytes:
    """Independent bit-string packer: LSB-first septets after ``pad_bits`` zero bits."""
    bits = [0] * pad_bits
    for septet in septets:
        bits += [(septet >> i) & 1 for i in range(7)]
    while len(bits) % 8:
        bits.append(0)
    return bytes(sum(bits[k + i] << i for i in range(8)) for k in range(0, len(bits), 8))


# --- tables ------------------------------------------------------------------------------------


@pytest.mark.parametrize("language", sorted(LOCKING_SHIFT_TABLES))
def test_locking_tables_have_128_distinct_characters_and_esc_slot(language: int) -> None:
    table = LOCKING_SHIFT_TABLES[language]
    assert len(table) == 128
    assert len(set(table)) == 128
    assert table[0x1B] == "\x1b"


def test_default_alphabet_spot_checks() -> None:
    expected = {
        0x00: "@",
        0x01: "£",
        0x02: "$",
        0x03: "¥",
        0x09: "Ç",
        0x0A: "\n",
        0x0D: "\r",
        0x10: "Δ",
        0x11: "_",
        0x1F: "É",
        0x24: "¤",
        0x40: "¡",
        0x5B: "Ä",
        0x5F: "§",
        0x60: "¿",
        0x7F: "à",
    }
    for code, ch in expected.items():
        assert DEFAULT_ALPHABET[code] == ch, hex(code)
    assert DEFAULT_ALPHABET[0x41:0x5B] == "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    assert DEFAULT_ALPHABET[0x61:0x7B] == "abcdefghijklmnopqrstuvwxyz"
    assert "`" not in DEFAULT_ALPHABET


def test_default_extension_table() -> None:
    assert dict(DEFAULT_EXTENSION) == {
        0x0A: "\x0c",
        0x14: "^",
        0x28: "{",
        0x29: "}",
        0x2F: "\\",
        0x3C: "[",
        0x3D: "~",
        0x3E: "]",
        0x40: "|",
        0x65: "€",
    }


def test_national_tables_spot_checks() -> None:
    # Turkish locking (A.3.1)
    assert {TURKISH_LOCKING[c] for c in (0x04, 0x07, 0x0B, 0x0C, 0x1C, 0x1D, 0x40, 0x60)} == set(
        "€ıĞğŞşİç"
    )
    assert TURKISH_LOCKING[0x1C] == "Ş" and TURKISH_LOCKING[0x60] == "ç"
    # Turkish single (A.2.1)
    assert [TURKISH_SINGLE[c] for c in (0x47, 0x49, 0x53, 0x63, 0x67, 0x69, 0x73)] == list(
        "ĞİŞçğış"
    )
    # Spanish single (A.2.2)
    assert [SPANISH_SINGLE[c] for c in (0x09, 0x41, 0x49, 0x4F, 0x55, 0x61, 0x69, 0x6F, 0x75)] == (
        list("çÁÍÓÚáíóú")
    )
    # Portuguese locking (A.3.3)
    assert [PORTUGUESE_LOCKING[c] for c in (0x12, 0x15, 0x16, 0x24, 0x60, 0x7B, 0x7D)] == list(
        "ª∞^º~ã`"
    )
    # Portuguese single (A.2.3)
    assert [PORTUGUESE_SINGLE[c] for c in (0x05, 0x12, 0x1F, 0x5B, 0x7F)] == list("êΦÊÃâ")
    # Every national single shift table keeps the default extension characters.
    for language, table in SINGLE_SHIFT_TABLES.items():
        assert set(DEFAULT_EXTENSION.items()) <= set(table.items()), language


# --- encode -----------------------------------------------------------------------------------


def test_encode_basic_vectors() -> None:
    assert encode_gsm7("") == b""
    assert encode_gsm7("@") == b"\x00"
    assert encode_gsm7("Hello") == b"Hello"
    assert encode_gsm7("@£$¥") == b"\x00\x01\x02\x03"
    assert encode_gsm7("¡¿§") == bytes((0x40, 0x60, 0x5F))
    assert encode_gsm7("ΔΦΓ é") == bytes((0x10, 0x12, 0x13, 0x20, 0x05))


def test_encode_extension_characters_as_esc_pairs() -> None:
    assert encode_gsm7("^{}\\[~]|€\f") == bytes.fromhex("1b141b281b291b2f1b3c1b3d1b3e1b401b651b0a")
    assert encode_gsm7("a€b") == b"a\x1b\x65b"
    # Mixed non-ASCII and extension characters take the general path.
    assert encode_gsm7("é{Δ}") == bytes.fromhex("051b28101b29")


@pytest.mark.parametrize(
    ("text", "index", "char"),
    [
        ("ab`c", 2, "`"),
        ("Ωş", 1, "ş"),
        ("x\x1by", 1, "\x1b"),
        ("\x00", 0, "\x00"),
        ("a😀", 1, "😀"),
    ],
)
def test_encode_error_names_first_bad_character_and_index(text: str, index: int, char: str) -> None:
    with pytest.raises(EncodingError) as info:
        encode_gsm7(text)
    message = str(info.value)
    assert f"index {index}" in message
    assert repr(char) in message


def test_encode_error_reports_the_first_of_several() -> None:
    with pytest.raises(EncodingError, match="index 1"):
        encode_gsm7("a`b\x00")


def test_turkish_shift_tables() -> None:
    assert encode_gsm7("ş", locking=1) == b"\x1d"
    assert encode_gsm7("ş", single=1) == b"\x1b\x73"
    # A character in both tables takes the single septet of the locking table.
    assert encode_gsm7("ş", locking=1, single=1) == b"\x1d"
    assert encode_gsm7("İğ", locking=1) == b"\x40\x0c"
    # ç is in the Turkish locking table but the default extension has no ç.
    assert encode_gsm7("ç", locking=1) == b"\x60"
    with pytest.raises(EncodingError, match="locking shift 0 and single shift 1"):
        encode_gsm7("ª", single=1)
    # Locking Turkish replaces è (0x04 is € there), so è is not representable.
    with pytest.raises(EncodingError, match="'è'"):
        encode_gsm7("è", locking=1)


def test_spanish_single_shift_and_no_locking_table() -> None:
    assert encode_gsm7("á", single=2) == b"\x1b\x61"
    assert encode_gsm7("Ú", single=2) == b"\x1b\x55"
    with pytest.raises(EncodingError, match="locking shift table for language 2"):
        encode_gsm7("a", locking=2)
    with pytest.raises(EncodingError, match="single shift table for language 9"):
        encode_gsm7("a", single=9)


def test_portuguese_shift_tables() -> None:
    assert encode_gsm7("ã", locking=3) == b"\x7b"
    assert encode_gsm7("ã", single=3) == b"\x1b\x7b"
    # Φ is not in the Portuguese locking table; the Portuguese single table has it.
    assert encode_gsm7("Φ", locking=3, single=3) == b"\x1b\x12"
    with pytest.raises(EncodingError):
        encode_gsm7("Φ", locking=3)
    assert encode_gsm7("^", locking=3) == b"\x16"


def test_septet_count() -> None:
    assert gsm7_septets("") == 0
    assert gsm7_septets("abc") == 3
    assert gsm7_septets("a{") == 3
    assert gsm7_septets("é€") == 3
    assert gsm7_septets("ş") is None
    assert gsm7_septets("ş", single=1) == 2
    assert gsm7_septets("ş", locking=1) == 1
    assert gsm7_septets("a", locking=2) is None
    assert gsm7_septets("a`") is None
    assert is_gsm7("{x}") and not is_gsm7("😀")


# --- decode -----------------------------------------------------------------------------------


def test_decode_vectors() -> None:
    assert decode_gsm7(b"") == ""
    assert decode_gsm7(b"\x00Hello\x1b\x65") == "@Hello€"
    assert decode_gsm7(b"\x1d", locking=1) == "ş"
    assert decode_gsm7(b"\x1b\x73", single=1) == "ş"
    assert decode_gsm7(b"\x1b\x61", single=2) == "á"
    assert decode_gsm7(b"\x7b\x1b\x12", locking=3, single=3) == "ãΦ"


def test_decode_tolerance_rules() -> None:
    # ESC + a code missing from the single shift table: the locking table's character.
    assert decode_gsm7(b"\x1b\x41") == "A"
    assert decode_gsm7(b"\x1b\x40", locking=1, single=0) == "|"
    assert decode_gsm7(b"\x1b\x07", locking=1) == "ı"
    # ESC ESC is shown as a space.
    assert decode_gsm7(b"a\x1b\x1bb") == "a b"
    # A trailing lone ESC decodes to nothing.
    assert decode_gsm7(b"ab\x1b") == "ab"
    # The high bit of an unpacked septet is ignored.
    assert decode_gsm7(b"\xc1\x9b\xa8") == "A{"
    # Unknown language ids fall back to the default tables.
    assert decode_gsm7(b"\x1d\x1b\x73", locking=2, single=13) == "æs"


# --- packing ----------------------------------------------------------------------------------


def test_known_packed_vector() -> None:
    septets = encode_gsm7("hellohello")
    assert pack_septets(septets).hex() == "e8329bfd4697d9ec37"
    assert unpack_septets(bytes.fromhex("e8329bfd4697d9ec37")) == septets
    assert unpack_septets(bytes.fromhex("e8329bfd4697d9ec37"), 10) == septets


def test_pack_matches_independent_bit_packer() -> None:
    septets = bytes(range(0x7F, 0x50, -3))
    for pad in range(7):
        # Compare on lengths that do not trigger the CR pad rule.
        if (pad + 7 * len(septets)) % 8 == 1:
            continue
        assert pack_septets(septets, pad_bits=pad) == reference_pack(septets, pad), pad


def test_seven_spare_bits_are_filled_with_cr() -> None:
    packed = pack_septets(b"1234567")
    assert len(packed) == 7
    assert packed[-1] >> 1 == 0x0D
    assert packed == reference_pack(b"1234567\r")
    assert unpack_septets(packed) == b"1234567"
    assert unpack_septets(packed, 7) == b"1234567"
    assert unpack_septets(packed, 8) == b"1234567\r"


def test_unpack_count_decides_the_ambiguous_trailing_cr() -> None:
    # Eight septets ending in CR fill 7 octets exactly: without a count the CR looks like pad.
    packed = pack_septets(b"abcdefg\r")
    assert len(packed) == 7
    assert unpack_septets(packed) == b"abcdefg"
    assert unpack_septets(packed, 8) == b"abcdefg\r"
    # Seven zero spare bits from a non-conforming sender stay a visible '@'.
    assert unpack_septets(reference_pack(b"1234567")) == b"1234567\x00"


def test_fill_bits_after_udh() -> None:
    assert [udh_fill_bits(n) for n in (0, 4, 6, 7, 9, 12)] == [0, 3, 1, 0, 5, 2]
    udh_octets = 6
    septets = encode_gsm7("hello")
    packed = pack_septets(septets, pad_bits=udh_fill_bits(udh_octets))
    assert (udh_octets * 8 + udh_fill_bits(udh_octets)) % 7 == 0
    assert packed[0] & 0x01 == 0
    assert packed == reference_pack(septets, 1)
    assert unpack_septets(packed, pad_bits=1) == septets


def test_pack_and_unpack_argument_errors() -> None:
    with pytest.raises(EncodingError, match="pad_bits"):
        pack_septets(b"a", pad_bits=7)
    with pytest.raises(EncodingError, match="pad_bits"):
        unpack_septets(b"a", pad_bits=-1)
    with pytest.raises(EncodingError, match="index 1"):
        pack_septets(b"a\x80")
    with pytest.raises(EncodingError, match="at most 1"):
        unpack_septets(b"\x41", 2)
    assert pack_septets(b"") == b""
    assert unpack_septets(b"") == b""


def test_encode_many_distinct_extension_characters() -> None:
    # Both expansion strategies (few and many distinct extension characters) give ESC pairs.
    text = "x^y{z}[]~|\\€\f" * 3
    expected = (
        b"".join(
            bytes((0x1B, code))
            if code in (0x14, 0x28, 0x29, 0x3C, 0x3E, 0x3D, 0x40, 0x2F, 0x65, 0x0A)
            else bytes((code,))
            for code in [
                0x78,
                0x14,
                0x79,
                0x28,
                0x7A,
                0x29,
                0x3C,
                0x3E,
                0x3D,
                0x40,
                0x2F,
                0x65,
                0x0A,
            ]
        )
        * 3
    )
    assert encode_gsm7(text) == expected
    assert encode_gsm7("é" + text) == b"\x05" + expected
    assert decode_gsm7(expected) == text
