"""PDU codec unit tests: hand-checked vectors, FieldError for every kind of bad value, helpers."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from smpp_bridge.codec import (
    PDU_TYPES,
    AlertNotification,
    BindTransceiver,
    BindTransmitter,
    CommandId,
    DataSm,
    DeliverSm,
    DeliverSmResp,
    DistributionList,
    EnquireLink,
    EnquireLinkResp,
    GenericNack,
    Outbind,
    Pdu,
    SmeAddress,
    SubmitMulti,
    SubmitMultiResp,
    SubmitSm,
    SubmitSmResp,
    Tag,
    Tlv,
    UnsuccessSme,
    decode,
    encode,
)
from smpp_bridge.codec.constants import RESPONSE_BIT
from smpp_bridge.codec.tlv import TLV_SPECS, resolve_tag
from smpp_bridge.errors import FieldError, LocalProtocolError

# --------------------------------------------------------------------------------------------
# Vectors from smpp-facts.md section 1.1.

VECTORS: list[tuple[str, Pdu, str]] = [
    (
        "enquire_link",
        EnquireLink(sequence_number=7),
        "00 00 00 10  00 00 00 15  00 00 00 00  00 00 00 07",
    ),
    (
        "enquire_link_resp",
        EnquireLinkResp(sequence_number=7),
        "00 00 00 10  80 00 00 15  00 00 00 00  00 00 00 07",
    ),
    (
        "generic_nack",
        GenericNack(sequence_number=9, command_status=0x03),
        "00 00 00 10  80 00 00 00  00 00 00 03  00 00 00 09",
    ),
    (
        "bind_transceiver",
        BindTransceiver(
            sequence_number=1,
            system_id="esme1",
            password="pw",
            system_type="",
            interface_version=0x34,
            addr_ton=0,
            addr_npi=0,
            address_range="",
        ),
        "00 00 00 1e 00 00 00 09 00 00 00 00 00 00 00 01 65 73 6d 65 31 00 70 77 00 00 34 00 00 00",
    ),
    (
        "submit_sm",
        SubmitSm(
            sequence_number=2,
            source_addr_ton=1,
            source_addr_npi=1,
            source_addr="447700900001",
            dest_addr_ton=1,
            dest_addr_npi=1,
            destination_addr="447700900002",
            data_coding=0,
            registered_delivery=1,
            short_message=b"Hi",
        ),
        "00 00 00 3b 00 00 00 04 00 00 00 00 00 00 00 02 00 01 01 34 34 37 37 30 30 39 30"
        " 30 30 30 31 00 01 01 34 34 37 37 30 30 39 30 30 30 30 32 00 00 00 00 00 00 01 00 00"
        " 00 02 48 69",
    ),
]


@pytest.mark.parametrize(("pdu", "wire"), [v[1:] for v in VECTORS], ids=[v[0] for v in VECTORS])
def test_facts_sheet_vectors(pdu: Pdu, wire: str) -> None:
    frame = bytes.fromhex(wire)
    assert encode(pdu) == frame
    assert decode(frame) == pdu


def test_defaults_are_the_null_values() -> None:
    # interface_version defaults to 0x34 (v3.4); everything else to NULL / 0.
    assert encode(BindTransmitter(sequence_number=1)).hex() == (
        "0000001700000002000000000000000100000034000000"
    )
    assert encode(DeliverSmResp(sequence_number=5)).hex() == "0000001180000005000000000000000500"


def test_command_ids_match_the_spec_table() -> None:
    for command_id, cls in PDU_TYPES.items():
        assert cls.command_id == command_id == CommandId[cls.command_name]
        assert bool(command_id & RESPONSE_BIT) == cls.is_response
        if cls.response_type is not None:
            assert cls.response_type.command_id == command_id | RESPONSE_BIT
    # Neither outbind nor alert_notification has a response PDU.
    assert Outbind.response_type is None
    assert AlertNotification.response_type is None


# --------------------------------------------------------------------------------------------
# FieldError names the field.

BAD: list[tuple[str, Callable[[], Pdu], str]] = [
    ("source_addr 21 chars", lambda: SubmitSm(source_addr="1" * 21), "source_addr"),
    ("destination_addr 21", lambda: DeliverSm(destination_addr="1" * 21), "destination_addr"),
    ("data_sm source_addr 65", lambda: DataSm(source_addr="1" * 65), "source_addr"),
    ("system_id 16 chars", lambda: BindTransmitter(system_id="s" * 16), "system_id"),
    ("password 9 chars", lambda: BindTransmitter(password="p" * 9), "password"),
    ("service_type 6 chars", lambda: SubmitSm(service_type="ABCDEF"), "service_type"),
    ("message_id 65 chars", lambda: SubmitSmResp(message_id="m" * 65), "message_id"),
    ("not latin-1", lambda: SubmitSm(source_addr="€"), "source_addr"),
    ("not latin-1 in time", lambda: SubmitSm(validity_period="€" * 16), "validity_period"),
    ("NUL inside", lambda: SubmitSm(service_type="a\x00b"), "service_type"),
    (
        "NUL inside time",
        lambda: SubmitSm(schedule_delivery_time="\x00" * 16),
        "schedule_delivery_time",
    ),
    ("int too big", lambda: SubmitSm(esm_class=256), "esm_class"),
    ("int negative", lambda: SubmitSm(priority_flag=-1), "priority_flag"),
    ("status too big", lambda: SubmitSmResp(command_status=1 << 32), "command_status"),
    ("sequence negative", lambda: EnquireLink(sequence_number=-1), "sequence_number"),
    ("str for int", lambda: SubmitSm(data_coding="8"), "data_coding"),  # type: ignore[arg-type]
    ("float for int", lambda: SubmitSm(data_coding=8.0), "data_coding"),  # type: ignore[arg-type]
    ("int for str", lambda: SubmitSm(source_addr=4477), "source_addr"),  # type: ignore[arg-type]
    ("None for str", lambda: SubmitSm(source_addr=None), "source_addr"),  # type: ignore[arg-type]
    ("str for octets", lambda: SubmitSm(short_message="Hi"), "short_message"),  # type: ignore[arg-type]
    ("short_message 255", lambda: SubmitSm(short_message=b"x" * 255), "short_message"),
    (
        "time 10 chars",
        lambda: SubmitSm(schedule_delivery_time="2405011230"),
        "schedule_delivery_time",
    ),
    ("time 17 chars", lambda: SubmitSm(validity_period="240501123000004+0"), "validity_period"),
    ("tlvs not a tuple", lambda: SubmitSm(tlvs=Tlv(5, b"\x01")), "tlvs"),  # type: ignore[arg-type]
    ("tlv not a Tlv", lambda: SubmitSm(tlvs=((5, b"\x01"),)), "tlvs[0]"),  # type: ignore[arg-type]
    ("tlv tag too big", lambda: SubmitSm(tlvs=(Tlv(0x10000, b""),)), "tlvs[0].tag"),
    ("tlv value str", lambda: EnquireLink(tlvs=(Tlv(5, "x"),)), "tlvs[0].value"),  # type: ignore[arg-type]
    ("tlv value 64 KiB", lambda: DataSm(tlvs=(Tlv(0x424, bytes(65_536)),)), "tlvs[0].value"),
    ("no destinations", lambda: SubmitMulti(dest_addresses=()), "dest_addresses"),
    (
        "destination too long",
        lambda: SubmitMulti(dest_addresses=(SmeAddress("1"), SmeAddress("2" * 21))),
        "dest_addresses[1].destination_addr",
    ),
    (
        "dl_name too long",
        lambda: SubmitMulti(dest_addresses=(DistributionList("d" * 21),)),
        "dest_addresses[0].dl_name",
    ),
    (
        "dest ton too big",
        lambda: SubmitMulti(dest_addresses=(SmeAddress("1", dest_addr_ton=300),)),
        "dest_addresses[0].dest_addr_ton",
    ),
    (
        "error_status_code too big",
        lambda: SubmitMultiResp(unsuccess_smes=(UnsuccessSme("1", 1 << 32),)),
        "unsuccess_smes[0].error_status_code",
    ),
]


@pytest.mark.parametrize(("make", "field"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_field_error_names_the_field(make: Callable[[], Pdu], field: str) -> None:
    pdu = make()
    with pytest.raises(FieldError) as info:
        encode(pdu)
    err = info.value
    assert isinstance(err, LocalProtocolError)
    assert (err.pdu, err.field) == (pdu.command_name, field)
    assert str(err).startswith(f"{pdu.command_name}.{field}:")


def test_limits_are_inclusive() -> None:
    ok: list[Pdu] = [
        SubmitSm(source_addr="1" * 20, service_type="ABCDE", short_message=b"x" * 254),
        DataSm(source_addr="1" * 64, destination_addr="2" * 64),
        BindTransmitter(system_id="s" * 15, password="p" * 8, system_type="t" * 12),
        SubmitSmResp(message_id="m" * 64),
        SubmitSm(source_addr="ÿé", esm_class=255, schedule_delivery_time="000007000000000R"),
        SubmitMulti(dest_addresses=(SmeAddress("1"),) * 255),
        DataSm(tlvs=(Tlv(0x424, bytes(65_535)),)),
    ]
    for pdu in ok:
        assert decode(encode(pdu)) == pdu


def test_bad_sequence_override_names_the_field() -> None:
    for seq in (-1, 1 << 32):
        with pytest.raises(FieldError) as info:
            encode(EnquireLink(sequence_number=1), sequence_number=seq)
        assert info.value.field == "sequence_number"


def test_encode_rejects_what_is_not_a_pdu() -> None:
    with pytest.raises(TypeError, match="not an SMPP PDU"):
        encode(Tlv(5, b""))  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# response() and tlv() helpers.


def test_response_echoes_the_sequence_number() -> None:
    request = SubmitSm(sequence_number=41, source_addr="1")
    assert request.response(message_id="abc") == SubmitSmResp(
        sequence_number=41, command_status=0, message_id="abc"
    )
    assert request.response(0x45) == SubmitSmResp(sequence_number=41, command_status=0x45)
    assert EnquireLink(sequence_number=3).response() == EnquireLinkResp(sequence_number=3)
    assert type(BindTransceiver(sequence_number=1).response()).__name__ == "BindTransceiverResp"


@pytest.mark.parametrize(
    "pdu",
    [Outbind(), AlertNotification(), SubmitSmResp(), GenericNack()],
    ids=["outbind", "alert_notification", "submit_sm_resp", "generic_nack"],
)
def test_no_response_for_responses_outbind_and_alerts(pdu: Pdu) -> None:
    with pytest.raises(TypeError, match="no response"):
        pdu.response()


def test_response_rejects_unknown_fields() -> None:
    with pytest.raises(TypeError):
        EnquireLink(sequence_number=1).response(message_id="x")


def test_tlv_lookup_returns_the_first_match() -> None:
    first = Tlv.make("message_state", 2)
    pdu = DeliverSm(tlvs=(Tlv(0x1400, b"v"), first, Tlv.make("message_state", 5)))
    assert pdu.tlv(Tag.message_state) is first
    assert pdu.tlv(Tag.receipted_message_id) is None
    assert EnquireLink().tlv_list == ()


# --------------------------------------------------------------------------------------------
# Tlv.make / Tlv.typed.


@pytest.mark.parametrize(
    ("name", "value", "raw"),
    [
        ("message_state", 2, b"\x02"),
        ("sar_msg_ref_num", 0x1234, b"\x12\x34"),
        ("qos_time_to_live", 86_400, b"\x00\x01\x51\x80"),
        ("dest_telematics_id", 1, b"\x00\x01"),  # 2 octets...
        ("source_telematics_id", 1, b"\x01"),  # ...but 1 here (sheet 10, quirk 5)
        ("receipted_message_id", "0A1B", b"0A1B\x00"),
        ("receipted_message_id", "", b"\x00"),
        ("additional_status_info_text", "ï", b"\xef\x00"),
        ("network_error_code", b"\x03\x00\x01", b"\x03\x00\x01"),
        ("message_payload", b"", b""),
        ("callback_num", b"\x01\x01\x011234", b"\x01\x01\x011234"),
        ("alert_on_message_delivery", None, b""),
        ("alert_on_message_delivery", 3, b"\x03"),
    ],
)
def test_tlv_make_and_typed(name: str, value: int | str | bytes | None, raw: bytes) -> None:
    tlv = Tlv.make(name, value)
    assert tlv == Tlv(TLV_SPECS[tlv.tag].tag, raw)
    assert tlv.name == name
    assert tlv.typed() == value


def test_tlv_make_by_number_and_aliases() -> None:
    assert Tlv.make(0x0427, 1) == Tlv.make(Tag.message_state, 1) == Tlv(0x0427, b"\x01")
    assert Tlv.make("dest_port", 2948) == Tlv.make("destination_port", 2948)
    assert resolve_tag("0x1400") == resolve_tag("vendor_0x1400") == resolve_tag(0x1400) == 0x1400
    assert resolve_tag("tag_0x4000") == 0x4000


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("message_state", 256),
        ("message_state", -1),
        ("message_state", True),
        ("message_state", "2"),
        ("sar_msg_ref_num", 1 << 16),
        ("message_state", b"\x00\x02"),  # raw bytes are size-checked too
        ("receipted_message_id", "x" * 65),
        ("receipted_message_id", "a\x00b"),
        ("receipted_message_id", "€"),
        ("receipted_message_id", 5),
        ("network_error_code", b"\x03\x00"),
        ("network_error_code", "abc"),
        ("callback_num", b"123"),
        ("alert_on_message_delivery", 256),
        ("alert_on_message_delivery", "x"),
        (0x1400, 5),  # unknown tags need bytes
        (0x10000, b""),
        ("no_such_tlv", b""),
    ],
)
def test_tlv_make_rejects(name: str | int, value: object) -> None:
    with pytest.raises(FieldError):
        Tlv.make(name, value)  # type: ignore[arg-type]


def test_tlv_unknown_and_vendor_tags() -> None:
    # A bytearray is accepted (and frozen to bytes) though the signature says bytes.
    vendor = Tlv.make(0x1401, bytearray(b"\x00\x01"))  # type: ignore[arg-type]
    assert vendor == Tlv(0x1401, b"\x00\x01")
    assert type(vendor.value) is bytes
    assert vendor.typed() == b"\x00\x01"
    assert vendor.name == "vendor_0x1401"
    assert Tlv(0x4000, b"z").name == "tag_0x4000"
    assert Tlv(0x0100, b"").name == "tag_0x0100"


@pytest.mark.parametrize(
    ("tlv", "typed"),
    [
        (Tlv(Tag.message_state, b"\x00\x02"), b"\x00\x02"),  # wrong size: raw
        (Tlv(Tag.message_state, b""), b""),
        (Tlv(Tag.receipted_message_id, b"abc"), "abc"),  # missing NUL tolerated
        (Tlv(Tag.receipted_message_id, b"a\x00c\x00"), b"a\x00c\x00"),  # embedded NUL: raw
        (Tlv(Tag.alert_on_message_delivery, b""), None),
        (Tlv(Tag.alert_on_message_delivery, b"\x01"), 1),
        (Tlv(Tag.alert_on_message_delivery, b"\x01\x02"), b"\x01\x02"),  # malformed: raw
    ],
)
def test_typed_is_lenient_on_received_values(tlv: Tlv, typed: int | str | bytes | None) -> None:
    assert tlv.typed() == typed
