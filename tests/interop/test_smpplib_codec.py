"""Differential tests against smpplib, an independent SMPP implementation.

Both directions, for every PDU type smpplib supports: what we encode smpplib parses to the same
field values, and what smpplib generates we decode to the same fields, optional parameters
included. Where smpplib deviates from the specification the test does not copy it: each
deviation has its own test asserting smpplib's (wrong) behaviour, with the spec rule it breaks,
and ``test_smpplib_tlv_table_deviations_are_all_documented`` pins the list so an smpplib upgrade
that fixes or adds one is noticed.

smpplib API notes: ``smpplib.command.factory(name, client=None, sequence=n, **fields)`` builds a
PDU but *ignores* the sequence keyword (it only suppresses a call to the missing client), so the
helper sets ``.sequence`` afterwards; parsed C-strings come back as ``bytes``.
"""

from __future__ import annotations

import logging
import struct
from dataclasses import dataclass
from typing import Any, Literal

import msgspec
import pytest
import smpplib.command
import smpplib.consts
import smpplib.exceptions
import smpplib.smpp
from hypothesis import given, settings
from hypothesis import strategies as st
from smpplib.ptypes import ostr

from smpp_bridge.codec import (
    AlertNotification,
    BindTransceiver,
    BindTransceiverResp,
    DataSm,
    DataSmResp,
    DeliverSm,
    Pdu,
    QuerySmResp,
    SubmitSm,
    SubmitSmResp,
    Tag,
    Tlv,
    decode,
    encode,
)
from smpp_bridge.codec.pdus import CStr, Int, ShortMessage, Time, layout
from smpp_bridge.codec.tlv import TLV_SPECS, TlvSpec
from smpp_bridge.errors import FieldError, RemoteProtocolError
from tests.strategies import (
    ALL_PDU_TYPES,
    COMMAND_STATUSES,
    LATIN1_NO_NUL,
    SEQUENCE_NUMBERS,
    c_strings,
    pdus_of,
    short_messages,
    smpp_times,
    uints,
)

# --------------------------------------------------------------------------------------------
# smpplib adapters.


def sm_make(name: str, seq: int, **fields: Any) -> Any:
    """An smpplib PDU with the given fields (see the module docstring for ``sequence``)."""
    pdu = smpplib.command.factory(name, client=None, sequence=seq, **fields)
    pdu.sequence = seq
    return pdu


def sm_parse(frame: bytes, **options: Any) -> Any:
    return smpplib.smpp.parse_pdu(frame, client=None, sequence=0, **options)


def _smpplib_supports(name: str) -> bool:
    try:
        smpplib.command.factory(name, client=None, sequence=1)
    except smpplib.exceptions.UnknownCommandError:
        return False
    return True


SUPPORTED = [cls for cls in ALL_PDU_TYPES if _smpplib_supports(cls.command_name)]
SUPPORTED_IDS = [cls.command_name for cls in SUPPORTED]


@dataclass(frozen=True)
class TlvMapping:
    """One optional parameter as both implementations see it, and how their values compare."""

    name: str
    spec: TlvSpec
    param: Any  # smpplib.command.Param
    # int: both integers. int-octets: our octet string is smpplib's big-endian integer
    # (its_session_info, ms_validity). cstr: smpplib returns the octets without the NUL.
    compare: Literal["int", "int-octets", "cstr", "octets"]


def _tlv_mappings(name: str) -> tuple[list[TlvMapping], set[str]]:
    """The TLVs smpplib's class for ``name`` types like the spec does, and those it does not."""
    probe = sm_make(name, 1)
    agree: list[TlvMapping] = []
    disagree: set[str] = set()
    for field in probe.params_order:
        if not probe.field_is_optional(field):
            continue
        param = probe.params[field]
        spec = TLV_SPECS[smpplib.consts.OPTIONAL_PARAMS[field]]
        size: int = getattr(param, "size", -1)
        compare: Literal["int", "int-octets", "cstr", "octets"] | None = None
        if param.type is int and spec.kind == "int" and size == spec.min_size:
            compare = "int"
        elif param.type is int and spec.kind == "octets" and spec.min_size <= size <= spec.max_size:
            compare = "int-octets"
        elif param.type is str and spec.kind == "cstr":
            compare = "cstr"
        elif param.type is ostr and spec.kind == "octets":
            compare = "octets"
        if compare is None:
            disagree.add(field)
        else:
            agree.append(TlvMapping(field, spec, param, compare))
    return agree, disagree


MAPPINGS = {cls.command_name: _tlv_mappings(cls.command_name)[0] for cls in SUPPORTED}

# Every optional parameter smpplib types differently from the spec (sheet 4.2); each one has a
# test below showing the consequence on the wire.
DOCUMENTED_TLV_DEVIATIONS = {
    ("submit_sm", "source_addr_subunit"),  # Int 2 instead of Int 1
    ("data_sm", "source_telematics_id"),  # Int 2 instead of Int 1
    ("submit_sm", "source_subaddress"),  # C-string instead of octets
    ("submit_sm", "dest_subaddress"),
    ("deliver_sm", "source_subaddress"),
    ("deliver_sm", "dest_subaddress"),
    ("data_sm", "source_subaddress"),
    ("data_sm", "dest_subaddress"),
    ("data_sm", "callback_num_atag"),
    ("data_sm_resp", "delivery_failure_reason"),  # C-string instead of Int 1
    ("data_sm_resp", "network_error_code"),  # C-string instead of 3 octets
    ("submit_sm", "alert_on_message_delivery"),  # flag: never generated
    ("data_sm", "alert_on_message_delivery"),
}


def test_smpplib_supports_the_pdus_we_expect() -> None:
    # Guards against a vacuous differential test (say, smpplib failing to build PDUs).
    assert len(SUPPORTED) == 20
    assert {"submit_sm", "deliver_sm", "data_sm", "bind_transceiver_resp"} <= set(SUPPORTED_IDS)
    assert not _smpplib_supports("submit_multi")
    for cls in SUPPORTED:
        params = sm_make(cls.command_name, 1).params_order
        assert {name for name, _ in layout(cls)} <= set(params)


def test_smpplib_tlv_table_deviations_are_all_documented() -> None:
    found = {(cls.command_name, f) for cls in SUPPORTED for f in _tlv_mappings(cls.command_name)[1]}
    assert found == DOCUMENTED_TLV_DEVIATIONS


# --------------------------------------------------------------------------------------------
# Comparisons.


def assert_smpplib_sees(ours: Pdu, theirs: Any) -> None:
    """smpplib's parse of our frame carries exactly our values."""
    assert theirs.command == ours.command_name
    assert (theirs.sequence, theirs.status) == (ours.sequence_number, ours.command_status)
    for name, kind in layout(type(ours)):
        value = getattr(ours, name)
        got = getattr(theirs, name)
        if isinstance(kind, CStr):
            assert got == value.encode("latin-1"), name
        elif isinstance(kind, Int):
            assert got == value, name
        else:
            assert isinstance(kind, ShortMessage)
            assert (got or b"") == value
            assert theirs.sm_length == len(value)
    by_tag = {m.spec.tag: m for m in MAPPINGS[ours.command_name]}
    for tlv in ours.tlv_list:
        m = by_tag[tlv.tag]
        got = getattr(theirs, m.name)
        if m.compare == "int":
            assert got == tlv.typed(), m.name
        elif m.compare == "int-octets":
            assert got == int.from_bytes(tlv.value, "big"), m.name
        elif m.compare == "cstr":
            assert got == tlv.value[:-1], m.name
        else:
            assert got == tlv.value, m.name


def assert_we_see(theirs_fields: dict[str, Any], tlv_fields: dict[str, Any], ours: Pdu) -> None:
    """Our decode of smpplib's frame carries exactly the values smpplib was given."""
    for name, _ in layout(type(ours)):
        assert getattr(ours, name) == theirs_fields[name], name
    mappings = {m.name: m for m in MAPPINGS[ours.command_name]}
    got = {t.tag: t for t in ours.tlv_list}
    assert len(got) == len(ours.tlv_list) == len(tlv_fields)
    for name, value in tlv_fields.items():
        m = mappings[name]
        tlv = got[m.spec.tag]
        if m.compare == "int-octets":
            assert int.from_bytes(tlv.value, "big") == value, name
        elif m.compare == "octets":
            assert tlv.value == value, name
        else:
            assert tlv.typed() == value, name


# --------------------------------------------------------------------------------------------
# Our frames, parsed by smpplib.


def _our_tlv(m: TlvMapping) -> st.SearchStrategy[Tlv]:
    tag = m.spec.tag
    if m.compare == "int":
        return uints(m.spec.min_size).map(lambda v: Tlv.make(tag, v))
    if m.compare == "int-octets":
        return st.binary(min_size=m.param.size, max_size=m.param.size).map(lambda v: Tlv(tag, v))
    if m.compare == "cstr":
        return c_strings(m.spec.max_size).map(lambda v: Tlv.make(tag, v))
    top = max(m.spec.min_size, min(m.spec.max_size, 300))
    return st.binary(min_size=m.spec.min_size, max_size=top).map(lambda v: Tlv(tag, v))


@st.composite
def ours_for_smpplib(draw: st.DrawFn, cls: type[Pdu]) -> Pdu:
    """Any valid PDU of ``cls``, TLVs limited to those smpplib types correctly (once each)."""
    pdu = draw(pdus_of(cls))
    mappings = MAPPINGS[cls.command_name]
    chosen = (
        draw(st.lists(st.sampled_from(mappings), unique_by=lambda m: m.name, max_size=6))
        if mappings
        else []
    )
    tlvs = tuple(draw(_our_tlv(m)) for m in chosen)
    return msgspec.structs.replace(pdu, tlvs=tlvs)


@pytest.mark.parametrize("cls", SUPPORTED, ids=SUPPORTED_IDS)
@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_smpplib_parses_what_we_encode(cls: type[Pdu], data: st.DataObject) -> None:
    ours = data.draw(ours_for_smpplib(cls))
    assert_smpplib_sees(ours, sm_parse(encode(ours)))


# --------------------------------------------------------------------------------------------
# smpplib's frames, decoded by us.

ASCII_NO_NUL = st.characters(min_codepoint=0x01, max_codepoint=0x7F)


def _their_tlv_value(m: TlvMapping) -> st.SearchStrategy[Any]:
    # smpplib omits empty strings/octets and writes TLV text as UTF-8 (see the deviations).
    if m.compare == "int":
        return uints(m.spec.min_size)
    if m.compare == "int-octets":
        return uints(m.param.size)
    if m.compare == "cstr":
        return st.text(ASCII_NO_NUL, min_size=1, max_size=m.spec.max_size - 1)
    top = max(1, m.spec.min_size, min(m.spec.max_size, 300))
    return st.binary(min_size=max(1, m.spec.min_size), max_size=top)


@st.composite
def smpplib_fields(draw: st.DrawFn, cls: type[Pdu]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(mandatory fields, optional parameters) for smpplib to generate a ``cls`` PDU from."""
    params = sm_make(cls.command_name, 1).params
    fields: dict[str, Any] = {}
    for name, kind in layout(cls):
        if isinstance(kind, Time):
            fields[name] = draw(smpp_times())
        elif isinstance(kind, CStr):
            # smpplib's own maximum, where smaller than the spec's, is a documented deviation.
            limit = min(kind.max, params[name].max) - 1
            min_size = 1 if cls.command_name == "query_sm" and name == "message_id" else 0
            fields[name] = draw(st.text(LATIN1_NO_NUL, min_size=min_size, max_size=limit))
        elif isinstance(kind, Int):
            fields[name] = draw(uints(kind.size))
        else:
            fields[name] = draw(short_messages())
    if "interface_version" in fields:
        fields["interface_version"] = 0x34  # smpplib forces it (a documented deviation)
    mappings = MAPPINGS[cls.command_name]
    chosen = (
        draw(st.lists(st.sampled_from(mappings), unique_by=lambda m: m.name, max_size=6))
        if mappings
        else []
    )
    tlv_fields = {m.name: draw(_their_tlv_value(m)) for m in chosen}
    if "message_payload" in tlv_fields and "short_message" in fields:
        fields["short_message"] = b""  # never both (sheet 8); smpplib raises otherwise
    return fields, tlv_fields


@pytest.mark.parametrize("cls", SUPPORTED, ids=SUPPORTED_IDS)
@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_we_decode_what_smpplib_generates(cls: type[Pdu], data: st.DataObject) -> None:
    fields, tlv_fields = data.draw(smpplib_fields(cls))
    seq = data.draw(SEQUENCE_NUMBERS)
    status = data.draw(COMMAND_STATUSES) if cls.is_response else 0
    frame = sm_make(cls.command_name, seq, status=status, **fields, **tlv_fields).generate()
    ours = decode(frame)
    assert type(ours) is cls
    assert (ours.sequence_number, ours.command_status) == (seq, status)
    assert_we_see(fields, tlv_fields, ours)
    assert encode(ours) == frame  # and we would have written the very same octets


# --------------------------------------------------------------------------------------------
# Hand-picked cases, byte for byte: smpplib and we write identical frames.

RECEIPT = "id:0123456789 sub:001 dlvrd:001 submit date:2405011230 done date:2405011231 stat:DELIVRD"
BYTE_FOR_BYTE: list[tuple[str, Pdu, dict[str, Any]]] = [
    (
        "delivery receipt",
        DeliverSm(
            sequence_number=12,
            source_addr_ton=1,
            source_addr_npi=1,
            source_addr="447700900002",
            destination_addr="447700900001",
            esm_class=0x04,
            short_message=RECEIPT.encode(),
            tlvs=(
                Tlv.make("network_error_code", b"\x03\x00\x00"),
                Tlv.make("message_state", 2),
                Tlv.make("receipted_message_id", "0123456789"),
            ),
        ),
        {
            "source_addr_ton": 1,
            "source_addr_npi": 1,
            "source_addr": "447700900002",
            "destination_addr": "447700900001",
            "esm_class": 0x04,
            "short_message": RECEIPT.encode(),
            "network_error_code": b"\x03\x00\x00",
            "message_state": 2,
            "receipted_message_id": "0123456789",
        },
    ),
    (
        "concatenated part via SAR",
        SubmitSm(
            sequence_number=3,
            destination_addr="447700900002",
            data_coding=8,
            short_message="Hé".encode("utf-16-be"),
            tlvs=(
                Tlv.make("sar_msg_ref_num", 0xBEEF),
                Tlv.make("sar_total_segments", 2),
                Tlv.make("sar_segment_seqnum", 1),
            ),
        ),
        {
            "destination_addr": "447700900002",
            "data_coding": 8,
            "short_message": "Hé".encode("utf-16-be"),
            "sar_msg_ref_num": 0xBEEF,
            "sar_total_segments": 2,
            "sar_segment_seqnum": 1,
        },
    ),
    (
        "data_sm with message_payload",
        DataSm(
            sequence_number=99,
            source_addr="sender",
            destination_addr="447700900002",
            tlvs=(Tlv.make("message_payload", bytes(range(256)) * 4),),
        ),
        {
            "source_addr": "sender",
            "destination_addr": "447700900002",
            "message_payload": bytes(range(256)) * 4,
        },
    ),
    (
        "bind_transceiver_resp",
        BindTransceiverResp(
            sequence_number=1, system_id="SMSC", tlvs=(Tlv.make("sc_interface_version", 0x34),)
        ),
        {"system_id": "SMSC", "sc_interface_version": 0x34},
    ),
    (
        "query_sm_resp",
        QuerySmResp(
            sequence_number=4,
            message_id="abc",
            final_date="240501123000004+",
            message_state=2,
            error_code=0,
        ),
        {
            "message_id": "abc",
            "final_date": "240501123000004+",
            "message_state": 2,
            "error_code": 0,
        },
    ),
    (
        "submit_sm_resp error",
        SubmitSmResp(sequence_number=5, command_status=0x45),
        {"status": 0x45},
    ),
]


@pytest.mark.parametrize(
    ("ours", "theirs"), [c[1:] for c in BYTE_FOR_BYTE], ids=[c[0] for c in BYTE_FOR_BYTE]
)
def test_byte_for_byte(ours: Pdu, theirs: dict[str, Any]) -> None:
    frame = sm_make(ours.command_name, ours.sequence_number, **theirs).generate()
    assert encode(ours) == frame
    assert decode(frame) == ours
    assert_smpplib_sees(ours, sm_parse(frame))


# --------------------------------------------------------------------------------------------
# Where smpplib is wrong. Each test asserts smpplib's behaviour and says which rule it breaks.


def test_deviation_overlong_strings_silently_truncated() -> None:
    # Sheet 3.1/3.2: source_addr is "Var. max 21" octets including the NUL; a longer value is
    # invalid and must be refused, not cut (the message would go to a different address).
    theirs = decode(sm_make("submit_sm", 1, source_addr="1" * 30).generate())
    assert isinstance(theirs, SubmitSm)
    assert theirs.source_addr == "1" * 20
    with pytest.raises(FieldError):
        encode(SubmitSm(source_addr="1" * 30))


@pytest.mark.parametrize(
    ("name", "field"), [("data_sm", "source_addr"), ("alert_notification", "esme_addr")]
)
def test_deviation_65_octet_addresses_limited_to_21(name: str, field: str) -> None:
    # §4.7.1 / §4.12.1: data_sm and alert_notification addresses are C-strings of max 65.
    fields: dict[str, Any] = {field: "1" * 40}
    assert getattr(decode(sm_make(name, 1, **fields).generate()), field) == "1" * 20
    cls: type[Pdu] = DataSm if name == "data_sm" else AlertNotification
    assert getattr(decode(encode(cls(**fields))), field) == "1" * 40


def test_deviation_interface_version_forced_to_34() -> None:
    # §5.2.4: interface_version is the ESME's version: 0x00-0x33 (v3.3), 0x34, (v5.0) 0x50.
    theirs = decode(sm_make("bind_transceiver", 1, interface_version=0x50).generate())
    ours = decode(encode(BindTransceiver(interface_version=0x50)))
    assert isinstance(theirs, BindTransceiver)
    assert isinstance(ours, BindTransceiver)
    assert (theirs.interface_version, ours.interface_version) == (0x34, 0x50)


@pytest.mark.parametrize(
    ("name", "tlv"), [("submit_sm", "source_addr_subunit"), ("data_sm", "source_telematics_id")]
)
def test_deviation_one_octet_ints_written_as_two(name: str, tlv: str) -> None:
    # Sheet 4.2: source_addr_subunit (0x000D) and source_telematics_id (0x0010) are Int 1.
    tag = Tag[tlv]
    frame = sm_make(name, 1, **{tlv: 3}).generate()
    assert frame.endswith(struct.pack(">HHH", tag, 2, 3))
    # smpplib also reads 2 octets whatever the TLV length says, so a correct 1-octet TLV
    # throws it off the TLV stream: it reads the next TLV's header from the wrong offset.
    cls = SubmitSm if name == "submit_sm" else DataSm
    ours = encode(cls(tlvs=(Tlv.make(tlv, 3), Tlv.make("sar_msg_ref_num", 7))))
    with pytest.raises(smpplib.exceptions.UnknownCommandError):
        sm_parse(ours)


def test_deviation_text_tlv_length_counts_characters() -> None:
    # §3.2.4: a TLV's length is the number of value *octets*. smpplib counts characters, then
    # writes UTF-8: "é" gets length 2 but 3 octets, corrupting every TLV after it.
    frame = sm_make("deliver_sm", 1, receipted_message_id="é").generate()
    assert frame.endswith(b"\x00\x1e\x00\x02" + "é".encode() + b"\x00")
    with pytest.raises(RemoteProtocolError):
        decode(frame)
    # And its limit is off by one: 65 characters + NUL = 66 octets, over the max of 65.
    frame = sm_make("deliver_sm", 1, receipted_message_id="x" * 65).generate()
    assert len(decode(frame).tlv_list[0].value) == 66


def test_deviation_flag_tlv_never_written() -> None:
    # §5.3.2.41: alert_on_message_delivery has no value; its presence is the request.
    with_flag = sm_make("submit_sm", 1, alert_on_message_delivery=True).generate()
    assert with_flag == sm_make("submit_sm", 1).generate()
    assert decode(with_flag).tlv_list == ()
    # The v5.0 one-octet form (an alert priority) desynchronises smpplib's parser.
    ours = encode(
        SubmitSm(tlvs=(Tlv.make("alert_on_message_delivery", 1), Tlv.make("sar_msg_ref_num", 7)))
    )
    with pytest.raises(smpplib.exceptions.UnknownCommandError):
        sm_parse(ours)


def test_deviation_vendor_tlvs_rejected(caplog: pytest.LogCaptureFixture) -> None:
    # §3.3 / sheet 2.3: an unknown tag (vendor 0x1400-0x3FFF) is skipped, never an error.
    frame = encode(DeliverSm(tlvs=(Tlv(0x1400, b"zz"), Tlv.make("message_state", 2))))
    with pytest.raises(smpplib.exceptions.UnknownCommandError):
        sm_parse(frame)
    # It takes an opt-in to skip them (with a logged warning, not a Python warning).
    with caplog.at_level(logging.WARNING, logger="smpplib.command"):
        assert sm_parse(frame, allow_unknown_opt_params=True).message_state == 2
    assert "0x1400" in caplog.text
    assert decode(frame).tlv_list == (Tlv(0x1400, b"zz"), Tlv.make("message_state", 2))


@pytest.mark.parametrize(
    ("tlv", "error"),
    [
        (Tlv.make("additional_status_info_text", "busy"), KeyError),  # v5.0 allows it here
        (Tlv.make("congestion_state", 90), smpplib.exceptions.UnknownCommandError),  # v5.0
    ],
    ids=["known-not-expected", "v5.0-tag"],
)
def test_deviation_unexpected_known_tlvs_crash(tlv: Tlv, error: type[Exception]) -> None:
    # §3.3: a known tag not expected on this PDU is ignored; v5.0 puts both on any response.
    frame = encode(SubmitSmResp(sequence_number=1, message_id="a", tlvs=(tlv,)))
    with pytest.raises(error):
        sm_parse(frame)
    assert decode(frame).tlv_list == (tlv,)


@pytest.mark.parametrize(
    ("name", "tlv", "value"),
    [
        ("deliver_sm", "source_subaddress", b"\xa0\x01\x02"),
        ("submit_sm", "dest_subaddress", b"\x80\x12"),
        ("data_sm", "callback_num_atag", b"\x00abc"),
    ],
)
def test_deviation_octet_tlvs_read_as_c_strings(name: str, tlv: str, value: bytes) -> None:
    # Sheet 4.2: these are octet strings (a type octet, then raw subaddress / display octets)
    # with no terminator; smpplib takes the last octet for a NUL and drops it.
    cls = {"deliver_sm": DeliverSm, "submit_sm": SubmitSm, "data_sm": DataSm}[name]
    assert getattr(sm_parse(encode(cls(tlvs=(Tlv.make(tlv, value),)))), tlv) == value[:-1]


def test_deviation_data_sm_resp_failure_fields() -> None:
    # Sheet 4.2: delivery_failure_reason is Int 1, network_error_code 3 octets. smpplib types
    # both as C-strings: the reason is lost, the error code loses its last octet...
    tlvs = (Tlv.make("delivery_failure_reason", 2), Tlv.make("network_error_code", b"\x03\x00\x01"))
    theirs = sm_parse(encode(DataSmResp(sequence_number=1, message_id="m", tlvs=tlvs)))
    assert theirs.delivery_failure_reason == b""
    assert theirs.network_error_code == b"\x03\x00"
    # ... and it cannot write the reason as the integer it is.
    with pytest.raises(TypeError):
        sm_make("data_sm_resp", 1, message_id="m", delivery_failure_reason=2).generate()


def test_deviation_missing_nul_not_detected() -> None:
    # Sheet 3.1: a C-Octet String ends with NUL. smpplib never checks: a message_id without
    # one loses its last character and the same octets are re-read as a TLV ("ab" = 0x6162).
    frame = struct.pack(">IIII", 20, SubmitSmResp.command_id, 0, 1) + b"abcd"
    with pytest.raises(smpplib.exceptions.UnknownCommandError, match="0x6162"):
        sm_parse(frame)
    with pytest.raises(RemoteProtocolError) as info:
        decode(frame)
    assert info.value.command_status == 0x0C  # ESME_RINVMSGID
