"""``receipt_of``, the pool's receipt path, reads the same receipt as ``parse_delivery``."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smpp_bridge.client import parse_delivery, receipt_of
from smpp_bridge.codec.gsm7 import encode_gsm7, pack_septets
from smpp_bridge.codec.pdus import DataSm, DeliverSm
from smpp_bridge.codec.receipt import format_receipt
from smpp_bridge.codec.text import REFERENCE_PROFILE, SPEC_PROFILE, EncodingProfile
from smpp_bridge.codec.tlv import Tag, Tlv

PACKED = EncodingProfile(
    name="packed", encodings={"gsm7": 0}, decodings={0: "gsm7"}, gsm7_packed=True
)
TEXT = format_receipt("0A1B2C", "DELIVRD", err="000", text="hello")


def receipt_pdus() -> list[DeliverSm | DataSm]:
    body = encode_gsm7(TEXT)
    rid = Tlv(Tag.receipted_message_id, b"0A1B2C\x00")
    state = Tlv(Tag.message_state, bytes((5,)))
    return [
        DeliverSm(esm_class=0x04, short_message=body),
        DeliverSm(esm_class=0x04, short_message=body, tlvs=(rid, state)),
        DeliverSm(esm_class=0x04, short_message=b"", tlvs=(Tlv(Tag.message_payload, body),)),
        DeliverSm(esm_class=0x04, data_coding=8, short_message=TEXT.encode("utf-16-be")),
        DeliverSm(esm_class=0x04, data_coding=3, short_message=TEXT.encode("latin-1")),
        # A UDH in a receipt, well formed and not.
        DeliverSm(esm_class=0x44, short_message=b"\x00" + body),
        DeliverSm(esm_class=0x44, short_message=b"\x09\x00" + body),
        # Intermediate, and a receipt told only by its TLV.
        DeliverSm(esm_class=0x20, short_message=body),
        DeliverSm(esm_class=0x00, short_message=b"no text fields", tlvs=(rid,)),
        # No id anywhere: not a usable receipt.
        DeliverSm(esm_class=0x04, short_message=b"stat:DELIVRD err:000"),
        # Not receipts.
        DeliverSm(esm_class=0x00, short_message=b"hello"),
        DataSm(esm_class=0x00, tlvs=(Tlv(Tag.message_payload, b"hi"),)),
        DataSm(esm_class=0x04, tlvs=(Tlv(Tag.message_payload, body), rid)),
    ]


@pytest.mark.parametrize("profile", [SPEC_PROFILE, REFERENCE_PROFILE])
@pytest.mark.parametrize("pdu", receipt_pdus())
def test_receipt_of_reads_what_parse_delivery_reads(
    pdu: DeliverSm | DataSm, profile: EncodingProfile
) -> None:
    assert receipt_of(pdu, profile) == parse_delivery(pdu, profile).receipt


def test_receipt_of_packed_gsm7() -> None:
    pdu = DeliverSm(esm_class=0x04, short_message=pack_septets(encode_gsm7(TEXT)))
    receipt = receipt_of(pdu, PACKED)
    assert receipt == parse_delivery(pdu, PACKED).receipt
    assert receipt is not None and receipt.message_id == "0A1B2C"


@settings(max_examples=300, deadline=None)
@given(
    esm_class=st.sampled_from([0x00, 0x04, 0x08, 0x20, 0x40, 0x44, 0x64]),
    data_coding=st.sampled_from([0, 1, 2, 3, 4, 8, 0xF0, 0x11]),
    body=st.one_of(
        st.binary(max_size=160),
        st.sampled_from([TEXT.encode("ascii"), b"id:7 stat:UNDELIV", b"\x05\x00\x03\x01\x02\x01x"]),
    ),
    with_id=st.booleans(),
)
def test_receipt_of_agrees_on_any_body(
    esm_class: int, data_coding: int, body: bytes, with_id: bool
) -> None:
    tlvs = (Tlv(Tag.receipted_message_id, b"99\x00"),) if with_id else ()
    pdu = DeliverSm(esm_class=esm_class, data_coding=data_coding, short_message=body, tlvs=tlvs)
    for profile in (SPEC_PROFILE, PACKED):
        assert receipt_of(pdu, profile) == parse_delivery(pdu, profile).receipt
