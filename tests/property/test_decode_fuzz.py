"""h11's rule for the decoder: any input is either parsed or raises RemoteProtocolError.

The error must also be answerable correctly (sheet 2.3): it carries the frame's sequence number
whenever the header is readable; ``error_response`` gives generic_nack for header problems
(ESME_RINVCMDLEN / ESME_RINVCMDID), the request's own ``_resp`` with the field's status for body
problems, and never answers a response. And whatever decodes must encode back to the same octets,
so a decoded PDU can always be re-sent or logged faithfully.
"""

from __future__ import annotations

import struct
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from smpp_bridge.codec import (
    PDU_TYPES,
    GenericNack,
    Outbind,
    Pdu,
    SmeAddress,
    SubmitMulti,
    SubmitMultiResp,
    SubmitSm,
    SubmitSmResp,
    decode,
    encode,
    error_response,
)
from smpp_bridge.codec.constants import RESPONSE_BIT, CommandStatus
from smpp_bridge.codec.pdus import CStr, DestAddresses, Time, layout
from smpp_bridge.errors import FieldError, RemoteProtocolError
from tests.strategies import ALL_PDU_TYPES, REQUEST_TYPES, pdus, uints

S = CommandStatus
HEADER = struct.Struct(">IIII")
FUZZ = settings(max_examples=150, deadline=None)

# Facts sheet 1.1: submit_sm seq=2, 447700900001 -> 447700900002, "Hi".
SUBMIT_SM = bytes.fromhex(
    "0000003b 00000004 00000000 00000002 00 01 01 343437373030393030303031 00"
    "01 01 343437373030393030303032 00 00 00 00 00 00 01 00 00 00 02 4869"
)


def decode_or_error(frame: bytes) -> Pdu | RemoteProtocolError:
    """decode(), with RemoteProtocolError as a value; anything else propagates and fails."""
    try:
        return decode(frame)
    except RemoteProtocolError as exc:
        return exc


def with_length(frame: bytes | bytearray) -> bytes:
    """The frame with command_length rewritten to match its size."""
    return struct.pack(">I", len(frame)) + bytes(frame[4:])


def check_error(frame: bytes, exc: RemoteProtocolError) -> None:
    """The error describes the frame, and error_response answers it by sheet 2.3."""
    answer = error_response(exc)
    if len(frame) < 16:
        assert (exc.sequence_number, exc.command_id, exc.fatal) == (0, None, True)
        assert exc.command_status == S.ESME_RINVCMDLEN
        assert answer == GenericNack(sequence_number=0, command_status=S.ESME_RINVCMDLEN)
        return
    length, command_id, _, seq = HEADER.unpack_from(frame)
    assert (exc.sequence_number, exc.command_id) == (seq, command_id)
    framing_lost = length != len(frame)
    assert exc.fatal == framing_lost
    if command_id & RESPONSE_BIT:
        assert answer is None  # never answer a response: two peers would nack forever
        return
    assert answer is not None
    assert answer.sequence_number == seq
    assert answer.command_status == exc.command_status != 0
    cls = PDU_TYPES.get(command_id)
    if framing_lost:
        assert answer == GenericNack(sequence_number=seq, command_status=S.ESME_RINVCMDLEN)
    elif cls is None:
        assert answer == GenericNack(sequence_number=seq, command_status=S.ESME_RINVCMDID)
    elif cls.response_type is None or exc.command_status == S.ESME_RINVCMDLEN:
        # outbind / alert_notification have no _resp; a body too short for the mandatory
        # fields means command_length is wrong, a header problem.
        assert type(answer) is GenericNack
    else:
        assert type(answer) is cls.response_type


def tolerated_non_canonical(pdu: Pdu, frame: bytes) -> bool:
    """The two inputs decode accepts but encode would write differently (both deliberate)."""
    if len(frame) == 16 and type(pdu).is_response and layout(type(pdu)):
        return True  # header-only response: the missing body decodes as the defaults
    # sm_length 255: v3.4 forbids it, v5.0 allows it; decode is liberal, encode is strict.
    return len(getattr(pdu, "short_message", b"")) == 255


def check(frame: bytes) -> None:
    outcome = decode_or_error(frame)
    if isinstance(outcome, RemoteProtocolError):
        check_error(frame, outcome)
    elif not tolerated_non_canonical(outcome, frame):
        assert encode(outcome) == frame
        assert outcome.sequence_number == HEADER.unpack_from(frame)[3]


# --------------------------------------------------------------------------------------------
# Random input.


@FUZZ
@given(st.binary(max_size=100))
@example(b"")
@example(b"\x00\x00\x00\x10")
@example(bytes(16))
def test_random_bytes(frame: bytes) -> None:
    check(frame)


KNOWN_IDS = st.sampled_from(sorted(PDU_TYPES))


@FUZZ
@given(KNOWN_IDS, uints(4), uints(4), st.binary(max_size=120))
def test_random_body_behind_a_valid_header(cid: int, status: int, seq: int, body: bytes) -> None:
    check(HEADER.pack(16 + len(body), cid, status, seq) + body)


# --------------------------------------------------------------------------------------------
# Mutations of valid PDUs.


@FUZZ
@given(pdus(), st.lists(st.integers(0, 10**6), min_size=1, max_size=4))
def test_bit_flips(pdu: Pdu, positions: list[int]) -> None:
    frame = bytearray(encode(pdu))
    for p in positions:
        frame[(p // 8) % len(frame)] ^= 1 << (p % 8)
    check(bytes(frame))


@FUZZ
@given(pdus(), st.data())
def test_truncation(pdu: Pdu, data: st.DataObject) -> None:
    frame = encode(pdu)
    cut = data.draw(st.integers(0, len(frame) - 1))
    # As received: command_length now lies about the size.
    outcome = decode_or_error(frame[:cut])
    assert isinstance(outcome, RemoteProtocolError)
    assert outcome.command_status == S.ESME_RINVCMDLEN
    assert outcome.fatal
    check(frame[:cut])
    # With command_length fixed up: the body itself is short.
    if cut >= 16:
        check(with_length(frame[:cut]))


@FUZZ
@given(pdus(), uints(4))
def test_wrong_command_length(pdu: Pdu, length: int) -> None:
    frame = encode(pdu)
    if length == len(frame):
        length += 1
    bad = struct.pack(">I", length % 2**32) + frame[4:]
    outcome = decode_or_error(bad)
    assert isinstance(outcome, RemoteProtocolError)
    assert outcome.command_status == S.ESME_RINVCMDLEN
    check(bad)


@FUZZ
@given(pdus(), st.binary(min_size=1, max_size=24))
def test_extra_bytes(pdu: Pdu, extra: bytes) -> None:
    frame = encode(pdu)
    check(frame + extra)  # command_length no longer matches
    check(with_length(frame + extra))  # matches: the extra octets are read as TLVs


UNKNOWN_IDS = st.one_of(
    st.sampled_from(
        [
            0x0000000A,  # reserved between cancel_sm and outbind
            0x8000000B,  # outbind has no response: reserved
            0x80000102,  # alert_notification has no response: reserved
            0x00000014,
            0x00000016,
            0x00000104,  # reserved for SMPP extension
            0x00010200,  # SMSC vendor block
            0x800102FF,
            0xFFFFFFFF,
        ]
    ),
    uints(4),
).filter(lambda cid: cid not in PDU_TYPES)


@FUZZ
@given(pdus(), UNKNOWN_IDS, st.booleans())
def test_unknown_command_ids(pdu: Pdu, cid: int, response_bit: bool) -> None:
    if response_bit:
        cid |= RESPONSE_BIT
    if cid in PDU_TYPES:
        return
    frame = encode(pdu)
    bad = frame[:4] + struct.pack(">I", cid) + frame[8:]
    outcome = decode_or_error(bad)
    assert isinstance(outcome, RemoteProtocolError)
    assert outcome.command_status == S.ESME_RINVCMDID
    assert not outcome.fatal  # the length was fine: framing is intact
    expected = None if cid & RESPONSE_BIT else GenericNack(pdu.sequence_number, 0x03)
    assert error_response(outcome) == expected
    check(bad)


# --------------------------------------------------------------------------------------------
# Body problems answered with the request's own response and the field's status.


def test_source_addr_without_nul() -> None:
    assert decode(SUBMIT_SM) == SubmitSm(
        sequence_number=2,
        source_addr_ton=1,
        source_addr_npi=1,
        source_addr="447700900001",
        dest_addr_ton=1,
        dest_addr_npi=1,
        destination_addr="447700900002",
        registered_delivery=1,
        short_message=b"Hi",
    )
    nul = SUBMIT_SM.index(b"447700900001") + 12
    bad = with_length(SUBMIT_SM[:nul] + SUBMIT_SM[nul + 1 :])
    with pytest.raises(RemoteProtocolError) as info:
        decode(bad)
    assert "source_addr" in str(info.value)
    assert error_response(info.value) == SubmitSmResp(sequence_number=2, command_status=0x0A)


def _defaults(cls: type[Pdu]) -> dict[str, Any]:
    """Keyword arguments that make a minimal valid PDU of ``cls``."""
    return {
        name: (SmeAddress("1"),) for name, kind in layout(cls) if isinstance(kind, DestAddresses)
    }


# Every request C-string field that has its own command_status, e.g. submit_sm.source_addr.
FIELD_STATUS_CASES = [
    (cls, name, kind)
    for cls in REQUEST_TYPES
    for name, kind in layout(cls)
    if isinstance(kind, CStr) and kind.status != S.ESME_RINVCMDLEN
]


@pytest.mark.parametrize(
    ("cls", "name", "kind"),
    FIELD_STATUS_CASES,
    ids=[f"{c.command_name}.{n}" for c, n, _ in FIELD_STATUS_CASES],
)
def test_broken_field_answered_with_its_status(cls: type[Pdu], name: str, kind: CStr) -> None:
    if isinstance(kind, Time):
        value = "240501123000004+"
        broken = b"2405011230\x00"  # 10 characters: neither NULL nor 16
    else:
        value = "~" * (kind.max - 1)  # the longest allowed; nothing else in the PDU has "~"
        broken = b"~" * (kind.max + 3) + b"\x00"  # no NUL within the field's maximum
    fields: dict[str, Any] = {name: value, **_defaults(cls)}
    frame = encode(cls(sequence_number=5, **fields))
    bad = with_length(frame.replace(value.encode() + b"\x00", broken, 1))
    assert bad != frame
    outcome = decode_or_error(bad)
    assert isinstance(outcome, RemoteProtocolError)
    assert name in str(outcome)
    assert outcome.command_status == kind.status
    answer = error_response(outcome)
    if cls.response_type is None:
        assert answer == GenericNack(sequence_number=5, command_status=kind.status)
    else:
        assert answer == cls.response_type(sequence_number=5, command_status=kind.status)


def _submit_multi_body(dests: bytes) -> bytes:
    # service_type, src ton/npi/addr, <dests>, esm/pid/prio, sched, validity, 4 ints, sm_length.
    return b"\x00" + b"\x01\x01" + b"1\x00" + dests + bytes(3) + b"\x00\x00" + bytes(4) + b"\x00"


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (SUBMIT_SM[16:] + b"\x04\x24\x00\x05ab", S.ESME_RINVOPTPARSTREAM),  # TLV overruns
        (SUBMIT_SM[16:] + b"\x04\x24\x00", S.ESME_RINVOPTPARSTREAM),  # half a TLV header
        (SUBMIT_SM[16:-3] + b"\x09Hi", S.ESME_RINVMSGLEN),  # sm_length past the end
    ],
    ids=["tlv-overrun", "tlv-header-cut", "sm_length"],
)
def test_submit_sm_body_errors(body: bytes, status: int) -> None:
    outcome = decode_or_error(with_length(SUBMIT_SM[:16] + body))
    assert isinstance(outcome, RemoteProtocolError)
    assert (outcome.command_status, outcome.fatal) == (status, False)
    assert error_response(outcome) == SubmitSmResp(sequence_number=2, command_status=status)


@pytest.mark.parametrize(
    ("dests", "status"),
    [
        (b"\x01\x03", S.ESME_RINVDESTFLAG),  # dest_flag 3
        (b"\x00", S.ESME_RINVNUMDESTS),  # number_of_dests 0
        (b"\x01\x01\x01\x01" + b"9" * 25 + b"\x00", S.ESME_RINVCMDLEN),  # address too long
    ],
    ids=["dest_flag", "number_of_dests", "sme-address"],
)
def test_submit_multi_destination_errors(dests: bytes, status: int) -> None:
    frame = with_length(HEADER.pack(0, SubmitMulti.command_id, 0, 6) + _submit_multi_body(dests))
    outcome = decode_or_error(frame)
    assert isinstance(outcome, RemoteProtocolError)
    assert outcome.command_status == status
    check(frame)


def test_submit_multi_body_builder_is_valid() -> None:
    # Guards the test above: with one proper destination the same body decodes.
    good = _submit_multi_body(b"\x01\x01\x01\x01" + b"447700900002\x00")
    frame = with_length(HEADER.pack(0, SubmitMulti.command_id, 0, 6) + good)
    pdu = decode(frame)
    assert isinstance(pdu, SubmitMulti)
    assert pdu.dest_addresses == (SmeAddress("447700900002", 1, 1),)


def test_body_shorter_than_mandatory_fields_is_a_length_error() -> None:
    frame = with_length(SUBMIT_SM[:16] + b"\x00\x01")  # service_type, then ints run out
    outcome = decode_or_error(frame)
    assert isinstance(outcome, RemoteProtocolError)
    assert error_response(outcome) == GenericNack(sequence_number=2, command_status=0x02)


def test_broken_responses_are_never_answered() -> None:
    no_nul = with_length(HEADER.pack(0, SubmitSmResp.command_id, 0, 4) + b"abc")
    bad_tlv = with_length(HEADER.pack(0, GenericNack.command_id, 3, 4) + b"\x00\x05\x00\x09")
    bad_list = with_length(HEADER.pack(0, SubmitMultiResp.command_id, 0, 4) + b"id\x00\x01\x01")
    for frame in (no_nul, bad_tlv, bad_list):
        outcome = decode_or_error(frame)
        assert isinstance(outcome, RemoteProtocolError)
        assert outcome.sequence_number == 4
        assert error_response(outcome) is None


def test_request_without_response_type_gets_generic_nack() -> None:
    # outbind has no _resp; a broken one is answered by generic_nack, never a made-up PDU.
    frame = with_length(HEADER.pack(0, Outbind.command_id, 0, 3) + b"x" * 20)
    outcome = decode_or_error(frame)
    assert isinstance(outcome, RemoteProtocolError)
    assert error_response(outcome) == GenericNack(sequence_number=3, command_status=0x0F)


def test_too_short_for_a_header() -> None:
    outcome = decode_or_error(bytes.fromhex("00000010 00000015 0000"))
    assert isinstance(outcome, RemoteProtocolError)
    assert error_response(outcome) == GenericNack(sequence_number=0, command_status=0x02)


def test_sm_length_255_is_tolerated_on_decode_only() -> None:
    # v5.0 raises short_message to 255 octets; v3.4 says 254. Accept both, send only v3.4.
    pdu = decode(with_length(SUBMIT_SM[:-3] + b"\xff" + b"x" * 255))
    assert isinstance(pdu, SubmitSm)
    assert len(pdu.short_message) == 255
    with pytest.raises(FieldError) as info:
        encode(pdu)
    assert info.value.field == "short_message"


def test_every_type_is_fuzzed() -> None:
    # pdus() draws from ALL_PDU_TYPES; make sure that really is every registered type.
    assert set(ALL_PDU_TYPES) == set(PDU_TYPES.values())
