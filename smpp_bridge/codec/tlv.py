"""TLVs (optional parameters): one raw, order-preserving representation, typed by name on access.

A ``Tlv`` always keeps the value octets exactly as they came off (or go onto) the wire, so an
unknown or vendor tag (0x1400–0x3FFF) re-encodes byte for byte and TLV order is preserved.
Standard tags are typed through ``TLV_SPECS``: ``Tlv.make("message_state", 2)`` validates and
encodes a value, ``tlv.typed()`` decodes it back (to ``int``, ``str`` or ``bytes``).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from enum import IntEnum
from typing import Final, Literal

import msgspec

from ..errors import FieldError

TlvKind = Literal["int", "cstr", "octets", "flag"]


class Tag(IntEnum):
    dest_addr_subunit = 0x0005
    dest_network_type = 0x0006
    dest_bearer_type = 0x0007
    dest_telematics_id = 0x0008
    source_addr_subunit = 0x000D
    source_network_type = 0x000E
    source_bearer_type = 0x000F
    source_telematics_id = 0x0010
    qos_time_to_live = 0x0017
    payload_type = 0x0019
    additional_status_info_text = 0x001D
    receipted_message_id = 0x001E
    ms_msg_wait_facilities = 0x0030
    privacy_indicator = 0x0201
    source_subaddress = 0x0202
    dest_subaddress = 0x0203
    user_message_reference = 0x0204
    user_response_code = 0x0205
    source_port = 0x020A
    destination_port = 0x020B
    sar_msg_ref_num = 0x020C
    language_indicator = 0x020D
    sar_total_segments = 0x020E
    sar_segment_seqnum = 0x020F
    sc_interface_version = 0x0210
    callback_num_pres_ind = 0x0302
    callback_num_atag = 0x0303
    number_of_messages = 0x0304
    callback_num = 0x0381
    dpf_result = 0x0420
    set_dpf = 0x0421
    ms_availability_status = 0x0422
    network_error_code = 0x0423
    message_payload = 0x0424
    delivery_failure_reason = 0x0425
    more_messages_to_send = 0x0426
    message_state = 0x0427
    congestion_state = 0x0428
    ussd_service_op = 0x0501
    broadcast_channel_indicator = 0x0600
    broadcast_content_type = 0x0601
    broadcast_content_type_info = 0x0602
    broadcast_message_class = 0x0603
    broadcast_rep_num = 0x0604
    broadcast_frequency_interval = 0x0605
    broadcast_area_identifier = 0x0606
    broadcast_error_status = 0x0607
    broadcast_area_success = 0x0608
    broadcast_end_time = 0x0609
    broadcast_service_group = 0x060A
    billing_identification = 0x060B
    source_network_id = 0x060D
    dest_network_id = 0x060E
    source_node_id = 0x060F
    dest_node_id = 0x0610
    dest_addr_np_resolution = 0x0611
    dest_addr_np_information = 0x0612
    dest_addr_np_country = 0x0613
    display_time = 0x1201
    sms_signal = 0x1203
    ms_validity = 0x1204
    alert_on_message_delivery = 0x130C
    its_reply_type = 0x1380
    its_session_info = 0x1383


class TlvSpec(msgspec.Struct, frozen=True):
    """How a standard tag's value is typed: kind and the allowed value sizes in octets."""

    tag: int
    name: str
    kind: TlvKind
    min_size: int
    max_size: int


def _spec(tag: Tag, kind: TlvKind, min_size: int, max_size: int | None = None) -> TlvSpec:
    return TlvSpec(tag, tag.name, kind, min_size, min_size if max_size is None else max_size)


T = Tag
TLV_SPECS: Final[dict[int, TlvSpec]] = {
    s.tag: s
    for s in (
        _spec(T.dest_addr_subunit, "int", 1),
        _spec(T.dest_network_type, "int", 1),
        _spec(T.dest_bearer_type, "int", 1),
        _spec(T.dest_telematics_id, "int", 2),
        _spec(T.source_addr_subunit, "int", 1),
        _spec(T.source_network_type, "int", 1),
        _spec(T.source_bearer_type, "int", 1),
        _spec(T.source_telematics_id, "int", 1),
        _spec(T.qos_time_to_live, "int", 4),
        _spec(T.payload_type, "int", 1),
        _spec(T.additional_status_info_text, "cstr", 1, 256),
        _spec(T.receipted_message_id, "cstr", 1, 65),
        _spec(T.ms_msg_wait_facilities, "int", 1),
        _spec(T.privacy_indicator, "int", 1),
        _spec(T.source_subaddress, "octets", 2, 23),
        _spec(T.dest_subaddress, "octets", 2, 23),
        _spec(T.user_message_reference, "int", 2),
        _spec(T.user_response_code, "int", 1),
        _spec(T.source_port, "int", 2),
        _spec(T.destination_port, "int", 2),
        _spec(T.sar_msg_ref_num, "int", 2),
        _spec(T.language_indicator, "int", 1),
        _spec(T.sar_total_segments, "int", 1),
        _spec(T.sar_segment_seqnum, "int", 1),
        _spec(T.sc_interface_version, "int", 1),
        _spec(T.callback_num_pres_ind, "int", 1),
        _spec(T.callback_num_atag, "octets", 0, 65),
        _spec(T.number_of_messages, "int", 1),
        _spec(T.callback_num, "octets", 4, 19),
        _spec(T.dpf_result, "int", 1),
        _spec(T.set_dpf, "int", 1),
        _spec(T.ms_availability_status, "int", 1),
        _spec(T.network_error_code, "octets", 3),
        _spec(T.message_payload, "octets", 0, 65535),
        _spec(T.delivery_failure_reason, "int", 1),
        _spec(T.more_messages_to_send, "int", 1),
        _spec(T.message_state, "int", 1),
        _spec(T.congestion_state, "int", 1),
        _spec(T.ussd_service_op, "int", 1),
        _spec(T.broadcast_channel_indicator, "int", 1),
        _spec(T.broadcast_content_type, "octets", 3),
        _spec(T.broadcast_content_type_info, "octets", 0, 255),
        _spec(T.broadcast_message_class, "int", 1),
        _spec(T.broadcast_rep_num, "int", 2),
        _spec(T.broadcast_frequency_interval, "octets", 3),
        _spec(T.broadcast_area_identifier, "octets", 0, 100),
        _spec(T.broadcast_error_status, "int", 4),
        _spec(T.broadcast_area_success, "int", 1),
        _spec(T.broadcast_end_time, "cstr", 1, 17),
        _spec(T.broadcast_service_group, "octets", 0, 255),
        _spec(T.billing_identification, "octets", 1, 1024),
        _spec(T.source_network_id, "cstr", 1, 65),
        _spec(T.dest_network_id, "cstr", 1, 65),
        _spec(T.source_node_id, "octets", 6),
        _spec(T.dest_node_id, "octets", 6),
        _spec(T.dest_addr_np_resolution, "int", 1),
        _spec(T.dest_addr_np_information, "octets", 10),
        _spec(T.dest_addr_np_country, "octets", 1, 5),
        _spec(T.display_time, "int", 1),
        _spec(T.sms_signal, "int", 2),
        _spec(T.ms_validity, "octets", 1, 4),
        _spec(T.alert_on_message_delivery, "flag", 0, 1),
        _spec(T.its_reply_type, "int", 1),
        _spec(T.its_session_info, "octets", 2),
    )
}
TAGS_BY_NAME: Final[dict[str, int]] = {s.name: s.tag for s in TLV_SPECS.values()}
# v5.0 renamed destination_port; accept both spellings on input.
TAGS_BY_NAME["dest_port"] = Tag.destination_port

TlvValue = int | str | bytes | None


class Tlv(msgspec.Struct, frozen=True, gc=False):
    """One TLV: the tag and the raw value octets, exactly as on the wire."""

    tag: int
    value: bytes = b""

    @property
    def name(self) -> str:
        """The standard name of the tag, or ``tag_0xNNNN`` (``vendor_0xNNNN`` for 0x1400–0x3FFF)."""
        spec = TLV_SPECS.get(self.tag)
        if spec is not None:
            return spec.name
        if 0x1400 <= self.tag <= 0x3FFF:
            return f"vendor_0x{self.tag:04X}"
        return f"tag_0x{self.tag:04X}"

    def typed(self) -> TlvValue:
        """The value decoded by the tag's type; raw bytes for unknown tags or malformed values."""
        spec = TLV_SPECS.get(self.tag)
        if spec is None:
            return self.value
        return _decode_value(spec, self.value)

    @classmethod
    def make(cls, tag: int | str, value: TlvValue) -> Tlv:
        """Build a TLV from a name or tag and a typed value, validating it against the spec.

        ``bytes`` are accepted for any tag (taken as the raw value, size-checked when known).
        """
        tag_no = resolve_tag(tag)
        spec = TLV_SPECS.get(tag_no)
        if spec is None:
            if not isinstance(value, bytes | bytearray):
                raise FieldError("tlv", f"tag_0x{tag_no:04X}", "unknown tag needs a bytes value")
            raw = bytes(value)
        else:
            raw = _encode_value(spec, value)
        if len(raw) > 0xFFFF:
            raise FieldError("tlv", str(tag), f"value of {len(raw)} octets exceeds 65535")
        return cls(int(tag_no), raw)


def resolve_tag(tag: int | str) -> int:
    """A tag number from a number, a standard name, or ``0xNNNN``/``tag_0x…``/``vendor_0x…``."""
    if isinstance(tag, int):
        if not 0 <= tag <= 0xFFFF:
            raise FieldError("tlv", str(tag), "tag must be within 0..0xFFFF")
        return tag
    found = TAGS_BY_NAME.get(tag)
    if found is not None:
        return found
    text = tag.removeprefix("tag_").removeprefix("vendor_")
    try:
        number = int(text, 16) if text.lower().startswith("0x") else int(text)
    except ValueError:
        raise FieldError("tlv", tag, "unknown TLV name") from None
    return resolve_tag(number)


def _decode_value(spec: TlvSpec, raw: bytes) -> TlvValue:
    size = len(raw)
    if spec.kind == "int":
        if size in (1, 2, 4) and spec.min_size <= size <= spec.max_size:
            return int.from_bytes(raw, "big")
        return raw
    if spec.kind == "cstr":
        # Tolerate a missing terminator; keep raw if there is an embedded NUL before the end.
        text = raw[:-1] if raw.endswith(b"\x00") else raw
        if b"\x00" in text:
            return raw
        return text.decode("latin-1")
    if spec.kind == "flag":
        # No value means "set"; one octet is the v5.0 level; anything longer is malformed and,
        # like every other malformed value, comes back raw rather than as "no value".
        if size == 0:
            return None
        return raw[0] if size == 1 else raw
    return raw


def _encode_value(spec: TlvSpec, value: TlvValue) -> bytes:
    name = spec.name
    if isinstance(value, bytes | bytearray):
        raw = bytes(value)
    elif spec.kind == "int":
        if not isinstance(value, int) or isinstance(value, bool):
            raise FieldError("tlv", name, f"expected an integer, got {type(value).__name__}")
        if not 0 <= value < 1 << (8 * spec.min_size):
            raise FieldError("tlv", name, f"{value} does not fit in {spec.min_size} octet(s)")
        raw = value.to_bytes(spec.min_size, "big")
    elif spec.kind == "cstr":
        if not isinstance(value, str):
            raise FieldError("tlv", name, f"expected a string, got {type(value).__name__}")
        try:
            raw = value.encode("latin-1") + b"\x00"
        except UnicodeEncodeError:
            raise FieldError("tlv", name, "string is not representable in latin-1") from None
        if b"\x00" in raw[:-1]:
            raise FieldError("tlv", name, "string contains NUL")
    elif spec.kind == "flag":
        if value is None:
            raw = b""
        elif isinstance(value, int) and 0 <= value <= 255:
            raw = bytes((value,))
        else:
            raise FieldError("tlv", name, "flag takes None (no value) or one octet")
    else:
        raise FieldError("tlv", name, f"expected bytes, got {type(value).__name__}")
    if not spec.min_size <= len(raw) <= spec.max_size:
        raise FieldError(
            "tlv", name, f"value of {len(raw)} octets, allowed {spec.min_size}..{spec.max_size}"
        )
    return raw


_HH = struct.Struct(">HH")


def encode_tlvs(tlvs: Iterable[Tlv]) -> bytes:
    """The wire form of a TLV sequence, in order."""
    pack = _HH.pack
    return b"".join([pack(t.tag, len(t.value)) + t.value for t in tlvs])


def find_tlv(tlvs: Iterable[Tlv], tag: int) -> Tlv | None:
    """The first TLV with ``tag``, or None."""
    for t in tlvs:
        if t.tag == tag:
            return t
    return None
