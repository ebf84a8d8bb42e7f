"""Typed, immutable SMPP PDUs, with their wire layout declared once on the fields.

Every PDU is a frozen ``msgspec.Struct``. A body field's annotation carries its wire kind
(``Int``, ``CStr``, ``Time``, ``ShortMessage``, ``DestAddresses``, ``UnsuccessSmes``); the order
of the fields is the order on the wire. From that one declaration the module generates, at import
time, a straight-line encoder and decoder per PDU type (the ``dataclasses`` technique): no
per-field interpretation on the hot path. ``_walk_decode`` interprets the same layout slowly, to
name the offending field when the fast decoder fails.
"""

from __future__ import annotations

import struct
import typing
from collections.abc import Callable
from typing import Annotated, Any, ClassVar, Final

import msgspec

from ..errors import FieldError, RemoteProtocolError
from .constants import (
    HEADER_LENGTH,
    INTERFACE_VERSION_34,
    RESPONSE_BIT,
    CommandId,
    CommandStatus,
)
from .tlv import Tlv

# --------------------------------------------------------------------------------------------
# Wire kinds, used as ``Annotated`` metadata on fields.


class Int:
    """Unsigned big-endian integer of ``size`` octets."""

    __slots__ = ("size",)

    def __init__(self, size: int) -> None:
        self.size = size


class CStr:
    """C-Octet String of at most ``max`` octets including the terminating NUL."""

    __slots__ = ("max", "status")

    def __init__(self, max: int, status: int = CommandStatus.ESME_RINVCMDLEN) -> None:
        self.max = max
        # The command_status that answers a request whose field cannot be read.
        self.status = int(status)


class Time(CStr):
    """An SMPP time field: NULL (1 octet) or exactly 16 characters + NUL (17 octets)."""

    __slots__ = ()


class ShortMessage:
    """``sm_length`` (Int 1) followed by that many octets of ``short_message``."""

    __slots__ = ()


class DestAddresses:
    """submit_multi's ``number_of_dests`` and the list of SME addresses / distribution lists."""

    __slots__ = ()


class UnsuccessSmes:
    """submit_multi_resp's ``no_unsuccess`` and the list of failed destinations."""

    __slots__ = ()


S = CommandStatus
U8 = Annotated[int, Int(1)]
U32 = Annotated[int, Int(4)]
ServiceType = Annotated[str, CStr(6, S.ESME_RINVSERTYP)]
SourceAddr = Annotated[str, CStr(21, S.ESME_RINVSRCADR)]
DestAddr = Annotated[str, CStr(21, S.ESME_RINVDSTADR)]
SourceAddr65 = Annotated[str, CStr(65, S.ESME_RINVSRCADR)]
DestAddr65 = Annotated[str, CStr(65, S.ESME_RINVDSTADR)]
MessageId = Annotated[str, CStr(65, S.ESME_RINVMSGID)]
SystemId = Annotated[str, CStr(16, S.ESME_RINVSYSID)]
Password = Annotated[str, CStr(9, S.ESME_RINVPASWD)]
SystemType = Annotated[str, CStr(13, S.ESME_RINVSYSTYP)]
AddressRange = Annotated[str, CStr(41)]
ScheduleTime = Annotated[str, Time(17, S.ESME_RINVSCHED)]
ValidityTime = Annotated[str, Time(17, S.ESME_RINVEXPIRY)]
FinalDate = Annotated[str, Time(17)]
SmBytes = Annotated[bytes, ShortMessage()]

MAX_SHORT_MESSAGE = 254
MAX_DESTS = 255


# --------------------------------------------------------------------------------------------
# Structured values inside submit_multi / submit_multi_resp.


class SmeAddress(msgspec.Struct, frozen=True, gc=False):
    """A submit_multi destination that is an SME address (dest_flag 1)."""

    destination_addr: str
    dest_addr_ton: int = 0
    dest_addr_npi: int = 0


class DistributionList(msgspec.Struct, frozen=True, gc=False):
    """A submit_multi destination that is a distribution list name (dest_flag 2)."""

    dl_name: str


class UnsuccessSme(msgspec.Struct, frozen=True, gc=False):
    """One destination a submit_multi could not be delivered to, with its command_status."""

    destination_addr: str
    error_status_code: int
    dest_addr_ton: int = 0
    dest_addr_npi: int = 0


Destination = SmeAddress | DistributionList

# --------------------------------------------------------------------------------------------
# The PDUs.


class Pdu(msgspec.Struct, frozen=True, gc=False):
    """Base of every PDU: the header fields that are not derived (length and id are)."""

    command_id: ClassVar[int]
    command_name: ClassVar[str]
    is_response: ClassVar[bool]
    # The response type of a request; None for responses and for outbind/alert_notification.
    response_type: ClassVar[type[Pdu] | None] = None

    sequence_number: int = 0
    command_status: int = 0

    def response(self, command_status: int = 0, **fields: Any) -> Pdu:
        """The response to this request, echoing its sequence number."""
        rtype = self.response_type
        if rtype is None:
            raise TypeError(f"{self.command_name} has no response PDU")
        if not fields:
            # Positional (the header fields come first in every PDU): the common case, cheaper.
            return rtype(self.sequence_number, command_status)
        return rtype(sequence_number=self.sequence_number, command_status=command_status, **fields)

    @property
    def tlv_list(self) -> tuple[Tlv, ...]:
        return typing.cast(tuple[Tlv, ...], getattr(self, "tlvs", ()))

    def tlv(self, tag: int) -> Tlv | None:
        """The first TLV with ``tag`` (see ``Tag``), or None."""
        for t in self.tlv_list:
            if t.tag == tag:
                return t
        return None


class GenericNack(Pdu, frozen=True, gc=False):
    tlvs: tuple[Tlv, ...] = ()


class BindTransmitterResp(Pdu, frozen=True, gc=False):
    system_id: SystemId = ""
    tlvs: tuple[Tlv, ...] = ()


class BindReceiverResp(BindTransmitterResp, frozen=True, gc=False):
    pass


class BindTransceiverResp(BindTransmitterResp, frozen=True, gc=False):
    pass


class BindTransmitter(Pdu, frozen=True, gc=False):
    system_id: SystemId = ""
    password: Password = ""
    system_type: SystemType = ""
    interface_version: U8 = INTERFACE_VERSION_34
    addr_ton: U8 = 0
    addr_npi: U8 = 0
    address_range: AddressRange = ""
    tlvs: tuple[Tlv, ...] = ()


class BindReceiver(BindTransmitter, frozen=True, gc=False):
    pass


class BindTransceiver(BindTransmitter, frozen=True, gc=False):
    pass


class Outbind(Pdu, frozen=True, gc=False):
    system_id: SystemId = ""
    password: Password = ""
    tlvs: tuple[Tlv, ...] = ()


class Unbind(Pdu, frozen=True, gc=False):
    tlvs: tuple[Tlv, ...] = ()


class UnbindResp(Pdu, frozen=True, gc=False):
    tlvs: tuple[Tlv, ...] = ()


class EnquireLink(Pdu, frozen=True, gc=False):
    tlvs: tuple[Tlv, ...] = ()


class EnquireLinkResp(Pdu, frozen=True, gc=False):
    tlvs: tuple[Tlv, ...] = ()


class SubmitSmResp(Pdu, frozen=True, gc=False):
    message_id: MessageId = ""
    tlvs: tuple[Tlv, ...] = ()


class SubmitSm(Pdu, frozen=True, gc=False):
    service_type: ServiceType = ""
    source_addr_ton: U8 = 0
    source_addr_npi: U8 = 0
    source_addr: SourceAddr = ""
    dest_addr_ton: U8 = 0
    dest_addr_npi: U8 = 0
    destination_addr: DestAddr = ""
    esm_class: U8 = 0
    protocol_id: U8 = 0
    priority_flag: U8 = 0
    schedule_delivery_time: ScheduleTime = ""
    validity_period: ValidityTime = ""
    registered_delivery: U8 = 0
    replace_if_present_flag: U8 = 0
    data_coding: U8 = 0
    sm_default_msg_id: U8 = 0
    short_message: SmBytes = b""
    tlvs: tuple[Tlv, ...] = ()


class DeliverSmResp(Pdu, frozen=True, gc=False):
    message_id: MessageId = ""
    tlvs: tuple[Tlv, ...] = ()


class DeliverSm(SubmitSm, frozen=True, gc=False):
    pass


class SubmitMultiResp(Pdu, frozen=True, gc=False):
    message_id: MessageId = ""
    unsuccess_smes: Annotated[tuple[UnsuccessSme, ...], UnsuccessSmes()] = ()
    tlvs: tuple[Tlv, ...] = ()


class SubmitMulti(Pdu, frozen=True, gc=False):
    service_type: ServiceType = ""
    source_addr_ton: U8 = 0
    source_addr_npi: U8 = 0
    source_addr: SourceAddr = ""
    dest_addresses: Annotated[tuple[Destination, ...], DestAddresses()] = ()
    esm_class: U8 = 0
    protocol_id: U8 = 0
    priority_flag: U8 = 0
    schedule_delivery_time: ScheduleTime = ""
    validity_period: ValidityTime = ""
    registered_delivery: U8 = 0
    replace_if_present_flag: U8 = 0
    data_coding: U8 = 0
    sm_default_msg_id: U8 = 0
    short_message: SmBytes = b""
    tlvs: tuple[Tlv, ...] = ()


class DataSmResp(Pdu, frozen=True, gc=False):
    message_id: MessageId = ""
    tlvs: tuple[Tlv, ...] = ()


class DataSm(Pdu, frozen=True, gc=False):
    service_type: ServiceType = ""
    source_addr_ton: U8 = 0
    source_addr_npi: U8 = 0
    source_addr: SourceAddr65 = ""
    dest_addr_ton: U8 = 0
    dest_addr_npi: U8 = 0
    destination_addr: DestAddr65 = ""
    esm_class: U8 = 0
    registered_delivery: U8 = 0
    data_coding: U8 = 0
    tlvs: tuple[Tlv, ...] = ()


class QuerySmResp(Pdu, frozen=True, gc=False):
    message_id: MessageId = ""
    final_date: FinalDate = ""
    message_state: U8 = 0
    error_code: U8 = 0
    tlvs: tuple[Tlv, ...] = ()


class QuerySm(Pdu, frozen=True, gc=False):
    message_id: MessageId = ""
    source_addr_ton: U8 = 0
    source_addr_npi: U8 = 0
    source_addr: SourceAddr = ""
    tlvs: tuple[Tlv, ...] = ()


class CancelSmResp(Pdu, frozen=True, gc=False):
    tlvs: tuple[Tlv, ...] = ()


class CancelSm(Pdu, frozen=True, gc=False):
    service_type: ServiceType = ""
    message_id: MessageId = ""
    source_addr_ton: U8 = 0
    source_addr_npi: U8 = 0
    source_addr: SourceAddr = ""
    dest_addr_ton: U8 = 0
    dest_addr_npi: U8 = 0
    destination_addr: DestAddr = ""
    tlvs: tuple[Tlv, ...] = ()


class ReplaceSmResp(Pdu, frozen=True, gc=False):
    tlvs: tuple[Tlv, ...] = ()


class ReplaceSm(Pdu, frozen=True, gc=False):
    message_id: MessageId = ""
    source_addr_ton: U8 = 0
    source_addr_npi: U8 = 0
    source_addr: SourceAddr = ""
    schedule_delivery_time: ScheduleTime = ""
    validity_period: ValidityTime = ""
    registered_delivery: U8 = 0
    sm_default_msg_id: U8 = 0
    short_message: SmBytes = b""
    tlvs: tuple[Tlv, ...] = ()


class AlertNotification(Pdu, frozen=True, gc=False):
    source_addr_ton: U8 = 0
    source_addr_npi: U8 = 0
    source_addr: SourceAddr65 = ""
    esme_addr_ton: U8 = 0
    esme_addr_npi: U8 = 0
    esme_addr: Annotated[str, CStr(65)] = ""
    tlvs: tuple[Tlv, ...] = ()


class BroadcastSmResp(Pdu, frozen=True, gc=False):
    message_id: MessageId = ""
    tlvs: tuple[Tlv, ...] = ()


class BroadcastSm(Pdu, frozen=True, gc=False):
    """v5.0. The broadcast area, content type, repetitions and frequency travel as TLVs."""

    service_type: ServiceType = ""
    source_addr_ton: U8 = 0
    source_addr_npi: U8 = 0
    source_addr: SourceAddr = ""
    message_id: MessageId = ""
    priority_flag: U8 = 0
    schedule_delivery_time: ScheduleTime = ""
    validity_period: ValidityTime = ""
    replace_if_present_flag: U8 = 0
    data_coding: U8 = 0
    sm_default_msg_id: U8 = 0
    tlvs: tuple[Tlv, ...] = ()


class QueryBroadcastSmResp(Pdu, frozen=True, gc=False):
    message_id: MessageId = ""
    tlvs: tuple[Tlv, ...] = ()


class QueryBroadcastSm(Pdu, frozen=True, gc=False):
    message_id: MessageId = ""
    source_addr_ton: U8 = 0
    source_addr_npi: U8 = 0
    source_addr: SourceAddr = ""
    tlvs: tuple[Tlv, ...] = ()


class CancelBroadcastSmResp(Pdu, frozen=True, gc=False):
    tlvs: tuple[Tlv, ...] = ()


class CancelBroadcastSm(Pdu, frozen=True, gc=False):
    service_type: ServiceType = ""
    message_id: MessageId = ""
    source_addr_ton: U8 = 0
    source_addr_npi: U8 = 0
    source_addr: SourceAddr = ""
    tlvs: tuple[Tlv, ...] = ()


_REQUESTS_AND_RESPONSES: Final[tuple[tuple[type[Pdu], type[Pdu] | None], ...]] = (
    (BindReceiver, BindReceiverResp),
    (BindTransmitter, BindTransmitterResp),
    (QuerySm, QuerySmResp),
    (SubmitSm, SubmitSmResp),
    (DeliverSm, DeliverSmResp),
    (Unbind, UnbindResp),
    (ReplaceSm, ReplaceSmResp),
    (CancelSm, CancelSmResp),
    (BindTransceiver, BindTransceiverResp),
    (Outbind, None),
    (EnquireLink, EnquireLinkResp),
    (SubmitMulti, SubmitMultiResp),
    (AlertNotification, None),
    (DataSm, DataSmResp),
    (BroadcastSm, BroadcastSmResp),
    (QueryBroadcastSm, QueryBroadcastSmResp),
    (CancelBroadcastSm, CancelBroadcastSmResp),
)


def _snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")


PDU_TYPES: Final[dict[int, type[Pdu]]] = {}
PDU_TYPES_BY_NAME: Final[dict[str, type[Pdu]]] = {}


def _register(cls: type[Pdu], *, response: bool, response_type: type[Pdu] | None) -> None:
    name = _snake(cls.__name__)
    cls.command_name = name
    cls.command_id = int(CommandId[name])
    cls.is_response = response
    cls.response_type = response_type
    PDU_TYPES[cls.command_id] = cls
    PDU_TYPES_BY_NAME[name] = cls


_register(GenericNack, response=True, response_type=None)
for _req, _resp in _REQUESTS_AND_RESPONSES:
    _register(_req, response=False, response_type=_resp)
    if _resp is not None:
        _register(_resp, response=True, response_type=None)

# --------------------------------------------------------------------------------------------
# Layout introspection.

Kind = Int | CStr | ShortMessage | DestAddresses | UnsuccessSmes


def layout(cls: type[Pdu]) -> list[tuple[str, Kind]]:
    """The body fields of a PDU type in wire order, each with its wire kind."""
    hints = typing.get_type_hints(cls, include_extras=True)
    out: list[tuple[str, Kind]] = []
    for name in cls.__struct_fields__:
        out.extend(
            (name, meta)
            for meta in getattr(hints[name], "__metadata__", ())
            if isinstance(meta, Int | CStr | ShortMessage | DestAddresses | UnsuccessSmes)
        )
    return out


# --------------------------------------------------------------------------------------------
# Encoding.

_HEADER = struct.Struct(">IIII")
_INT_CODES = {1: "B", 2: "H", 4: "I"}


def _field_error(cls: type[Pdu], field: str, reason: str) -> FieldError:
    return FieldError(cls.command_name, field, reason)


def _cstr_bytes(cls: type[Pdu], field: str, value: object, max_octets: int, time: bool) -> bytes:
    """Validated wire octets (without NUL) of a C-Octet String field."""
    if not isinstance(value, str):
        raise _field_error(cls, field, f"expected str, got {type(value).__name__}")
    try:
        raw = value.encode("latin-1")
    except UnicodeEncodeError as exc:
        raise _field_error(cls, field, f"character {value[exc.start]!r} is not one octet") from None
    if b"\x00" in raw:
        raise _field_error(cls, field, "contains a NUL character")
    if time:
        if len(raw) not in (0, 16):
            raise _field_error(cls, field, f"time must be empty or 16 characters, got {len(raw)}")
    elif len(raw) >= max_octets:
        raise _field_error(cls, field, f"{len(raw)} characters, at most {max_octets - 1} allowed")
    return raw


def _check_int(cls: type[Pdu], field: str, value: object, size: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise _field_error(cls, field, f"expected int, got {type(value).__name__}")
    if not 0 <= value < 1 << (8 * size):
        raise _field_error(cls, field, f"{value} does not fit in {size} octet(s)")
    return value


def _encode_dests(cls: type[Pdu], dests: tuple[Destination, ...]) -> bytes:
    if not isinstance(dests, tuple | list):
        raise _field_error(cls, "dest_addresses", "expected a tuple of destinations")
    if not 1 <= len(dests) <= MAX_DESTS:
        raise _field_error(cls, "dest_addresses", f"{len(dests)} destinations, 1..255 allowed")
    out = [bytes((len(dests),))]
    for i, d in enumerate(dests):
        name = f"dest_addresses[{i}]"
        if isinstance(d, SmeAddress):
            ton = _check_int(cls, name + ".dest_addr_ton", d.dest_addr_ton, 1)
            npi = _check_int(cls, name + ".dest_addr_npi", d.dest_addr_npi, 1)
            addr = _cstr_bytes(cls, name + ".destination_addr", d.destination_addr, 21, False)
            out.append(bytes((1, ton, npi)) + addr + b"\x00")
        elif isinstance(d, DistributionList):
            out.append(
                b"\x02" + _cstr_bytes(cls, name + ".dl_name", d.dl_name, 21, False) + b"\x00"
            )
        else:
            raise _field_error(cls, name, "expected SmeAddress or DistributionList")
    return b"".join(out)


def _encode_unsuccess(cls: type[Pdu], items: tuple[UnsuccessSme, ...]) -> bytes:
    if not isinstance(items, tuple | list) or len(items) > 255:
        raise _field_error(cls, "unsuccess_smes", "expected a tuple of at most 255 entries")
    out = [bytes((len(items),))]
    for i, u in enumerate(items):
        name = f"unsuccess_smes[{i}]"
        if not isinstance(u, UnsuccessSme):
            raise _field_error(cls, name, "expected UnsuccessSme")
        ton = _check_int(cls, name + ".dest_addr_ton", u.dest_addr_ton, 1)
        npi = _check_int(cls, name + ".dest_addr_npi", u.dest_addr_npi, 1)
        addr = _cstr_bytes(cls, name + ".destination_addr", u.destination_addr, 21, False)
        code = _check_int(cls, name + ".error_status_code", u.error_status_code, 4)
        out.append(bytes((ton, npi)) + addr + b"\x00" + code.to_bytes(4, "big"))
    return b"".join(out)


_TLV_HEADER_PACK = struct.Struct(">HH").pack


def _encode_tlvs_checked(cls: type[Pdu], tlvs: object) -> bytes:
    """The wire form of a PDU's TLVs; ``FieldError`` names the first TLV that cannot go out.

    The fast path checks exact types only and lets ``pack`` refuse a tag or length that does
    not fit in two octets; anything it refuses is walked again by ``_encode_tlvs_slowly``,
    which builds the field names (f-strings cost more than the encoding) only then.
    """
    if type(tlvs) is tuple:
        out = []
        pack = _TLV_HEADER_PACK
        try:
            for t in tlvs:
                value = t.value
                tag = t.tag
                # An int or an IntEnum (``Tag``) but not a bool, as ``_check_int`` wants.
                if (
                    type(t) is not Tlv
                    or type(value) is not bytes
                    or (type(tag) is not int and (type(tag) is bool or not isinstance(tag, int)))
                ):
                    break
                out.append(pack(tag, len(value)) + value)
            else:
                return b"".join(out)
        except (struct.error, AttributeError):
            pass
    return _encode_tlvs_slowly(cls, tlvs)


def _encode_tlvs_slowly(cls: type[Pdu], tlvs: object) -> bytes:
    if not isinstance(tlvs, tuple | list):
        raise _field_error(cls, "tlvs", f"expected a tuple of Tlv, got {type(tlvs).__name__}")
    out = []
    for i, t in enumerate(tlvs):
        if not isinstance(t, Tlv):
            raise _field_error(cls, f"tlvs[{i}]", f"expected Tlv, got {type(t).__name__}")
        _check_int(cls, f"tlvs[{i}].tag", t.tag, 2)
        if not isinstance(t.value, bytes):
            raise _field_error(cls, f"tlvs[{i}].value", "expected bytes")
        if len(t.value) > 0xFFFF:
            raise _field_error(cls, f"tlvs[{i}].value", f"{len(t.value)} octets exceed 65535")
        out.append(struct.pack(">HH", t.tag, len(t.value)) + t.value)
    return b"".join(out)


def _diagnose(cls: type[Pdu], pdu: Pdu, seq: int) -> FieldError:
    """Walk the fields slowly and return the error for the first one that cannot be encoded."""
    try:
        # ``seq`` is the number being encoded: the PDU's own or the caller's override.
        _check_int(cls, "sequence_number", seq, 4)
        _check_int(cls, "command_status", pdu.command_status, 4)
        for name, kind in layout(cls):
            value = getattr(pdu, name)
            if isinstance(kind, CStr):
                _cstr_bytes(cls, name, value, kind.max, isinstance(kind, Time))
            elif isinstance(kind, Int):
                _check_int(cls, name, value, kind.size)
            elif isinstance(kind, ShortMessage):
                if not isinstance(value, bytes | bytearray):
                    raise _field_error(cls, name, f"expected bytes, got {type(value).__name__}")
                if len(value) > MAX_SHORT_MESSAGE:
                    raise _field_error(
                        cls, name, f"{len(value)} octets, at most 254 (use message_payload)"
                    )
            elif isinstance(kind, DestAddresses):
                _encode_dests(cls, value)
            else:
                _encode_unsuccess(cls, value)
        _encode_tlvs_checked(cls, getattr(pdu, "tlvs", ()))
    except FieldError as exc:
        return exc
    return _field_error(cls, "?", "cannot be encoded")


def _compile_encoder(cls: type[Pdu]) -> Callable[[Pdu, int], bytes]:
    """Generate ``encode(pdu, sequence_number) -> bytes`` for one PDU type."""
    ns: dict[str, Any] = {
        "cls": cls,
        "HEADER": _HEADER.pack,
        "Tlv": Tlv,
        "diagnose": _diagnose,
        "encode_dests": _encode_dests,
        "encode_unsuccess": _encode_unsuccess,
        "encode_tlvs": _encode_tlvs_checked,
        "FieldError": FieldError,
        "struct": struct,
    }
    lines: list[str] = []
    pieces: list[str] = []  # expressions of bytes, joined in order
    int_group: list[tuple[str, int]] = []  # pending consecutive integers (expr, size)

    def flush_ints() -> None:
        if not int_group:
            return
        fmt = ">" + "".join(_INT_CODES[size] for _, size in int_group)
        key = f"P{len(ns)}"
        ns[key] = struct.Struct(fmt).pack
        pieces.append(f"{key}({', '.join(e for e, _ in int_group)})")
        int_group.clear()

    for name, kind in layout(cls):
        if isinstance(kind, Int):
            int_group.append((f"p.{name}", kind.size))
        elif isinstance(kind, CStr):
            flush_ints()
            var = f"v_{name}"
            # An empty string (the usual service_type and times) needs no encoding or checks;
            # anything else, a non-str included, takes the checked path.
            lines.append(f"    {var} = p.{name}")
            lines.append(f"    if {var} == '':")
            lines.append(f"      {var} = b''")
            lines.append("    else:")
            lines.append(f"      {var} = {var}.encode('latin-1')")
            if isinstance(kind, Time):
                lines.append(f"      if len({var}) != 16 or 0 in {var}: raise ERR")
            else:
                lines.append(f"      if len({var}) >= {kind.max} or 0 in {var}: raise ERR")
            pieces.append(var)
            pieces.append("b'\\x00'")
        elif isinstance(kind, ShortMessage):
            lines.append(f"    sm = p.{name}")
            lines.append(f"    if len(sm) > {MAX_SHORT_MESSAGE}: raise ERR")
            int_group.append(("len(sm)", 1))
            flush_ints()
            pieces.append("sm")
        elif isinstance(kind, DestAddresses):
            flush_ints()
            pieces.append(f"encode_dests(cls, p.{name})")
        else:
            flush_ints()
            pieces.append(f"encode_unsuccess(cls, p.{name})")
    flush_ints()
    joined = "".join(f"{e}, " for e in pieces)
    lines.append("    tl = p.tlvs")
    lines.append("    if tl:")
    # The trailing comma keeps it a tuple when there are no mandatory fields (enquire_link...).
    lines.append(f"        body = b''.join(({joined}encode_tlvs(cls, tl),))")
    lines.append("    else:")
    lines.append(f"        body = b''.join(({joined}))")
    lines.append("    return HEADER(16 + len(body), CID, p.command_status, seq) + body")
    src = (
        "def encode(p, seq):\n"
        "  try:\n"
        + "\n".join("  " + line for line in lines)
        + "\n  except FieldError:\n    raise\n"
        "  except Exception:\n    raise diagnose(cls, p, seq) from None\n"
        "  raise diagnose(cls, p, seq)\n"
    )
    # ``raise ERR`` jumps to the except branch, which names the field.
    src = src.replace("raise ERR", "raise ValueError")
    ns["CID"] = cls.command_id
    exec(compile(src, f"<smpp encoder {cls.command_name}>", "exec"), ns)
    return typing.cast(Callable[[Pdu, int], bytes], ns["encode"])


# --------------------------------------------------------------------------------------------
# Decoding.

_TLV_HEADER = struct.Struct(">HH")


def _decode_tlvs(frame: bytes, pos: int, end: int, seq: int, cid: int) -> tuple[Tlv, ...]:
    out = []
    unpack = _TLV_HEADER.unpack_from
    while pos < end:
        if pos + 4 > end:
            raise RemoteProtocolError(
                f"truncated TLV header at offset {pos}",
                command_status=S.ESME_RINVOPTPARSTREAM,
                sequence_number=seq,
                command_id=cid,
            )
        tag, length = unpack(frame, pos)
        pos += 4
        nxt = pos + length
        if nxt > end:
            raise RemoteProtocolError(
                f"TLV 0x{tag:04X} length {length} runs past the end of the PDU",
                command_status=S.ESME_RINVOPTPARSTREAM,
                sequence_number=seq,
                command_id=cid,
            )
        out.append(Tlv(tag, frame[pos:nxt]))
        pos = nxt
    return tuple(out)


def _read_cstr(frame: bytes, pos: int, end: int, max_octets: int) -> tuple[str, int]:
    # The NUL must come within the field's maximum (sheet 3.1): scanning further would let a
    # missing terminator swallow the following fields and surface as some later, wrong error.
    i = frame.index(0, pos, min(end, pos + max_octets))
    return frame[pos:i].decode("latin-1"), i + 1


def _decode_dests(frame: bytes, pos: int, end: int) -> tuple[tuple[Destination, ...], int]:
    count = frame[pos]
    if count == 0:
        # number_of_dests is 1..254 (v5.0: 255); the encoder refuses an empty list too.
        raise _BadDests("number_of_dests is 0", S.ESME_RINVNUMDESTS)
    pos += 1
    out: list[Destination] = []
    for _ in range(count):
        flag = frame[pos]
        if flag == 1:
            ton, npi = frame[pos + 1], frame[pos + 2]
            addr, pos = _read_cstr(frame, pos + 3, end, 21)
            out.append(SmeAddress(addr, ton, npi))
        elif flag == 2:
            name, pos = _read_cstr(frame, pos + 1, end, 21)
            out.append(DistributionList(name))
        else:
            raise _BadDests(
                f"dest_flag {flag} is neither 1 (SME) nor 2 (distribution list)",
                S.ESME_RINVDESTFLAG,
            )
    return tuple(out), pos


class _BadDests(Exception):
    """A submit_multi destination list error that has its own command_status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = int(status)


def _decode_unsuccess(frame: bytes, pos: int, end: int) -> tuple[tuple[UnsuccessSme, ...], int]:
    count = frame[pos]
    pos += 1
    out: list[UnsuccessSme] = []
    for _ in range(count):
        ton, npi = frame[pos], frame[pos + 1]
        addr, pos = _read_cstr(frame, pos + 2, end, 21)
        if pos + 4 > end:
            raise IndexError("error_status_code truncated")
        (code,) = struct.unpack_from(">I", frame, pos)
        pos += 4
        out.append(UnsuccessSme(addr, code, ton, npi))
    return tuple(out), pos


def _walk_decode(cls: type[Pdu], frame: bytes, seq: int, status: int) -> RemoteProtocolError:
    """Re-read a body that failed fast decoding and describe the first field that is wrong."""
    end = len(frame)
    pos = HEADER_LENGTH
    cid = cls.command_id
    for name, kind in layout(cls):
        try:
            if isinstance(kind, Int):
                if pos + kind.size > end:
                    raise IndexError
                pos += kind.size
            elif isinstance(kind, CStr):
                i = frame.index(0, pos, min(end, pos + kind.max))
                if isinstance(kind, Time) and i - pos not in (0, 16):
                    return RemoteProtocolError(
                        f"{cls.command_name}.{name}: time field of {i - pos} characters "
                        "(must be empty or 16)",
                        command_status=kind.status,
                        sequence_number=seq,
                        command_id=cid,
                    )
                pos = i + 1
            elif isinstance(kind, ShortMessage):
                n = frame[pos]
                pos += 1 + n
                if pos > end:
                    return RemoteProtocolError(
                        f"{cls.command_name}.{name}: sm_length {n} runs past the end of the PDU",
                        command_status=S.ESME_RINVMSGLEN,
                        sequence_number=seq,
                        command_id=cid,
                    )
            elif isinstance(kind, DestAddresses):
                _, pos = _decode_dests(frame, pos, end)
            else:
                _, pos = _decode_unsuccess(frame, pos, end)
        except _BadDests as exc:
            return RemoteProtocolError(
                f"{cls.command_name}.{name}: {exc}",
                command_status=exc.status,
                sequence_number=seq,
                command_id=cid,
            )
        except (ValueError, IndexError):
            status_for = kind.status if isinstance(kind, CStr) else S.ESME_RINVCMDLEN
            what = (
                f"has no NUL terminator within {kind.max} octets"
                if isinstance(kind, CStr)
                else "is truncated"
            )
            return RemoteProtocolError(
                f"{cls.command_name}.{name} {what} (offset {pos}, PDU length {end})",
                command_status=status_for,
                sequence_number=seq,
                command_id=cid,
            )
    return RemoteProtocolError(
        f"{cls.command_name}: malformed body",
        command_status=S.ESME_RINVCMDLEN,
        sequence_number=seq,
        command_id=cid,
    )


def _decoder_lines(cls: type[Pdu], ns: dict[str, Any], var: str) -> list[str]:
    """Straight-line source that decodes the body of a ``cls`` frame ``f`` (header already in
    ``seq``/``status``, ``end = len(f)``) and returns the PDU. ``var`` names ``cls`` in ``ns``;
    helpers it needs are added to ``ns`` under unique names."""
    ns[var] = cls
    ns[f"{var}_CID"] = cls.command_id
    fields = layout(cls)
    lines = ["pos = 16"]
    if cls.is_response and fields:
        # Error responses usually omit the body (and some peers omit it even on success).
        lines.append(f"if end == 16: return {var}(seq, status)")
    args: list[str] = []
    i = 0
    while i < len(fields):
        name, kind = fields[i]
        if isinstance(kind, Int):
            # Read a run of consecutive integers in one go.
            run = [(name, kind)]
            while i + 1 < len(fields) and isinstance(fields[i + 1][1], Int):
                i += 1
                run.append(typing.cast(tuple[str, Int], fields[i]))
            if all(k.size == 1 for _, k in run):
                n = len(run)
                if n == 1:
                    lines.append(f"{name} = f[pos]")
                else:
                    names = ", ".join(nm for nm, _ in run)
                    lines.append(f"{names} = f[pos:pos + {n}]")
                lines.append(f"pos += {n}")
            else:
                fmt = ">" + "".join(_INT_CODES[k.size] for _, k in run)
                key = f"U{len(ns)}"
                st = struct.Struct(fmt)
                ns[key] = st.unpack_from
                names = ", ".join(nm for nm, _ in run)
                lines.append(f"if pos + {st.size} > end: raise IndexError")
                lines.append(f"{names}{',' if len(run) == 1 else ''} = {key}(f, pos)")
                lines.append(f"pos += {st.size}")
            args.extend(nm for nm, _ in run)
        elif isinstance(kind, CStr):
            # Empty is the usual value of service_type and the time fields: one index
            # instead of a search, a slice and a decode.
            lines.append("if f[pos] == 0:")
            lines.append(f"  {name} = ''")
            lines.append("  pos += 1")
            lines.append("else:")
            lines.append(f"  i = f.index(0, pos, pos + {kind.max})")
            if isinstance(kind, Time):
                lines.append("  if i - pos != 16: raise ValueError")
            lines.append(f"  {name} = f[pos:i].decode('latin-1')")
            lines.append("  pos = i + 1")
            args.append(name)
        elif isinstance(kind, ShortMessage):
            lines.append("n = f[pos]")
            lines.append("pos += 1")
            lines.append(f"{name} = f[pos:pos + n]")
            lines.append("pos += n")
            lines.append("if pos > end: raise IndexError")
            args.append(name)
        elif isinstance(kind, DestAddresses):
            lines.append(f"{name}, pos = decode_dests(f, pos, end)")
            args.append(name)
        else:
            lines.append(f"{name}, pos = decode_unsuccess(f, pos, end)")
            args.append(name)
        i += 1
    lines.append(f"tlvs = decode_tlvs(f, pos, end, seq, {var}_CID) if pos < end else ()")
    args.append("tlvs")
    lines.append(f"return {var}(seq, status, {', '.join(args)})")
    return lines


_DECODER_HELPERS: Final[dict[str, Any]] = {
    "decode_tlvs": _decode_tlvs,
    "decode_dests": _decode_dests,
    "decode_unsuccess": _decode_unsuccess,
    "walk": _walk_decode,
    "BadDests": _BadDests,
}


def _build(name: str, signature: str, body: list[str], ns: dict[str, Any]) -> Any:
    """Compile ``def name(signature)`` as a closure over ``ns`` (free variables are read
    from cells, as fast as locals, and cost nothing per call)."""
    src = (
        f"def make({', '.join(ns)}):\n"
        f" def {name}({signature}):\n"
        + "".join(f"  {line}\n" for line in body)
        + f" return {name}\n"
    )
    scope: dict[str, Any] = {}
    exec(compile(src, f"<smpp {name}>", "exec"), scope)
    return scope["make"](**ns)


def _compile_decoder(cls: type[Pdu]) -> Callable[[bytes, int, int], Pdu]:
    """Generate ``decode(frame, seq, status) -> Pdu`` for one PDU type (header already read)."""
    ns = dict(_DECODER_HELPERS)
    body = ["try:", "  end = len(f)"]
    body += ["  " + line for line in _decoder_lines(cls, ns, "cls")]
    body += [
        "except (ValueError, IndexError, BadDests):",
        "  raise walk(cls, f, seq, status) from None",
    ]
    return typing.cast(
        Callable[[bytes, int, int], Pdu], _build("decode", "f, seq, status", body, ns)
    )


ENCODERS: Final[dict[type[Pdu], Callable[[Pdu, int], bytes]]] = {
    cls: _compile_encoder(cls) for cls in PDU_TYPES.values()
}
DECODERS: Final[dict[int, Callable[[bytes, int, int], Pdu]]] = {
    cid: _compile_decoder(cls) for cid, cls in PDU_TYPES.items()
}


def encode(pdu: Pdu, sequence_number: int | None = None) -> bytes:
    """The wire bytes of ``pdu``; ``sequence_number`` overrides the PDU's own when given.

    Raises ``FieldError`` naming the field when a value cannot be encoded exactly.
    """
    try:
        enc = ENCODERS[type(pdu)]
    except KeyError:
        raise TypeError(f"not an SMPP PDU: {type(pdu).__name__}") from None
    return enc(pdu, pdu.sequence_number if sequence_number is None else sequence_number)


def _short_frame(frame: bytes) -> RemoteProtocolError:
    return RemoteProtocolError(
        f"PDU of {len(frame)} octets is shorter than the 16-octet header",
        command_status=S.ESME_RINVCMDLEN,
        fatal=True,
    )


def _bad_length(length: int, end: int, cid: int, seq: int) -> RemoteProtocolError:
    return RemoteProtocolError(
        f"command_length {length} does not match the {end} octets of the PDU",
        command_status=S.ESME_RINVCMDLEN,
        sequence_number=seq,
        command_id=cid,
        fatal=True,
    )


def _unknown_command(cid: int, seq: int) -> RemoteProtocolError:
    return RemoteProtocolError(
        f"unknown command_id 0x{cid:08X}",
        command_status=S.ESME_RINVCMDID,
        sequence_number=seq,
        command_id=cid,
    )


# The PDUs of steady-state traffic, most frequent first: their bodies are inlined into
# ``decode`` (no second call); every other type goes through ``DECODERS``.
_INLINED: Final[tuple[type[Pdu], ...]] = (
    SubmitSmResp,
    DeliverSm,
    SubmitSm,
    DeliverSmResp,
    EnquireLinkResp,
    EnquireLink,
)


def _compile_decode() -> Callable[[bytes], Pdu]:
    ns = dict(_DECODER_HELPERS)
    ns.update(
        HEADER=_HEADER.unpack_from,
        struct_error=struct.error,
        short_frame=_short_frame,
        bad_length=_bad_length,
        unknown_command=_unknown_command,
        get_decoder=DECODERS.get,
    )
    body = [
        "try:",
        "  length, cid, status, seq = HEADER(f)",
        "except struct_error:",
        "  raise short_frame(f) from None",
        "end = len(f)",
        "if length != end: raise bad_length(length, end, cid, seq)",
    ]
    for n, cls in enumerate(_INLINED):
        var = f"T{n}"
        body.append(f"{'if' if n == 0 else 'elif'} cid == {cls.command_id}:")
        body.append("  try:")
        body += ["    " + line for line in _decoder_lines(cls, ns, var)]
        body.append("  except (ValueError, IndexError, BadDests):")
        body.append(f"    raise walk({var}, f, seq, status) from None")
    body += [
        "dec = get_decoder(cid)",
        "if dec is None: raise unknown_command(cid, seq)",
        "return dec(f, seq, status)",
    ]
    return typing.cast(Callable[[bytes], Pdu], _build("decode", "f", body, ns))


decode: Final[Callable[[bytes], Pdu]] = _compile_decode()
decode.__doc__ = """The PDU in ``frame`` (exactly one PDU, header included).

Raises ``RemoteProtocolError`` (and nothing else) for any malformed input; it carries the
sequence number, the command_id and the command_status to answer with.
"""


def error_response(error: RemoteProtocolError) -> Pdu | None:
    """The PDU that answers a PDU which failed to decode, or None when nothing should answer.

    A recognised request with a broken body is answered by its own response carrying the
    status; anything else by generic_nack. A response (command_id bit 31) is never answered.
    """
    cid = error.command_id
    if cid is not None and cid & RESPONSE_BIT:
        return None
    cls = PDU_TYPES.get(cid) if cid is not None else None
    if (
        cls is not None
        and cls.response_type is not None
        and error.command_status
        not in (
            S.ESME_RINVCMDLEN,
            S.ESME_RINVCMDID,
        )
    ):
        return cls.response_type(error.sequence_number, error.command_status)
    return GenericNack(error.sequence_number, error.command_status)
