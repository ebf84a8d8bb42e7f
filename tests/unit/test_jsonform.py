"""jsonform: PDUs ⇄ JSON-ready dicts, lossless both ways, with named errors."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smpp_bridge.codec import text as text_codec
from smpp_bridge.codec.jsonform import pdu_from_dict, pdu_to_dict, tlv_from_dict, tlv_to_dict
from smpp_bridge.codec.pdus import (
    PDU_TYPES,
    DataSm,
    DeliverSm,
    DistributionList,
    GenericNack,
    Pdu,
    QuerySm,
    ReplaceSm,
    SmeAddress,
    SubmitMulti,
    SubmitMultiResp,
    SubmitSm,
    UnsuccessSme,
    decode,
    encode,
)
from smpp_bridge.codec.tlv import TLV_SPECS, Tag, Tlv
from smpp_bridge.errors import FieldError
from tests.strategies import pdus, standard_tlvs

FACTS_SUBMIT_SM = bytes.fromhex(
    "0000003b00000004000000000000000200010134343737303039303030303100010134343737303039"
    "303030303200000000000001000000024869"
)

FACTS_SUBMIT_SM_DICT: dict[str, Any] = {
    "command": "submit_sm",
    "command_id": 4,
    "command_status": 0,
    "command_status_name": "ESME_ROK",
    "sequence_number": 2,
    "service_type": "",
    "source_addr_ton": 1,
    "source_addr_npi": 1,
    "source_addr": "447700900001",
    "dest_addr_ton": 1,
    "dest_addr_npi": 1,
    "destination_addr": "447700900002",
    "esm_class": 0,
    "protocol_id": 0,
    "priority_flag": 0,
    "schedule_delivery_time": "",
    "validity_period": "",
    "registered_delivery": 1,
    "replace_if_present_flag": 0,
    "data_coding": 0,
    "sm_default_msg_id": 0,
    "short_message": "4869",
    "tlvs": [],
    "text": "Hi",
}


# --------------------------------------------------------------------------------------------
# Strategies: every PDU type (tests/strategies.py), and the same PDUs again with TLVs that are
# raw octets on any tag, often malformed for a known tag (the "hex" form) or of an unknown tag.

_RAW_TAGS = st.one_of(
    st.sampled_from(sorted(TLV_SPECS)),
    st.sampled_from([0x0000, 0x0001, 0x1400, 0x3FFF, 0xFFFF]),
    st.integers(0, 0xFFFF),
)
_RAW_TLVS = st.lists(
    st.one_of(standard_tlvs(), st.builds(Tlv, _RAW_TAGS, st.binary(max_size=8))), max_size=6
).map(tuple)


def _with_tlvs(pdu: Pdu, tlvs: tuple[Tlv, ...]) -> Pdu:
    return msgspec.structs.replace(pdu, tlvs=tlvs)


PDUS = st.one_of(pdus(), st.builds(_with_tlvs, pdus(), _RAW_TLVS))


def _json_round_trip(d: dict[str, Any]) -> Any:
    return msgspec.json.decode(msgspec.json.encode(d))


# --------------------------------------------------------------------------------------------
# Round trips


def test_facts_sheet_submit_sm_as_dict() -> None:
    pdu = decode(FACTS_SUBMIT_SM)
    d = pdu_to_dict(pdu)
    assert d == FACTS_SUBMIT_SM_DICT
    assert list(d)[:5] == [
        "command",
        "command_id",
        "command_status",
        "command_status_name",
        "sequence_number",
    ]
    assert encode(pdu_from_dict(d)) == FACTS_SUBMIT_SM


@settings(max_examples=400)
@given(PDUS)
def test_dict_round_trip_is_identity_for_every_pdu(pdu: Pdu) -> None:
    d = pdu_to_dict(pdu)
    via_json = _json_round_trip(d)
    assert via_json == d  # only JSON values in the dict
    back = pdu_from_dict(via_json)
    assert back == pdu
    assert type(back) is type(pdu)
    assert pdu_to_dict(back) == d


@settings(max_examples=300)
@given(PDUS)
def test_wire_bytes_survive_json_byte_for_byte(pdu: Pdu) -> None:
    wire = encode(pdu)
    d = _json_round_trip(pdu_to_dict(decode(wire)))
    assert encode(pdu_from_dict(d)) == wire


@pytest.mark.parametrize("cls", list(PDU_TYPES.values()), ids=lambda c: c.command_name)
def test_every_pdu_type_round_trips_with_defaults(cls: type[Pdu]) -> None:
    d = pdu_to_dict(cls(sequence_number=7))
    assert d["command"] == cls.command_name
    assert d["command_id"] == cls.command_id
    assert pdu_from_dict(_json_round_trip(d)) == cls(sequence_number=7)


def test_pdu_decoded_but_not_encodable_still_round_trips() -> None:
    # number_of_dests 0 decodes, but our encoder refuses it: jsonform must not care.
    pdu = SubmitMulti(sequence_number=1)
    assert pdu_from_dict(_json_round_trip(pdu_to_dict(pdu))) == pdu
    with pytest.raises(FieldError, match="dest_addresses"):
        encode(pdu)


# --------------------------------------------------------------------------------------------
# TLVs


@pytest.mark.parametrize(
    ("tlv", "expected"),
    [
        (Tlv.make("message_state", 2), {"tag": "message_state", "value": 2}),
        (Tlv.make("receipted_message_id", "abc"), {"tag": "receipted_message_id", "value": "abc"}),
        (Tlv.make("message_payload", b"\x00\xff"), {"tag": "message_payload", "value": "00ff"}),
        (
            Tlv.make("alert_on_message_delivery", None),
            {"tag": "alert_on_message_delivery", "value": None},
        ),
        (
            Tlv.make("alert_on_message_delivery", 1),
            {"tag": "alert_on_message_delivery", "value": 1},
        ),
        (Tlv(0x1400, b"\x01\x02"), {"tag": "vendor_0x1400", "value": "0102"}),
        (Tlv(0x0001, b""), {"tag": "tag_0x0001", "value": ""}),
        # Malformed for their tag: kept raw.
        (Tlv(Tag.message_state, b"\x00\x02"), {"tag": "message_state", "hex": "0002"}),
        (Tlv(Tag.receipted_message_id, b"abc"), {"tag": "receipted_message_id", "hex": "616263"}),
        (
            Tlv(Tag.receipted_message_id, b"a\x00b\x00"),
            {"tag": "receipted_message_id", "hex": "61006200"},
        ),
        (Tlv(Tag.network_error_code, b"\x01"), {"tag": "network_error_code", "hex": "01"}),
        (
            Tlv(Tag.alert_on_message_delivery, b"\x01\x02"),
            {"tag": "alert_on_message_delivery", "hex": "0102"},
        ),
    ],
)
def test_tlv_to_dict_and_back(tlv: Tlv, expected: dict[str, Any]) -> None:
    assert tlv_to_dict(tlv) == expected
    assert tlv_from_dict(expected) == tlv


def test_tlvs_keep_order_and_repeats() -> None:
    tlvs = (
        Tlv(0x1401, b"\x01"),
        Tlv.make("message_state", 2),
        Tlv(0x1401, b"\x02"),
        Tlv.make("message_state", 3),
    )
    d = pdu_to_dict(DeliverSm(tlvs=tlvs))
    assert [t["tag"] for t in d["tlvs"]] == [
        "vendor_0x1401",
        "message_state",
        "vendor_0x1401",
        "message_state",
    ]
    assert pdu_from_dict(d).tlv_list == tlvs


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        ({"tag": "dest_port", "value": 2948}, Tlv(Tag.destination_port, b"\x0b\x84")),
        ({"tag": 0x0427, "value": 5}, Tlv(Tag.message_state, b"\x05")),
        ({"tag": "0x1400", "value": "AB"}, Tlv(0x1400, b"\xab")),
        ({"tag": "message_state", "hex": "ffff"}, Tlv(Tag.message_state, b"\xff\xff")),
    ],
)
def test_tlv_from_dict_accepts_tag_spellings(obj: dict[str, Any], expected: Tlv) -> None:
    assert tlv_from_dict(obj) == expected


@pytest.mark.parametrize(
    ("obj", "field", "reason"),
    [
        ("message_state", "tlvs[0]", "expected an object, got a string"),
        ({"value": 1}, "tlvs[0].tag", "missing"),
        ({"tag": True, "value": 1}, "tlvs[0].tag", "expected a name or a number"),
        ({"tag": "no_such_tag", "value": 1}, "tlvs[0].tag", "unknown TLV name"),
        ({"tag": 0x10000, "value": "00"}, "tlvs[0].tag", "within 0..0xFFFF"),
        ({"tag": "message_state"}, "tlvs[0]", 'exactly one of "value"'),
        ({"tag": "message_state", "value": 1, "hex": "01"}, "tlvs[0]", 'exactly one of "value"'),
        ({"tag": "message_state", "value": 1, "valu": 2}, "tlvs[0].valu", "did you mean 'value'"),
        ({"tag": "message_state", "value": "2"}, "tlvs[0].value", "expected an integer"),
        ({"tag": "message_state", "value": 256}, "tlvs[0].value", "does not fit in 1 octet"),
        ({"tag": "receipted_message_id", "value": 7}, "tlvs[0].value", "expected a string"),
        ({"tag": "receipted_message_id", "value": "€"}, "tlvs[0].value", "latin-1"),
        ({"tag": "network_error_code", "value": "01"}, "tlvs[0].value", "allowed 3..3"),
        ({"tag": "message_payload", "value": "xyz"}, "tlvs[0].value", "not a hex string"),
        ({"tag": "vendor_0x1400", "value": 5}, "tlvs[0].value", "expected a hex string"),
        ({"tag": "message_state", "hex": "0g"}, "tlvs[0].hex", "not a hex string"),
        ({"tag": "alert_on_message_delivery", "value": "x"}, "tlvs[0].value", "expected an int"),
    ],
)
def test_tlv_errors_name_the_field(obj: object, field: str, reason: str) -> None:
    with pytest.raises(FieldError) as info:
        pdu_from_dict({"command": "deliver_sm", "tlvs": [obj]})
    assert info.value.pdu == "deliver_sm"
    assert info.value.field == field
    assert reason in info.value.reason


# --------------------------------------------------------------------------------------------
# Header and mandatory fields


def test_command_id_alone_picks_the_pdu_type() -> None:
    assert type(pdu_from_dict({"command_id": 0x80000015})).__name__ == "EnquireLinkResp"


def test_missing_fields_take_their_defaults() -> None:
    assert pdu_from_dict({"command": "submit_sm"}) == SubmitSm()


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (88, 0x58),
        ("ESME_RTHROTTLED", 0x58),
        ("0x00000058", 0x58),
        ("VENDOR_0x00000400", 0x400),
    ],
)
def test_command_status_by_number_or_name(status: object, expected: int) -> None:
    pdu = pdu_from_dict({"command": "generic_nack", "command_status": status})
    assert pdu == GenericNack(command_status=expected)


def test_vendor_status_name_round_trips() -> None:
    d = pdu_to_dict(GenericNack(command_status=0x400))
    assert d["command_status_name"] == "VENDOR_0x00000400"
    assert pdu_from_dict({**d, "command_status": d["command_status_name"]}).command_status == 0x400


def test_derived_keys_are_ignored() -> None:
    d = {
        **FACTS_SUBMIT_SM_DICT,
        "text": "something else",
        "udh": "zz",
        "command_status_name": "ESME_RSYSERR",
    }
    assert encode(pdu_from_dict(d)) == FACTS_SUBMIT_SM


@pytest.mark.parametrize(
    ("d", "pdu", "field", "reason"),
    [
        ([1, 2], "pdu", "(root)", "expected a JSON object, got an array"),
        ({}, "pdu", "command", "missing"),
        ({"command": "submt_sm"}, "pdu", "command", "did you mean 'submit_sm'"),
        ({"command": 4}, "pdu", "command", "expected a PDU name"),
        ({"command_id": "4"}, "pdu", "command_id", "expected an integer"),
        ({"command_id": 0x1234}, "pdu", "command_id", "unknown command_id 0x00001234"),
        ({"command": "deliver_sm", "command_id": 4}, "deliver_sm", "command_id", "is not"),
        ({"command": "submit_sm", "shortmessage": ""}, "submit_sm", "shortmessage", "did you mean"),
        ({"command": "submit_sm", "a": 1, "b": 2}, "submit_sm", "a", "unknown fields 'a', 'b'"),
        ({"command": "query_sm", "text": "hi"}, "query_sm", "text", "unknown field"),
        ({"command": "submit_sm", "esm_class": True}, "submit_sm", "esm_class", "got a boolean"),
        ({"command": "submit_sm", "esm_class": 1.0}, "submit_sm", "esm_class", "got a number"),
        ({"command": "submit_sm", "source_addr": None}, "submit_sm", "source_addr", "got null"),
        ({"command": "submit_sm", "source_addr": b"1"}, "submit_sm", "source_addr", "got bytes"),
        ({"command": "submit_sm", "short_message": 12}, "submit_sm", "short_message", "hex"),
        ({"command": "submit_sm", "short_message": "abc"}, "submit_sm", "short_message", "hex"),
        ({"command": "submit_sm", "sequence_number": "1"}, "submit_sm", "sequence_number", "int"),
        (
            {"command": "submit_sm", "command_status": "NOPE"},
            "submit_sm",
            "command_status",
            "unknown",
        ),
        (
            {"command": "submit_sm", "command_status": "0xZZ"},
            "submit_sm",
            "command_status",
            "unknown",
        ),
        (
            {"command": "submit_sm", "tlvs": {}},
            "submit_sm",
            "tlvs",
            "expected an array, got an object",
        ),
    ],
)
def test_pdu_errors_name_the_field(d: object, pdu: str, field: str, reason: str) -> None:
    with pytest.raises(FieldError) as info:
        pdu_from_dict(d)
    assert (info.value.pdu, info.value.field) == (pdu, field)
    assert reason in info.value.reason


def test_submit_multi_destinations() -> None:
    pdu = SubmitMulti(
        dest_addresses=(SmeAddress("447700900001", 1, 1), DistributionList("friends")),
        short_message=b"Hi",
    )
    d = pdu_to_dict(pdu)
    assert d["dest_addresses"] == [
        {
            "dest_flag": 1,
            "dest_addr_ton": 1,
            "dest_addr_npi": 1,
            "destination_addr": "447700900001",
        },
        {"dest_flag": 2, "dl_name": "friends"},
    ]
    assert pdu_from_dict(d) == pdu
    # A hand-written destination may leave the flag out: the keys tell.
    short = {
        "command": "submit_multi",
        "dest_addresses": [{"destination_addr": "1"}, {"dl_name": "x"}],
    }
    assert pdu_from_dict(short).dest_addresses == (SmeAddress("1"), DistributionList("x"))  # type: ignore[attr-defined]


def test_submit_multi_resp_unsuccess_smes() -> None:
    pdu = SubmitMultiResp(
        message_id="m1", unsuccess_smes=(UnsuccessSme("447700900001", 0x0B, 1, 1),)
    )
    d = pdu_to_dict(pdu)
    assert d["unsuccess_smes"] == [
        {
            "dest_addr_ton": 1,
            "dest_addr_npi": 1,
            "destination_addr": "447700900001",
            "error_status_code": 11,
        }
    ]
    assert pdu_from_dict(d) == pdu
    named = {
        "command": "submit_multi_resp",
        "unsuccess_smes": [{"error_status_code": "ESME_RINVDSTADR"}],
    }
    assert pdu_from_dict(named).unsuccess_smes == (UnsuccessSme("", 0x0B),)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("item", "field", "reason"),
    [
        ("1234", "dest_addresses[0]", "expected an object"),
        ({"dest_flag": 3}, "dest_addresses[0].dest_flag", "neither 1 (SME) nor 2"),
        ({"dest_flag": True}, "dest_addresses[0].dest_flag", "neither 1 (SME) nor 2"),
        (
            {"dest_flag": 2, "destination_addr": "1"},
            "dest_addresses[0].destination_addr",
            "unknown",
        ),
        ({"dest_flag": 1, "dl_name": "x"}, "dest_addresses[0].dl_name", "unknown"),
        ({"destination_addr": 1}, "dest_addresses[0].destination_addr", "expected a string"),
        ({"dest_addr_ton": "1"}, "dest_addresses[0].dest_addr_ton", "expected an integer"),
    ],
)
def test_destination_errors(item: object, field: str, reason: str) -> None:
    with pytest.raises(FieldError) as info:
        pdu_from_dict({"command": "submit_multi", "dest_addresses": [item]})
    assert (info.value.pdu, info.value.field) == ("submit_multi", field)
    assert reason in info.value.reason


@pytest.mark.parametrize(
    ("d", "field"),
    [
        ({"dest_addresses": "x"}, "dest_addresses"),
        ({"unsuccess_smes": [1]}, "unsuccess_smes[0]"),
        ({"unsuccess_smes": [{"error_status": 1}]}, "unsuccess_smes[0].error_status"),
        ({"unsuccess_smes": [{"error_status_code": "BAD"}]}, "unsuccess_smes[0].error_status_code"),
    ],
)
def test_structured_field_errors(d: dict[str, Any], field: str) -> None:
    command = "submit_multi" if "dest_addresses" in d else "submit_multi_resp"
    with pytest.raises(FieldError) as info:
        pdu_from_dict({"command": command, **d})
    assert info.value.field == field


# --------------------------------------------------------------------------------------------
# Text


def test_udh_is_shown_and_removed_from_text() -> None:
    udh = bytes.fromhex("050003a70201")
    pdu = DeliverSm(esm_class=0x40, short_message=udh + b"Hello")
    d = pdu_to_dict(pdu)
    assert d["udh"] == "050003a70201"
    assert d["text"] == "Hello"
    assert pdu_from_dict(d) == pdu


def test_no_udh_key_without_udhi() -> None:
    d = pdu_to_dict(SubmitSm(short_message=b"\x05\x00\x03\x01\x02\x01"))
    assert "udh" not in d


def test_ucs2_text() -> None:
    pdu = SubmitSm(data_coding=8, short_message="Ωμέγα 🙂".encode("utf-16-be"))
    assert pdu_to_dict(pdu)["text"] == "Ωμέγα 🙂"


def test_data_coding_3_depends_on_the_profile() -> None:
    pdu = SubmitSm(data_coding=3, short_message=b"\xa4")
    assert pdu_to_dict(pdu, text_codec.SPEC_PROFILE)["text"] == "¤"
    assert pdu_to_dict(pdu, text_codec.REFERENCE_PROFILE)["text"] == "€"


def test_data_sm_text_comes_from_message_payload() -> None:
    pdu = DataSm(tlvs=(Tlv.make("message_payload", b"Hello"),))
    assert pdu_to_dict(pdu)["text"] == "Hello"


def test_empty_short_message_falls_back_to_message_payload() -> None:
    pdu = SubmitSm(tlvs=(Tlv.make("message_payload", b"Long text"),))
    assert pdu_to_dict(pdu)["text"] == "Long text"


def test_replace_sm_text_reads_as_the_default_alphabet() -> None:
    assert pdu_to_dict(ReplaceSm(short_message=b"New"))["text"] == "New"


def test_binary_body_has_no_text_but_keeps_its_udh() -> None:
    pdu = SubmitSm(esm_class=0x40, data_coding=4, short_message=bytes.fromhex("0605040b8423f0ff00"))
    d = pdu_to_dict(pdu)
    assert "text" not in d
    assert d["udh"] == "0605040b8423f0"


def test_non_message_pdus_have_no_text() -> None:
    d = pdu_to_dict(QuerySm(message_id="abc"))
    assert "text" not in d
    assert "udh" not in d
