"""Hypothesis strategies for SMPP field values and whole PDUs.

Everything is derived from the codec's own declarations: mandatory fields from ``layout(cls)``,
TLVs from ``TLV_SPECS``. A new PDU type or tag is therefore covered without touching this file,
and a new *wire kind* makes ``field_values`` raise instead of being silently skipped.

Every value produced is valid: it must encode, and decode back equal. Session tests can reuse
``pdus()``, ``request_pdus()``, ``response_pdus()`` and the per-field strategies.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from typing import Any, Final, TypeVar

from hypothesis import strategies as st

from smpp_bridge.codec.constants import MAX_SEQUENCE, CommandStatus
from smpp_bridge.codec.pdus import (
    MAX_SHORT_MESSAGE,
    PDU_TYPES,
    CStr,
    DestAddresses,
    Destination,
    DistributionList,
    Int,
    Kind,
    Pdu,
    ShortMessage,
    SmeAddress,
    Time,
    UnsuccessSme,
    UnsuccessSmes,
    layout,
)
from smpp_bridge.codec.tlv import TLV_SPECS, Tlv, TlvSpec, TlvValue

P = TypeVar("P", bound=Pdu)

#: Every PDU type, in command_id order (requests and responses, v3.4 and v5.0).
ALL_PDU_TYPES: Final[tuple[type[Pdu], ...]] = tuple(
    sorted(PDU_TYPES.values(), key=lambda cls: cls.command_id)
)
REQUEST_TYPES: Final = tuple(cls for cls in ALL_PDU_TYPES if not cls.is_response)
RESPONSE_TYPES: Final = tuple(cls for cls in ALL_PDU_TYPES if cls.is_response)

# The octets a C-Octet String may carry: one octet per character (latin-1), never NUL.
LATIN1_NO_NUL: Final = st.characters(min_codepoint=0x01, max_codepoint=0xFF)

# SMSC vendor-specific TLV tags (sheet 4.1).
VENDOR_TAGS: Final = st.integers(0x1400, 0x3FFF)

SEQUENCE_NUMBERS: Final = st.integers(1, MAX_SEQUENCE)


# --------------------------------------------------------------------------------------------
# Scalars.


def uints(size: int) -> st.SearchStrategy[int]:
    """Unsigned integers that fit ``size`` octets."""
    return st.integers(0, (1 << (8 * size)) - 1)


COMMAND_STATUSES: Final = st.one_of(st.sampled_from([int(s) for s in CommandStatus]), uints(4))


def c_strings(max_octets: int, *, min_size: int = 0) -> st.SearchStrategy[str]:
    """Text for a C-Octet String of at most ``max_octets`` octets *including* the NUL."""
    return st.text(LATIN1_NO_NUL, min_size=min_size, max_size=max_octets - 1)


def _2d(lo: int, hi: int) -> st.SearchStrategy[str]:
    return st.integers(lo, hi).map("{:02d}".format)


@st.composite
def absolute_times(draw: st.DrawFn) -> str:
    """``YYMMDDhhmmsstnnp`` with p = '+'/'-': a real calendar date (century per Appendix C)."""
    day = draw(st.dates(datetime.date(1938, 1, 1), datetime.date(2037, 12, 31)))
    clock = draw(_2d(0, 23)) + draw(_2d(0, 59)) + draw(_2d(0, 59))
    tenths = draw(st.integers(0, 9))
    quarter_hours = draw(_2d(0, 48))
    sign = draw(st.sampled_from("+-"))
    return f"{day:%y%m%d}{clock}{tenths}{quarter_hours}{sign}"


@st.composite
def relative_times(draw: st.DrawFn) -> str:
    """``YYMMDDhhmmss000R``: an offset from the SMSC's current time (t = 0, nn = 00)."""
    parts = [_2d(0, 99), _2d(0, 11), _2d(0, 30), _2d(0, 23), _2d(0, 59), _2d(0, 59)]
    return "".join(draw(p) for p in parts) + "000R"


def smpp_times() -> st.SearchStrategy[str]:
    """A time field: NULL (empty), absolute or relative."""
    return st.one_of(st.just(""), absolute_times(), relative_times())


def short_messages() -> st.SearchStrategy[bytes]:
    return st.binary(max_size=MAX_SHORT_MESSAGE)


# --------------------------------------------------------------------------------------------
# submit_multi lists.


def sme_addresses() -> st.SearchStrategy[SmeAddress]:
    return st.builds(SmeAddress, c_strings(21), uints(1), uints(1))


def distribution_lists() -> st.SearchStrategy[DistributionList]:
    return st.builds(DistributionList, c_strings(21))


def dest_lists(max_size: int = 6) -> st.SearchStrategy[tuple[Destination, ...]]:
    """submit_multi's destinations: 1..max_size SME addresses and distribution lists."""
    one: st.SearchStrategy[Destination] = st.one_of(sme_addresses(), distribution_lists())
    return st.lists(one, min_size=1, max_size=max_size).map(tuple)


def unsuccess_smes() -> st.SearchStrategy[UnsuccessSme]:
    return st.builds(UnsuccessSme, c_strings(21), uints(4), uints(1), uints(1))


def unsuccess_lists(max_size: int = 6) -> st.SearchStrategy[tuple[UnsuccessSme, ...]]:
    return st.lists(unsuccess_smes(), max_size=max_size).map(tuple)


# --------------------------------------------------------------------------------------------
# TLVs.


def tlv_values(spec: TlvSpec, *, max_octets: int = 300) -> st.SearchStrategy[TlvValue]:
    """Typed values ``Tlv.make`` accepts for a standard tag (octet strings capped for speed)."""
    if spec.kind == "int":
        return uints(spec.min_size)
    if spec.kind == "cstr":
        return c_strings(spec.max_size)
    if spec.kind == "flag":
        return st.one_of(st.none(), uints(1))
    return st.binary(
        min_size=spec.min_size, max_size=max(spec.min_size, min(spec.max_size, max_octets))
    )


def _standard_tlv(spec: TlvSpec) -> st.SearchStrategy[Tlv]:
    return tlv_values(spec).map(lambda value: Tlv.make(spec.tag, value))


def standard_tlvs(specs: Iterable[TlvSpec] | None = None) -> st.SearchStrategy[Tlv]:
    """TLVs of standard tags (all of ``TLV_SPECS`` by default) with valid typed values."""
    chosen = sorted(TLV_SPECS.values() if specs is None else specs, key=lambda s: s.tag)
    return st.sampled_from(chosen).flatmap(_standard_tlv)


def vendor_tlvs(max_octets: int = 64) -> st.SearchStrategy[Tlv]:
    """Vendor-specific TLVs (0x1400-0x3FFF): raw octets the codec must carry untouched."""
    return st.builds(Tlv, VENDOR_TAGS, st.binary(max_size=max_octets))


def tlv_tuples(max_size: int = 4) -> st.SearchStrategy[tuple[Tlv, ...]]:
    """An ordered TLV section mixing standard and vendor tags (repeats allowed)."""
    return st.lists(st.one_of(standard_tlvs(), vendor_tlvs()), max_size=max_size).map(tuple)


# --------------------------------------------------------------------------------------------
# Mandatory fields and whole PDUs.


def field_values(kind: Kind) -> st.SearchStrategy[Any]:
    """Valid values for one mandatory field of the given wire kind."""
    if isinstance(kind, Time):  # before CStr: Time is a CStr
        return smpp_times()
    if isinstance(kind, CStr):
        return c_strings(kind.max)
    if isinstance(kind, Int):
        return uints(kind.size)
    if isinstance(kind, ShortMessage):
        return short_messages()
    if isinstance(kind, DestAddresses):
        return dest_lists()
    if isinstance(kind, UnsuccessSmes):
        return unsuccess_lists()
    raise TypeError(f"no strategy for wire kind {type(kind).__name__}: add one to strategies.py")


def pdus_of(cls: type[P]) -> st.SearchStrategy[P]:
    """PDUs of one type with any valid field values.

    Requests carry command_status 0 (sheet 1.1); responses any 32-bit status.
    """
    fields: dict[str, st.SearchStrategy[Any]] = {
        name: field_values(kind) for name, kind in layout(cls)
    }
    if "tlvs" in cls.__struct_fields__:
        fields["tlvs"] = tlv_tuples()
    status = COMMAND_STATUSES if cls.is_response else st.just(0)
    return st.builds(cls, sequence_number=SEQUENCE_NUMBERS, command_status=status, **fields)


def pdus(types: Iterable[type[Pdu]] | None = None) -> st.SearchStrategy[Pdu]:
    """A PDU of any of ``types`` (every PDU type by default) with any valid fields."""
    chosen = ALL_PDU_TYPES if types is None else tuple(types)
    return st.sampled_from(chosen).flatmap(pdus_of)


def request_pdus() -> st.SearchStrategy[Pdu]:
    return pdus(REQUEST_TYPES)


def response_pdus() -> st.SearchStrategy[Pdu]:
    return pdus(RESPONSE_TYPES)
