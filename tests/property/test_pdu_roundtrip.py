"""Round trips for every PDU type: decode(encode(p)) == p and encode(decode(b)) == b.

Round trips alone cannot catch a mistake made symmetrically by the generated encoder and decoder
(two fields swapped on both sides, say), so every frame is also compared with a slow reference
encoder written here from sheet 3 of smpp-facts.md.
"""

from __future__ import annotations

import struct

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smpp_bridge.codec import (
    BindReceiverResp,
    BindTransceiverResp,
    BindTransmitterResp,
    DeliverSm,
    DeliverSmResp,
    DistributionList,
    EnquireLinkResp,
    Pdu,
    SmeAddress,
    SubmitSmResp,
    Tlv,
    decode,
    encode,
)
from smpp_bridge.codec.constants import RESPONSE_BIT, CommandStatus
from smpp_bridge.codec.pdus import (
    CStr,
    DestAddresses,
    Int,
    ShortMessage,
    UnsuccessSme,
    UnsuccessSmes,
    layout,
)
from tests.strategies import (
    ALL_PDU_TYPES,
    SEQUENCE_NUMBERS,
    pdus,
    pdus_of,
    standard_tlvs,
    tlv_tuples,
    vendor_tlvs,
)

TYPE_IDS = [cls.command_name for cls in ALL_PDU_TYPES]
# Responses whose body has mandatory fields: the ones that may arrive header-only.
BODY_RESPONSES = [cls for cls in ALL_PDU_TYPES if cls.is_response and layout(cls)]


def _cstr(value: str) -> bytes:
    return value.encode("latin-1") + b"\x00"


def _tlv_bytes(tlvs: tuple[Tlv, ...]) -> bytes:
    return b"".join(struct.pack(">HH", t.tag, len(t.value)) + t.value for t in tlvs)


def reference_encode(pdu: Pdu) -> bytes:
    """Sheet 3, field by field, with none of the codec's generated code."""
    body = bytearray()
    for name, kind in layout(type(pdu)):
        value = getattr(pdu, name)
        if isinstance(kind, CStr):
            body += _cstr(value)
        elif isinstance(kind, Int):
            body += value.to_bytes(kind.size, "big")
        elif isinstance(kind, ShortMessage):
            body += bytes((len(value),)) + value
        elif isinstance(kind, DestAddresses):
            body.append(len(value))
            for dest in value:
                if isinstance(dest, SmeAddress):
                    body += bytes((1, dest.dest_addr_ton, dest.dest_addr_npi))
                    body += _cstr(dest.destination_addr)
                else:
                    assert isinstance(dest, DistributionList)
                    body += b"\x02" + _cstr(dest.dl_name)
        else:
            assert isinstance(kind, UnsuccessSmes)
            body.append(len(value))
            for sme in value:
                assert isinstance(sme, UnsuccessSme)
                body += bytes((sme.dest_addr_ton, sme.dest_addr_npi))
                body += _cstr(sme.destination_addr)
                body += sme.error_status_code.to_bytes(4, "big")
    body += _tlv_bytes(pdu.tlv_list)
    header = struct.pack(
        ">IIII", 16 + len(body), pdu.command_id, pdu.command_status, pdu.sequence_number
    )
    return header + bytes(body)


@pytest.mark.parametrize("cls", ALL_PDU_TYPES, ids=TYPE_IDS)
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_every_type_round_trips(cls: type[Pdu], data: st.DataObject) -> None:
    pdu = data.draw(pdus_of(cls))
    frame = encode(pdu)
    assert frame == reference_encode(pdu)
    back = decode(frame)
    assert type(back) is cls
    assert back == pdu
    assert encode(back) == frame


@settings(max_examples=200, deadline=None)
@given(pdus())
def test_header_fields_on_the_wire(pdu: Pdu) -> None:
    frame = encode(pdu)
    length, command_id, status, seq = struct.unpack_from(">IIII", frame)
    assert length == len(frame)
    assert command_id == type(pdu).command_id
    assert bool(command_id & RESPONSE_BIT) == type(pdu).is_response
    assert (status, seq) == (pdu.command_status, pdu.sequence_number)


@settings(max_examples=100, deadline=None)
@given(pdus(), st.one_of(st.just(0), SEQUENCE_NUMBERS))
def test_sequence_number_override(pdu: Pdu, seq: int) -> None:
    frame = encode(pdu, sequence_number=seq)
    # The override wins, even when it is 0 (generic_nack's "could not read it").
    assert frame == encode(msgspec.structs.replace(pdu, sequence_number=seq))
    assert decode(frame).sequence_number == seq
    # The PDU itself is untouched (frozen) and still encodes with its own number.
    assert decode(encode(pdu)).sequence_number == pdu.sequence_number


@settings(max_examples=100, deadline=None)
@given(tlv_tuples(max_size=10))
def test_tlv_order_and_raw_bytes_preserved(tlvs: tuple[Tlv, ...]) -> None:
    pdu = DeliverSm(sequence_number=3, source_addr="447700900001", tlvs=tlvs)
    frame = encode(pdu)
    # TLVs come last, exactly as given: order, repeats and vendor octets untouched.
    assert frame.endswith(_tlv_bytes(tlvs))
    assert decode(frame).tlv_list == tlvs


@settings(max_examples=50, deadline=None)
@given(st.lists(st.one_of(vendor_tlvs(), standard_tlvs()), min_size=2, max_size=6))
def test_tlvs_on_header_only_pdus(tlvs: list[Tlv]) -> None:
    # v5.0 allows congestion_state on any response, enquire_link_resp included.
    pdu = EnquireLinkResp(sequence_number=8, tlvs=tuple(tlvs))
    assert decode(encode(pdu)) == pdu


def test_vendor_tlvs_kept_in_place_between_standard_ones() -> None:
    tlvs = (
        Tlv(0x3FFF, b""),
        Tlv.make("receipted_message_id", "0123456789"),
        Tlv(0x1400, b"\x00\xff\x00"),
        Tlv.make("message_state", 2),
        Tlv(0x1400, b"second"),
    )
    frame = encode(DeliverSm(sequence_number=1, esm_class=0x04, tlvs=tlvs))
    assert frame.endswith(
        bytes.fromhex("3fff0000 001e000b 3031323334353637383900 14000003 00ff00 04270001 02")
        + bytes.fromhex("14000006")
        + b"second"
    )
    assert decode(frame).tlv_list == tlvs


@pytest.mark.parametrize("cls", BODY_RESPONSES, ids=[c.command_name for c in BODY_RESPONSES])
def test_header_only_error_response_decodes(cls: type[Pdu]) -> None:
    frame = struct.pack(">IIII", 16, cls.command_id, CommandStatus.ESME_RSYSERR, 77)
    pdu = decode(frame)
    assert type(pdu) is cls
    assert pdu == cls(sequence_number=77, command_status=CommandStatus.ESME_RSYSERR)


def test_submit_sm_resp_error_without_body() -> None:
    frame = bytes.fromhex("00000010 80000004 00000045 0000002a")
    assert decode(frame) == SubmitSmResp(sequence_number=42, command_status=0x45)


def test_deliver_sm_resp_header_only() -> None:
    # Many ESMEs send deliver_sm_resp without the (always NULL) message_id (sheet 3.3).
    frame = bytes.fromhex("00000010 80000005 00000000 00000009")
    assert decode(frame) == DeliverSmResp(sequence_number=9, message_id="")


@pytest.mark.parametrize("cls", [BindTransmitterResp, BindReceiverResp, BindTransceiverResp])
def test_bind_resp_error_with_and_without_body(cls: type[BindTransmitterResp]) -> None:
    header_only = struct.pack(">IIII", 16, cls.command_id, CommandStatus.ESME_RBINDFAIL, 1)
    assert decode(header_only) == cls(sequence_number=1, command_status=0x0D)
    # Some SMSCs still send the body on error; that must decode too.
    with_body = struct.pack(">IIII", 21, cls.command_id, CommandStatus.ESME_RBINDFAIL, 1)
    with_body += b"smsc\x00"
    assert decode(with_body) == cls(sequence_number=1, command_status=0x0D, system_id="smsc")
