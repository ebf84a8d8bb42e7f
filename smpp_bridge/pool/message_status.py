"""The status of a whole message from its parts' receipts: ``aggregate_status`` (pure) and
``MessageStatusTracker``, which keeps the parts of each multipart message heard of and hands out
a ``MessageStatus`` per receipt. The receipt correlator (``dlr``) puts one in every matched
``DlrEvent``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

import msgspec

from ..codec.receipt import EVENT_STATUS, FINAL_STATS
from ..codec.status import FAILURE, Status
from .correlation import CorrelationRecord

# The statuses of the final receipt stats (``accepted`` among them; ``error`` never comes by
# receipt): a part with one of these is not expected to change.
FINAL_STATUSES: Final = frozenset(EVENT_STATUS[stat] for stat in FINAL_STATS)
FAILURE_STATUSES: Final = FAILURE


def aggregate_status(
    part_statuses: Sequence[str | None], failed_order: Sequence[int] | None = None
) -> tuple[str, bool]:
    """A message's (status, final) from its parts' latest statuses (None: no receipt yet).

    A failure of any part fails the message with that part's status (the first to fail, by
    ``failed_order``, default part order) and is final; every part with the same status gives
    that status; every part final and none failed (delivered and accepted mixed) is
    ``accepted``; anything else is still on its way: ``buffered``.
    """
    if failed_order is None:
        failed_order = [i for i, s in enumerate(part_statuses) if s in FAILURE_STATUSES]
    for i in failed_order:
        status = part_statuses[i]
        if status in FAILURE_STATUSES:
            assert status is not None
            return status, True
    if part_statuses and all(s is not None for s in part_statuses):
        first = part_statuses[0]
        assert first is not None
        if all(s == first for s in part_statuses):
            return first, first in FINAL_STATUSES
        if all(s in FINAL_STATUSES for s in part_statuses):
            return Status.ACCEPTED, True
    return Status.BUFFERED, False


class MessageStatus(msgspec.Struct, frozen=True, gc=False):
    """Where a whole message stands after one of its parts' receipts.

    ``changed`` says whether this receipt changed the message-level status (the moment to
    publish a message-level event); ``part_statuses`` is per part, None where no receipt came
    yet. ``message_id`` is the SMSC id of the lowest-numbered part seen.

    (A frozen ``msgspec.Struct``: one is made per receipt, several times cheaper than a frozen
    dataclass.)
    """

    account: str
    request_id: str
    client_id: str | None
    message_id: str
    parts: int
    status: str
    code: int
    final: bool
    changed: bool
    part_statuses: tuple[str | None, ...]
    submitted_at: float


@dataclass(slots=True, eq=False)
class _Message:
    statuses: list[str | None]
    codes: list[int]
    message_ids: list[str | None]
    failed_order: list[int] = field(default_factory=list)
    status: str | None = None


class MessageStatusTracker:
    """Per-part receipts of each multipart message and the message-level status they add up
    to.

    Keeps the last ``max_messages`` multipart messages heard of (least recently updated
    forgotten first); a finished message is kept too, so that a repeated receipt does not
    start it over. A part that reached a final status does not go back to an intermediate
    one. A one-part message has nothing to add up: its status is its receipt's, and it is not
    kept (``changed`` is then always true), so memory does not grow with one-part traffic.
    """

    def __init__(self, *, max_messages: int = 100_000) -> None:
        if max_messages < 1:
            raise ValueError("max_messages must be at least 1")
        self.max_messages = max_messages
        self._messages: dict[tuple[str, str], _Message] = {}

    def __len__(self) -> int:
        return len(self._messages)

    def update(self, record: CorrelationRecord, status: str, code: int) -> MessageStatus:
        if record.parts <= 1 and record.part == 0:
            return MessageStatus(
                record.account,
                record.request_id,
                record.client_id,
                record.message_id,
                1,
                status,
                code,
                status in FINAL_STATUSES,
                True,
                (status,),
                record.submitted_at,
            )
        key = (record.account, record.request_id)
        message = self._messages.pop(key, None)
        parts = max(record.parts, record.part + 1, 1)
        if message is None:
            message = _Message([None] * parts, [0] * parts, [None] * parts)
        elif len(message.statuses) < parts:
            grow = parts - len(message.statuses)
            message.statuses.extend([None] * grow)
            message.codes.extend([0] * grow)
            message.message_ids.extend([None] * grow)
        self._messages[key] = message
        while len(self._messages) > self.max_messages:
            del self._messages[next(iter(self._messages))]

        i = record.part
        message.message_ids[i] = record.message_id
        previous = message.statuses[i]
        if not (previous in FINAL_STATUSES and status not in FINAL_STATUSES):
            message.statuses[i] = status
            message.codes[i] = code
            if i in message.failed_order:
                message.failed_order.remove(i)
            if status in FAILURE_STATUSES:
                message.failed_order.append(i)
        overall, final = aggregate_status(message.statuses, message.failed_order)
        if message.failed_order:
            overall_code = message.codes[message.failed_order[0]]
        else:
            overall_code = next((c for c in message.codes if c), 0)
        changed = overall != message.status
        message.status = overall
        first_id = next(m for m in message.message_ids if m is not None)
        return MessageStatus(
            account=record.account,
            request_id=record.request_id,
            client_id=record.client_id,
            message_id=first_id,
            parts=len(message.statuses),
            status=overall,
            code=overall_code,
            final=final,
            changed=changed,
            part_statuses=tuple(message.statuses),
            submitted_at=record.submitted_at,
        )


__all__ = [
    "FAILURE_STATUSES",
    "FINAL_STATUSES",
    "MessageStatus",
    "MessageStatusTracker",
    "aggregate_status",
]
