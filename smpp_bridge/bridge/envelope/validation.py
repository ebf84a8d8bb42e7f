"""Validating send requests, and making the pool's message of a valid one.

``validate`` (and ``check``, which also gives the part count) says what the types cannot:
E.164 numbers, sender ids, encodability under the account's profile, part limits, the
optional submit_sm fields and TLVs; the reason names the field, like
``to: not an E.164 number: '12ab'``. ``to_outbound`` makes the ``OutboundMessage``; the SMPP
time formats of validity and schedule are written here too.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import NamedTuple

from ...codec.gsm7 import gsm7_septets
from ...codec.pdus import SubmitSm
from ...codec.segment import MAX_PARTS
from ...codec.text import (
    Concat,
    EncodingProfile,
    count_parts,
    encode_units,
    select_encoding,
)
from ...codec.tlv import TLV_SPECS, Tag, Tlv, resolve_tag
from ...errors import EncodingError, FieldError
from ...pool import OutboundMessage
from .request import (
    _E164,
    _MOST_PER_PART,
    _SEGMENTATION_TAGS,
    _SENDER,
    DEFAULT_MAX_PARTS,
    ENCODINGS,
    MAX_CLIENT_ID,
    MAX_VALIDITY,
    Limits,
    SendRequest,
    TlvSpec,
)

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


__all__ = [
    "Checked",
    "absolute_time",
    "check",
    "parse_time",
    "relative_time",
    "to_outbound",
    "validate",
]
