"""The SMPP PDUs as typed, immutable declarations: the wire tables of the spec.

Every PDU is a frozen ``msgspec.Struct``. A body field's annotation carries its wire kind
(``Int``, ``CStr``, ``Time``, ``ShortMessage``, ``DestAddresses``, ``UnsuccessSmes``); the order
of the fields is the order on the wire. ``pdu_encode`` and ``pdu_decode`` generate the codec from
these declarations; ``pdus`` is where the rest of the library imports all of it from.
"""

from __future__ import annotations

import typing
from typing import Annotated, Any, ClassVar, Final

import msgspec

from .constants import (
    INTERFACE_VERSION_34,
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
