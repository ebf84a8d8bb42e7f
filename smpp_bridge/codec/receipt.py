"""Delivery receipts: the TLVs first, then the receipt text in every variant SMSCs send.

The text format is vendor specific (SMPP v3.4 Appendix B is only an example). The parser finds
the known keys case-insensitively (``submit date`` or ``submit_date``), takes each value up to
the next key, and treats ``text:`` as the last field whatever it contains. The
``receipted_message_id`` and ``message_state`` TLVs win over the text when both are present.
"""

from __future__ import annotations

import re
from typing import Final

import msgspec

from .constants import ESM_TYPE_MASK, MessageState
from .status import Status
from .tlv import Tag, Tlv

_KEY = re.compile(r"(?i)(?<![A-Za-z_])(id|sub|dlvrd|submit[ _]date|done[ _]date|stat|err|text)\s*:")

# Receipt stat words (standard and spelled-out variants) → the canonical 7-letter form.
STAT_ALIASES: Final[dict[str, str]] = {
    "DELIVRD": "DELIVRD",
    "DELIVERED": "DELIVRD",
    "DELIVER": "DELIVRD",
    "EXPIRED": "EXPIRED",
    "DELETED": "DELETED",
    "UNDELIV": "UNDELIV",
    "UNDELIVERABLE": "UNDELIV",
    "UNDELIVERED": "UNDELIV",
    "FAILED": "UNDELIV",
    "ACCEPTD": "ACCEPTD",
    "ACCEPTED": "ACCEPTD",
    "UNKNOWN": "UNKNOWN",
    "REJECTD": "REJECTD",
    "REJECTED": "REJECTD",
    "ENROUTE": "ENROUTE",
    "BUFFERED": "ENROUTE",
    "SCHEDULED": "SCHEDULED",
    "SKIPPED": "SKIPPED",
}
STAT_BY_STATE: Final[dict[int, str]] = {
    MessageState.SCHEDULED: "SCHEDULED",
    MessageState.ENROUTE: "ENROUTE",
    MessageState.DELIVERED: "DELIVRD",
    MessageState.EXPIRED: "EXPIRED",
    MessageState.DELETED: "DELETED",
    MessageState.UNDELIVERABLE: "UNDELIV",
    MessageState.ACCEPTED: "ACCEPTD",
    MessageState.UNKNOWN: "UNKNOWN",
    MessageState.REJECTED: "REJECTD",
    MessageState.SKIPPED: "SKIPPED",
}
STATE_BY_STAT: Final[dict[str, int]] = {v: k for k, v in STAT_BY_STATE.items()}
# Canonical stat → the user-facing event status (MISSION.md's vocabulary).
EVENT_STATUS: Final[dict[str, Status]] = {
    "DELIVRD": Status.DELIVERED,
    "ACCEPTD": Status.ACCEPTED,
    "ENROUTE": Status.BUFFERED,
    "SCHEDULED": Status.BUFFERED,
    "UNDELIV": Status.FAILED,
    "EXPIRED": Status.EXPIRED,
    "DELETED": Status.CANCELED,
    "REJECTD": Status.REJECTED,
    "UNKNOWN": Status.UNKNOWN,
    "SKIPPED": Status.FAILED,
}
FINAL_STATS: Final = frozenset({"DELIVRD", "UNDELIV", "EXPIRED", "DELETED", "REJECTD", "ACCEPTD"})


class Receipt(msgspec.Struct, frozen=True):
    """A parsed delivery receipt. ``stat`` is canonical (``DELIVRD``, ``UNDELIV``, ...)."""

    message_id: str
    stat: str
    err: str | None = None
    sub: str | None = None
    dlvrd: str | None = None
    submit_date: str | None = None
    done_date: str | None = None
    text: str | None = None
    network_error_code: bytes | None = None
    intermediate: bool = False

    @property
    def status(self) -> Status:
        """The event status for this receipt (``delivered``, ``failed``, ...)."""
        return EVENT_STATUS.get(self.stat, Status.UNKNOWN)

    @property
    def final(self) -> bool:
        return self.stat in FINAL_STATS

    @property
    def message_state(self) -> int | None:
        return STATE_BY_STAT.get(self.stat)

    @property
    def error_code(self) -> int:
        """``err`` as a number (0 when absent or not numeric)."""
        err = self.err or ""
        return int(err) if err.isdigit() else 0


# The layout nearly every SMSC sends (Appendix B's, keys in either case, ``submit date`` or
# ``submit_date``), read in one match. Its values hold no whitespace and no colon, so no key can
# hide in one: whatever this matches, the general parser below reads the same fields (a
# property test checks it). Keys are matched in ASCII only, as ``str.lower`` then maps them.
_STANDARD = re.compile(
    r"[Ii][Dd]:([^\s:]*) [Ss][Uu][Bb]:([^\s:]*) [Dd][Ll][Vv][Rr][Dd]:([^\s:]*)"
    r" [Ss][Uu][Bb][Mm][Ii][Tt][ _][Dd][Aa][Tt][Ee]:([^\s:]*)"
    r" [Dd][Oo][Nn][Ee][ _][Dd][Aa][Tt][Ee]:([^\s:]*)"
    r" [Ss][Tt][Aa][Tt]:([^\s:]*) [Ee][Rr][Rr]:([^\s:]*)(?: [Tt][Ee][Xx][Tt]:(.*))?",
    re.DOTALL,
)


# The same in lower case only, as most SMSCs (and the simulator) write it: literal keys match
# in a third less time. A subset of ``_STANDARD`` with the same groups, tried first.
_STANDARD_LOWER = re.compile(
    r"id:([^\s:]*) sub:([^\s:]*) dlvrd:([^\s:]*) submit[ _]date:([^\s:]*)"
    r" done[ _]date:([^\s:]*) stat:([^\s:]*) err:([^\s:]*)(?: text:(.*))?",
    re.DOTALL,
)


def parse_receipt_fields(text: str) -> dict[str, str]:
    """The ``key: value`` fields of a receipt text, keys normalised to ``submit_date`` style."""
    m = _STANDARD.fullmatch(text)
    if m is not None:
        # A seventh of the general parser's cost, for the same answer.
        receipt_id, sub, dlvrd, submit_date, done_date, stat, err, rest = m.groups()
        fields = {
            "id": receipt_id,
            "sub": sub,
            "dlvrd": dlvrd,
            "submit_date": submit_date,
            "done_date": done_date,
            "stat": stat,
            "err": err,
        }
        if rest is not None:
            fields["text"] = rest.lstrip(" ")
        return fields
    return parse_receipt_fields_generally(text)


def parse_receipt_fields_generally(text: str) -> dict[str, str]:
    """``parse_receipt_fields`` for any layout: keys anywhere, in any order, values up to the
    next key (slower: the key pattern is tried at every position)."""
    fields: dict[str, str] = {}
    matches = list(_KEY.finditer(text))
    for i, m in enumerate(matches):
        key = m.group(1).lower().replace(" ", "_")
        if key == "text":
            fields.setdefault("text", text[m.end() :].lstrip(" "))
            break
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        fields.setdefault(key, text[m.end() : end].strip())
    return fields


def normalise_stat(word: str) -> str:
    """The canonical stat for a receipt word; unknown words become ``UNKNOWN``."""
    return STAT_ALIASES.get(word.strip().upper(), "UNKNOWN")


# Plain ints: compared with every TLV of every receipt.
_RECEIPTED_MESSAGE_ID: Final = int(Tag.receipted_message_id)
_MESSAGE_STATE: Final = int(Tag.message_state)
_NETWORK_ERROR_CODE: Final = int(Tag.network_error_code)


def is_receipt(esm_class: int, tlvs: tuple[Tlv, ...]) -> bool:
    """Whether a deliver_sm/data_sm carries a receipt (esm_class type, or the TLV as a hint)."""
    kind = esm_class & ESM_TYPE_MASK
    if kind in (0x04, 0x08, 0x10, 0x20):
        return True
    return any(t.tag == Tag.receipted_message_id for t in tlvs)


def parse_receipt(esm_class: int, tlvs: tuple[Tlv, ...], text: str | None) -> Receipt | None:
    """A receipt from a deliver_sm/data_sm's esm_class, TLVs and decoded text; None if the PDU
    carries no usable receipt (no message id anywhere)."""
    standard = (_STANDARD_LOWER.fullmatch(text) or _STANDARD.fullmatch(text)) if text else None
    if standard is not None:
        # The fields as ``parse_receipt_fields`` reads them, without the dict in between.
        text_id, sub, dlvrd, submit_date, done_date, text_stat, err, rest = standard.groups()
        rest = rest.lstrip(" ") if rest is not None else None
    else:
        fields = parse_receipt_fields_generally(text) if text else {}
        text_id = fields.get("id")
        sub = fields.get("sub")
        dlvrd = fields.get("dlvrd")
        submit_date = fields.get("submit_date")
        done_date = fields.get("done_date")
        text_stat = fields.get("stat")
        err = fields.get("err")
        rest = fields.get("text")
    message_id: str | None = None
    state: int | None = None
    network_error: bytes | None = None
    for t in tlvs:
        tag = t.tag
        if tag == _RECEIPTED_MESSAGE_ID:
            # What ``t.typed()`` reads (a C-string; raw when a NUL is inside), inlined.
            raw = t.value
            raw = raw[:-1] if raw.endswith(b"\x00") else raw
            if raw and b"\x00" not in raw:
                message_id = raw.decode("latin-1")
        elif tag == _MESSAGE_STATE:
            if len(t.value) == 1:  # as ``t.typed()``: one octet, else malformed
                state = t.value[0]
        elif tag == _NETWORK_ERROR_CODE:
            network_error = t.value
    if message_id is None:
        message_id = text_id or None
    if message_id is None:
        return None
    if state is not None and state in STAT_BY_STATE:
        stat = STAT_BY_STATE[state]
    elif text_stat is not None:
        stat = normalise_stat(text_stat)
    else:
        stat = "UNKNOWN"
    if err is None and network_error is not None and len(network_error) == 3:
        err = str(int.from_bytes(network_error[1:], "big"))
    # Positional, in field order: cheaper than keywords, and this runs per receipt.
    return Receipt(
        message_id,
        stat,
        err,
        sub,
        dlvrd,
        submit_date,
        done_date,
        rest,
        network_error,
        (esm_class & ESM_TYPE_MASK) == 0x20 or stat == "ENROUTE",
    )


def format_receipt(
    message_id: str,
    stat: str,
    *,
    err: str = "000",
    submit_date: str = "0000000000",
    done_date: str = "0000000000",
    text: str = "",
    sub: str = "001",
    dlvrd: str | None = None,
    text_key: str = "text",
    date_key_style: str = " ",
) -> str:
    """A receipt text in the Appendix B shape (what the simulator sends by default)."""
    if dlvrd is None:
        dlvrd = "001" if stat == "DELIVRD" else "000"
    return (
        f"id:{message_id} sub:{sub} dlvrd:{dlvrd} submit{date_key_style}date:{submit_date} "
        f"done{date_key_style}date:{done_date} stat:{stat} err:{err} {text_key}:{text[:20]}"
    )
