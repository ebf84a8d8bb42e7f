"""Send request and event envelopes: parsing, validation, conversion to the pool, schemas."""

from __future__ import annotations

import importlib.util
import json
import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smpp_bridge.bridge.envelope import (
    MAX_VALIDITY,
    STATUSES,
    Event,
    Invalid,
    Limits,
    SendRequest,
    TlvSpec,
    Valid,
    absolute_time,
    check,
    decode_event,
    encode_events,
    encode_request,
    json_schemas,
    parse_batch,
    parse_time,
    relative_time,
    to_outbound,
    validate,
)
from smpp_bridge.codec.compose import build_submits
from smpp_bridge.codec.pdus import SubmitSm, decode, encode
from smpp_bridge.codec.text import REFERENCE_PROFILE, SPEC_PROFILE, EncodingProfile
from smpp_bridge.codec.tlv import Tag, Tlv
from smpp_bridge.errors import EncodingError

ROOT = Path(__file__).resolve().parents[2]
LIMITS = Limits()
FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# The examples of MISSION.md, verbatim.
MISSION_REQUEST = (
    b'{"from": "ACME", "to": "+34600000001", "text": "Your code is 1234", "clientId": "order-77"}'
)
MISSION_EVENT = (
    b'{"id": "smsc-message-id", "clientId": "order-77", "status": "delivered", "code": 0,\n'
    b' "eventAt": "2026-04-21T10:15:00Z"}'
)


def request(**changes: Any) -> SendRequest:
    base: dict[str, Any] = {"to": "+34600000001", "text": "Your code is 1234", "from_": "ACME"}
    base.update(changes)
    return SendRequest(**base)


def item(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"from": "ACME", "to": "+34600000001", "text": "hi"}
    base.update(fields)
    return base


def payload(value: Any) -> bytes:
    return json.dumps(value).encode()


# --------------------------------------------------------------------------------------------
# parse_batch


def test_mission_example_parses() -> None:
    [parsed] = parse_batch(MISSION_REQUEST)
    assert isinstance(parsed, Valid)
    assert parsed.index == 0
    req = parsed.request
    assert (req.from_, req.to, req.text, req.client_id) == (
        "ACME",
        "+34600000001",
        "Your code is 1234",
        "order-77",
    )
    assert req.encoding == "auto" and req.request_dlr is True
    assert validate(req, SPEC_PROFILE, LIMITS) is None


def test_every_optional_field_parses() -> None:
    data = item(
        clientId="c-1",
        encoding="ucs2",
        validity=3600,
        priority=1,
        scheduleAt="2026-04-21T10:15:00Z",
        maxParts=3,
        requestDlr=False,
        tlvs=[{"tag": "user_message_reference", "value": 7}, {"tag": 0x1401, "value": "ab"}],
        account="main",
    )
    [parsed] = parse_batch(payload(data))
    assert isinstance(parsed, Valid)
    req = parsed.request
    assert req.client_id == "c-1" and req.encoding == "ucs2" and req.validity == 3600
    assert req.priority == 1 and req.schedule_at == "2026-04-21T10:15:00Z"
    assert req.max_parts == 3 and req.request_dlr is False and req.account == "main"
    assert req.tlvs == [TlvSpec("user_message_reference", 7), TlvSpec(0x1401, "ab")]


def test_array_keeps_order_and_indexes() -> None:
    items = [item(clientId=f"c{i}") for i in range(100)]
    parsed = parse_batch(payload(items))
    assert [p.index for p in parsed] == list(range(100))
    assert all(isinstance(p, Valid) for p in parsed)
    assert [p.request.client_id for p in parsed if isinstance(p, Valid)] == [
        f"c{i}" for i in range(100)
    ]


def test_bad_item_does_not_spoil_the_others() -> None:
    items = [
        item(clientId="ok-0"),
        item(clientId="bad-1", to=34600000001),
        item(clientId="ok-2"),
        {"from": "ACME", "text": "no destination", "clientId": "bad-3"},
        item(clientId="bad-4", colour="blue"),
        7,
        item(clientId=5),
        item(clientId="bad-7", tlvs=[{"tag": True}]),
    ]
    parsed = parse_batch(payload(items))
    assert [type(p) for p in parsed] == [
        Valid,
        Invalid,
        Valid,
        Invalid,
        Invalid,
        Invalid,
        Invalid,
        Invalid,
    ]
    reasons = {p.index: (p.reason, p.client_id) for p in parsed if isinstance(p, Invalid)}
    assert reasons == {
        1: ("to: expected `str`, got `int`", "bad-1"),
        3: ("to: missing required field", "bad-3"),
        4: ("colour: unknown field", "bad-4"),
        5: ("item 5: expected `object`, got `int`", None),
        6: ("clientId: expected `str | null`, got `int`", None),
        7: ("tlvs[0].tag: expected `int | str`, got `bool`", "bad-7"),
    }


def test_single_bad_object_is_its_own_item() -> None:
    [parsed] = parse_batch(payload(item(clientId="x", priority="high")))
    assert parsed == Invalid(0, "priority: expected `int | null`, got `str`", "x")


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "payload: not JSON: input data was truncated"),
        (b"{", "payload: not JSON: input data was truncated"),
        (b"[1, 2", "payload: not JSON: input data was truncated"),
        (b"\xff\xfe", "payload: not JSON: JSON is malformed: invalid character (byte 0)"),
        (b"42", "payload: expected a send request object or an array, got a number"),
        (b'"text"', "payload: expected a send request object or an array, got a string"),
        (b"null", "payload: expected a send request object or an array, got null"),
        (b"true", "payload: expected a send request object or an array, got a boolean"),
        (b"[]", "payload: empty array (expected 1 to 100 send requests)"),
        (b"{} []", "payload: not JSON: JSON is malformed: trailing characters (byte 4)"),
    ],
)
def test_whole_payload_problems(data: bytes, reason: str) -> None:
    assert parse_batch(data) == [Invalid(-1, reason)]


def test_too_many_items() -> None:
    items = [item()] * 101
    assert parse_batch(payload(items)) == [
        Invalid(-1, "payload: 101 send requests, more than the limit of 100")
    ]
    assert len(parse_batch(payload(items[:5]), max_batch=5)) == 5
    # The limit holds on the slow path (a bad item) too.
    assert parse_batch(payload([*items[:5], 1]), max_batch=5) == [
        Invalid(-1, "payload: 6 send requests, more than the limit of 5")
    ]


def test_deep_nesting_is_refused_not_raised() -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    [parsed] = parse_batch(deep)
    assert isinstance(parsed, Invalid)
    assert parsed.index in (-1, 0)


def test_str_payload_accepted() -> None:
    [parsed] = parse_batch(MISSION_REQUEST.decode())
    assert isinstance(parsed, Valid)


def test_unusable_client_id_of_a_bad_item_is_dropped() -> None:
    parsed = parse_batch(payload([item(clientId="", to=1), item(clientId="x" * 300, to=1)]))
    assert [p.client_id for p in parsed if isinstance(p, Invalid)] == [None, None]


# --------------------------------------------------------------------------------------------
# validate


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"to": "12ab"}, "to: not an E.164 number: '12ab'"),
        ({"to": "+0034600000001"}, "to: not an E.164 number: '+0034600000001'"),
        ({"to": "0034600000001"}, "to: not an E.164 number: '0034600000001'"),
        ({"to": "+1234567"}, "to: not an E.164 number: '+1234567'"),
        ({"to": "+1234567890123456"}, "to: not an E.164 number: '+1234567890123456'"),
        ({"to": "+34 600 000 001"}, "to: not an E.164 number: '+34 600 000 001'"),
        ({"to": "+３４６０００００００１"}, "to: not an E.164 number: '+３４６０００００００１'"),
        ({"to": ""}, "to: not an E.164 number: ''"),
        ({"from_": "AB"}, "from: not a sender id"),
        ({"from_": "ABCDEFGHIJKL"}, "from: not a sender id"),
        ({"from_": " ACME"}, "from: not a sender id"),
        ({"from_": "ACME "}, "from: not a sender id"),
        ({"from_": "AC-ME"}, "from: not a sender id"),
        ({"from_": "ÄCME"}, "from: not a sender id"),
        ({"from_": "1234567890123456"}, "from: not a sender id"),
        ({"from_": ""}, "from: not a sender id"),
        ({"text": ""}, "text: empty"),
        ({"client_id": ""}, "clientId: must be 1 to 256 characters, got 0"),
        ({"client_id": "x" * 257}, "clientId: must be 1 to 256 characters, got 257"),
        ({"account": ""}, "account: empty"),
        ({"encoding": "latin9"}, "encoding: 'latin9' is not accepted by the SMSC profile 'spec'"),
        ({"encoding": "klingon"}, "encoding: unknown 'klingon'"),
        ({"validity": 0}, "validity: must be within 1..38102400 seconds"),
        ({"validity": -5}, "validity: must be within 1..38102400 seconds"),
        ({"validity": MAX_VALIDITY + 1}, "validity: must be within 1..38102400 seconds"),
        ({"priority": 4}, "priority: must be within 0..3, got 4"),
        ({"priority": -1}, "priority: must be within 0..3, got -1"),
        ({"schedule_at": "tomorrow"}, "scheduleAt: not an ISO-8601 time: 'tomorrow'"),
        ({"schedule_at": "2026-04-21T10:15:00"}, "scheduleAt: needs a UTC offset or Z"),
        ({"schedule_at": "1999-12-31T23:00:00Z"}, "scheduleAt: year 1999 (UTC) is outside"),
        ({"max_parts": 0}, "maxParts: must be within 1..255, got 0"),
        ({"max_parts": 256}, "maxParts: must be within 1..255, got 256"),
        ({"tlvs": [TlvSpec("no_such_tlv", 1)]}, "tlvs[0].tag: unknown TLV name: 'no_such_tlv'"),
        ({"tlvs": [TlvSpec(70000, 1)]}, "tlvs[0].tag: tag must be within 0..0xFFFF: 70000"),
        (
            {"tlvs": [TlvSpec("user_message_reference", 1), TlvSpec("message_payload", "00")]},
            "tlvs[1].tag: message_payload is set by segmentation, not by requests",
        ),
        (
            {"tlvs": [TlvSpec("sar_msg_ref_num", 1)]},
            "tlvs[0].tag: sar_msg_ref_num is set by segmentation",
        ),
        (
            {"tlvs": [TlvSpec("user_message_reference", 70000)]},
            "tlvs[0].value: 70000 does not fit in 2 octet(s)",
        ),
        (
            {"tlvs": [TlvSpec("user_message_reference", "7")]},
            "tlvs[0].value: expected an integer, got str",
        ),
        ({"tlvs": [TlvSpec("callback_num", "xyz")]}, "tlvs[0].value: not hex digits: 'xyz'"),
        (
            {"tlvs": [TlvSpec("callback_num", "01")]},
            "tlvs[0].value: value of 1 octets, allowed 4..19",
        ),
        ({"tlvs": [TlvSpec(0x1401, 5)]}, "tlvs[0].value: tag 0x1401 is not a standard one"),
        ({"tlvs": [TlvSpec("user_message_reference", True)]}, "tlvs[0].value: expected a number"),
        ({"tlvs": [TlvSpec(True, 1)]}, "tlvs[0].tag: expected a number or a name"),
        (
            {"tlvs": [TlvSpec("source_network_id", "€")]},
            "tlvs[0].value: string is not representable in latin-1",
        ),
    ],
)
def test_validate_reasons(changes: dict[str, Any], reason: str) -> None:
    found = validate(request(**changes), SPEC_PROFILE, LIMITS)
    assert found is not None
    assert found.startswith(reason), found


@pytest.mark.parametrize(
    "changes",
    [
        {"to": "34600000001"},
        {"to": "+12345678"},
        {"to": "+123456789012345"},
        {"from_": "ACM"},
        {"from_": "ACME Bank 1"},
        {"from_": "1"},
        {"from_": "+34600000001"},
        {"from_": "123456789012345"},
        {"from_": "12345678901"},
        {"client_id": "x" * 256},
        {"encoding": "gsm7"},
        {"encoding": "ucs2", "text": "Привет 👋"},
        {"encoding": "latin1", "text": "Grüße"},
        {"encoding": "ascii"},
        {"validity": 1},
        {"validity": MAX_VALIDITY},
        {"priority": 0},
        {"priority": 3},
        {"schedule_at": "2026-04-21T10:15:00+02:00"},
        {"schedule_at": "2026-04-21T10:15:00.250Z"},
        {"max_parts": 1},
        {"max_parts": 255, "text": "x" * 5000},
        {"tlvs": [TlvSpec("alert_on_message_delivery")]},
        {"tlvs": [TlvSpec(0x1401, ""), TlvSpec("0x1402", "00ff"), TlvSpec("vendor_0x1403", "AB")]},
        {"tlvs": [TlvSpec("dest_addr_subunit", 1), TlvSpec("callback_num", "01020304")]},
        {"tlvs": [TlvSpec("source_network_id", "net-1")]},
        {"tlvs": []},
        {"account": "main"},
    ],
)
def test_validate_accepts(changes: dict[str, Any]) -> None:
    assert validate(request(**changes), SPEC_PROFILE, LIMITS) is None


def test_encoding_acceptance_follows_the_profile() -> None:
    latin9 = request(encoding="latin9", text="Price: 5€")
    assert validate(latin9, REFERENCE_PROFILE, LIMITS) is None
    found = validate(latin9, SPEC_PROFILE, LIMITS)
    assert found == (
        "encoding: 'latin9' is not accepted by the SMSC profile 'spec' "
        "(accepted: auto, gsm7, ascii, latin1, ucs2)"
    )


def test_unrepresentable_text_names_the_character() -> None:
    found = validate(request(encoding="latin1", text="5€"), SPEC_PROFILE, LIMITS)
    assert found == "text: character '€' (U+20AC) at index 1 is not representable in latin1"
    found = validate(request(encoding="gsm7", text="héllo ☃"), SPEC_PROFILE, LIMITS)
    assert found is not None and found.startswith("text: ")
    assert "'☃'" in found or "'h" in found
    only_gsm = EncodingProfile(name="plain", encodings={"gsm7": 0}, decodings={0: "gsm7"})
    found = validate(request(text="snow ☃"), only_gsm, LIMITS)
    assert found is not None
    assert found.startswith("text: is not representable in any encoding accepted by profile")
    assert "☃" in found


def test_parts_limit() -> None:
    long = "x" * (153 * 10)
    assert check(request(text=long), SPEC_PROFILE, LIMITS) == (None, 10)
    found = validate(request(text=long + "x"), SPEC_PROFILE, LIMITS)
    assert found == "text: needs at least 11 parts, more than maxParts (10)"
    # Counted exactly when characters alone do not tell: '€' takes two septets.
    found = validate(request(text=long[:-1] + "€"), SPEC_PROFILE, LIMITS)
    assert found == "text: needs 11 parts, more than maxParts (10)"
    assert validate(request(text=long + "x", max_parts=11), SPEC_PROFILE, LIMITS) is None
    assert validate(request(text=long), SPEC_PROFILE, Limits(max_parts=9)) is not None
    assert validate(request(text="x" * 161, max_parts=1), SPEC_PROFILE, LIMITS) == (
        "text: needs at least 2 parts, more than maxParts (1)"
    )
    # A huge text is refused without being encoded.
    found = validate(request(text="x" * 1_000_000), SPEC_PROFILE, LIMITS)
    assert found == "text: needs at least 6536 parts, more than maxParts (10)"


def test_part_count_follows_concatenation_mode() -> None:
    # 152 septets per part with a 16-bit reference, 153 with an 8-bit one.
    text = "x" * 306
    assert check(request(text=text), SPEC_PROFILE, LIMITS, concat="udh8").parts == 2
    assert check(request(text=text), SPEC_PROFILE, LIMITS, concat="udh16").parts == 3


def test_limits_refuse_nonsense() -> None:
    with pytest.raises(ValueError, match="max_parts"):
        Limits(max_parts=0)
    with pytest.raises(ValueError, match="max_batch"):
        Limits(max_batch=0)
    assert msgspec.convert({"max_parts": 3}, Limits) == Limits(3, 100)


TEXTS = st.one_of(
    st.text(min_size=1, max_size=400),
    st.text(alphabet="abc {}[]~^|\\€é\n", min_size=1, max_size=700),
    st.text(alphabet=st.characters(max_codepoint=0x2FF), min_size=1, max_size=400),
)


@FAST
@given(
    text=TEXTS,
    encoding=st.sampled_from(["auto", "gsm7", "latin1", "ucs2", "ascii"]),
    concat=st.sampled_from(["udh8", "udh16", "sar", "payload"]),
    profile=st.sampled_from([SPEC_PROFILE, REFERENCE_PROFILE]),
)
def test_part_count_agrees_with_segmentation(
    text: str, encoding: str, concat: Any, profile: EncodingProfile
) -> None:
    """What validation counts is what the pool will build: valid ⇔ build_submits succeeds,
    with the same number of parts (payload mode: one PDU, parts counted as udh8)."""
    req = request(text=text, encoding=encoding, max_parts=255)
    reason, parts = check(req, profile, LIMITS, concat=concat)
    try:
        pdus = build_submits(
            "ACME",
            "34600000001",
            text,
            profile=profile,
            reference=1,
            encoding=encoding,
            concat=concat,
            max_parts=255,
        )
    except EncodingError:
        assert reason is not None
        return
    assert reason is None, reason
    if concat == "payload":
        # One PDU carries the whole text; parts are those the SMSC will cut, as for udh8.
        assert len(pdus) == 1
        pdus = build_submits(
            "ACME", "34600000001", text, profile=profile, reference=1, encoding=encoding
        )
    assert parts == len(pdus)


# --------------------------------------------------------------------------------------------
# to_outbound and SMPP times


def test_to_outbound_plain() -> None:
    req = request(client_id="order-77", account="main", request_dlr=False)
    message = to_outbound(req, "17:0")
    assert message.id == "17:0"
    assert message.source == "ACME"
    # Always international: the pool maps "+digits" to TON 1 / NPI 1 whatever the length.
    assert message.destination == "+34600000001"
    assert message.text == "Your code is 1234"
    assert message.client_id == "order-77"
    assert message.encoding == "auto"
    assert message.request_dlr is False
    assert message.account == "main"
    assert message.max_parts == 10
    assert message.template is None
    assert to_outbound(request(to="34600000001"), "x").destination == "+34600000001"
    assert to_outbound(request(max_parts=4), "x").max_parts == 4
    assert to_outbound(request(), "x", max_parts=7).max_parts == 7


def test_to_outbound_template() -> None:
    req = request(
        priority=2,
        validity=90061,
        schedule_at="2026-04-21T12:15:30.25+02:00",
        tlvs=[TlvSpec("user_message_reference", 7), TlvSpec(0x1401, "abcd")],
    )
    template = to_outbound(req, "x").template
    assert template == SubmitSm(
        priority_flag=2,
        validity_period="000001010101000R",
        schedule_delivery_time="260421101530200+",
        tlvs=(Tlv(Tag.user_message_reference, b"\x00\x07"), Tlv(0x1401, b"\xab\xcd")),
    )
    # The PDUs the pool will build from it encode and decode back.
    message = to_outbound(req, "x")
    [pdu] = build_submits(
        message.source,
        message.destination,
        message.text,
        profile=SPEC_PROFILE,
        reference=1,
        template=message.template,
    )
    back = decode(encode(pdu, 1))
    assert isinstance(back, SubmitSm)
    assert back.validity_period == "000001010101000R"
    assert back.schedule_delivery_time == "260421101530200+"
    assert back.priority_flag == 2
    assert back.tlvs == template.tlvs if template is not None else False


def test_to_outbound_refuses_what_validate_refuses() -> None:
    with pytest.raises(ValueError, match=r"^priority: must be within 0\.\.3, got 9$"):
        to_outbound(request(priority=9), "x")
    with pytest.raises(ValueError, match=r"^tlvs\[0\]\.tag: unknown TLV name"):
        to_outbound(request(tlvs=[TlvSpec("nope", 1)]), "x")


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (1, "000000000001000R"),
        (59, "000000000059000R"),
        (3600, "000000010000000R"),
        (86399, "000000235959000R"),
        (86400, "000001000000000R"),
        (30 * 86400, "000030000000000R"),
        (31 * 86400, "000101000000000R"),
        (365 * 86400, "010005000000000R"),
        (MAX_VALIDITY, "010221000000000R"),
    ],
)
def test_relative_time(seconds: int, expected: str) -> None:
    assert relative_time(seconds) == expected


def test_absolute_time() -> None:
    assert absolute_time(datetime(2026, 4, 21, 10, 15, 0, tzinfo=UTC)) == "260421101500000+"
    plus_two = timezone(timedelta(hours=2))
    moment = datetime(2026, 1, 1, 0, 30, 5, 990_000, tzinfo=plus_two)
    assert absolute_time(moment) == "251231223005900+"
    assert parse_time("2026-04-21T10:15:00Z", "x") == datetime(2026, 4, 21, 10, 15, tzinfo=UTC)
    with pytest.raises(ValueError, match=r"^when: needs a UTC offset"):
        parse_time("2026-04-21", "when")


# --------------------------------------------------------------------------------------------
# Events


def test_event_contract_fields_always_present() -> None:
    event = Event(id=None, client_id=None, status="error", code=0, event_at="2026-04-21T10:15:00Z")
    assert json.loads(encode_events([event])[0]) == {
        "id": None,
        "clientId": None,
        "status": "error",
        "code": 0,
        "eventAt": "2026-04-21T10:15:00Z",
    }


def test_event_optional_fields_by_their_names() -> None:
    event = Event(
        id="m1",
        client_id="c",
        status="inbound",
        code=0,
        event_at="t",
        request_id="1:0",
        parts=2,
        segment=1,
        submitted_at="s",
        bind="main#0",
        account="main",
        reason="why",
        message="hello",
        from_="+34600000001",
        to="1234",
        possible_duplicate=True,
        attempts=2,
        message_ids=["m1", "m2"],
    )
    [data] = encode_events([event])
    assert set(json.loads(data)) == {
        "id",
        "clientId",
        "status",
        "code",
        "eventAt",
        "requestId",
        "parts",
        "segment",
        "submittedAt",
        "bind",
        "account",
        "reason",
        "message",
        "from",
        "to",
        "possibleDuplicate",
        "attempts",
        "messageIds",
    }
    assert decode_event(data) == event


def test_mission_event_decodes_and_unknown_fields_are_tolerated() -> None:
    event = decode_event(MISSION_EVENT)
    assert event == Event(
        id="smsc-message-id",
        client_id="order-77",
        status="delivered",
        code=0,
        event_at="2026-04-21T10:15:00Z",
    )
    assert decode_event(MISSION_EVENT[:-1] + b', "future": [1]}') == event
    with pytest.raises(msgspec.ValidationError):
        decode_event(b'{"id": null, "clientId": null, "status": "sent"}')


def test_statuses() -> None:
    assert STATUSES == (
        "sent",
        "accepted",
        "buffered",
        "delivered",
        "error",
        "failed",
        "expired",
        "canceled",
        "rejected",
        "unknown",
        "inbound",
        "stop",
    )


# --------------------------------------------------------------------------------------------
# Property tests

TLV_SPECS_ST = st.lists(
    st.one_of(
        st.builds(TlvSpec, st.just("user_message_reference"), st.integers(0, 0xFFFF)),
        st.builds(TlvSpec, st.integers(0x1400, 0x3FFF), st.binary(max_size=8).map(bytes.hex)),
        st.builds(TlvSpec, st.just("source_network_id"), st.text("abc-1", min_size=1)),
    ),
    max_size=3,
)

REQUESTS = st.builds(
    SendRequest,
    to=st.from_regex(r"\A\+?[1-9][0-9]{7,14}\Z"),
    text=st.text(min_size=1, max_size=300),
    from_=st.one_of(
        st.from_regex(r"\A\+?[0-9]{1,15}\Z"),
        st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9 ]{1,9}[A-Za-z0-9]\Z"),
    ),
    client_id=st.none() | st.text(min_size=1, max_size=40),
    encoding=st.sampled_from(["auto", "gsm7", "latin1", "ucs2", "ascii"]),
    validity=st.none() | st.integers(1, MAX_VALIDITY),
    priority=st.none() | st.integers(0, 3),
    schedule_at=st.none()
    | st.datetimes(
        min_value=datetime(2001, 1, 1),
        max_value=datetime(2098, 12, 31),
        timezones=st.sampled_from([UTC, timezone(timedelta(hours=-5, minutes=-30))]),
    ).map(datetime.isoformat),
    max_parts=st.none() | st.integers(1, 255),
    request_dlr=st.booleans(),
    tlvs=st.none() | TLV_SPECS_ST,
    account=st.none() | st.text(min_size=1, max_size=10),
)


@FAST
@given(REQUESTS)
def test_any_request_round_trips_through_json(req: SendRequest) -> None:
    [parsed] = parse_batch(encode_request(req))
    assert parsed == Valid(0, req)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(REQUESTS, min_size=1, max_size=8))
def test_any_bulk_round_trips(reqs: list[SendRequest]) -> None:
    data = b"[" + b",".join(encode_request(r) for r in reqs) + b"]"
    assert parse_batch(data) == [Valid(i, r) for i, r in enumerate(reqs)]


@FAST
@given(REQUESTS)
def test_valid_requests_convert_and_build(req: SendRequest) -> None:
    """Whatever validate accepts, to_outbound converts and the pool's builder accepts."""
    reason, parts = check(req, SPEC_PROFILE, LIMITS)
    if reason is not None:
        assert parts == 0
        assert re.match(r"^[A-Za-z]+(\[\d+\])?(\.[a-z]+)?: ", reason), reason
        return
    message = to_outbound(req, "1:0")
    pdus = build_submits(
        message.source,
        message.destination,
        message.text,
        profile=SPEC_PROFILE,
        reference=1,
        encoding=message.encoding,
        max_parts=message.max_parts,
        template=message.template,
    )
    assert len(pdus) == parts
    for pdu in pdus:
        assert isinstance(decode(encode(pdu, 1)), SubmitSm)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_parse_batch_never_raises_on_bytes(data: bytes) -> None:
    for parsed in parse_batch(data):
        assert isinstance(parsed, Valid | Invalid)
        if isinstance(parsed, Invalid):
            assert parsed.reason


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(
            st.sampled_from(["to", "from", "text", "clientId", "tlvs", "tag", "value", "x"]),
            children,
            max_size=5,
        )
    ),
    max_leaves=20,
)


@FAST
@given(JSON_VALUES)
def test_parse_batch_never_raises_on_json(value: Any) -> None:
    parsed = parse_batch(json.dumps(value).encode())
    assert parsed
    for p in parsed:
        if isinstance(p, Valid):
            # Whatever decodes, validate judges without raising.
            check(p.request, SPEC_PROFILE, LIMITS)
        else:
            assert ": " in p.reason


@FAST
@given(REQUESTS)
def test_valid_requests_match_the_published_schema(req: SendRequest) -> None:
    if validate(req, SPEC_PROFILE, LIMITS) is None:
        assert schema_errors(SEND_SCHEMA, json.loads(encode_request(req))) == []


# --------------------------------------------------------------------------------------------
# JSON Schemas: the committed files, the examples, and a small independent validator

SEND_SCHEMA: dict[str, Any] = json.loads(json_schemas()["send-request.schema.json"])
EVENT_SCHEMA: dict[str, Any] = json.loads(json_schemas()["event.schema.json"])

_TYPES: dict[str, Any] = {
    "object": dict,
    "array": list,
    "string": str,
    "boolean": bool,
    "null": type(None),
}


def _is_type(value: Any, kind: str) -> bool:
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, _TYPES[kind])


def schema_errors(schema: dict[str, Any], value: Any, root: Any = None, at: str = "$") -> list[str]:
    """The keywords msgspec's schemas use, checked the JSON Schema way (2020-12)."""
    root = schema if root is None else root
    errors: list[str] = []
    if "$ref" in schema:
        name = schema["$ref"].removeprefix("#/$defs/")
        errors += schema_errors(root["$defs"][name], value, root, at)
    if "anyOf" in schema and all(schema_errors(s, value, root, at) for s in schema["anyOf"]):
        errors.append(f"{at}: matches no anyOf branch")
    if "type" in schema and not _is_type(value, schema["type"]):
        errors.append(f"{at}: not {schema['type']}")
        return errors
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{at}: not in enum")
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            errors.append(f"{at}: too short")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            errors.append(f"{at}: too long")
        if "pattern" in schema and re.search(schema["pattern"], value) is None:
            errors.append(f"{at}: does not match {schema['pattern']}")
    if _is_type(value, "number"):
        if "minimum" in schema and value < schema["minimum"]:
            errors.append(f"{at}: below minimum")
        if "maximum" in schema and value > schema["maximum"]:
            errors.append(f"{at}: above maximum")
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            errors.append(f"{at}: too few items")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            errors.append(f"{at}: too many items")
        if "items" in schema:
            for i, element in enumerate(value):
                errors += schema_errors(schema["items"], element, root, f"{at}[{i}]")
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in value:
                errors.append(f"{at}: missing {name}")
        for name, element in value.items():
            if name in properties:
                errors += schema_errors(properties[name], element, root, f"{at}.{name}")
            elif schema.get("additionalProperties") is False:
                errors.append(f"{at}: unknown {name}")
    return errors


def test_committed_schemas_are_current() -> None:
    for name, text in json_schemas().items():
        path = ROOT / "schema" / name
        assert path.read_text(encoding="utf-8") == text, f"{name} is stale: run tools/gen_schema.py"


def _gen_schema_main() -> Any:
    spec = importlib.util.spec_from_file_location("gen_schema", ROOT / "tools" / "gen_schema.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def test_gen_schema_tool(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main = _gen_schema_main()
    assert main(["--check", "--dir", str(tmp_path)]) == 1
    assert "stale: " in capsys.readouterr().err
    assert main(["--dir", str(tmp_path)]) == 0
    for name, text in json_schemas().items():
        assert (tmp_path / name).read_text(encoding="utf-8") == text
    assert main(["--check", "--dir", str(tmp_path)]) == 0


def test_mission_examples_validate() -> None:
    assert schema_errors(SEND_SCHEMA, json.loads(MISSION_REQUEST)) == []
    assert schema_errors(SEND_SCHEMA, [json.loads(MISSION_REQUEST)] * 100) == []
    assert schema_errors(EVENT_SCHEMA, json.loads(MISSION_EVENT)) == []
    full = item(
        encoding="latin9",
        validity=60,
        priority=3,
        scheduleAt="2026-04-21T10:15:00Z",
        maxParts=2,
        requestDlr=False,
        tlvs=[{"tag": "user_message_reference", "value": 7}, {"tag": 5121, "value": "ab"}],
    )
    assert schema_errors(SEND_SCHEMA, full) == []


@pytest.mark.parametrize(
    "bad",
    [
        {"to": "+34600000001", "text": "no sender"},
        item(colour="blue"),
        item(to="12ab"),
        item(to="+0034600000001"),
        item(text=""),
        item(priority=4),
        item(validity=0),
        item(maxParts=256),
        item(encoding="utf8"),
        item(clientId=""),
        item(tlvs=[{"tag": "x", "value": 1, "more": 2}]),
        item(**{"from": "AB"}),
        [],
        [item()] * 101,
        "text",
    ],
)
def test_schema_rejects(bad: Any) -> None:
    assert schema_errors(SEND_SCHEMA, bad) != []


def test_schema_event_rejects_missing_contract_fields() -> None:
    event = json.loads(MISSION_EVENT)
    for name in ("id", "clientId", "status", "code", "eventAt"):
        partial = {k: v for k, v in event.items() if k != name}
        assert schema_errors(EVENT_SCHEMA, partial) == [f"$: missing {name}"]


def test_a_lone_surrogate_is_named_by_its_field_and_spares_its_neighbours() -> None:
    """JSON allows an escaped unpaired surrogate; Unicode text does not. The item that has
    one is an error naming the field (with its clientId), its neighbours go through."""
    good = {"from": "ACME", "to": "+34600000001", "text": "ok", "clientId": "a"}
    bad = {"from": "ACME", "to": "+34600000002", "text": "x\ud800y", "clientId": "b"}
    nested = good | {"clientId": "c", "tlvs": [{"tag": "x", "value": "\udfff"}]}
    dirty_id = good | {"clientId": "d\udc00"}
    parsed = parse_batch(json.dumps([good, bad, nested, dirty_id]).encode())
    assert isinstance(parsed[0], Valid) and parsed[0].request.client_id == "a"
    invalid = [p for p in parsed[1:] if isinstance(p, Invalid)]
    reasons = [(p.index, p.reason.split(":")[0], p.client_id) for p in invalid]
    assert reasons == [(1, "text", "b"), (2, "tlvs[0].value", "c"), (3, "clientId", None)]
    assert all("unpaired UTF-16 surrogate" in p.reason for p in invalid)
    (one,) = parse_batch(json.dumps(bad))
    assert isinstance(one, Invalid) and (one.index, one.client_id) == (0, "b")
    # Refused for another reason, JSON or not: said as before.
    (nan,) = parse_batch(b'{"from": "ACME", "to": "+34600000001", "text": "x", "validity": NaN}')
    assert isinstance(nan, Invalid) and nan.reason.startswith("payload: not JSON")


@FAST
@given(
    st.lists(JSON_VALUES, min_size=1, max_size=4),
    st.text(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1, max_size=3),
    st.integers(min_value=0, max_value=3),
)
def test_parse_batch_never_raises_with_surrogates(
    values: list[Any], bad: str, position: int
) -> None:
    values.insert(min(position, len(values)), {"text": bad, "clientId": "k"})
    parsed = parse_batch(json.dumps(values).encode())
    assert parsed
    for p in parsed:
        assert isinstance(p, Valid | Invalid)
        if isinstance(p, Invalid):
            assert ": " in p.reason
