"""One message on its way through the pool, and the decisions about it, without I/O.

``Job`` is the per-message state (its parts, their attempts and answers). ``decide`` says what
a part's answer (or its absence) means: settle it, retry it, slow down and retry it, or fail
it; ``final_status`` what the settled message's outcome is. Both are pure: the pool carries
the decisions out (schedules the retry, cuts the throttle, publishes the ``SubmitOutcome``).
"""

from __future__ import annotations

from enum import Enum

import msgspec

from ..codec.pdus import SubmitSm
from ..codec.status import Status
from .classify import StatusClass, StatusPolicy
from .config import OutboundMessage, UnknownPolicy
from .routing import Account, Bind


class Outcome(Enum):
    """What one part's answer calls for."""

    SETTLE = "settle"  # accepted: the part is done
    RETRY = "retry"  # a transient refusal, or no answer under the ``retry`` policy: again later
    BACKPRESSURE = "backpressure"  # the SMSC says slow down: cut the throttle, then again
    FAIL = "fail"  # refused for good, retries spent, or no answer under ``report``: done


def decide(
    status: int | None,
    *,
    nack: bool,
    attempts: int,
    max_retries: int,
    policy: StatusPolicy,
    unknown: UnknownPolicy,
) -> Outcome:
    """The one decision for a part's answer: ``status`` is its command_status (None: no answer,
    a timeout or a lost session), ``nack`` whether it came as a generic_nack, ``attempts`` the
    retries the part had so far. A retry never takes a part past ``max_retries`` (a push-back
    is no refusal of the part: it is retried whatever its count). (The pool tests
    ``status == 0`` inline before calling: its answer is always ``SETTLE``.)"""
    if status is None:
        return Outcome.RETRY if unknown == "retry" and attempts < max_retries else Outcome.FAIL
    if status == 0:
        return Outcome.SETTLE
    kind = policy.classify(status, nack=nack)
    if kind is StatusClass.BACKPRESSURE:
        return Outcome.BACKPRESSURE
    if kind in (StatusClass.TRANSIENT, StatusClass.SESSION) and attempts < max_retries:
        return Outcome.RETRY
    return Outcome.FAIL


def final_status(code: int, unknown: bool, reason: str | None, any_accepted: bool) -> Status:
    """A settled message's outcome, in this order: a permanent ``code`` is an error; else a
    part without an answer makes it unknown; else a reason with no part accepted (cannot be
    encoded, not resent) is an error; else it was sent."""
    if code:
        return Status.ERROR
    if unknown:
        return Status.UNKNOWN
    if reason is not None and not any_accepted:
        return Status.ERROR
    return Status.SENT


class SubmitOutcome(msgspec.Struct):
    """How one message ended: ``sent``, ``error`` (with ``code``) or ``unknown``."""

    message: OutboundMessage
    status: Status
    code: int = 0
    message_ids: tuple[str, ...] = ()
    parts: int = 0
    account: str = ""
    bind: str = ""
    reason: str | None = None
    possible_duplicate: bool = False
    attempts: int = 1


class Job:
    """One message on its way: its parts, and how each part fares. Plain state: the pool's
    subclass is also the driver's callback for its parts' responses (no closure per part)."""

    __slots__ = (
        "account",
        "attempts",
        "bind",
        "code",
        "done",
        "error_reason",
        "message",
        "message_ids",
        "out",
        "pdus",
        "possible_duplicate",
        "sent_gen",
        "sent_on",
        "settled",
        "unknown",
    )

    def __init__(self, message: OutboundMessage, account: Account, pdus: list[SubmitSm]) -> None:
        n = len(pdus)
        self.message = message
        self.account = account
        self.pdus = pdus
        self.message_ids: list[str | None] = [None] * n
        self.settled = [False] * n
        self.attempts = [0] * n
        # 0: not handed to a bind yet; else 1 + the bind's throttle generation when it was,
        # so a push-back answer to a part sent before the last slow-down is not counted twice.
        self.sent_gen = [0] * n
        self.sent_on: list[Bind | None] = [None] * n  # the bind each part went out on
        self.out = 0  # parts handed to a driver and not answered yet
        self.code = 0
        self.error_reason: str | None = None
        self.unknown = False
        self.possible_duplicate = False
        self.bind: Bind | None = None
        self.done = False

    @property
    def pending(self) -> bool:
        return not all(self.settled)

    @property
    def started(self) -> bool:
        """Whether any part has been handed to a bind."""
        return any(self.sent_gen)

    @property
    def smsc_may_have(self) -> bool:
        """Whether the SMSC may hold a part of this message: one accepted, or one sent without
        an answer (``possible_duplicate``)."""
        return self.possible_duplicate or any(self.message_ids)

    @property
    def none_accepted(self) -> bool:
        """Whether the SMSC has no part of this message and none is decided: nothing accepted,
        sent without an answer, refused for good, given up as unknown, or out now; every
        part handed out so far was refused (throttled, a transient error) and waits for a
        retry. Such a message is as unsent as one never tried: a drain gives it back rather
        than calling it unknown or failed."""
        return not (self.out or any(self.settled) or self.smsc_may_have)

    def status(self) -> Status:
        """How the message ended, once every part is settled (``final_status``)."""
        return final_status(self.code, self.unknown, self.error_reason, any(self.message_ids))


__all__ = ["Job", "Outcome", "SubmitOutcome", "decide", "final_status"]
