"""The daemon's events, built from what the pool hands out.

The pool reports typed values (``SubmitOutcome``, ``DlrEvent``, ``InboundMessage``); the
bridge owns the shape consumers read (``envelope.Event``) and builds it here: a submit's
outcome, a receipt's events (the part's and, for a multipart message, the message's), an
inbound message, and the daemon's own ``error`` and ``unknown`` events. Pure functions; each
takes the batch's one timestamp (``iso_time``) as ``event_at``.
"""

from __future__ import annotations

import time
from typing import Final

from ..codec.status import Status
from ..pool import DlrEvent, InboundMessage, SubmitOutcome
from .envelope import Event
from .store import MessageRecord

# The reason of the ``unknown`` event of a receipt no request claimed.
UNMATCHED_REASON: Final = "unmatched receipt"
# The reason of the ``unknown`` event of a redelivered request whose outcome was never recorded.
REDELIVERED_REASON: Final = "redelivered after a crash: outcome unknown"
# The reason of the late ``sent`` event of a request receipts settled before a crash.
RECOVERED_REASON: Final = "recovered after a crash: accepted, its event was lost with the daemon"

_SECONDS: dict[int, str] = {}


def iso_time(moment: float) -> str:
    """``pool.dlr.iso_utc`` for epoch seconds, the whole-second part formatted once per second
    (every event carries one or two timestamps: this was a tenth of the daemon's CPU)."""
    second = int(moment)
    micros = round((moment - second) * 1e6)  # as datetime rounds, then truncated to ms
    if micros >= 1_000_000:
        second += 1
        micros -= 1_000_000
    prefix = _SECONDS.get(second)
    if prefix is None:
        if len(_SECONDS) > 4096:
            _SECONDS.clear()
        prefix = _SECONDS[second] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
    return f"{prefix}.{micros // 1000:03d}Z"


def error_event(request_id: str, client_id: str | None, reason: str, event_at: str) -> Event:
    """The ``error`` event of a request the daemon refused (invalid, or a duplicate)."""
    return Event(
        id=None,
        client_id=client_id,
        status=Status.ERROR,
        code=0,
        event_at=event_at,
        request_id=request_id,
        reason=reason,
    )


def duplicate_event(claim: MessageRecord, before: MessageRecord, event_at: str) -> Event:
    """The ``error`` event of a request repeating the clientId of ``before`` (an earlier
    request within the dedup window)."""
    return error_event(
        claim.request_id,
        claim.client_id,
        f"duplicate clientId {claim.client_id!r}: already {before.status} "
        f"as request {before.request_id}",
        event_at,
    )


def unknown_event(record: MessageRecord, reason: str, event_at: str) -> Event:
    """The ``unknown`` event of a stored request whose submit outcome is not known."""
    return Event(
        id=record.message_ids[0] if record.message_ids else None,
        client_id=record.client_id,
        status=Status.UNKNOWN,
        code=0,
        event_at=event_at,
        request_id=record.request_id,
        reason=reason,
        possible_duplicate=True,
    )


def outcome_event(outcome: SubmitOutcome, event_at: str) -> Event:
    """The event of a submit's outcome (``sent``, ``error`` or ``unknown``)."""
    message = outcome.message
    ids = [mid for mid in outcome.message_ids if mid]
    return Event(
        id=ids[0] if ids else None,
        client_id=message.client_id,
        status=outcome.status,
        code=outcome.code,
        event_at=event_at,
        request_id=message.id,
        parts=outcome.parts or None,
        account=outcome.account or None,
        bind=outcome.bind or None,
        reason=outcome.reason,
        possible_duplicate=outcome.possible_duplicate,
        attempts=outcome.attempts if outcome.attempts > 1 else None,
    )


def dlr_events(dlr: DlrEvent, event_at: str) -> list[Event]:
    """A receipt's events: for one part, the message's; for a part of a multipart message, the
    part's (with ``segment``) and, when the message-level status changed, the message's."""
    record = dlr.record
    if record is None:
        # No request claimed it within ``unmatched_after`` (or parking overflowed): the
        # receipt's status belongs to no known message, so the event says ``unknown`` and
        # keeps what the receipt said beside it.
        return [
            Event(
                id=dlr.message_id,
                client_id=None,
                status=Status.UNKNOWN,
                code=dlr.code,
                event_at=event_at,
                account=dlr.account,
                bind=dlr.bind,
                reason=UNMATCHED_REASON,
                receipt_status=dlr.status,
            )
        ]
    submitted = iso_time(record.submitted_at) if record.submitted_at else None
    part = Event(
        id=record.message_id,
        client_id=record.client_id,
        status=dlr.status,
        code=dlr.code,
        event_at=event_at,
        request_id=record.request_id,
        parts=record.parts,
        segment=record.part + 1 if record.parts > 1 else None,
        submitted_at=submitted,
        account=dlr.account,
        bind=dlr.bind,
        possible_duplicate=dlr.possible_duplicate,
    )
    message = dlr.message
    if record.parts <= 1 or message is None or not message.changed:
        return [part]
    return [
        part,
        Event(
            id=message.message_id,
            client_id=message.client_id,
            status=message.status,
            code=message.code,
            event_at=event_at,
            request_id=message.request_id,
            parts=message.parts,
            submitted_at=submitted,
            account=dlr.account,
            possible_duplicate=dlr.possible_duplicate,
        ),
    ]


def recovered_event(record: MessageRecord, event_at: str) -> Event:
    """The late ``sent`` event of a redelivered request that receipts settled but whose own
    outcome event never got written (a crash between storing the mapping and publishing)."""
    return Event(
        id=record.message_ids[0] if record.message_ids else None,
        client_id=record.client_id,
        status=Status.SENT,
        code=0,
        event_at=event_at,
        request_id=record.request_id,
        parts=record.parts or None,
        account=record.account,
        reason=RECOVERED_REASON,
    )


def inbound_event(message: InboundMessage, status: str, event_at: str) -> Event:
    """The event of an inbound message (``status``: ``inbound``, or ``stop`` for an opt-out)."""
    return Event(
        id=None,
        client_id=None,
        status=status,
        code=0,
        event_at=event_at,
        message=message.text,
        from_=message.source,
        to=message.destination,
        account=message.account,
        parts=message.parts,
        reason="incomplete: parts missing " + ",".join(str(p) for p in message.missing)
        if message.incomplete
        else None,
    )


__all__ = [
    "RECOVERED_REASON",
    "REDELIVERED_REASON",
    "UNMATCHED_REASON",
    "dlr_events",
    "duplicate_event",
    "error_event",
    "inbound_event",
    "iso_time",
    "outcome_event",
    "recovered_event",
    "unknown_event",
]
