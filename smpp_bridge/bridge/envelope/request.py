"""Send requests: the JSON producers write, parsed item by item, and the daemon's limits.

``parse_batch`` turns one queue payload (an object, or a bulk array) into one ``Valid`` or
``Invalid`` per item and never raises; ``encode_request`` writes a request back as JSON. The
patterns and limits here are the single spelling of each rule for both validation
(``envelope.validation``) and the published schema.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Final, Literal

import msgspec
from msgspec import Meta, field

from ...codec.segment import MAX_PARTS
from ...codec.tlv import Tag

Encoding = Literal["auto", "gsm7", "latin9", "latin1", "ucs2", "ascii"]
ENCODINGS: Final[tuple[str, ...]] = ("auto", "gsm7", "latin9", "latin1", "ucs2", "ascii")
"""Encoding names a request may ask for; each but "auto" is the codec's name of the same."""

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


__all__ = [
    "DEFAULT_MAX_BATCH",
    "DEFAULT_MAX_PARTS",
    "ENCODINGS",
    "MAX_CLIENT_ID",
    "MAX_VALIDITY",
    "Encoding",
    "Invalid",
    "Limits",
    "Parsed",
    "SendRequest",
    "TlvSpec",
    "Valid",
    "encode_request",
    "parse_batch",
]
