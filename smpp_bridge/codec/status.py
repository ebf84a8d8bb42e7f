"""The one vocabulary of message statuses (MISSION.md's ``Event.status``, plus the two states
a message has in the store before it has an outcome).

Every layer uses these values: the receipt mapping of the codec, the pool's outcomes and
message-level status, the envelopes and events of the daemon, the message store and its Lua
scripts (their tables are generated from here), and the CLI. ``Status`` is a ``StrEnum``, so
a member *is* its string: it compares equal to ``"delivered"``, encodes as ``"delivered"`` in
JSON and needs no conversion at the edges.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final


class Status(StrEnum):
    """A message's status (in the order the event schema lists them).

    ``rank`` says how far along a status is; a stored status only ever moves to one of equal
    or higher rank. ``terminal`` statuses never change again; ``failure`` statuses are the
    terminal ones that mean the message did not arrive.
    """

    QUEUED = "queued"
    """Taken from the queue, not yet handed to the pool (store only, never an event)."""
    SUBMITTING = "submitting"
    """Claimed by a daemon and being submitted (store only, never an event)."""
    SENT = "sent"
    """The SMSC accepted every part (``submit_sm_resp`` OK)."""
    ACCEPTED = "accepted"
    """A receipt said ACCEPTD: the SMSC took it on; the real outcome may follow."""
    BUFFERED = "buffered"
    """In the network: ENROUTE/SCHEDULED, or some parts of a multipart message delivered."""
    DELIVERED = "delivered"
    ERROR = "error"
    """The SMSC refused the submit, or it could not be made (validation, encoding)."""
    FAILED = "failed"
    EXPIRED = "expired"
    CANCELED = "canceled"
    REJECTED = "rejected"
    UNKNOWN = "unknown"
    """The outcome of a submit, or a receipt's state, is not known."""
    INBOUND = "inbound"
    """A mobile-originated message (an event, not a message's status)."""
    STOP = "stop"
    """An opt-out keyword arrived (an event, not a message's status)."""

    @property
    def terminal(self) -> bool:
        """Nothing changes after this status."""
        return self in TERMINAL

    @property
    def failure(self) -> bool:
        """A terminal status meaning the message did not (and will not) arrive."""
        return self in FAILURE

    @property
    def rank(self) -> int:
        """0 before an outcome (and for inbound/stop), 1 the submit outcome, 2 in the network,
        3 terminal."""
        return RANK[self]

    @property
    def is_event(self) -> bool:
        """Whether events carry this status (all but ``queued`` and ``submitting``)."""
        return self not in _STORE_ONLY


TERMINAL: Final = frozenset(
    {
        Status.DELIVERED,
        Status.FAILED,
        Status.EXPIRED,
        Status.CANCELED,
        Status.REJECTED,
        Status.ERROR,
    }
)
FAILURE: Final = frozenset(
    {Status.FAILED, Status.EXPIRED, Status.CANCELED, Status.REJECTED, Status.ERROR}
)
_STORE_ONLY: Final = frozenset({Status.QUEUED, Status.SUBMITTING})
RANK: Final[dict[Status, int]] = {
    Status.QUEUED: 0,
    Status.SUBMITTING: 0,
    Status.INBOUND: 0,
    Status.STOP: 0,
    Status.SENT: 1,
    Status.UNKNOWN: 1,
    Status.ACCEPTED: 2,
    Status.BUFFERED: 2,
    **dict.fromkeys(sorted(TERMINAL), 3),
}
EVENT_STATUSES: Final = tuple(s for s in Status if s.is_event)
"""Every ``Event.status`` value, in order."""


def status_rank(status: str) -> int:
    """``Status(status).rank``; 0 for a string that is no status."""
    try:
        return RANK[Status(status)]
    except ValueError:
        return 0


__all__ = ["EVENT_STATUSES", "FAILURE", "RANK", "TERMINAL", "Status", "status_rank"]
