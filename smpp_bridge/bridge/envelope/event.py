"""Events: one JSON object per status transition of a message (or an inbound message).

``Event`` is the shape consumers read (its statuses are ``codec.status.Status``);
``encode_events`` writes them and ``decode_event`` reads one back.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Final

import msgspec
from msgspec import Meta, field

from ...codec.status import EVENT_STATUSES, TERMINAL

STATUSES: Final = EVENT_STATUSES
"""Every ``Event.status`` value (see MISSION.md)."""

TERMINAL_STATUSES: Final = TERMINAL
"""Statuses after which a message does not change any more."""

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


__all__ = ["STATUSES", "TERMINAL_STATUSES", "Event", "decode_event", "encode_events"]
