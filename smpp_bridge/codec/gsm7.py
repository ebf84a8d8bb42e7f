"""GSM 7-bit alphabet (3GPP TS 23.038): character tables, septet encode/decode, septet packing.

Text is encoded to *unpacked* septets — one septet per octet, an extension character as the two
octets ESC (0x1B) + code — which is what most SMSCs expect in SMPP ``short_message``.
``pack_septets``/``unpack_septets`` convert to and from the packed air-interface form for SMSCs
that want that instead.

National language shift tables (TS 23.038 annex A) are selected by language id: a *locking*
shift table replaces the default alphabet, a *single* shift table replaces the extension table
reached through ESC. Language 0 is the default alphabet / default extension table.
"""

from __future__ import annotations

import codecs
from collections.abc import Mapping
from typing import Final

from ..errors import EncodingError

ESC: Final = 0x1B
CR: Final = 0x0D

# Each table row below is one column of the TS 23.038 table (16 consecutive code points),
# so row N holds septets 16*N .. 16*N+15. The ESC slot (0x1B) holds the ESC character itself,
# which is never a representable character.
DEFAULT_ALPHABET: Final[str] = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)

# TS 23.038 A.3.1
TURKISH_LOCKING: Final[str] = (
    "@£$¥€éùıòÇ\nĞğ\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞ\x1bŞşßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "İABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "çabcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)

# TS 23.038 A.3.3
PORTUGUESE_LOCKING: Final[str] = (
    "@£$¥êéúíóç\nÔô\rÁá"
    "Δ_ªÇÀ∞^\\€Ó|\x1bÂâÊÉ"
    " !\"#º%&'()*+,-./"
    "0123456789:;<=>?"
    "ÍABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÃÕÚÜ§"
    "~abcdefghijklmno"
    "pqrstuvwxyzãõ`üà"
)

# TS 23.038 6.2.1.1: code after ESC -> character.
DEFAULT_EXTENSION: Final[Mapping[int, str]] = {
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

# TS 23.038 A.2.1
TURKISH_SINGLE: Final[Mapping[int, str]] = {
    0x0A: "\x0c",
    0x14: "^",
    0x28: "{",
    0x29: "}",
    0x2F: "\\",
    0x3C: "[",
    0x3D: "~",
    0x3E: "]",
    0x40: "|",
    0x47: "Ğ",
    0x49: "İ",
    0x53: "Ş",
    0x63: "ç",
    0x65: "€",
    0x67: "ğ",
    0x69: "ı",
    0x73: "ş",
}

# TS 23.038 A.2.2
SPANISH_SINGLE: Final[Mapping[int, str]] = {
    0x09: "ç",
    0x0A: "\x0c",
    0x14: "^",
    0x28: "{",
    0x29: "}",
    0x2F: "\\",
    0x3C: "[",
    0x3D: "~",
    0x3E: "]",
    0x40: "|",
    0x41: "Á",
    0x49: "Í",
    0x4F: "Ó",
    0x55: "Ú",
    0x61: "á",
    0x65: "€",
    0x69: "í",
    0x6F: "ó",
    0x75: "ú",
}

# TS 23.038 A.2.3
PORTUGUESE_SINGLE: Final[Mapping[int, str]] = {
    0x05: "ê",
    0x09: "ç",
    0x0A: "\x0c",
    0x0B: "Ô",
    0x0C: "ô",
    0x0E: "Á",
    0x0F: "á",
    0x12: "Φ",
    0x13: "Γ",
    0x14: "^",
    0x15: "Ω",
    0x16: "Π",
    0x17: "Ψ",
    0x18: "Σ",
    0x19: "Θ",
    0x1F: "Ê",
    0x28: "{",
    0x29: "}",
    0x2F: "\\",
    0x3C: "[",
    0x3D: "~",
    0x3E: "]",
    0x40: "|",
    0x41: "À",
    0x49: "Í",
    0x4F: "Ó",
    0x55: "Ú",
    0x5B: "Ã",
    0x5C: "Õ",
    0x61: "Â",
    0x65: "€",
    0x69: "í",
    0x6F: "ó",
    0x75: "ú",
    0x7B: "ã",
    0x7C: "õ",
    0x7F: "â",
}

# Spanish (2) has no locking shift table in TS 23.038, only a single shift table.
LOCKING_SHIFT_TABLES: Final[Mapping[int, str]] = {
    0: DEFAULT_ALPHABET,
    1: TURKISH_LOCKING,
    3: PORTUGUESE_LOCKING,
}
SINGLE_SHIFT_TABLES: Final[Mapping[int, Mapping[int, str]]] = {
    0: DEFAULT_EXTENSION,
    1: TURKISH_SINGLE,
    2: SPANISH_SINGLE,
    3: PORTUGUESE_SINGLE,
}
LANGUAGE_NAMES: Final[Mapping[int, str]] = {1: "Turkish", 2: "Spanish", 3: "Portuguese"}

# One octet per character is the intermediate "marked" form the encoder works in: a septet
# (< 0x80), a placeholder 0x81.. for a character reached through ESC, or _INVALID.
_PAIR_BASE: Final = 0x81
_INVALID: Final = 0xFF
_SEPTET_OCTETS: Final = bytes(range(0x80))
# Never present in a marked form (0x80 is moved to 0 by ``fast_fix``), so it can be deleted.
_FILLER: Final = 0x80
_FILLER_OCTET: Final = bytes((_FILLER,))
# Up to this many distinct extension characters, replacing each is faster than re-laying.
_FEW_PLACEHOLDERS: Final = 4
# U+FFFE in a charmap table means "undefined": charmap_build skips it, charmap_decode fails on it.
_UNDEFINED: Final = "\ufffe"


class _Codec:
    """Precomputed lookup tables for one (locking, single) table pair."""

    __slots__ = (
        "ascii_table",
        "base",
        "decode_table",
        "ext",
        "fast_fix",
        "fast_map",
        "pair_first",
        "pair_second",
        "pairs",
    )

    def __init__(self, locking: int, single: int) -> None:
        base = LOCKING_SHIFT_TABLES[locking]
        ext = SINGLE_SHIFT_TABLES[single]
        self.base = base
        self.ext = ext
        # A character in both tables always takes the cheaper single septet of the locking table.
        escaped = {ch: code for code, ch in ext.items() if ch not in base}
        placeholders = {ch: _PAIR_BASE + i for i, ch in enumerate(escaped)}
        first = bytearray([_FILLER] * 256)
        second = bytearray(range(256))
        for i, code in enumerate(escaped.values()):
            first[_PAIR_BASE + i] = ESC
            second[_PAIR_BASE + i] = code
        self.pair_first = bytes(first)
        self.pair_second = bytes(second)
        self.pairs = {
            _PAIR_BASE + i: (bytes((_PAIR_BASE + i,)), bytes((ESC, code)))
            for i, code in enumerate(escaped.values())
        }
        # charmap_build only yields the fast C EncodingMap when slot 0 is U+0000, but septet 0
        # is '@'. So '@' is parked at 0x80 and NUL at 0; ``fast_fix`` moves 0x80 back to 0 and
        # marks NUL and the ESC character (which sits in the ESC slot) invalid.
        slots = ["\x00", *base[1:], "@", *escaped]
        slots += [_UNDEFINED] * (256 - len(slots))
        self.fast_map = codecs.charmap_build("".join(slots))
        fix = bytearray(range(256))
        fix[0x00] = _INVALID
        fix[ESC] = _INVALID
        fix[0x80] = 0x00
        self.fast_fix = bytes(fix)
        # The same marking for ASCII input, done octet by octet with bytes.translate.
        ascii_table = bytearray([_INVALID] * 256)
        for ch, mark in placeholders.items():
            if ch.isascii():
                ascii_table[ord(ch)] = mark
        for code, ch in enumerate(base):
            if ch.isascii() and code != ESC:
                ascii_table[ord(ch)] = code
        self.ascii_table = bytes(ascii_table)
        # Septets with the high bit set are read as their low 7 bits (tolerant decoding);
        # ESC is undefined so that any ESC sends decoding to the slow path.
        table = [_UNDEFINED if (i & 0x7F) == ESC else base[i & 0x7F] for i in range(256)]
        self.decode_table = "".join(table)

    def mark(self, text: str) -> bytes | None:
        """One octet per character (see ``_PAIR_BASE``), or None for a character in no table."""
        if text.isascii():
            return text.encode("ascii").translate(self.ascii_table)
        try:
            marked = codecs.charmap_encode(text, "strict", self.fast_map)[0]
        except UnicodeEncodeError:
            return None
        return marked.translate(self.fast_fix)

    def expand(self, marked: bytes) -> bytes:
        """Replace the ESC placeholders of a valid marked form by their ESC pairs."""
        present = set(marked.translate(None, _SEPTET_OCTETS))
        if len(present) <= _FEW_PLACEHOLDERS:
            # Typical text has one or two kinds (often just €): a C-level replace each.
            pairs = self.pairs
            for mark in present:
                placeholder, pair = pairs[mark]
                marked = marked.replace(placeholder, pair)
            return marked
        # Many kinds: cost independent of their number. Each marked octet becomes two slots
        # (ESC or a filler, then the code) and the fillers are deleted.
        doubled = bytearray(2 * len(marked))
        doubled[0::2] = marked.translate(self.pair_first)
        doubled[1::2] = marked.translate(self.pair_second)
        return bytes(doubled).translate(None, _FILLER_OCTET)


_CODECS: dict[tuple[int, int], _Codec] = {}


def _codec(locking: int, single: int) -> _Codec:
    codec = _CODECS.get((locking, single))
    if codec is None:
        if locking not in LOCKING_SHIFT_TABLES:
            raise EncodingError(f"no GSM 7-bit locking shift table for language {locking}")
        if single not in SINGLE_SHIFT_TABLES:
            raise EncodingError(f"no GSM 7-bit single shift table for language {single}")
        codec = _CODECS[(locking, single)] = _Codec(locking, single)
    return codec


_DEFAULT_CODEC: Final = _codec(0, 0)


def _decode_codec(locking: int, single: int) -> _Codec:
    # TS 23.038: a receiver that does not know a national language uses the default table.
    if locking not in LOCKING_SHIFT_TABLES:
        locking = 0
    if single not in SINGLE_SHIFT_TABLES:
        single = 0
    return _codec(locking, single)


def encode_gsm7(text: str, *, locking: int = 0, single: int = 0) -> bytes:
    """``text`` as unpacked septets; extension characters become ESC pairs.

    Raises EncodingError naming the first character that neither the locking table nor the
    single shift table can represent, and its index in ``text``.
    """
    codec = _DEFAULT_CODEC if locking == 0 and single == 0 else _codec(locking, single)
    # Inlined ``codec.mark`` for the common ASCII case: this is the hot path of every send.
    if text.isascii():
        marked: bytes | None = text.encode("ascii").translate(codec.ascii_table)
    else:
        marked = codec.mark(text)
    if marked is not None:
        if marked.isascii():
            return marked
        if _INVALID not in marked:
            return codec.expand(marked)
    raise _unrepresentable(text, codec, locking, single)


def _unrepresentable(text: str, codec: _Codec, locking: int, single: int) -> EncodingError:
    valid = set(codec.ext.values()).union(codec.base)
    valid.discard(chr(ESC))
    index, ch = next((i, c) for i, c in enumerate(text) if c not in valid)
    tables = ""
    if locking or single:
        tables = f" with locking shift {locking} and single shift {single}"
    return EncodingError(
        f"character {ch!r} (U+{ord(ch):04X}) at index {index} "
        f"is not representable in GSM 7-bit{tables}"
    )


def gsm7_septets(text: str, *, locking: int = 0, single: int = 0) -> int | None:
    """How many septets ``text`` takes (ESC pairs count 2), or None if it is not representable.

    Unknown language ids count as "not representable" rather than raising.
    """
    if locking not in LOCKING_SHIFT_TABLES or single not in SINGLE_SHIFT_TABLES:
        return None
    codec = _DEFAULT_CODEC if locking == 0 and single == 0 else _codec(locking, single)
    marked = codec.mark(text)
    if marked is None:
        return None
    if marked.isascii():
        return len(marked)
    if _INVALID in marked:
        return None
    return len(marked) + len(marked.translate(None, _SEPTET_OCTETS))


def is_gsm7(text: str, *, locking: int = 0, single: int = 0) -> bool:
    """Whether ``text`` is representable with the given tables."""
    return gsm7_septets(text, locking=locking, single=single) is not None


def decode_gsm7(septets: bytes, *, locking: int = 0, single: int = 0) -> str:
    """Unpacked septets to text; never raises.

    Tolerance rules: a septet's high bit is ignored; ESC followed by a code missing from the
    single shift table decodes as that code's character in the locking table (TS 23.038);
    ESC ESC decodes as a space (TS 23.038 reserves it for a future extension table and asks
    receivers to show a space); a lone ESC as the very last septet decodes to nothing, because
    it carries no character of its own and is almost always a truncated pair. Unknown language
    ids fall back to the default tables.
    """
    codec = _decode_codec(locking, single)
    try:
        return codecs.charmap_decode(septets, "strict", codec.decode_table)[0]
    except UnicodeDecodeError:
        pass
    base = codec.base
    ext = codec.ext
    out: list[str] = []
    append = out.append
    i = 0
    n = len(septets)
    while i < n:
        code = septets[i] & 0x7F
        i += 1
        if code != ESC:
            append(base[code])
            continue
        if i >= n:
            break
        nxt = septets[i] & 0x7F
        i += 1
        ch = ext.get(nxt)
        if ch is None:
            ch = " " if nxt == ESC else base[nxt]
        append(ch)
    return "".join(out)


def udh_fill_bits(udh_octets: int) -> int:
    """Fill bits after a UDH of ``udh_octets`` octets so packed text starts on a septet."""
    return -(udh_octets * 8) % 7


def pack_septets(septets: bytes, *, pad_bits: int = 0) -> bytes:
    """Pack septets LSB-first into octets, after ``pad_bits`` zero fill bits.

    When the last octet would end with exactly 7 spare bits, they are filled with CR as
    TS 23.038 6.1.2.3.1 asks, so a receiver does not read seven zero bits as a trailing '@'.
    """
    if not 0 <= pad_bits <= 6:
        raise EncodingError(f"pad_bits must be within 0..6, got {pad_bits}")
    if not septets.isascii():
        bad = next(i for i, s in enumerate(septets) if s > 0x7F)
        raise EncodingError(f"septet at index {bad} is 0x{septets[bad]:02X}, above 0x7F")
    count = len(septets)
    if count == 0:
        return b""
    if (pad_bits + 7 * count) % 8 == 1:
        septets += bytes((CR,))
        count += 1
    packed = bytearray()
    for start in range(0, count, 8):
        value = 0
        shift = 0
        for septet in septets[start : start + 8]:
            value |= septet << shift
            shift += 7
        packed += value.to_bytes(7, "little")
    total = int.from_bytes(packed, "little") << pad_bits
    return total.to_bytes((pad_bits + 7 * count + 7) // 8, "little")


def unpack_septets(data: bytes, count: int | None = None, *, pad_bits: int = 0) -> bytes:
    """Unpack LSB-first packed septets (after ``pad_bits`` fill bits) to one septet per octet.

    ``count`` is authoritative when given (e.g. from TP-UDL). Without it, every whole septet is
    returned, except that a CR filling exactly the final 7 spare bits is dropped as padding
    (the TS 23.038 convention ``pack_septets`` follows); a text that really ends in CR at that
    position is ambiguous without ``count``, as the standard accepts.
    """
    if not 0 <= pad_bits <= 6:
        raise EncodingError(f"pad_bits must be within 0..6, got {pad_bits}")
    available_bits = max(0, len(data) * 8 - pad_bits)
    available = available_bits // 7
    if count is None:
        count = available
        strip_cr = count > 0 and available_bits % 7 == 0
    else:
        if not 0 <= count <= available:
            raise EncodingError(
                f"cannot unpack {count} septets from {len(data)} octets "
                f"with {pad_bits} fill bits (at most {available})"
            )
        strip_cr = False
    if count == 0:
        return b""
    stream = (int.from_bytes(data, "little") >> pad_bits).to_bytes(len(data), "little")
    out = bytearray()
    for start in range(0, len(stream), 7):
        value = int.from_bytes(stream[start : start + 7], "little")
        out.extend([(value >> shift) & 0x7F for shift in range(0, 56, 7)])
    del out[count:]
    if strip_cr and out[-1] == CR:
        del out[-1]
    return bytes(out)
