"""Long-message segmentation (UDH concatenation, SAR TLVs, message_payload) and reassembly.

Per-part capacities and cut positions come from ``text`` (choosing an encoding needs them
too): parts are cut greedily at full capacity, moving a cut back by one unit when it would
split a GSM 7-bit ESC pair or a UTF-16 surrogate pair — greedy cutting of a sequence of 1- and
2-unit atoms gives the fewest parts. This module builds the UDHs, SAR TLVs and segments, and
takes received short messages apart again.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final

import msgspec

from ..errors import EncodingError
from .gsm7 import decode_gsm7, pack_septets, udh_fill_bits, unpack_septets
from .text import (
    CONCAT_MODES,
    DEFAULT_PROFILE,
    Concat,
    EncodingProfile,
    capacity,
    count_parts,
    cut_ranges,
    decode_units,
    encode_units,
    encoding_for_data_coding,
    part_capacities,
    select_encoding,
    unit_kind,
)
from .tlv import Tag, Tlv, find_tlv

__all__ = [
    "CONCAT_MODES",
    "Concat",
    "ConcatInfo",
    "DecodedText",
    "Segment",
    "SplitMessage",
    "TextSplitter",
    "Udh",
    "build_udh",
    "capacity",
    "count_parts",
    "decode_short_message",
    "join_texts",
    "missing_parts",
    "parse_udh",
    "part_capacities",
    "split_text",
    "with_reference",
]

IEI_CONCAT8: Final = 0x00
IEI_PORT8: Final = 0x04
IEI_PORT16: Final = 0x05
IEI_CONCAT16: Final = 0x08
IEI_SINGLE_SHIFT: Final = 0x24
IEI_LOCKING_SHIFT: Final = 0x25

ESM_UDHI: Final = 0x40
MAX_PARTS: Final = 255
# Units one part holds with no UDH at all, per unit kind.
_BARE_CAPACITY: Final = {
    "septet": capacity("gsm7", 0),
    "octet": capacity("ascii", 0),
    "utf16": capacity("ucs2", 0),
}


class Segment(msgspec.Struct, frozen=True):
    """One submit_sm worth of a message.

    ``short_message`` is UDH + encoded text (empty in payload mode, where the text is in the
    message_payload TLV); ``esm_class`` is 0x40 when a UDH is present; ``tlvs`` holds the SAR
    TLVs or message_payload; ``units`` counts the text's septets, octets or UTF-16 code units
    in this part; ``udh`` is the UDH alone (with its length octet), b"" if none.
    """

    short_message: bytes
    esm_class: int
    tlvs: tuple[Tlv, ...]
    units: int
    udh: bytes


class SplitMessage(msgspec.Struct, frozen=True):
    """A text encoded and cut into segments, with the data_coding to send them under."""

    encoding: str
    data_coding: int
    units: int
    segments: tuple[Segment, ...]
    locking_shift: int = 0
    single_shift: int = 0


def build_udh(ies: Iterable[tuple[int, bytes]]) -> bytes:
    """A UDH (length octet first) from (IEI, data) pairs; b"" for no IEs."""
    body = b"".join(bytes((iei, len(data))) + data for iei, data in ies)
    if len(body) > 0xFF:
        raise EncodingError(f"UDH of {len(body)} octets does not fit its one-octet length")
    return bytes((len(body),)) + body if body else b""


def _shift_ies(locking: int, single: int) -> list[tuple[int, bytes]]:
    ies: list[tuple[int, bytes]] = []
    if single:
        ies.append((IEI_SINGLE_SHIFT, bytes((single,))))
    if locking:
        ies.append((IEI_LOCKING_SHIFT, bytes((locking,))))
    return ies


def _user_data(udh: bytes, chunk: bytes, encoding: str, profile: EncodingProfile) -> bytes:
    if encoding == "gsm7" and profile.gsm7_packed:
        return udh + pack_septets(chunk, pad_bits=udh_fill_bits(len(udh)) if udh else 0)
    return udh + chunk


def split_text(
    text: str,
    *,
    profile: EncodingProfile = DEFAULT_PROFILE,
    encoding: str = "auto",
    concat: Concat = "udh8",
    reference: int = 0,
    max_parts: int = MAX_PARTS,
    locking: int | None = None,
    single: int | None = None,
) -> SplitMessage:
    """Encode ``text`` and cut it into submit_sm segments.

    ``encoding`` "auto" picks the encoding with the fewest parts (``text.choose_encoding``);
    "gsm7" also picks the profile's shift tables when they save parts, unless ``locking`` /
    ``single`` pin them. A text that fits one part is always one short_message without
    concatenation, in every mode (with a UDH only if it needs shift IEs).

    Multi-part modes: "udh8"/"udh16" put a concatenation UDH (8- or 16-bit reference) in each
    short_message; "sar" sends bare segments with the SAR TLVs, each small enough for the
    SMSC to add a 16-bit concatenation UDH; "payload" sends one message_payload TLV holding
    the whole text (with a UDH only for shift IEs) and leaves cutting to the SMSC.
    ``reference`` is masked to 8 bits for udh8 and 16 bits otherwise.

    Raises EncodingError when the text is not representable or needs more than ``max_parts``
    parts (in payload mode: parts the SMSC will cut, counted as for udh8).
    """
    if concat not in CONCAT_MODES:
        raise EncodingError(f"unknown concatenation mode {concat!r} (known: {CONCAT_MODES})")
    if not 1 <= max_parts <= MAX_PARTS:
        raise EncodingError(f"max_parts must be within 1..{MAX_PARTS}, got {max_parts}")
    if encoding in {"auto", "gsm7"}:
        choice, encoded = select_encoding(
            text,
            profile,
            concat=concat,
            encodings=None if encoding == "auto" else ("gsm7",),
            locking=locking,
            single=single,
        )
        encoding = choice.encoding
        lock, shift = choice.locking_shift, choice.single_shift
    else:
        if locking or single:
            raise EncodingError(f"shift tables apply to gsm7, not {encoding!r}")
        lock = shift = 0
        encoded = encode_units(text, encoding)
    data_coding = profile.data_coding_for(encoding)
    kind = unit_kind(encoding)
    unit_octets = 2 if kind == "utf16" else 1
    total_units = len(encoded) // unit_octets
    if not (lock or shift) and total_units <= _BARE_CAPACITY[kind]:
        # Most messages: one part, no UDH, built without the general machinery below.
        if encoding == "gsm7" and profile.gsm7_packed:
            encoded = pack_septets(encoded)
        segment = Segment(encoded, 0, (), total_units, b"")
        return SplitMessage(encoding, data_coding, total_units, (segment,), 0, 0)
    shift_ies = _shift_ies(lock, shift)
    whole, per_part = part_capacities(encoding, concat, len(shift_ies))

    def message(
        short_message: bytes, udh: bytes, units: int, tlvs: tuple[Tlv, ...] = ()
    ) -> SplitMessage:
        segment = Segment(short_message, ESM_UDHI if udh else 0, tlvs, units, udh)
        return SplitMessage(encoding, data_coding, total_units, (segment,), lock, shift)

    if total_units <= whole:
        udh = build_udh(shift_ies)
        return message(_user_data(udh, encoded, encoding, profile), udh, total_units)
    if per_part is None:
        raise EncodingError(
            "text needs a national language shift table, whose UDH cannot accompany SAR "
            "segments; use udh8, udh16 or payload concatenation"
        )
    ranges = cut_ranges(encoded, kind, per_part)
    if len(ranges) > max_parts:
        raise EncodingError(f"text needs {len(ranges)} parts, more than the limit of {max_parts}")
    if concat == "payload":
        # The part limit (at most 255 parts of 140 octets) keeps the payload far below the
        # 65535 octets a TLV can hold, so no separate size check is needed.
        udh = build_udh(shift_ies)
        payload = _user_data(udh, encoded, encoding, profile)
        return message(b"", udh, total_units, (Tlv(Tag.message_payload, payload),))

    total = len(ranges)
    segments: list[Segment] = []
    if concat == "sar":
        ref = reference & 0xFFFF
        ref_tlv = Tlv.make("sar_msg_ref_num", ref)
        total_tlv = Tlv.make("sar_total_segments", total)
        for seq, (start, end) in enumerate(ranges, 1):
            tlvs = (ref_tlv, total_tlv, Tlv.make("sar_segment_seqnum", seq))
            chunk = encoded[start:end]
            body = _user_data(b"", chunk, encoding, profile)
            segments.append(Segment(body, 0, tlvs, len(chunk) // unit_octets, b""))
    else:
        for seq, (start, end) in enumerate(ranges, 1):
            if concat == "udh16":
                ref = reference & 0xFFFF
                concat_ie = (IEI_CONCAT16, bytes((ref >> 8, ref & 0xFF, total, seq)))
            else:
                concat_ie = (IEI_CONCAT8, bytes((reference & 0xFF, total, seq)))
            udh = build_udh([concat_ie, *shift_ies])
            chunk = encoded[start:end]
            body = _user_data(udh, chunk, encoding, profile)
            segments.append(Segment(body, ESM_UDHI, (), len(chunk) // unit_octets, udh))
    return SplitMessage(encoding, data_coding, total_units, tuple(segments), lock, shift)


def with_reference(split: SplitMessage, concat: Concat, reference: int) -> SplitMessage:
    """``split`` (made by ``split_text`` with ``concat``) with its concatenation reference set
    to ``reference``: what ``split_text`` gives with that reference, without encoding and
    cutting the text again. A one-part or payload message has no reference: returned as is."""
    segments = split.segments
    if len(segments) < 2 or concat == "payload":
        return split
    if concat == "sar":
        ref_tlv = Tlv.make("sar_msg_ref_num", reference & 0xFFFF)
        segments = tuple(
            Segment(s.short_message, s.esm_class, (ref_tlv, *s.tlvs[1:]), s.units, s.udh)
            for s in segments
        )
    else:
        # The concatenation IE is the first of the UDH: its reference starts at octet 3
        # (after the UDH length, the IEI and the IE length), 1 octet for udh8, 2 for udh16.
        if concat == "udh16":
            ref = (reference & 0xFFFF).to_bytes(2, "big")
        else:
            ref = bytes((reference & 0xFF,))
        end = 3 + len(ref)
        segments = tuple(
            Segment(
                s.short_message[:3] + ref + s.short_message[end:],
                s.esm_class,
                s.tlvs,
                s.units,
                s.udh[:3] + ref + s.udh[end:],
            )
            for s in segments
        )
    return SplitMessage(
        split.encoding,
        split.data_coding,
        split.units,
        segments,
        split.locking_shift,
        split.single_shift,
    )


class TextSplitter:
    """``split_text`` under one profile, remembering the texts it split last.

    Campaigns send one text to many numbers: the encoding is chosen and the text cut once per
    distinct (text, encoding, concat, max_parts); each message after the first costs a
    dictionary lookup, and a multi-part one a new reference stamped into its parts
    (``with_reference``). At most ``size`` texts of at most ``max_length`` characters are
    kept, the first split forgotten first; longer texts are split every time.
    """

    def __init__(
        self, profile: EncodingProfile = DEFAULT_PROFILE, *, size: int = 512, max_length: int = 1600
    ) -> None:
        if size < 1:
            raise ValueError("size must be at least 1")
        self.profile = profile
        self.size = size
        self.max_length = max_length
        self._memo: dict[tuple[str, str, str, int], SplitMessage] = {}

    def __len__(self) -> int:
        return len(self._memo)

    def split(
        self,
        text: str,
        *,
        encoding: str = "auto",
        concat: Concat = "udh8",
        reference: int = 0,
        max_parts: int = MAX_PARTS,
    ) -> SplitMessage:
        """``split_text(text, profile=self.profile, ...)``, from memory when it can be."""
        if len(text) > self.max_length:
            return split_text(
                text,
                profile=self.profile,
                encoding=encoding,
                concat=concat,
                reference=reference,
                max_parts=max_parts,
            )
        key = (text, encoding, concat, max_parts)
        memo = self._memo
        split = memo.get(key)
        if split is None:
            # Errors are not remembered: an unsendable text raises again each time.
            split = split_text(
                text, profile=self.profile, encoding=encoding, concat=concat, max_parts=max_parts
            )
            if len(memo) >= self.size:
                del memo[next(iter(memo))]
            memo[key] = split
        if len(split.segments) == 1:
            return split
        return with_reference(split, concat, reference)


# ---------------------------------------------------------------------------------------------
# Reassembly


class ConcatInfo(msgspec.Struct, frozen=True):
    """Concatenation data of one part: reference, total parts, this part's number (from 1)."""

    reference: int
    total: int
    seqnum: int
    ref16: bool = False


class Udh(msgspec.Struct, frozen=True):
    """A parsed User Data Header: the raw octets (length octet included) and its IEs."""

    raw: bytes
    ies: tuple[tuple[int, bytes], ...]

    def _last(self, iei: int, size: int) -> bytes | None:
        # TS 23.040: when a non-repeatable IE occurs more than once, the last one counts.
        found = None
        for ie, data in self.ies:
            if ie == iei and len(data) == size:
                found = data
        return found

    @property
    def concat(self) -> ConcatInfo | None:
        """The last valid concatenation IE (8- or 16-bit); one with seq 0 or > total is ignored."""
        found = None
        for iei, data in self.ies:
            if iei == IEI_CONCAT8 and len(data) == 3:
                info = ConcatInfo(data[0], data[1], data[2], False)
            elif iei == IEI_CONCAT16 and len(data) == 4:
                info = ConcatInfo((data[0] << 8) | data[1], data[2], data[3], True)
            else:
                continue
            if 1 <= info.seqnum <= info.total:
                found = info
        return found

    @property
    def locking_shift(self) -> int:
        """National language id of the locking shift IE, 0 (default alphabet) if absent."""
        data = self._last(IEI_LOCKING_SHIFT, 1)
        return data[0] if data else 0

    @property
    def single_shift(self) -> int:
        """National language id of the single shift IE, 0 (default extension) if absent."""
        data = self._last(IEI_SINGLE_SHIFT, 1)
        return data[0] if data else 0

    @property
    def ports(self) -> tuple[int, int] | None:
        """(destination port, source port) from an application port IE, if any."""
        port: tuple[int, int] | None = None
        for iei, data in self.ies:
            if iei == IEI_PORT8 and len(data) == 2:
                port = (data[0], data[1])
            elif iei == IEI_PORT16 and len(data) == 4:
                port = ((data[0] << 8) | data[1], (data[2] << 8) | data[3])
        return port


def parse_udh(short_message: bytes) -> tuple[Udh, bytes]:
    """Split user data that starts with a UDH into the parsed UDH and the rest.

    Raises EncodingError when the header length or an IE length runs past the data.
    """
    if not short_message:
        raise EncodingError("UDH expected (UDHI set) but the user data is empty")
    udhl = short_message[0]
    if udhl + 1 > len(short_message):
        raise EncodingError(
            f"UDH length {udhl} runs past the user data ({len(short_message) - 1} octets follow)"
        )
    ies: list[tuple[int, bytes]] = []
    pos = 1
    end = 1 + udhl
    while pos < end:
        if pos + 2 > end:
            raise EncodingError(f"UDH IE header at offset {pos} runs past the UDH end ({end})")
        iei = short_message[pos]
        size = short_message[pos + 1]
        if pos + 2 + size > end:
            raise EncodingError(
                f"UDH IE 0x{iei:02X} at offset {pos} claims {size} octets, "
                f"only {end - pos - 2} left in the UDH"
            )
        ies.append((iei, short_message[pos + 2 : pos + 2 + size]))
        pos += 2 + size
    return Udh(short_message[:end], tuple(ies)), short_message[end:]


class DecodedText(msgspec.Struct, frozen=True):
    """One received short message decoded.

    ``data`` is the user data after the UDH as a unit stream (unpacked septets for GSM 7-bit),
    kept so ``join_texts`` can rejoin characters a sender split across parts.
    """

    text: str
    udh: Udh | None = None
    concat: ConcatInfo | None = None
    encoding: str = "binary"
    data: bytes = b""
    locking_shift: int = 0
    single_shift: int = 0


# Plain ints, read once: every received message is checked for them.
_SAR_TAGS: Final = (
    int(Tag.sar_msg_ref_num),
    int(Tag.sar_total_segments),
    int(Tag.sar_segment_seqnum),
)


def _sar_concat(tlvs: Sequence[Tlv]) -> ConcatInfo | None:
    values: list[int] = []
    for tag in _SAR_TAGS:
        tlv = find_tlv(tlvs, tag)
        if tlv is None:
            return None
        value = tlv.typed()
        if not isinstance(value, int):
            return None
        values.append(value)
    reference, total, seqnum = values
    # SMPP: all three or none; seq outside 1..total is ignored like a bad UDH IE.
    if not 1 <= seqnum <= total:
        return None
    return ConcatInfo(reference, total, seqnum, True)


def decode_short_message(
    short_message: bytes,
    data_coding: int,
    esm_class: int,
    profile: EncodingProfile = DEFAULT_PROFILE,
    *,
    tlvs: Sequence[Tlv] = (),
) -> DecodedText:
    """Decode a received short_message (deliver_sm / data_sm user data).

    Strips and parses the UDH when esm_class has UDHI (0x40), honours its shift IEs and, for
    packed GSM 7-bit profiles, the fill bits after it. An empty short_message with a
    message_payload TLV in ``tlvs`` decodes the payload instead; SAR TLVs give the
    concatenation info when no UDH does. Text decoding never raises; a malformed UDH raises
    EncodingError.
    """
    data = short_message
    if not data:
        payload = find_tlv(tlvs, Tag.message_payload)
        if payload is not None:
            data = payload.value
    udh: Udh | None = None
    if esm_class & ESM_UDHI:
        udh, data = parse_udh(data)
    encoding = encoding_for_data_coding(data_coding, profile)
    locking = udh.locking_shift if udh else 0
    single = udh.single_shift if udh else 0
    if encoding == "gsm7":
        if profile.gsm7_packed:
            data = unpack_septets(data, pad_bits=udh_fill_bits(len(udh.raw)) if udh else 0)
        text = decode_gsm7(data, locking=locking, single=single)
    else:
        locking = single = 0
        text = decode_units(data, encoding)
    concat = udh.concat if udh else None
    if concat is None:
        concat = _sar_concat(tlvs)
    return DecodedText(text, udh, concat, encoding, data, locking, single)


def _check_same_message(parts: Sequence[DecodedText]) -> None:
    keys = {(p.concat.reference, p.concat.total) for p in parts if p.concat is not None}
    if len(keys) > 1:
        raise EncodingError(f"parts of different messages (reference, total): {sorted(keys)}")


def join_texts(parts: Iterable[DecodedText]) -> str:
    """The full text of a concatenated message from its decoded parts, in seqnum order.

    Parts without concatenation info keep their given order ahead of numbered ones; a repeated
    seqnum (a retransmission) is used once. When all parts share one GSM 7-bit table set, or
    are all even-length UCS2, the unit streams are joined before decoding, so an ESC pair or
    surrogate pair a sender split across parts is restored. Completeness is not checked (see
    ``missing_parts``). Raises EncodingError if the parts belong to different messages.
    """
    ordered: list[DecodedText] = []
    seen: set[int] = set()
    items = list(parts)
    _check_same_message(items)
    for part in sorted(items, key=lambda p: p.concat.seqnum if p.concat else 0):
        if part.concat is not None:
            if part.concat.seqnum in seen:
                continue
            seen.add(part.concat.seqnum)
        ordered.append(part)
    if not ordered:
        return ""
    first = ordered[0]
    same_stream = all(
        (p.encoding, p.locking_shift, p.single_shift)
        == (first.encoding, first.locking_shift, first.single_shift)
        for p in ordered
    )
    if same_stream and first.encoding == "gsm7":
        joined = b"".join(p.data for p in ordered)
        return decode_gsm7(joined, locking=first.locking_shift, single=first.single_shift)
    if same_stream and first.encoding == "ucs2" and all(len(p.data) % 2 == 0 for p in ordered):
        return decode_units(b"".join(p.data for p in ordered), "ucs2")
    return "".join(p.text for p in ordered)


def missing_parts(parts: Iterable[DecodedText]) -> tuple[int, ...]:
    """Seqnums (1-based) still missing for the message the parts belong to; () if complete.

    Parts without concatenation info count as a complete single-part message.
    """
    items = list(parts)
    _check_same_message(items)
    numbered = [p.concat for p in items if p.concat is not None]
    if not numbered:
        return () if items else (1,)
    present = {c.seqnum for c in numbered}
    return tuple(n for n in range(1, numbered[0].total + 1) if n not in present)
