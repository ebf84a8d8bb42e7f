"""Envelopes: send requests in, events out, as JSON with a published schema.

A producer puts one send request (a JSON object) or a bulk of up to ``max_batch`` (a JSON
array) on the requests queue. ``parse_batch`` turns that payload into one ``Valid`` or
``Invalid`` per item, so a bad item never spoils its neighbours and never raises; ``validate``
checks what the types cannot (E.164 numbers, sender ids, encodability, part limits, TLVs)
and answers with a reason that names the field, like ``to: not an E.164 number: '12ab'``;
``to_outbound`` makes the pool's ``OutboundMessage``. Events, one JSON object per status
transition, are encoded with ``encode_events`` and read back with ``decode_event``.

The hot path is one msgspec decode per payload, a few string checks and one part count per
request: a short GSM 7-bit text is counted in septets without being encoded, and nothing is
segmented here (the pool segments once, under the profile of the account it routes to).
``json_schemas()`` gives the JSON Schemas published in ``schema/`` for producers and
consumers in other languages (``tools/gen_schema.py`` writes them).
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Literal, NamedTuple

import msgspec
from msgspec import Meta, field

from ..codec.gsm7 import gsm7_septets
from ..codec.pdus import SubmitSm
from ..codec.segment import MAX_PARTS
from ..codec.status import EVENT_STATUSES, TERMINAL
from ..codec.text import (
    Concat,
    EncodingProfile,
    count_parts,
    encode_units,
    select_encoding,
)
from ..codec.tlv import TLV_SPECS, Tag, Tlv, resolve_tag
from ..errors import EncodingError, FieldError
from ..pool import OutboundMessage

Encoding = Literal["auto", "gsm7", "latin9", "latin1", "ucs2", "ascii"]
ENCODINGS: Final[tuple[str, ...]] = ("auto", "gsm7", "latin9", "latin1", "ucs2", "ascii")
"""Encoding names a request may ask for; each but "auto" is the codec's name of the same."""

STATUSES: Final = EVENT_STATUSES
"""Every ``Event.status`` value (see MISSION.md)."""

TERMINAL_STATUSES: Final = TERMINAL
"""Statuses after which a message does not change any more."""

DEFAULT_MAX_PARTS: Final = 10
DEFAULT_MAX_BATCH: Final = 100
MAX_CLIENT_ID: Final = 256
# The longest validity the air interface can express (relative TP-VP: 63 weeks); no SMSC
# keeps a message longer, so a larger value is a producer's mistake.
MAX_VALIDITY: Final = 441 * 86400
# The most characters one part of a multi-part message holds in any encoding (GSM 7-bit with
# an 8-bit concatenation UDH): a text of n characters needs at least ceil(n / 153) parts.
_MOST_PER_PART: Final = 153
# Tags segmentation writes itself: a request may not set them.
_SEGMENTATION_TAGS: Final = frozenset(
    {Tag.message_payload, Tag.sar_msg_ref_num, Tag.sar_total_segments, Tag.sar_segment_seqnum}
)

# One spelling of each rule for both ``validate`` and the published schema.
_E164_PATTERN: Final = r"\+?[1-9][0-9]{7,14}"
_SENDER_PATTERN: Final = r"\+?[0-9]{1,15}|[A-Za-z0-9][A-Za-z0-9 ]{1,9}[A-Za-z0-9]"
_E164: Final = re.compile(_E164_PATTERN)
_SENDER: Final = re.compile(_SENDER_PATTERN)


class Limits(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What the daemon accepts: parts per message unless a request sets ``maxParts``, and
    requests per bulk payload (the ``[limits]`` section of the daemon's config)."""

    max_parts: int = DEFAULT_MAX_PARTS
    max_batch: int = DEFAULT_MAX_BATCH

    def __post_init__(self) -> None:
        if not 1 <= self.max_parts <= MAX_PARTS:
            raise ValueError(f"max_parts: must be within 1..{MAX_PARTS}, got {self.max_parts}")
        if self.max_batch < 1:
            raise ValueError(f"max_batch: must be at least 1, got {self.max_batch}")


# ---------------------------------------------------------------------------------------------
# Send requests


class TlvSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One extra TLV of a request (advanced).

    ``tag`` is a number or a standard name ("user_message_reference", "0x1401" works too).
    ``value`` by the tag's type: an integer for integer tags, the text for string tags, a hex
    string of the raw octets for octet-string and unknown (vendor) tags; none for a flag.
    """

    tag: Annotated[
        int | str,
        Meta(
            description="TLV tag: a number (0..65535) or a standard SMPP name",
            examples=["user_message_reference", 5122],
        ),
    ]
    value: Annotated[
        int | str | None,
        Meta(
            description=(
                "integer tags: an integer; string tags: the text; octet-string and "
                "vendor tags: hex digits of the raw value; flags: null or omitted"
            )
        ),
    ] = None


class SendRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """One message to send, as a producer writes it (JSON names as in MISSION.md)."""

    to: Annotated[
        str,
        Meta(
            description="destination, E.164: optional +, 8 to 15 digits, no leading 0",
            examples=["+34600000001"],
            extra_json_schema={"pattern": f"^{_E164_PATTERN}$"},
        ),
    ]
    text: Annotated[
        str,
        Meta(
            description="the message text, exactly as it should arrive",
            extra_json_schema={"minLength": 1},
        ),
    ]
    from_: Annotated[
        str,
        Meta(
            description=(
                "sender: 3 to 11 ASCII letters, digits or inner spaces (alphanumeric), "
                "or 1 to 15 digits with an optional +"
            ),
            examples=["ACME"],
            extra_json_schema={"pattern": f"^({_SENDER_PATTERN})$"},
        ),
    ] = field(name="from")
    client_id: Annotated[
        str | None,
        Meta(
            description="the producer's id for the message: events carry it; dedup key",
            extra_json_schema={"minLength": 1, "maxLength": MAX_CLIENT_ID},
        ),
    ] = field(default=None, name="clientId")
    encoding: Annotated[
        Encoding, Meta(description="auto: the encoding with the fewest parts the SMSC accepts")
    ] = "auto"
    validity: Annotated[
        int | None,
        Meta(
            description="seconds the SMSC keeps trying to deliver",
            extra_json_schema={"minimum": 1, "maximum": MAX_VALIDITY},
        ),
    ] = None
    priority: Annotated[
        int | None,
        Meta(description="SMPP priority_flag", extra_json_schema={"minimum": 0, "maximum": 3}),
    ] = None
    schedule_at: Annotated[
        str | None,
        Meta(
            description="deliver at (ISO-8601 with a UTC offset or Z)",
            examples=["2026-04-21T10:15:00Z"],
            extra_json_schema={"format": "date-time"},
        ),
    ] = field(default=None, name="scheduleAt")
    max_parts: Annotated[
        int | None,
        Meta(
            description="refuse the message if it needs more parts (default: the daemon's)",
            extra_json_schema={"minimum": 1, "maximum": MAX_PARTS},
        ),
    ] = field(default=None, name="maxParts")
    request_dlr: Annotated[bool, Meta(description="ask the SMSC for delivery receipts")] = field(
        default=True, name="requestDlr"
    )
    tlvs: Annotated[
        list[TlvSpec] | None, Meta(description="extra SMPP optional parameters (advanced)")
    ] = None
    account: Annotated[
        str | None, Meta(description="send through this SMSC account of the daemon only")
    ] = None


class Valid(msgspec.Struct, frozen=True, gc=False):
    """An item of a payload that decoded into a ``SendRequest`` (not validated yet)."""

    index: int
    request: SendRequest


class Invalid(msgspec.Struct, frozen=True, gc=False):
    """An item that is no send request, or (``index`` -1) a whole payload that is not one
    object or an array of them. ``client_id`` is the item's clientId when it could be read."""

    index: int
    reason: str
    client_id: str | None = None


Parsed = Valid | Invalid


class _ClientIdOnly(msgspec.Struct):
    client_id: str | None = field(default=None, name="clientId")


_ONE_OR_MANY: Final = msgspec.json.Decoder(list[SendRequest] | SendRequest)
_RAW: Final = msgspec.json.Decoder(msgspec.Raw)
_RAW_ITEMS: Final = msgspec.json.Decoder(list[msgspec.Raw])
_ONE: Final = msgspec.json.Decoder(SendRequest)
_CLIENT_ID: Final = msgspec.json.Decoder(_ClientIdOnly)
_REQUEST_ENCODER: Final = msgspec.json.Encoder()
_JSON_KINDS: Final = {
    ord("["): "an array",
    ord("{"): "an object",
    ord('"'): "a string",
    ord("t"): "a boolean",
    ord("f"): "a boolean",
    ord("n"): "null",
}
# What decoding untrusted bytes may raise: malformed JSON, wrong types, invalid UTF-8
# (UnicodeDecodeError is a ValueError) and nesting deeper than the decoder's stack.
_DECODE_ERRORS: Final = (msgspec.MsgspecError, ValueError, RecursionError)
_MSGSPEC_PATH: Final = re.compile(r"^(?P<what>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_QUOTED: Final = re.compile(r"`([^`]*)`")


def parse_batch(data: bytes | str, *, max_batch: int = DEFAULT_MAX_BATCH) -> list[Parsed]:
    """The send requests in one queue payload: a JSON object, or an array of 1..``max_batch``.

    Never raises. Each item becomes ``Valid(index, request)`` or ``Invalid(index, reason,
    client_id)``; a payload that is not JSON, not an object or array, an empty array or one
    longer than ``max_batch`` becomes a single ``Invalid`` with index -1.
    """
    try:
        decoded = _ONE_OR_MANY.decode(data)
    except _DECODE_ERRORS:
        return _parse_items(data, max_batch)
    if isinstance(decoded, SendRequest):
        return [Valid(0, decoded)]
    problem = _batch_size_problem(len(decoded), max_batch)
    if problem is not None:
        return [Invalid(-1, problem)]
    return [Valid(i, request) for i, request in enumerate(decoded)]


def _batch_size_problem(size: int, max_batch: int) -> str | None:
    if size == 0:
        return f"payload: empty array (expected 1 to {max_batch} send requests)"
    if size > max_batch:
        return f"payload: {size} send requests, more than the limit of {max_batch}"
    return None


def _parse_items(data: bytes | str, max_batch: int) -> list[Parsed]:
    """The slow path, taken only when some item does not decode: item by item."""
    try:
        raw = _RAW.decode(data)
    except _DECODE_ERRORS as exc:
        salvaged = _parse_surrogates(data, max_batch)
        if salvaged is not None:
            return salvaged
        return [Invalid(-1, f"payload: not JSON: {_msgspec_reason(exc)[1]}")]
    first = bytes(raw)[:1]
    if first == b"{":
        return [_parse_item(0, raw)]
    if first != b"[":
        kind = _JSON_KINDS.get(first[0], "a number") if first else "nothing"
        return [Invalid(-1, f"payload: expected a send request object or an array, got {kind}")]
    try:
        items = _RAW_ITEMS.decode(raw)
    except _DECODE_ERRORS as exc:  # an array nested too deeply to take apart
        return [Invalid(-1, f"payload: not JSON: {_msgspec_reason(exc)[1]}")]
    problem = _batch_size_problem(len(items), max_batch)
    if problem is not None:
        return [Invalid(-1, problem)]
    return [_parse_item(i, item) for i, item in enumerate(items)]


def _parse_surrogates(data: bytes | str, max_batch: int) -> list[Parsed] | None:
    """A payload the JSON grammar allows but that is no Unicode text: an escaped unpaired
    UTF-16 surrogate (``"\\ud800"``), which msgspec refuses as malformed. Each item that has
    one is invalid with the field named (and its clientId, when that is clean); the others
    go through as usual. None when the payload is not JSON at all."""
    try:
        value = json.loads(data)
    except (ValueError, RecursionError):
        return None
    if _surrogate_path(value, "") is None:
        return None  # refused for another reason (NaN, say): said as before
    many = isinstance(value, list)
    items: list[Any] = value if many else [value]
    if many:
        problem = _batch_size_problem(len(items), max_batch)
        if problem is not None:
            return [Invalid(-1, problem)]
    parsed: list[Parsed] = []
    for i, item in enumerate(items):
        path = _surrogate_path(item, "")
        if path is None:
            parsed.append(_parse_item(i, msgspec.Raw(json.dumps(item).encode())))
            continue
        client_id = item.get("clientId") if isinstance(item, dict) else None
        if not (
            isinstance(client_id, str)
            and 0 < len(client_id) <= MAX_CLIENT_ID
            and _surrogate_path(client_id, "") is None
        ):
            client_id = None
        reason = f"{path or 'request'}: contains an unpaired UTF-16 surrogate (not Unicode text)"
        parsed.append(Invalid(i, reason, client_id))
    return parsed


def _surrogate_path(value: Any, path: str) -> str | None:
    """Where in a decoded JSON value the first string with a lone surrogate is (a key
    counts as its member), as ``_msgspec_reason`` writes paths; None if nowhere."""
    if isinstance(value, str):
        return path if any("\ud800" <= c <= "\udfff" for c in value) else None
    if isinstance(value, dict):
        for key, member in value.items():
            at = f"{path}.{key}" if path else str(key)
            found = _surrogate_path(key, at) or _surrogate_path(member, at)
            if found is not None:
                return found
    elif isinstance(value, list):
        for i, member in enumerate(value):
            found = _surrogate_path(member, f"{path}[{i}]")
            if found is not None:
                return found
    return None


def _parse_item(index: int, raw: msgspec.Raw) -> Parsed:
    try:
        return Valid(index, _ONE.decode(raw))
    except _DECODE_ERRORS as exc:
        path, what = _msgspec_reason(exc)
        if not path and what.startswith("expected `object`"):
            reason = f"item {index}: {what}" if index >= 0 else what
        else:
            reason = f"{path or 'request'}: {what}"
        return Invalid(index, reason, _client_id_of(raw))


def _client_id_of(raw: msgspec.Raw) -> str | None:
    """The clientId of an item that failed to decode, when it is a usable one."""
    try:
        client_id = _CLIENT_ID.decode(raw).client_id
    except _DECODE_ERRORS:
        return None
    if client_id is None or not 0 < len(client_id) <= MAX_CLIENT_ID:
        return None
    return client_id


def _msgspec_reason(exc: BaseException) -> tuple[str, str]:
    """(field path as a user writes it, what is wrong) from a msgspec error message.

    "Expected `str`, got `int` - at `$.tlvs[0].tag`" → ("tlvs[0].tag", "expected `str`, got
    `int`"); "Object missing required field `from`" → ("from", "missing required field").
    """
    if isinstance(exc, RecursionError):
        return "", "nested too deeply"
    if isinstance(exc, UnicodeError):
        return "", "not valid UTF-8"
    text = str(exc)
    match = _MSGSPEC_PATH.match(text)
    assert match is not None  # the pattern matches any string
    what = match["what"]
    path = (match["path"] or "").lstrip(".")
    for prefix, problem in (
        ("Object missing required field ", "missing required field"),
        ("Object contains unknown field ", "unknown field"),
    ):
        if what.startswith(prefix):
            name = _QUOTED.search(what)
            if name is not None:
                joined = f"{path}.{name[1]}" if path else name[1]
                return joined, problem
    if what[1:2].islower():  # "Expected ..." reads on after a colon; "JSON is ..." stays
        what = what[:1].lower() + what[1:]
    return path, what


def encode_request(request: SendRequest) -> bytes:
    """A request as the JSON object producers write."""
    return _REQUEST_ENCODER.encode(request)


# ---------------------------------------------------------------------------------------------
# Validation


class Checked(NamedTuple):
    """What ``check`` found: the reason a request is refused (None if valid), and the parts
    it needs under the profile it was checked with (0 when refused)."""

    reason: str | None
    parts: int


def validate(
    req: SendRequest, profile: EncodingProfile, limits: Limits, *, concat: Concat = "udh8"
) -> str | None:
    """Why ``req`` cannot be sent under ``profile`` and ``limits``, or None if it can.

    The reason names the field and the problem: ``to: not an E.164 number: '12ab'``.
    ``concat`` is the account's concatenation mode (it changes part capacities a little).
    """
    try:
        _check(req, profile, limits, concat)
    except ValueError as exc:
        return str(exc)
    return None


def check(
    req: SendRequest, profile: EncodingProfile, limits: Limits, *, concat: Concat = "udh8"
) -> Checked:
    """``validate`` that also returns the part count it had to work out anyway."""
    try:
        return Checked(None, _check(req, profile, limits, concat))
    except ValueError as exc:
        return Checked(str(exc), 0)


def _check(req: SendRequest, profile: EncodingProfile, limits: Limits, concat: Concat) -> int:
    """The part count of a valid request; ValueError with the reason otherwise."""
    to = req.to
    if _E164.fullmatch(to) is None:
        raise ValueError(f"to: not an E.164 number: {to!r}")
    sender = req.from_
    if _SENDER.fullmatch(sender) is None:
        raise ValueError(
            f"from: not a sender id (3 to 11 letters, digits or inner spaces, "
            f"or 1 to 15 digits): {sender!r}"
        )
    client_id = req.client_id
    if client_id is not None and not 0 < len(client_id) <= MAX_CLIENT_ID:
        raise ValueError(f"clientId: must be 1 to {MAX_CLIENT_ID} characters, got {len(client_id)}")
    if req.account is not None and not req.account:
        raise ValueError("account: empty")
    encoding = req.encoding
    if encoding != "auto":
        if encoding not in ENCODINGS:
            raise ValueError(f"encoding: unknown {encoding!r} (known: {', '.join(ENCODINGS)})")
        if encoding not in profile.encodings:
            raise ValueError(
                f"encoding: {encoding!r} is not accepted by the SMSC profile {profile.name!r} "
                f"(accepted: auto, {', '.join(profile.encodings)})"
            )
    # The optional fields are rare: one test skips them all on the hot path.
    if (
        req.validity is not None
        or req.priority is not None
        or req.schedule_at is not None
        or req.tlvs
    ):
        _template(req)
    max_parts = req.max_parts
    if max_parts is None:
        max_parts = limits.max_parts
    elif not 1 <= max_parts <= MAX_PARTS:
        raise ValueError(f"maxParts: must be within 1..{MAX_PARTS}, got {max_parts}")
    return _parts(req.text, encoding, profile, concat, max_parts)


def _parts(
    text: str, encoding: str, profile: EncodingProfile, concat: Concat, max_parts: int
) -> int:
    if not text:
        raise ValueError("text: empty")
    size = len(text)
    if encoding in ("auto", "gsm7") and size <= 160 and "gsm7" in profile.encodings:
        # Most traffic: fits one GSM 7-bit part, the first choice in every mode. Counting
        # septets is all it takes (the pool encodes it once when it sends).
        septets = gsm7_septets(text)
        if septets is not None and septets <= 160:
            return 1
    if size > 160 and -(-size // _MOST_PER_PART) > max_parts:
        raise ValueError(
            f"text: needs at least {-(-size // _MOST_PER_PART)} parts, "
            f"more than maxParts ({max_parts})"
        )
    try:
        if encoding in ("auto", "gsm7"):
            choice, _ = select_encoding(
                text,
                profile,
                concat=concat,
                encodings=None if encoding == "auto" else ("gsm7",),
            )
            parts: int | None = choice.parts
        else:
            parts = count_parts(encode_units(text, encoding), encoding, concat=concat)
    except EncodingError as exc:
        problem = str(exc)
        raise ValueError(f"text: {problem.removeprefix('text ')}") from None
    if parts is None:  # only shift-table UDHs with SAR, which auto/gsm7 report above
        raise ValueError(f"text: cannot be split with {concat} concatenation")
    if parts > max_parts:
        raise ValueError(f"text: needs {parts} parts, more than maxParts ({max_parts})")
    return parts


# ---------------------------------------------------------------------------------------------
# To the pool


def to_outbound(
    req: SendRequest, request_id: str, *, max_parts: int = DEFAULT_MAX_PARTS
) -> OutboundMessage:
    """The pool's message for a validated request (``max_parts`` is the daemon's default when
    the request sets none). Raises ValueError (the reason, as ``validate`` gives it) for the
    optional fields ``validate`` would refuse."""
    template = None
    if (
        req.validity is not None
        or req.priority is not None
        or req.schedule_at is not None
        or req.tlvs
    ):
        template = _template(req)
    return OutboundMessage(
        id=request_id,
        source=req.from_,
        # E.164 after validation: always international (TON 1), whatever its length.
        destination=req.to if req.to.startswith("+") else "+" + req.to,
        text=req.text,
        client_id=req.client_id,
        encoding=req.encoding,
        request_dlr=req.request_dlr,
        max_parts=req.max_parts or max_parts,
        account=req.account,
        template=template,
    )


def _template(req: SendRequest) -> SubmitSm:
    """The submit_sm fields a request sets beyond text and addresses; ValueError if invalid."""
    priority = req.priority
    if priority is not None and not 0 <= priority <= 3:
        raise ValueError(f"priority: must be within 0..3, got {priority}")
    validity = ""
    if req.validity is not None:
        validity = relative_time(req.validity)
    schedule = ""
    if req.schedule_at is not None:
        schedule = absolute_time(parse_time(req.schedule_at, "scheduleAt"))
    tlvs = tuple(_tlv(i, spec) for i, spec in enumerate(req.tlvs or ()))
    return SubmitSm(
        priority_flag=priority or 0,
        validity_period=validity,
        schedule_delivery_time=schedule,
        tlvs=tlvs,
    )


def relative_time(seconds: int) -> str:
    """SMPP relative time "YYMMDDhhmmss000R" for a validity of ``seconds`` (1..MAX_VALIDITY).

    Up to 30 days it is exact in days; longer validities count months as 30 days and years
    as 12 such months (the format has no better unit).
    """
    if not 0 < seconds <= MAX_VALIDITY:
        raise ValueError(
            f"validity: must be within 1..{MAX_VALIDITY} seconds (441 days), got {seconds}"
        )
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    months = years = 0
    if days > 30:
        months, days = divmod(days, 30)
        years, months = divmod(months, 12)
    return f"{years:02d}{months:02d}{days:02d}{hours:02d}{minutes:02d}{secs:02d}000R"


def parse_time(value: str, name: str) -> datetime:
    """An ISO-8601 time with a UTC offset (or Z), as an aware datetime; ValueError naming
    ``name`` otherwise."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{name}: not an ISO-8601 time: {value!r}") from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name}: needs a UTC offset or Z: {value!r}")
    return moment


def absolute_time(moment: datetime) -> str:
    """SMPP absolute time "YYMMDDhhmmsstnnp" for an aware datetime, written in UTC."""
    utc = moment.astimezone(UTC)
    if not 2000 <= utc.year <= 2099:
        raise ValueError(
            f"scheduleAt: year {utc.year} (UTC) is outside what SMPP can carry (2000..2099)"
        )
    tenths = utc.microsecond // 100_000
    return f"{utc:%y%m%d%H%M%S}{tenths}00+"


def _tlv(index: int, spec: TlvSpec) -> Tlv:
    where = f"tlvs[{index}]"
    tag = spec.tag
    if isinstance(tag, bool):
        raise ValueError(f"{where}.tag: expected a number or a name, got a boolean")
    try:
        number = resolve_tag(tag)
    except FieldError as exc:
        raise ValueError(f"{where}.tag: {exc.reason}: {tag!r}") from None
    if number in _SEGMENTATION_TAGS:
        raise ValueError(f"{where}.tag: {Tag(number).name} is set by segmentation, not by requests")
    known = TLV_SPECS.get(number)
    value: int | str | bytes | None = spec.value
    if isinstance(value, bool):
        raise ValueError(f"{where}.value: expected a number or a string, got a boolean")
    if isinstance(value, str) and (known is None or known.kind == "octets"):
        try:
            value = bytes.fromhex(value)
        except ValueError:
            raise ValueError(f"{where}.value: not hex digits: {value!r}") from None
    elif known is None:
        raise ValueError(
            f"{where}.value: tag 0x{number:04X} is not a standard one; give its value as hex"
        )
    try:
        return Tlv.make(number, value)
    except FieldError as exc:
        raise ValueError(f"{where}.value: {exc.reason}") from None


# ---------------------------------------------------------------------------------------------
# Events


class Event(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One status transition of a message (or an inbound message), as consumers read it.

    ``id``, ``clientId``, ``status``, ``code`` and ``eventAt`` are the contract and always
    present (``null`` when unknown); the others appear when they say something.
    """

    id: Annotated[str | None, Meta(description="the SMSC's message_id")]
    client_id: Annotated[str | None, Meta(description="the request's clientId")] = field(
        name="clientId"
    )
    status: Annotated[str, Meta(description="one of: " + ", ".join(STATUSES))]
    code: Annotated[int, Meta(description="0, or the SMPP command_status / the receipt's err code")]
    event_at: Annotated[
        str, Meta(description="when it happened, ISO-8601 UTC", examples=["2026-04-21T10:15:00Z"])
    ] = field(name="eventAt")
    request_id: Annotated[
        str | None, Meta(description="the daemon's id of the request (queue entry:index)")
    ] = field(default=None, name="requestId")
    parts: Annotated[int | None, Meta(description="how many parts the message has")] = None
    segment: Annotated[int | None, Meta(description="which part (from 1) a receipt is of")] = None
    submitted_at: Annotated[str | None, Meta(description="when the SMSC accepted it")] = field(
        default=None, name="submittedAt"
    )
    bind: Annotated[str | None, Meta(description="the bind it went through")] = None
    account: Annotated[str | None, Meta(description="the SMSC account")] = None
    reason: Annotated[str | None, Meta(description="why, for errors and unknowns")] = None
    message: Annotated[str | None, Meta(description="inbound text")] = None
    from_: Annotated[str | None, Meta(description="inbound sender")] = field(
        default=None, name="from"
    )
    to: Annotated[str | None, Meta(description="inbound destination")] = None
    possible_duplicate: Annotated[
        bool,
        Meta(
            description="the message may have been submitted twice, or (on a report) this "
            "report published before, by a daemon that crashed before answering the SMSC"
        ),
    ] = field(default=False, name="possibleDuplicate")
    attempts: Annotated[int | None, Meta(description="submit attempts, when more than 1")] = None
    message_ids: Annotated[
        list[str] | None, Meta(description="every part's message_id, for a multi-part message")
    ] = field(default=None, name="messageIds")
    receipt_status: Annotated[
        str | None,
        Meta(description="for an unmatched receipt (status unknown): the status it reported"),
    ] = field(default=None, name="receiptStatus")


_EVENT_ENCODER: Final = msgspec.json.Encoder()
_EVENT_DECODER: Final = msgspec.json.Decoder(Event)


def encode_events(events: Iterable[Event]) -> list[bytes]:
    """Each event as one JSON object."""
    encode = _EVENT_ENCODER.encode
    return [encode(event) for event in events]


def decode_event(data: bytes | str) -> Event:
    """An event back from its JSON (``msgspec.DecodeError``/``ValidationError`` if it is not
    one). Unknown fields are ignored: consumers stay compatible with newer daemons."""
    return _EVENT_DECODER.decode(data)


# ---------------------------------------------------------------------------------------------
# JSON Schemas

SCHEMA_DIALECT: Final = "https://json-schema.org/draft/2020-12/schema"

SendPayload = (
    SendRequest
    | Annotated[
        list[SendRequest],
        Meta(min_length=1, max_length=DEFAULT_MAX_BATCH, description="a bulk request"),
    ]
)


def _schema(kind: Any, schema_id: str, title: str, description: str) -> dict[str, Any]:
    generated = msgspec.json.schema(kind)
    head: dict[str, Any] = {
        "$schema": SCHEMA_DIALECT,
        "$id": schema_id,
        "title": title,
        "description": description,
    }
    # msgspec puts the definitions under "$defs" and the root as a "$ref" or "anyOf".
    cleaned: dict[str, Any] = _clean_descriptions(head | generated)
    return cleaned


def _clean_descriptions(node: Any) -> Any:
    """Every ``description`` dedented as ``inspect.cleandoc`` does.

    msgspec copies docstrings into descriptions, and its releases differ on whether they strip
    the docstrings' indentation (0.22 keeps it, 0.23 strips it): normalising here keeps the
    published schema the same whichever msgspec a fresh install resolves.
    """
    if isinstance(node, dict):
        return {
            key: inspect.cleandoc(value)
            if key == "description" and isinstance(value, str)
            else _clean_descriptions(value)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_clean_descriptions(item) for item in node]
    return node


def json_schemas() -> dict[str, str]:
    """The published schemas: file name under ``schema/`` → its text (stable, sorted keys)."""
    schemas = {
        "send-request.schema.json": _schema(
            SendPayload,
            "https://smpp-bridge.dev/schema/send-request.schema.json",
            "smpp-bridge send request",
            "One send request (a JSON object), or a bulk request: an array of up to "
            f"{DEFAULT_MAX_BATCH} of them (the daemon's limits.max_batch).",
        ),
        "event.schema.json": _schema(
            Event,
            "https://smpp-bridge.dev/schema/event.schema.json",
            "smpp-bridge event",
            "One status transition of a message, or an inbound message.",
        ),
    }
    return {
        name: msgspec.json.format(msgspec.json.encode(schema, order="sorted"), indent=2).decode()
        + "\n"
        for name, schema in schemas.items()
    }


__all__ = [
    "DEFAULT_MAX_BATCH",
    "DEFAULT_MAX_PARTS",
    "ENCODINGS",
    "MAX_VALIDITY",
    "STATUSES",
    "TERMINAL_STATUSES",
    "Checked",
    "Encoding",
    "Event",
    "Invalid",
    "Limits",
    "Parsed",
    "SendRequest",
    "TlvSpec",
    "Valid",
    "absolute_time",
    "check",
    "decode_event",
    "encode_events",
    "encode_request",
    "json_schemas",
    "parse_batch",
    "parse_time",
    "relative_time",
    "to_outbound",
    "validate",
]
