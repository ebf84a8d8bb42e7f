"""Properties of the text layer: round trips, minimal part counts, tolerant decoding."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smpp_bridge.codec.gsm7 import (
    ESC,
    LOCKING_SHIFT_TABLES,
    SINGLE_SHIFT_TABLES,
    decode_gsm7,
    encode_gsm7,
    gsm7_septets,
    pack_septets,
    unpack_septets,
)
from smpp_bridge.codec.segment import (
    Concat,
    decode_short_message,
    join_texts,
    split_text,
)
from smpp_bridge.codec.text import (
    REFERENCE_PROFILE,
    SPEC_PROFILE,
    EncodingProfile,
    choose_encoding,
    decode_text,
    encode_text,
)
from smpp_bridge.errors import EncodingError

SHIFT_PROFILE = EncodingProfile(
    name="shift",
    encodings={"gsm7": 0, "latin1": 3, "ucs2": 8},
    decodings={0: "gsm7", 3: "latin1", 8: "ucs2"},
    shift_languages=(1, 2, 3),
)
PACKED_PROFILE = EncodingProfile(
    name="packed",
    encodings={"gsm7": 0, "ucs2": 8},
    decodings={0: "gsm7", 8: "ucs2"},
    gsm7_packed=True,
    shift_languages=(1, 3),
)
PROFILES = (SPEC_PROFILE, REFERENCE_PROFILE, SHIFT_PROFILE, PACKED_PROFILE)
TABLE_PAIRS = [(lock, single) for lock in LOCKING_SHIFT_TABLES for single in SINGLE_SHIFT_TABLES]

# Capacities written out from sheet 8, independently of segment.part_capacities:
# (whole message, per part) by unit kind, concat mode and number of shift IEs.
CAPACITY = {
    ("septet", "udh8", 0): (160, 153),
    ("septet", "udh16", 0): (160, 152),
    ("septet", "udh8", 1): (155, 149),
    ("septet", "udh16", 1): (155, 148),
    ("septet", "udh8", 2): (152, 146),
    ("septet", "udh16", 2): (152, 145),
    ("septet", "sar", 0): (160, 152),
    ("octet", "udh8", 0): (140, 134),
    ("octet", "udh16", 0): (140, 133),
    ("octet", "sar", 0): (140, 133),
    ("utf16", "udh8", 0): (70, 67),
    ("utf16", "udh16", 0): (70, 66),
    ("utf16", "sar", 0): (70, 66),
}
KIND = {"gsm7": "septet", "ucs2": "utf16", "ascii": "octet", "latin1": "octet", "latin9": "octet"}

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def gsm7_chars(locking: int, single: int) -> list[str]:
    chars = set(LOCKING_SHIFT_TABLES[locking]) | set(SINGLE_SHIFT_TABLES[single].values())
    chars.discard(chr(ESC))
    return sorted(chars)


def atom_sizes(text: str, encoding: str, locking: int = 0, single: int = 0) -> list[int]:
    """Units per character, counted without the codec."""
    if encoding == "gsm7":
        base = LOCKING_SHIFT_TABLES[locking]
        return [1 if ch in base else 2 for ch in text]
    if encoding == "ucs2":
        return [2 if ord(ch) > 0xFFFF else 1 for ch in text]
    return [1] * len(text)


def brute_force_parts(sizes: list[int], whole: int, per_part: int) -> int:
    """Fewest parts by dynamic programming over cut positions (no greedy assumption).

    best[end] = 1 + min(best[start]) over the starts whose slice fits one part. best never
    decreases with ``end`` (a prefix of a text never needs more parts than the text), so that
    minimum is at the smallest fitting start, tracked with a moving pointer.
    """
    if sum(sizes) <= whole:
        return 1
    prefix = [0]
    for size in sizes:
        prefix.append(prefix[-1] + size)
    best = [0] * (len(sizes) + 1)
    start = 0
    for end in range(1, len(sizes) + 1):
        while prefix[end] - prefix[start] > per_part:
            start += 1
        best[end] = best[start] + 1
    return best[-1]


# --- GSM 7-bit --------------------------------------------------------------------------------


@st.composite
def gsm7_case(draw: st.DrawFn) -> tuple[str, int, int]:
    locking, single = draw(st.sampled_from(TABLE_PAIRS))
    text = draw(st.text(alphabet=st.sampled_from(gsm7_chars(locking, single)), max_size=200))
    return text, locking, single


@FAST
@given(gsm7_case())
def test_gsm7_round_trip_and_count(case: tuple[str, int, int]) -> None:
    text, locking, single = case
    septets = encode_gsm7(text, locking=locking, single=single)
    assert decode_gsm7(septets, locking=locking, single=single) == text
    assert gsm7_septets(text, locking=locking, single=single) == len(septets)
    assert len(septets) == sum(atom_sizes(text, "gsm7", locking, single))
    assert septets.isascii()


@FAST
@given(st.text(max_size=60), st.sampled_from(TABLE_PAIRS))
def test_gsm7_encode_is_exact_or_refuses(text: str, tables: tuple[int, int]) -> None:
    locking, single = tables
    allowed = set(gsm7_chars(locking, single))
    try:
        septets = encode_gsm7(text, locking=locking, single=single)
    except EncodingError as exc:
        bad = next(i for i, ch in enumerate(text) if ch not in allowed)
        assert f"index {bad} " in str(exc)
        assert gsm7_septets(text, locking=locking, single=single) is None
    else:
        assert all(ch in allowed for ch in text)
        assert decode_gsm7(septets, locking=locking, single=single) == text


@FAST
@given(st.binary(max_size=200), st.integers(0, 15), st.integers(0, 15))
def test_gsm7_decode_never_raises(data: bytes, locking: int, single: int) -> None:
    assert isinstance(decode_gsm7(data, locking=locking, single=single), str)


@FAST
@given(st.lists(st.integers(0, 0x7F), max_size=300).map(bytes), st.integers(0, 6))
def test_pack_unpack_inverse(septets: bytes, pad: int) -> None:
    packed = pack_septets(septets, pad_bits=pad)
    # No septets means no text and so no fill bits either.
    assert len(packed) == ((pad + 7 * len(septets) + 7) // 8 if septets else 0)
    assert unpack_septets(packed, len(septets), pad_bits=pad) == septets
    ambiguous = (pad + 7 * len(septets)) % 8 == 0 and septets.endswith(b"\r")
    if not ambiguous:
        assert unpack_septets(packed, pad_bits=pad) == septets


# --- encodings --------------------------------------------------------------------------------

unicode_text = st.text(
    alphabet=st.one_of(
        st.characters(exclude_categories=["Cs"]),
        st.sampled_from(["😀", "👍", "\U0001f3fd", "𝄞", "a", "я", "€"]),
    ),
    max_size=200,
)


@FAST
@given(unicode_text)
def test_ucs2_round_trip_including_astral_characters(text: str) -> None:
    data = encode_text(text, "ucs2")
    assert len(data) == 2 * sum(atom_sizes(text, "ucs2"))
    assert decode_text(data, 8) == text


@FAST
@given(st.text(alphabet=st.characters(max_codepoint=0xFF), max_size=200))
def test_latin_round_trips(text: str) -> None:
    assert decode_text(encode_text(text, "latin1"), 3) == text
    try:
        data = encode_text(text, "latin9", REFERENCE_PROFILE)
    except EncodingError:
        return
    assert decode_text(data, 3, REFERENCE_PROFILE) == text


@FAST
@given(st.binary(max_size=300), st.integers(0, 255), st.sampled_from(PROFILES))
def test_decode_text_never_raises(data: bytes, data_coding: int, profile: EncodingProfile) -> None:
    assert isinstance(decode_text(data, data_coding, profile), str)


@FAST
@given(
    st.binary(max_size=300),
    st.integers(0, 255),
    st.integers(0, 255),
    st.sampled_from(PROFILES),
)
def test_decode_short_message_only_refuses_a_malformed_udh(
    data: bytes, data_coding: int, esm_class: int, profile: EncodingProfile
) -> None:
    try:
        decoded = decode_short_message(data, data_coding, esm_class, profile)
    except EncodingError:
        assert esm_class & 0x40
    else:
        assert isinstance(decoded.text, str)


# --- segmentation -----------------------------------------------------------------------------

FAMILIES = (
    "aaaab ",
    "aaaab{€^",
    "aaaşğİı",
    "aaaáíóç",
    "aaaãõç^Φ",
    "aaaéŠœ€",
    "aaa😀я",
    "a{€éΩşğİãáŠ😀я",
)
BOUNDARIES: tuple[int, ...] = (
    66,
    67,
    68,
    70,
    71,
    133,
    134,
    135,
    140,
    141,
    145,
    146,
    149,
    150,
    152,
    153,
    154,
)
BOUNDARIES += (155, 156, 160, 161, 268, 305, 306, 307, 320, 459, 460)


@st.composite
def long_texts(draw: st.DrawFn) -> str:
    """Texts of one character family, often sized right at a part boundary."""
    alphabet = draw(st.sampled_from(FAMILIES))
    size = draw(st.one_of(st.sampled_from(BOUNDARIES), st.integers(0, 700)))
    chars = st.sampled_from(alphabet)
    return draw(st.text(alphabet=chars, min_size=size, max_size=size))


def air_octets(segment_udh: bytes, units: int, encoding: str) -> int:
    """TP-UD size on the air interface of one part (GSM 7-bit packed after the UDH)."""
    udh = len(segment_udh)
    if encoding == "gsm7":
        udh_septets = -(-udh * 8 // 7)
        return -(-(udh_septets + units) * 7 // 8)
    return udh + units * (2 if encoding == "ucs2" else 1)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    long_texts(),
    st.sampled_from(PROFILES),
    st.sampled_from(["udh8", "udh16", "sar", "payload"]),
    st.integers(0, 0xFFFF),
)
def test_split_then_reassemble_is_identity(
    text: str, profile: EncodingProfile, concat: Concat, reference: int
) -> None:
    message = split_text(text, profile=profile, concat=concat, reference=reference)
    parts = [
        decode_short_message(
            s.short_message, message.data_coding, s.esm_class, profile, tlvs=s.tlvs
        )
        for s in message.segments
    ]
    assert join_texts(reversed(parts)) == text
    # Each part also decodes on its own: no pair is ever split.
    assert "".join(p.text for p in parts) == text
    assert sum(s.units for s in message.segments) == message.units
    for segment in message.segments:
        assert len(segment.short_message) <= 254
        if concat != "payload" or len(message.segments) > 1:
            assert segment.esm_class == (0x40 if segment.udh else 0)
        if segment.short_message:
            # SAR parts leave room for the 7-octet UDH the SMSC adds.
            extra = 7 if concat == "sar" and len(message.segments) > 1 else 0
            udh = segment.udh + bytes(extra)
            assert air_octets(udh, segment.units, message.encoding) <= 140


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(long_texts(), st.sampled_from(["udh8", "udh16", "sar"]))
def test_part_count_is_minimal(text: str, concat: Concat) -> None:
    profile = SHIFT_PROFILE
    message = split_text(text, profile=profile, concat=concat)
    lock, single = message.locking_shift, message.single_shift
    ies = (lock > 0) + (single > 0)
    kind = KIND[message.encoding]
    sizes = atom_sizes(text, message.encoding, lock, single)
    whole, per_part = CAPACITY[(kind, concat, ies if len(message.segments) > 1 else 0)]
    if len(message.segments) == 1 and ies:
        whole = {1: 155, 2: 152}[ies]
    assert len(message.segments) == brute_force_parts(sizes, whole, per_part)
    # And no other exact encoding or table pair the profile offers needs fewer parts.
    candidates = [("gsm7", lk, sg) for lk in (0, 1, 3) for sg in (0, 1, 2, 3)]
    candidates += [("latin1", 0, 0), ("ucs2", 0, 0)]
    for encoding, lk, sg in candidates:
        if encoding == "gsm7" and gsm7_septets(text, locking=lk, single=sg) is None:
            continue
        if encoding == "latin1" and any(ord(ch) > 0xFF for ch in text):
            continue
        n_ies = (lk > 0) + (sg > 0)
        if concat == "sar" and n_ies:
            continue
        sizes = atom_sizes(text, encoding, lk, sg)
        one = CAPACITY[(KIND[encoding], concat, 0)][0] - {0: 0, 1: 5, 2: 8}[n_ies]
        multi = CAPACITY.get((KIND[encoding], concat, n_ies))
        if multi is None:
            continue
        assert len(message.segments) <= brute_force_parts(sizes, one, multi[1])
    assert choose_encoding(text, profile, concat=concat).parts == len(message.segments)
