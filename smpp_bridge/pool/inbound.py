"""Inbound (MO) messages: reassembling concatenated parts, and spotting opt-out replies.

``InboundAssembler`` takes parsed ``Delivery`` objects (not receipts) and hands back whole
messages. A single-part message comes straight out. Parts of a concatenated one — UDH with an
8-bit or 16-bit reference, or the SAR TLVs — wait in a group keyed by (account, source,
destination, reference width, reference, total) until every part is there, then come out as
one text, joined in part order with ``segment.join_texts`` so a GSM 7-bit escape or a UTF-16
surrogate pair a phone split across parts is put back together. A group still missing parts
``timeout`` seconds after its first part arrived is published anyway, marked incomplete with
the missing part numbers: a lost part must not swallow the rest of the message.

Memory is bounded: at most ``max_pending`` groups wait; above that the oldest is published
early as incomplete. Everything is pure — ``now`` is passed in, ``next_deadline()`` says when
``expire`` has work — so the pool drives it from its own timer.

``OptOut`` decides whether an inbound message is an opt-out ("stop") reply.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final, Literal

import msgspec

from ..client import Delivery
from ..codec.pdus import DeliverSm
from ..codec.segment import DecodedText, decode_short_message, join_texts
from ..codec.text import DEFAULT_PROFILE, EncodingProfile
from ..codec.tlv import Tag
from ..errors import EncodingError

__all__ = [
    "DEFAULT_OPT_OUT_KEYWORDS",
    "InboundAssembler",
    "InboundMessage",
    "InboundStatus",
    "OptOut",
]

InboundStatus = Literal["inbound", "stop"]


class InboundMessage(msgspec.Struct, frozen=True):
    """One inbound message as users see it.

    ``parts`` is how many parts the sender cut it into (1 when not concatenated);
    ``incomplete`` is True when it was published without all of them, ``missing`` lists the
    absent part numbers (1-based) and ``text`` then joins only the parts that arrived, in
    order. ``received_at`` is the ``now`` at which its first part arrived.
    """

    account: str
    source: str
    destination: str
    text: str
    parts: int = 1
    incomplete: bool = False
    missing: tuple[int, ...] = ()
    received_at: float = 0.0


# (account, source, destination, 16-bit reference?, reference, total)
_Key = tuple[str, str, str, bool, int, int]


@dataclass(slots=True)
class _Group:
    account: str
    source: str
    destination: str
    total: int
    first_at: float
    deadline: float
    parts: dict[int, DecodedText] = field(default_factory=dict)


class InboundAssembler:
    """Reassembles concatenated inbound messages; see the module docstring.

    ``timeout``: seconds after a group's first part before it is published incomplete.
    ``max_pending``: groups allowed to wait at once. ``profile``: the encoding profile parts
    are decoded under unless ``add`` is given the account's own — it must be the one the
    ``Delivery`` was parsed with, or a split escape/surrogate pair cannot be rejoined (the
    text is then still right, taken from each ``Delivery``, but a split pair stays broken).
    """

    def __init__(
        self,
        *,
        timeout: float = 120.0,
        max_pending: int = 10_000,
        profile: EncodingProfile = DEFAULT_PROFILE,
    ) -> None:
        if not timeout > 0:
            raise ValueError(f"timeout must be positive, got {timeout!r}")
        if max_pending < 1:
            raise ValueError(f"max_pending must be at least 1, got {max_pending}")
        self.timeout = timeout
        self.max_pending = max_pending
        self.profile = profile
        # Insertion order is first-arrival order, and with one timeout for all groups also
        # deadline order: the first group is always the next to expire and the one to evict.
        self._pending: dict[_Key, _Group] = {}
        # Groups published complete, kept until their deadline so a part the SMSC sends again
        # (our deliver_sm_resp got lost) is recognised instead of opening a phantom group.
        self._done: dict[_Key, _Group] = {}

    @property
    def pending(self) -> int:
        """Groups waiting for parts. (A property, not ``__len__``: an idle assembler must not
        be falsy.)"""
        return len(self._pending)

    def next_deadline(self) -> float | None:
        """When ``expire`` will next publish something, or None when nothing waits."""
        for group in self._pending.values():
            return group.deadline
        return None

    def add(
        self,
        delivery: Delivery,
        account: str,
        now: float,
        *,
        profile: EncodingProfile | None = None,
    ) -> list[InboundMessage]:
        """Take one inbound ``Delivery``; return the messages it completes (usually zero or
        one; more when it pushed the oldest group out over ``max_pending``).

        Raises ValueError for a delivery receipt: those belong to receipt correlation.
        """
        if delivery.is_receipt:
            raise ValueError("a delivery receipt is not an inbound message")
        part = self._decode(delivery, profile or self.profile)
        concat = part.concat if part is not None else None
        if part is None or concat is None:
            return [
                InboundMessage(
                    account,
                    delivery.source_addr,
                    delivery.destination_addr,
                    delivery.text,
                    received_at=now,
                )
            ]
        self._forget_done(now)
        key: _Key = (
            account,
            delivery.source_addr,
            delivery.destination_addr,
            concat.ref16,
            concat.reference,
            concat.total,
        )
        group = self._pending.get(key)
        if group is None:
            done = self._done.get(key)
            if done is not None and _same_part(done, concat.seqnum, part):
                return []  # a retransmission of a part already published
            group = _Group(
                account,
                delivery.source_addr,
                delivery.destination_addr,
                concat.total,
                now,
                now + self.timeout,
            )
            self._pending[key] = group
        # The first copy of a part wins; a repeat is a retransmission.
        group.parts.setdefault(concat.seqnum, part)
        out: list[InboundMessage] = []
        if len(group.parts) == group.total:
            del self._pending[key]
            self._remember_done(key, group, now)
            out.append(_publish(group))
        while len(self._pending) > self.max_pending:
            oldest = next(iter(self._pending))
            out.append(_publish(self._pending.pop(oldest)))
        return out

    def expire(self, now: float) -> list[InboundMessage]:
        """Publish, as incomplete, every group whose timeout has passed at ``now``."""
        self._forget_done(now)
        out: list[InboundMessage] = []
        while self._pending:
            key, group = next(iter(self._pending.items()))
            if group.deadline > now:
                break
            del self._pending[key]
            out.append(_publish(group))
        return out

    def flush(self) -> list[InboundMessage]:
        """Publish everything still waiting (incomplete), e.g. when shutting down."""
        out = [_publish(group) for group in self._pending.values()]
        self._pending.clear()
        self._done.clear()
        return out

    # ----------------------------------------------------------------- internals

    def _decode(self, delivery: Delivery, profile: EncodingProfile) -> DecodedText | None:
        """The delivery as a part ``join_texts`` can use, or None when it is not one.

        ``parse_delivery`` keeps the UDH's concatenation info but not the SAR TLVs', and
        keeps text but not the unit stream that rejoins split pairs, so the user data is
        decoded again here (with the TLVs). Single parts without SAR TLVs skip that work.
        """
        pdu = delivery.pdu
        if delivery.concat is None and pdu.tlv(Tag.sar_msg_ref_num) is None:
            return None
        short_message = pdu.short_message if isinstance(pdu, DeliverSm) else b""
        try:
            decoded = decode_short_message(
                short_message, pdu.data_coding, pdu.esm_class, profile, tlvs=pdu.tlv_list
            )
        except EncodingError:
            # parse_delivery kept the raw octets as text and no concatenation info; so do we.
            return None
        if decoded.concat is None:
            return None
        if decoded.text != delivery.text:
            # Decoded under another profile than the Delivery was: trust the Delivery's text
            # and give up only the rejoining of split pairs (a distinct encoding label keeps
            # join_texts from joining unit streams).
            return DecodedText(delivery.text, decoded.udh, decoded.concat, "text")
        return decoded

    def _remember_done(self, key: _Key, group: _Group, now: float) -> None:
        # Remembered for one timeout after completion: by then the SMSC has long given up
        # resending, and a repeat of the reference is far more likely a new message.
        group.deadline = now + self.timeout
        self._done.pop(key, None)
        self._done[key] = group
        while len(self._done) > self.max_pending:
            del self._done[next(iter(self._done))]

    def _forget_done(self, now: float) -> None:
        # Completion order is deadline order here, so the first entry decides.
        while self._done:
            key, group = next(iter(self._done.items()))
            if group.deadline > now:
                break
            del self._done[key]


def _same_part(group: _Group, seqnum: int, part: DecodedText) -> bool:
    # Same content, not just the same number: a sender that reuses a reference (some always
    # send 0) must not have its next message dropped as a repeat.
    seen = group.parts.get(seqnum)
    return seen is not None and (seen.data, seen.text) == (part.data, part.text)


def _publish(group: _Group) -> InboundMessage:
    missing = tuple(n for n in range(1, group.total + 1) if n not in group.parts)
    if missing:
        # Join each run of consecutive parts on its own: a pair split across a gap has lost
        # its other half, and joining across the gap would pair it with the wrong unit.
        text = "".join(join_texts(run) for run in _runs(group.parts))
    else:
        text = join_texts(group.parts.values())
    return InboundMessage(
        group.account,
        group.source,
        group.destination,
        text,
        parts=group.total,
        incomplete=bool(missing),
        missing=missing,
        received_at=group.first_at,
    )


def _runs(parts: dict[int, DecodedText]) -> list[list[DecodedText]]:
    runs: list[list[DecodedText]] = []
    previous = -1
    for seqnum in sorted(parts):
        if seqnum != previous + 1 or not runs:
            runs.append([])
        runs[-1].append(parts[seqnum])
        previous = seqnum
    return runs


# ---------------------------------------------------------------------------------------------
# Opt-out

#: Opt-out words in common use: the CTIA set (STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT),
#: OPTOUT/OPT OUT and REVOKE, and Spanish BAJA (the reference SMSC's home market).
DEFAULT_OPT_OUT_KEYWORDS: Final[tuple[str, ...]] = (
    "STOP",
    "STOPALL",
    "UNSUBSCRIBE",
    "CANCEL",
    "END",
    "QUIT",
    "OPTOUT",
    "OPT OUT",
    "REVOKE",
    "BAJA",
)

# Letters and digits (any script); everything else separates words.
_WORD = re.compile(r"[^\W_]+")


def _words(text: str) -> tuple[str, ...]:
    # NFKD then dropping combining marks: "ARRÊT" and "arret", full-width "ＳＴＯＰ" and
    # "stop" compare equal; casefold handles "ß"-style case rules.
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return tuple(_WORD.findall(plain.casefold()))


class OptOut:
    """Recognises opt-out replies.

    The rule: the message's words — runs of letters and digits, compared case- and
    accent-insensitively, with punctuation, symbols and spacing ignored — must *begin with*
    one keyword's words. So "STOP", " stop! ", "Stop.", "¡Baja!", "*STOP*", "STOP please",
    "Opt-out" and "stop, thanks" match, while "don't stop", "please stop" and "nonstop" do
    not: the keyword must come first, as the whole message or its first word(s). With
    ``first_word=False`` only a message that is exactly a keyword matches (for keywords such
    as CANCEL or END that start ordinary sentences too).
    """

    __slots__ = ("_keywords", "first_word")

    def __init__(
        self, keywords: Iterable[str] = DEFAULT_OPT_OUT_KEYWORDS, *, first_word: bool = True
    ) -> None:
        parsed = {_words(keyword) for keyword in keywords}
        if () in parsed:
            raise ValueError("an opt-out keyword needs at least one letter or digit")
        if not parsed:
            raise ValueError("at least one opt-out keyword is needed")
        self._keywords = frozenset(parsed)
        self.first_word = first_word

    def matches(self, text: str) -> bool:
        """Whether ``text`` is an opt-out reply under the rule above."""
        words = _words(text)
        if not self.first_word:
            return words in self._keywords
        return any(words[: len(keyword)] == keyword for keyword in self._keywords)

    def status(self, text: str) -> InboundStatus:
        """The event status for an inbound text: "stop" for an opt-out, else "inbound"."""
        return "stop" if self.matches(text) else "inbound"

    def status_of(self, message: InboundMessage) -> InboundStatus:
        """Like ``status``, but an incomplete message missing its first part is "inbound":
        its text starts mid-message, so its first word says nothing."""
        if 1 in message.missing:
            return "inbound"
        return self.status(message.text)
