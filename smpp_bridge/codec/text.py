"""SMS text encodings and per-SMSC encoding profiles: text ⇄ octets for a data_coding value.

Which charset a ``data_coding`` value means differs between SMSCs (the SMPP spec says 3 is
Latin-1, the reference SMSC uses Latin-9), so every encode/decode goes through an
``EncodingProfile``. Decoding is tolerant and never raises; encoding is exact or raises
``EncodingError``. Part capacities and counting live here too, because the automatic choice
of an encoding is "fewest parts"; ``segment`` builds the actual segments.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final, Literal

import msgspec

from ..errors import EncodingError
from .gsm7 import (
    ESC,
    LOCKING_SHIFT_TABLES,
    SINGLE_SHIFT_TABLES,
    decode_gsm7,
    encode_gsm7,
    gsm7_septets,
    pack_septets,
    unpack_septets,
)

ENCODINGS: Final = ("gsm7", "ascii", "latin1", "latin9", "ucs2", "binary")
"""Every encoding name the codec knows."""

UnitKind = Literal["septet", "octet", "utf16"]

# Python codecs for the 8-bit encodings; "binary" carries octets 0..255 as code points 0..255.
_OCTET_CODECS: Final = {
    "ascii": "ascii",
    "latin1": "latin-1",
    "latin9": "iso8859-15",
    "binary": "latin-1",
}

# SMPP v3.4 meanings of 0x00..0x0F (sheet 6.3) used when a profile does not map a value.
# The SMPP charsets we do not decode (JIS, Cyrillic, Hebrew, pictogram, ISO-2022-JP, Kanji,
# KS C 5601) and the reserved values are shown as binary so the octets survive unchanged.
_SMPP_DATA_CODINGS: Final = {
    0x00: "gsm7",
    0x01: "ascii",
    0x02: "binary",
    0x03: "latin1",
    0x04: "binary",
    0x08: "ucs2",
}


class EncodingProfile(msgspec.Struct, frozen=True):
    """How one SMSC maps encodings to data_coding values.

    ``encodings``: encoding name → data_coding used when sending it; an encoding absent here is
    not accepted by the SMSC. ``decodings``: data_coding → encoding name for received text
    (values missing here fall back to the SMPP and GSM TP-DCS meanings). ``gsm7_packed``: the
    SMSC wants GSM 7-bit packed in ``short_message`` (most want it unpacked).
    ``shift_languages``: national language ids (TS 23.038) the SMSC passes through.
    """

    name: str
    encodings: dict[str, int]
    decodings: dict[int, str]
    gsm7_packed: bool = False
    shift_languages: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        for encoding, data_coding in self.encodings.items():
            if encoding not in ENCODINGS:
                raise EncodingError(
                    f"profile {self.name!r}: unknown encoding {encoding!r} in encodings"
                )
            if not 0 <= data_coding <= 0xFF:
                raise EncodingError(
                    f"profile {self.name!r}: data_coding {data_coding} for {encoding!r} "
                    "is outside 0..255"
                )
        for data_coding, encoding in self.decodings.items():
            if not 0 <= data_coding <= 0xFF:
                raise EncodingError(
                    f"profile {self.name!r}: decodings key {data_coding} is outside 0..255"
                )
            if encoding not in ENCODINGS:
                raise EncodingError(
                    f"profile {self.name!r}: unknown encoding {encoding!r} "
                    f"for data_coding {data_coding} in decodings"
                )
        for language in self.shift_languages:
            if language not in SINGLE_SHIFT_TABLES and language not in LOCKING_SHIFT_TABLES:
                raise EncodingError(
                    f"profile {self.name!r}: no shift table for national language {language}"
                )

    def data_coding_for(self, encoding: str) -> int:
        """The data_coding to send ``encoding`` with; EncodingError if the SMSC lacks it."""
        data_coding = self.encodings.get(encoding)
        if data_coding is None:
            accepted = ", ".join(self.encodings) or "none"
            raise EncodingError(
                f"encoding {encoding!r} is not accepted by profile {self.name!r} "
                f"(accepted: {accepted})"
            )
        return data_coding


SPEC_PROFILE: Final = EncodingProfile(
    name="spec",
    encodings={"gsm7": 0x00, "ascii": 0x01, "latin1": 0x03, "ucs2": 0x08},
    decodings={
        0x00: "gsm7",
        0x01: "ascii",
        0x02: "binary",
        0x03: "latin1",
        0x04: "binary",
        0x08: "ucs2",
    },
)
"""SMPP v3.4 as written (sheet 6.3)."""

REFERENCE_PROFILE: Final = EncodingProfile(
    name="reference",
    encodings={"gsm7": 0x00, "latin9": 0x03, "ucs2": 0x08},
    decodings={0x00: "gsm7", 0x03: "latin9", 0x08: "ucs2"},
)
"""The reference SMSC of MISSION.md: 3 means ISO-8859-15, not Latin-1."""

DEFAULT_PROFILE: Final = SPEC_PROFILE

_PROFILES: Final = {
    "spec": SPEC_PROFILE,
    "default": DEFAULT_PROFILE,
    "reference": REFERENCE_PROFILE,
}


def profile_named(name: str) -> EncodingProfile:
    """A predefined profile: "spec", "default" or "reference" (case-insensitive)."""
    profile = _PROFILES.get(name.lower())
    if profile is None:
        raise EncodingError(f"unknown encoding profile {name!r} (known: {', '.join(_PROFILES)})")
    return profile


def unit_kind(encoding: str) -> UnitKind:
    """What a length is counted in for ``encoding``: septets, octets or UTF-16 code units."""
    if encoding == "gsm7":
        return "septet"
    if encoding == "ucs2":
        return "utf16"
    if encoding in _OCTET_CODECS:
        return "octet"
    raise EncodingError(f"unknown encoding {encoding!r} (known: {', '.join(ENCODINGS)})")


def encode_units(text: str, encoding: str, *, locking: int = 0, single: int = 0) -> bytes:
    """``text`` in ``encoding`` with no profile rules: unpacked septets, octets or UTF-16BE.

    This is the unit stream segmentation cuts; ``encode_text`` adds the profile's rules.
    """
    if encoding == "gsm7":
        return encode_gsm7(text, locking=locking, single=single)
    if locking or single:
        raise EncodingError(f"national language shift tables apply to gsm7, not {encoding!r}")
    if encoding == "ucs2":
        # Characters outside the BMP become surrogate pairs (UTF-16); a lone surrogate in the
        # str cannot be sent as valid UTF-16 and is refused.
        python_codec = "utf-16-be"
    else:
        found = _OCTET_CODECS.get(encoding)
        if found is None:
            raise EncodingError(f"unknown encoding {encoding!r} (known: {', '.join(ENCODINGS)})")
        python_codec = found
    try:
        return text.encode(python_codec)
    except UnicodeEncodeError as exc:
        ch = text[exc.start]
        raise EncodingError(
            f"character {ch!r} (U+{ord(ch):04X}) at index {exc.start} "
            f"is not representable in {encoding}"
        ) from None


def unit_count(text: str, encoding: str, *, locking: int = 0, single: int = 0) -> int | None:
    """Length of ``text`` in ``encoding``'s units, or None if it is not representable."""
    if encoding == "gsm7":
        return gsm7_septets(text, locking=locking, single=single)
    try:
        encoded = encode_units(text, encoding, locking=locking, single=single)
    except EncodingError:
        return None
    return len(encoded) // 2 if encoding == "ucs2" else len(encoded)


def _check_shifts(profile: EncodingProfile, locking: int, single: int) -> None:
    for kind, language in (("locking", locking), ("single", single)):
        if language and language not in profile.shift_languages:
            raise EncodingError(
                f"{kind} shift language {language} is not enabled in profile {profile.name!r}"
            )


def encode_text(
    text: str,
    encoding: str,
    profile: EncodingProfile = DEFAULT_PROFILE,
    *,
    locking: int = 0,
    single: int = 0,
) -> bytes:
    """``text`` as the octets an SMSC with ``profile`` expects for a whole (unsplit) message.

    GSM 7-bit is unpacked unless the profile says packed. Raises EncodingError when the profile
    does not accept ``encoding`` or a shift language, or a character is not representable.
    The UDH a shift table needs is segmentation's job (see ``segment.split_text``).
    """
    profile.data_coding_for(encoding)
    _check_shifts(profile, locking, single)
    encoded = encode_units(text, encoding, locking=locking, single=single)
    if encoding == "gsm7" and profile.gsm7_packed:
        return pack_septets(encoded)
    return encoded


def encoding_for_data_coding(data_coding: int, profile: EncodingProfile = DEFAULT_PROFILE) -> str:
    """The encoding name received text with ``data_coding`` is decoded with.

    Order: the profile's ``decodings``; the SMPP meaning of 0x00–0x0F; then the GSM TP-DCS
    groups SMSCs pass through (23.038 §4): general and auto-deletion groups 0x10–0x7F use bits
    3–2 as the alphabet (compressed text, bit 5, cannot be decompressed and stays binary),
    0xC0–0xDF MWI groups are GSM 7-bit, 0xE0–0xEF the MWI UCS2 group, 0xF0–0xFF bit 2 selects
    GSM 7-bit or 8-bit. Anything else is binary (octets shown as Latin-1).
    """
    found = profile.decodings.get(data_coding)
    if found is not None:
        return found
    if 0x00 <= data_coding <= 0x0F:
        return _SMPP_DATA_CODINGS.get(data_coding, "binary")
    if 0x10 <= data_coding <= 0x7F:
        if data_coding & 0x20:
            return "binary"
        return ("gsm7", "binary", "ucs2", "binary")[(data_coding >> 2) & 0x03]
    if 0xC0 <= data_coding <= 0xDF:
        return "gsm7"
    if 0xE0 <= data_coding <= 0xEF:
        return "ucs2"
    if 0xF0 <= data_coding <= 0xFF:
        return "binary" if data_coding & 0x04 else "gsm7"
    return "binary"


def decode_units(data: bytes, encoding: str, *, locking: int = 0, single: int = 0) -> str:
    """Decode a unit stream (unpacked septets, octets or UTF-16BE) tolerantly; never raises.

    Invalid UTF-16 (lone surrogates, an odd trailing octet) becomes U+FFFD; octets above 0x7F
    in "ascii" become U+FFFD; an unknown encoding name decodes as Latin-1.
    """
    if encoding == "gsm7":
        return decode_gsm7(data, locking=locking, single=single)
    if encoding == "ucs2":
        return data.decode("utf-16-be", errors="replace")
    return data.decode(_OCTET_CODECS.get(encoding, "latin-1"), errors="replace")


def decode_text(
    data: bytes,
    data_coding: int,
    profile: EncodingProfile = DEFAULT_PROFILE,
    *,
    locking: int = 0,
    single: int = 0,
) -> str:
    """Received user data (no UDH) as text; never raises, whatever the octets and data_coding.

    Packed GSM 7-bit (``profile.gsm7_packed``) is unpacked first, taking every whole septet
    (a trailing CR pad is dropped, see ``gsm7.unpack_septets``).
    """
    encoding = encoding_for_data_coding(data_coding, profile)
    if encoding == "gsm7" and profile.gsm7_packed:
        data = unpack_septets(data)
    return decode_units(data, encoding, locking=locking, single=single)


# ---------------------------------------------------------------------------------------------
# Capacities and part counting (TS 23.040: 140 octets of TP-UD per part, minus the UDH; for
# GSM 7-bit the UDH is padded to a septet boundary). They live here rather than in segment.py
# because choosing an encoding means counting parts.

Concat = Literal["udh8", "udh16", "sar", "payload"]
CONCAT_MODES: Final = ("udh8", "udh16", "sar", "payload")

TP_UD_OCTETS: Final = 140
_CONCAT_UDH_OCTETS: Final = {"udh8": 6, "udh16": 7}
_SHIFT_IE_OCTETS: Final = 3
# SAR segments reach the SMSC without a UDH, but the SMSC has to add a concatenation UDH for
# the air interface. sar_msg_ref_num is 16 bits, so it may well use the 16-bit reference IE
# (7-octet UDH): reserving that much keeps every SAR segment deliverable whichever IE the SMSC
# picks, at the price of one character per part against an 8-bit reference.
_SAR_RESERVED_UDH_OCTETS: Final = 7


def capacity(encoding: str, udh_octets: int) -> int:
    """Units of ``encoding`` that fit in one part next to a UDH of ``udh_octets`` octets."""
    kind = unit_kind(encoding)
    if kind == "septet":
        # The UDH plus its fill bits occupies a whole number of septets.
        udh_septets = -(-udh_octets * 8 // 7)
        return TP_UD_OCTETS * 8 // 7 - udh_septets
    if kind == "utf16":
        return (TP_UD_OCTETS - udh_octets) // 2
    return TP_UD_OCTETS - udh_octets


def part_capacities(encoding: str, concat: Concat, shift_ies: int = 0) -> tuple[int, int | None]:
    """(units in a message sent whole, units per part of a multi-part message or None).

    A message sent whole carries a UDH only for shift IEs. Multi-part SAR cannot carry shift
    IEs (SMPP forbids SAR TLVs with UDHI), hence None. Payload mode counts the parts the SMSC
    will most likely cut, i.e. as udh8.
    """
    shift_octets = _SHIFT_IE_OCTETS * shift_ies
    whole = capacity(encoding, 1 + shift_octets if shift_ies else 0)
    if concat == "sar":
        if shift_ies:
            return whole, None
        return whole, capacity(encoding, _SAR_RESERVED_UDH_OCTETS)
    concat_octets = _CONCAT_UDH_OCTETS["udh16" if concat == "udh16" else "udh8"]
    return whole, capacity(encoding, concat_octets + shift_octets)


def cut_ranges(data: bytes, kind: UnitKind, per_part: int) -> list[tuple[int, int]]:
    """Octet ranges of ``data`` holding at most ``per_part`` units each, never inside a pair."""
    step = per_part * (2 if kind == "utf16" else 1)
    size = len(data)
    ranges: list[tuple[int, int]] = []
    start = 0
    while start < size:
        end = min(start + step, size)
        if end < size:
            # Every ESC our encoder emits starts a pair, so an ESC last means a split pair.
            if kind == "septet" and data[end - 1] == ESC:
                end -= 1
            elif kind == "utf16" and 0xD8 <= data[end - 2] <= 0xDB:
                end -= 2
        ranges.append((start, end))
        start = end
    return ranges


def count_parts(
    encoded: bytes, encoding: str, *, concat: Concat = "udh8", shift_ies: int = 0
) -> int | None:
    """Parts needed for an encoded unit stream (``encode_units``), None if impossible."""
    kind = unit_kind(encoding)
    units = len(encoded) // (2 if kind == "utf16" else 1)
    whole, per_part = part_capacities(encoding, concat, shift_ies)
    if units <= whole:
        return 1
    if per_part is None:
        return None
    # Cutting costs one step per part, so counting by cutting is cheap and pair-exact.
    return len(cut_ranges(encoded, kind, per_part))


class EncodingChoice(msgspec.Struct, frozen=True):
    """What ``choose_encoding`` picked: the encoding, its data_coding and the cost."""

    encoding: str
    data_coding: int
    parts: int
    units: int
    locking_shift: int = 0
    single_shift: int = 0


# Tie-break order after gsm7 (and gsm7 with shift tables): the 8-bit encodings, then ucs2.
_OCTET_PREFERENCE: Final = ("ascii", "latin9", "latin1")


def _shift_pairs(profile: EncodingProfile) -> list[tuple[int, int]]:
    """(locking, single) pairs to try, in preference order for equal part counts.

    Single shift alone first: the default alphabet stays in force, so a handset without the
    national tables still shows most of the text. Then locking alone, then both.
    """
    languages = sorted(set(profile.shift_languages) - {0})
    singles = [lang for lang in languages if lang in SINGLE_SHIFT_TABLES]
    lockings = [lang for lang in languages if lang in LOCKING_SHIFT_TABLES]
    pairs = [(0, s) for s in singles] + [(lock, 0) for lock in lockings]
    pairs += [(lock, s) for lock in lockings for s in singles]
    return pairs


def choose_encoding(
    text: str,
    profile: EncodingProfile = DEFAULT_PROFILE,
    *,
    concat: Concat = "udh8",
    encodings: Iterable[str] | None = None,
    locking: int | None = None,
    single: int | None = None,
) -> EncodingChoice:
    """The encoding that represents ``text`` exactly in the fewest parts (auto mode).

    Candidates are the profile's encodings (optionally narrowed by ``encodings``); ``binary``
    is never chosen. Ties prefer gsm7, then gsm7 with shift tables (only languages the profile
    lists; single shift, then locking, then both), then ascii, latin9, latin1, then ucs2.
    ``locking``/``single`` pin the gsm7 shift tables instead of searching them.
    Raises EncodingError if no accepted encoding represents the text.
    """
    return select_encoding(
        text, profile, concat=concat, encodings=encodings, locking=locking, single=single
    )[0]


def select_encoding(
    text: str,
    profile: EncodingProfile = DEFAULT_PROFILE,
    *,
    concat: Concat = "udh8",
    encodings: Iterable[str] | None = None,
    locking: int | None = None,
    single: int | None = None,
) -> tuple[EncodingChoice, bytes]:
    """``choose_encoding`` plus the chosen unit stream, so callers need not encode twice."""
    if encodings is None and locking is None and single is None:
        # Fast path for most traffic: plain GSM 7-bit in one part is the first preference and
        # cannot be beaten, so nothing else needs to be tried.
        data_coding = profile.encodings.get("gsm7")
        if data_coding is not None:
            septets = gsm7_septets(text)
            if septets is not None and septets <= 160:
                return EncodingChoice("gsm7", data_coding, 1, septets), encode_gsm7(text)
    if encodings is not None:
        allowed = set(encodings)
        unknown = allowed - set(ENCODINGS)
        if unknown:
            raise EncodingError(f"unknown encoding {sorted(unknown)[0]!r}")
    else:
        allowed = set(profile.encodings)
    gsm7_ok = "gsm7" in allowed and "gsm7" in profile.encodings
    if gsm7_ok and locking is None and single is None:
        # Fast path for most traffic: plain GSM 7-bit in one part is the first preference and
        # cannot be beaten, so nothing else needs to be tried.
        septets = gsm7_septets(text)
        if septets is not None and septets <= 160:
            encoded = encode_gsm7(text)
            return EncodingChoice("gsm7", profile.encodings["gsm7"], 1, septets), encoded
    candidates: list[tuple[str, int, int]] = []
    if gsm7_ok:
        if locking is None and single is None:
            candidates.append(("gsm7", 0, 0))
            candidates += [("gsm7", lock, s) for lock, s in _shift_pairs(profile)]
        else:
            pinned = (locking or 0, single or 0)
            _check_shifts(profile, *pinned)
            candidates.append(("gsm7", *pinned))
    elif locking or single:
        raise EncodingError("shift tables need gsm7, which is not among the candidates")
    candidates += [
        (name, 0, 0)
        for name in (*_OCTET_PREFERENCE, "ucs2")
        if name in allowed and name in profile.encodings
    ]
    if not candidates:
        raise EncodingError(f"no candidate encoding accepted by profile {profile.name!r}")
    best: tuple[EncodingChoice, bytes] | None = None
    unsplittable = False
    for encoding, lock, shift in candidates:
        if encoding == "gsm7":
            # Counting first is cheap and spares encoding a candidate that cannot win.
            septets = gsm7_septets(text, locking=lock, single=shift)
            if septets is None:
                continue
            if best is not None and _lower_bound(encoding, septets) >= best[0].parts:
                continue
            encoded = encode_gsm7(text, locking=lock, single=shift)
            units = septets
        else:
            try:
                encoded = encode_units(text, encoding)
            except EncodingError:
                continue
            units = len(encoded) // 2 if encoding == "ucs2" else len(encoded)
            # No part holds more than a bare SMS: skip candidates that cannot beat the best.
            if best is not None and _lower_bound(encoding, units) >= best[0].parts:
                continue
        parts = count_parts(encoded, encoding, concat=concat, shift_ies=(lock > 0) + (shift > 0))
        if parts is None:
            unsplittable = True
            continue
        if best is not None and parts >= best[0].parts:
            continue
        choice = EncodingChoice(encoding, profile.encodings[encoding], parts, units, lock, shift)
        best = (choice, encoded)
        if parts == 1:
            # Nothing later in preference order can do better than one part.
            break
    if best is not None:
        return best
    if unsplittable:
        raise EncodingError(
            "text needs a national language shift table, whose UDH cannot accompany "
            "SAR segments; use udh8, udh16 or payload concatenation"
        )
    # Re-encode with the first candidate only to name the offending character.
    encoding, lock, shift = candidates[0]
    try:
        encode_units(text, encoding, locking=lock, single=shift)
    except EncodingError as exc:
        raise EncodingError(
            f"text is not representable in any encoding accepted by profile {profile.name!r}: {exc}"
        ) from None
    raise EncodingError(f"text is not representable under profile {profile.name!r}")


def _lower_bound(encoding: str, units: int) -> int:
    """Fewest parts ``units`` could possibly need (no part holds more than a bare SMS)."""
    per_part = {"septet": 160, "octet": 140, "utf16": 70}[unit_kind(encoding)]
    return -(-units // per_part)
