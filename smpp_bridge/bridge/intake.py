"""Reading a leased batch: queue entries in, the requests to claim and the invalid ones out.

``read_entries`` parses every entry's payload, validates each request under the profile of
the account it asks for and builds the pool's message and the store record that claims it;
a request that fails becomes its ``error`` event. It awaits nothing and touches no backend:
``Bridge._take`` claims what it returns. ``Entry`` and ``Request`` are the daemon's
bookkeeping of one leased entry and one of its requests while they are in flight.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import structlog

from ..codec.segment import Concat
from ..codec.status import Status
from ..codec.text import EncodingProfile
from ..pool import OutboundMessage
from ..storage.queues import Leased
from .envelope import Event, Invalid, Limits, Valid, parse_batch, to_outbound, validate
from .events import error_event
from .store import MessageRecord

log = structlog.get_logger("smpp_bridge.bridge")


@dataclass(frozen=True, slots=True)
class AccountInfo:
    """What validating a request needs of its account."""

    profile: EncodingProfile
    concat: Concat


@dataclass(eq=False, slots=True)
class Entry:
    """One leased queue entry and how many of its requests are not settled yet."""

    leased: Leased
    pending: int = 0
    unsent: bool = False  # a request of it was handed back (drain): release, don't ack


@dataclass(eq=False, slots=True)
class Request:
    """One request of a leased entry, from its claim to its outcome."""

    entry: Entry
    request_id: str
    client_id: str | None
    taken_at: float  # anyio clock when leased, for queue -> submit_sm_resp latency
    enqueued_at: float  # wall clock of the entry's publish
    offered: bool = False  # given to ``pool.send_many`` (it may have reached a bind)


Claimable = tuple[Request, OutboundMessage, MessageRecord]


def read_entries(
    leased: Sequence[Leased],
    entries: Mapping[str, Entry],
    accounts: Mapping[str, AccountInfo],
    default_account: AccountInfo,
    limits: Limits,
    *,
    now: float,
    wall: float,
    event_at: str,
    debug: bool,
) -> tuple[list[Claimable], list[Event]]:
    """(requests to claim, ``error`` events of the invalid ones) for a leased batch; every
    request of it is in exactly one of the two. ``entries`` holds each leased entry's
    ``Entry``; ``now`` (anyio clock) and ``wall`` (epoch) are the batch's time. Raises
    nothing: a bad payload or request is an event."""
    invalid_events: list[Event] = []
    claims: list[Claimable] = []
    for item in leased:
        entry = entries[item.id]
        for parsed in parse_batch(item.data, max_batch=limits.max_batch):
            request_id = f"{item.id}:{max(parsed.index, 0)}"
            if isinstance(parsed, Invalid):
                invalid_events.append(
                    error_event(request_id, parsed.client_id, parsed.reason, event_at)
                )
                continue
            assert isinstance(parsed, Valid)
            req = parsed.request
            account = accounts.get(req.account or "", default_account)
            reason = validate(req, account.profile, limits, concat=account.concat)
            if reason is not None:
                invalid_events.append(error_event(request_id, req.client_id, reason, event_at))
                continue
            try:
                message = to_outbound(req, request_id, max_parts=limits.max_parts)
            except ValueError as exc:
                invalid_events.append(error_event(request_id, req.client_id, str(exc), event_at))
                continue
            record = MessageRecord(
                request_id=request_id,
                client_id=req.client_id,
                to=req.to,
                from_=req.from_,
                status=Status.SUBMITTING,
                created_at=wall,
                updated_at=wall,
                account=req.account,
            )
            request = Request(entry, request_id, req.client_id, now, item.enqueued_at)
            claims.append((request, message, record))
            if debug:  # message text only at debug
                log.debug(
                    "request taken",
                    request_id=request_id,
                    client_id=req.client_id,
                    to=req.to,
                    text=req.text,
                    attempts=item.attempts,
                )
    return claims, invalid_events


__all__ = ["AccountInfo", "Claimable", "Entry", "Request", "read_entries"]
