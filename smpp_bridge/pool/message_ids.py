"""Receipt ids to correlation keys. A receipt names its message in its own way, for some
SMSCs in another base than the ``submit_sm_resp`` did; ``MessageIdResolver`` turns a
receipt's id into the one key to look up, per account:

``exact``
    the canonical form (case and zero padding never matter);
``hex-to-decimal`` / ``decimal-to-hex``
    the response is in the first base and the receipt in the second: the converted key (the
    canonical form when the receipt id is not a number in that base);
``auto`` (default)
    the conversion this account's ids show it uses, decided as below; until then only
    receipt ids that read the same in every base ("7", a uuid) are matched.

How ``auto`` decides, and why from formats. "10" is decimal ten, hex sixteen, and, on an SMSC
whose ids count up, also the key of another message written in the other base. A receipt often
beats its own ``submit_sm_resp``: while its mapping is absent, a wrong conversion can lead to
the only stored key, another message's. So a match proves nothing about the conversion, and
learning from matches attaches receipts to the wrong messages and then locks the wrong base.
``auto`` instead watches the *format* of the ids themselves: submit ids as they are stored
(stores call ``observe_records`` in ``put_many``) and receipt ids as they are looked up
(``observe_receipt_ids`` in ``get_many``). An id is *decimal* (digits only), *hex* (digits and
at least one letter a-f) or *other* (anything else: a uuid, "MSG42"). An account is decided,
with N = ``decide_after`` (default 48) distinct decimal ids needed wherever the *absence* of
letters is the evidence:

* submit ids and receipt ids both showed a non-decimal id (hex or other) → ``same`` (each
  conversion has a decimal side);
* submit ids showed hex letters; receipt ids none, and at least N distinct decimal ones →
  ``hex-to-decimal`` (and the mirror case → ``decimal-to-hex``);
* both sides decimal only, at least N distinct ids each → ``same``.

Ids written in hex show letters soon: of any 16 consecutive numbers 6 have one (in the last
digit), and 97.7 % of random 32-bit ids have one. So N letter-free ids from a
hex-writing side happen with odds of at most (10/16)^48, about 1.6e-10 (with N = 16 it would be
5e-4: too much when a wrong decision would mismatch every later receipt of the account). The
counts are of distinct ids: a second receipt for a message, or a relookup, counts once.

Until decided, a receipt id is matched only if every conversion gives the same key (a single
digit, a uuid): that key is its own message's whatever the bases. Any other stays unmatched,
and the receipt correlator parks it and looks it up again as soon as the account is decided.
Once decided the conversion is locked: only its key is tried (a receipt whose mapping is not
stored yet finds nothing, never a neighbour), a receipt id it cannot read (letters where
receipts are decimal) matches nothing rather than a guess, and observation stops. Each process
decides from what it stores and looks up itself, and a durable store (SQLite, Redis) keeps the
decision (the first one stored stays): a restarted daemon, or one that only receives receipts
for the account, adopts it at its first lookup for that account (read again at most once a
second while it has none), so receipts of messages sent before a restart match at once. The
rule assumes an SMSC that writes each side in one base. Set the mode explicitly for an SMSC
that does not, and for a low-traffic account whose first receipts cannot wait for N messages
(they are published unmatched if the decision comes after ``unmatched_after``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Final, TypeVar

if TYPE_CHECKING:
    from .correlation import CorrelationRecord

# Distinct decimal ids ``auto`` needs where the absence of hex letters is the evidence.
DEFAULT_DECIDE_AFTER: Final = 48
_DECIMAL: Final = frozenset("0123456789")
_HEX: Final = frozenset("0123456789abcdef")

R = TypeVar("R")


class IdMode(StrEnum):
    """How an account's receipt ids relate to its submit_sm_resp ids."""

    EXACT = "exact"
    AUTO = "auto"
    HEX_TO_DECIMAL = "hex-to-decimal"  # hex in submit_sm_resp, decimal in receipts
    DECIMAL_TO_HEX = "decimal-to-hex"  # decimal in submit_sm_resp, hex in receipts


class Conversion(StrEnum):
    """One way of turning a receipt id into the key of a stored submit id."""

    SAME = "same"
    HEX_TO_DECIMAL = "hex-to-decimal"
    DECIMAL_TO_HEX = "decimal-to-hex"


_FIXED: Final = {
    IdMode.EXACT: Conversion.SAME,
    IdMode.HEX_TO_DECIMAL: Conversion.HEX_TO_DECIMAL,
    IdMode.DECIMAL_TO_HEX: Conversion.DECIMAL_TO_HEX,
}


def canonical_id(message_id: str) -> str:
    """The form ids are compared in: no surrounding blanks, lower case, no leading zeros
    ("0" stays "0")."""
    if (
        message_id.isalnum()
        and message_id[0] != "0"
        and (message_id.isdigit() or message_id.islower())
    ):
        # Already canonical (most ids): nothing to strip, lower or unpad.
        return message_id
    lowered = message_id.strip().lower()
    stripped = lowered.lstrip("0")
    return stripped if stripped or not lowered else "0"


def convert_id(receipt_id: str, conversion: Conversion) -> str | None:
    """The key a receipt id leads to under ``conversion``; None if the id is not a number in
    the base the conversion reads."""
    key = canonical_id(receipt_id)
    if conversion is Conversion.SAME:
        return key
    if not key:
        return None
    if conversion is Conversion.HEX_TO_DECIMAL:
        # The receipt is decimal; the submit id it names was written in hex.
        return format(int(key, 10), "x") if _DECIMAL.issuperset(key) else None
    return str(int(key, 16)) if _HEX.issuperset(key) else None


def possible_keys(receipt_id: str) -> tuple[str, ...]:
    """Every key any conversion can make of ``receipt_id``, whatever an account's mode."""
    keys = {convert_id(receipt_id, c) for c in Conversion}
    return tuple(sorted(k for k in keys if k is not None))


def unambiguous_key(receipt_id: str) -> str | None:
    """The key of ``receipt_id`` if every conversion that can read it gives that same key
    (``possible_keys`` has one element), else None. Such a key is the receipt's own message's
    whatever the account's bases: a single decimal digit, or an id that is no hex number. A
    blank id has none."""
    key = canonical_id(receipt_id)
    if not key:
        return None
    if not _HEX.issuperset(key) or (len(key) == 1 and key in _DECIMAL):
        return key
    return None  # hex digits only, and more than one of them or a letter: reads two ways


@dataclass(frozen=True, slots=True)
class IdSightings:
    """What ``auto`` has seen of an undecided account's ids, for diagnostics.

    ``*_decimal`` counts distinct digits-only ids, up to the resolver's ``decide_after`` (no
    further: that is all the rule needs); ``*_letters`` says a hex id with a letter a-f was
    seen, ``*_other`` an id that is no hex number at all.
    """

    submit_decimal: int = 0
    submit_letters: bool = False
    submit_other: bool = False
    receipt_decimal: int = 0
    receipt_letters: bool = False
    receipt_other: bool = False


class _Tally:
    """One side (submit or receipt ids) of an undecided account: its distinct decimal ids, up
    to a bound, and whether a hex id with letters or an id that is no number came by."""

    __slots__ = ("decimal", "letters", "other")

    def __init__(self) -> None:
        self.decimal: set[str] = set()
        self.letters = False
        self.other = False

    @property
    def non_decimal(self) -> bool:
        return self.letters or self.other

    def see(self, ids: Iterable[str], bound: int) -> None:
        decimal = self.decimal
        for message_id in ids:
            key = canonical_id(message_id)
            if not key:
                continue
            if key.isascii() and key.isdigit():
                if len(decimal) < bound:
                    decimal.add(key)
            elif _HEX.issuperset(key):
                self.letters = True
            else:
                self.other = True


class _Watch:
    __slots__ = ("receipts", "submits")

    def __init__(self) -> None:
        self.submits = _Tally()
        self.receipts = _Tally()


class MessageIdResolver:
    """Per-account id modes, and the conversion ``auto`` has decided for each account.

    Plain synchronous state, used from the event loop only. Stores call ``observe_records``
    in ``put_many``, and ``observe_receipt_ids`` then ``lookup_keys`` before they fetch and
    ``resolve_many`` after, in ``get_many``; the receipt correlator uses ``resolve`` to match
    parked receipts against mappings stored later, and ``decided_since`` to look parked
    receipts up again as soon as their account is decided. One instance should be shared by a
    store and the correlator in front of it.

    At most one key is ever tried for a receipt id (``key_for``), so a lookup never has to
    choose between records.
    """

    def __init__(
        self,
        modes: Mapping[str, IdMode | str] | None = None,
        *,
        default: IdMode | str = IdMode.AUTO,
        decide_after: int = DEFAULT_DECIDE_AFTER,
    ) -> None:
        if decide_after < 1:
            raise ValueError("decide_after must be at least 1")
        self.default = IdMode(default)
        self.decide_after = decide_after
        self._modes: dict[str, IdMode] = {a: IdMode(m) for a, m in (modes or {}).items()}
        self._watching: dict[str, _Watch] = {}  # auto accounts not decided yet
        self._decided: dict[str, Conversion] = {}  # auto accounts decided
        self._decision_log: list[str] = []  # accounts in the order they were decided
        self.deferred = 0  # receipt ids ``resolve`` had no key for (see ``key_for``)

    # -- modes and decisions

    def set_mode(self, account: str, mode: IdMode | str) -> None:
        """Configure an account (forgets what ``auto`` saw and decided about it)."""
        self._modes[account] = IdMode(mode)
        self._watching.pop(account, None)
        self._decided.pop(account, None)

    def mode(self, account: str) -> IdMode:
        return self._modes.get(account, self.default)

    def conversion(self, account: str) -> Conversion | None:
        """The conversion in force for ``account``: the configured one, the one ``auto`` has
        decided, or None while ``auto`` is still watching."""
        mode = self.mode(account)
        if mode is IdMode.AUTO:
            return self._decided.get(account)
        return _FIXED[mode]

    def sightings(self, account: str) -> IdSightings | None:
        """What ``auto`` has seen of ``account`` so far; None when it is not watching (a
        configured mode, or decided)."""
        if not self._undecided(account):
            return None
        watch = self._watching.get(account)
        if watch is None:
            return IdSightings()
        s, r = watch.submits, watch.receipts
        return IdSightings(len(s.decimal), s.letters, s.other, len(r.decimal), r.letters, r.other)

    @property
    def decisions(self) -> int:
        """How many decisions ``auto`` has made so far: a mark for ``decided_since``."""
        return len(self._decision_log)

    def decided_since(self, mark: int) -> list[str]:
        """The accounts ``auto`` decided after ``mark`` (an earlier value of ``decisions``),
        in order."""
        return self._decision_log[mark:]

    def decided(self) -> dict[str, Conversion]:
        """What ``auto`` has decided, per account (for a store to keep)."""
        return dict(self._decided)

    def adopt(self, decisions: Mapping[str, str]) -> list[str]:
        """Take decisions made earlier (by this account's previous process, or another daemon
        sharing the store): each ``auto`` account still undecided is decided so, as if it had
        decided itself (``decided_since`` lists it). Unknown conversions and accounts not on
        ``auto`` are ignored. The accounts adopted, in order."""
        adopted: list[str] = []
        for account, value in decisions.items():
            try:
                conversion = Conversion(value)
            except ValueError:
                continue
            if self._undecided(account):
                self._watching.pop(account, None)
                self._decided[account] = conversion
                self._decision_log.append(account)
                adopted.append(account)
        return adopted

    # -- observation (O(1) per id; nothing at all for configured or decided accounts)

    def observe_submit_ids(self, account: str, message_ids: Iterable[str]) -> None:
        """Submit ids of ``account`` as returned in ``submit_sm_resp`` (stores: as stored)."""
        if self._undecided(account):
            watch = self._watching.setdefault(account, _Watch())
            watch.submits.see(message_ids, self.decide_after)
            self._decide(account, watch)

    def observe_records(self, records: Iterable[CorrelationRecord]) -> None:
        """``observe_submit_ids`` for a batch of records of any accounts."""
        batches: dict[str, list[str]] = {}
        skipped: set[str] = set()
        for record in records:
            account = record.account
            ids = batches.get(account)
            if ids is None:
                if account in skipped:
                    continue
                if not self._undecided(account):
                    skipped.add(account)
                    continue
                ids = batches[account] = []
            ids.append(record.message_id)
        for account, ids in batches.items():
            self.observe_submit_ids(account, ids)

    def observe_receipt_ids(self, account: str, receipt_ids: Iterable[str]) -> None:
        """Receipt ids of ``account`` as the SMSC wrote them (stores: as looked up). Seeing
        the same id again (a relookup, a second receipt) changes nothing."""
        if self._undecided(account):
            watch = self._watching.setdefault(account, _Watch())
            watch.receipts.see(receipt_ids, self.decide_after)
            self._decide(account, watch)

    def _undecided(self, account: str) -> bool:
        return account not in self._decided and self.mode(account) is IdMode.AUTO

    def _decide(self, account: str, watch: _Watch) -> None:
        """The rule of the module docstring; evaluated once per observed batch."""
        s, r, enough = watch.submits, watch.receipts, self.decide_after
        if s.non_decimal and r.non_decimal:
            conversion = Conversion.SAME
        elif s.letters and not r.non_decimal and len(r.decimal) >= enough:
            conversion = Conversion.HEX_TO_DECIMAL
        elif r.letters and not s.non_decimal and len(s.decimal) >= enough:
            conversion = Conversion.DECIMAL_TO_HEX
        elif (
            not s.non_decimal
            and not r.non_decimal
            and len(s.decimal) >= enough
            and len(r.decimal) >= enough
        ):
            conversion = Conversion.SAME
        else:
            return
        del self._watching[account]
        self._decided[account] = conversion
        self._decision_log.append(account)

    # -- lookups

    def key_for(self, account: str, receipt_id: str) -> str | None:
        """The one key ``receipt_id`` may match in ``account`` now, or None for none.

        A configured mode: its conversion's key, or the canonical form when the id is not a
        number in the base it reads. ``auto``, decided: the decided conversion's key, or None
        when it cannot read the id (no guessing). ``auto``, undecided: the key if every
        conversion gives the same one (``unambiguous_key``), else None: the receipt waits.
        """
        mode = self.mode(account)
        if mode is IdMode.AUTO:
            decided = self._decided.get(account)
            if decided is None:
                return unambiguous_key(receipt_id)
            return convert_id(receipt_id, decided)
        key = convert_id(receipt_id, _FIXED[mode])
        # Not a number in the base the account uses: the SMSC wrote it some other way, and
        # the canonical form is the only honest guess.
        return key if key is not None else canonical_id(receipt_id)

    def lookup_keys(self, account: str, receipt_ids: Iterable[str]) -> list[str]:
        """Every distinct key to fetch for a batch of receipt ids (none for those without)."""
        keys: dict[str, None] = {}
        for receipt_id in receipt_ids:
            key = self.key_for(account, receipt_id)
            if key is not None:
                keys[key] = None
        return list(keys)

    def resolve(self, account: str, receipt_id: str, found: Mapping[str, R]) -> R | None:
        """The record ``receipt_id`` names among ``found`` (keyed by canonical key): the one
        under ``key_for``, if there."""
        key = self.key_for(account, receipt_id)
        if key is None:
            self.deferred += 1
            return None
        return found.get(key)

    def resolve_many(
        self, account: str, receipt_ids: Iterable[str], found: Mapping[str, R]
    ) -> dict[str, R]:
        """``resolve`` for a batch: receipt id → record, for those that resolved."""
        result: dict[str, R] = {}
        for receipt_id in receipt_ids:
            if receipt_id in result:
                continue
            record = self.resolve(account, receipt_id, found)
            if record is not None:
                result[receipt_id] = record
        return result


__all__ = [
    "DEFAULT_DECIDE_AFTER",
    "Conversion",
    "IdMode",
    "IdSightings",
    "MessageIdResolver",
    "canonical_id",
    "convert_id",
    "possible_keys",
    "unambiguous_key",
]
