"""What a claimed request is, decided purely from what the message store had before it.

The daemon claims every valid request of a batch in the message store (``MessageStore.begin``)
before it submits any. The store records the claim unless the request's dedup key was recorded
within its dedup window, in which case it answers with the earlier record. ``classify_claim``
reads that answer and says which case the request is and what the daemon does with it; it
awaits nothing and touches no store, so every case is unit-tested (``Bridge._take`` does the
I/O around it).
"""

from __future__ import annotations

import enum
from typing import Final

from ..codec.status import Status
from ..pool import UnknownPolicy
from .store import MessageRecord

# Statuses after which a message is done for good: a redelivery of it is just acknowledged.
SETTLED: Final = frozenset(s for s in Status if s.rank >= Status.SENT.rank)
# The statuses of a submit's own outcome (the rest come from receipts).
OUTCOMES: Final = frozenset({Status.SENT, Status.ERROR, Status.UNKNOWN})


class Claim(enum.Enum):
    """The case of one claimed request, and so what the daemon does with it."""

    FRESH = "fresh"
    """Nothing before it (or this very claim, recorded by a try of ``begin`` whose reply was
    lost): send it."""
    HANDED_BACK = "handed back"
    """Handed back unsent by a drain (stored ``queued``): claim it again (mark it
    ``submitting``) and send it, without doubt."""
    ANSWERED = "answered"
    """A redelivery whose submit outcome was recorded: acknowledge, nothing to send."""
    SETTLED_BY_RECEIPTS = "settled by receipts"
    """A redelivery that receipts settled (its mapping was stored) while the daemon died before
    writing its outcome: the submit was accepted; say so, late (``sent``, if no outcome event
    is in its history)."""
    RESEND = "resend"
    """A redelivery handed to the pool whose outcome was never recorded, under the ``retry``
    policy: send it again, marked ``possibleDuplicate``."""
    UNKNOWN = "unknown"
    """The same, under the ``report`` policy: an ``unknown`` event, nothing sent."""
    DUPLICATE = "duplicate"
    """A fresh request repeating a clientId seen within the dedup window: an ``error`` event
    naming the earlier request, nothing sent."""

    @property
    def sends(self) -> bool:
        """Whether the request goes to the pool."""
        return self in _SENDS


_SENDS: Final = frozenset({Claim.FRESH, Claim.HANDED_BACK, Claim.RESEND})


def classify_claim(
    claim: MessageRecord, before: MessageRecord | None, policy: UnknownPolicy
) -> Claim:
    """The case of ``claim`` (the record the daemon asked ``begin`` to store: its request id
    and ``created_at`` say which claim it is) given ``before``, the earlier record ``begin``
    answered with for it (None if it recorded the claim). ``policy`` is the account's for an
    unknown outcome. The dedup window is the store's: ``before`` is only ever a record within
    it. Raises nothing."""
    if before is None:
        return Claim.FRESH
    if before.request_id != claim.request_id:
        # (Keyed by request id: a request never finds itself, only an earlier one.)
        return Claim.DUPLICATE
    status = before.status
    if status == Status.SUBMITTING and before.created_at == claim.created_at:
        return Claim.FRESH
    if status == Status.QUEUED:
        return Claim.HANDED_BACK
    # A redelivery of work this or another daemon took before a crash.
    if status in OUTCOMES:
        return Claim.ANSWERED
    if status in SETTLED:
        return Claim.SETTLED_BY_RECEIPTS
    return Claim.RESEND if policy == "retry" else Claim.UNKNOWN


__all__ = ["OUTCOMES", "SETTLED", "Claim", "classify_claim"]
