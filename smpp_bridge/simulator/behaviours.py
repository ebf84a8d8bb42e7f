"""The simulator's behaviours compiled for the hot path: samplers, ids, outcomes, rate limits,
receipt texts. Built once from the config; each call is a few operations, no parsing."""

from __future__ import annotations

import bisect
import itertools
import math
import random
import time
import uuid
from collections.abc import Callable
from typing import Final

from ..codec.constants import MessageState
from ..codec.gsm7 import encode_gsm7
from ..codec.tlv import Tag, Tlv
from ..errors import EncodingError
from .config import (
    Distribution,
    Exponential,
    Fixed,
    IdFormat,
    MessageIds,
    Normal,
    Outcome,
    Receipts,
    Uniform,
)

Sampler = Callable[[], float]


def make_sampler(dist: Distribution, rng: random.Random) -> Sampler:
    """A function returning one delay (seconds, ≥ 0) drawn from ``dist`` per call."""
    if isinstance(dist, int | float):
        value = float(dist)
        return lambda: value
    if isinstance(dist, Fixed):
        value = dist.value
        return lambda: value
    if isinstance(dist, Uniform):
        low, high = dist.low, dist.high
        uniform = rng.uniform
        return lambda: uniform(low, high)
    if isinstance(dist, Exponential):
        rate = 1.0 / dist.mean
        cap = dist.max
        expo = rng.expovariate
        if cap is None:
            return lambda: expo(rate)
        return lambda: min(expo(rate), cap)
    assert isinstance(dist, Normal)
    mean, stddev = dist.mean, dist.stddev
    gauss = rng.gauss
    return lambda: max(0.0, gauss(mean, stddev))


def constant(dist: Distribution) -> float | None:
    """The value of a distribution that never varies, else None (lets callers skip sampling)."""
    if isinstance(dist, int | float):
        return float(dist)
    if isinstance(dist, Fixed):
        return dist.value
    return None


# ------------------------------------------------------------------ message ids


def _formatter(fmt: IdFormat, width: int, uppercase: bool) -> Callable[[int], str]:
    if fmt == "uuid":
        return lambda n: str(uuid.UUID(int=n & ((1 << 128) - 1)))
    if fmt == "hex":
        spec = f"{{:0{width}{'X' if uppercase else 'x'}}}" if width else None
        if spec is None:
            return (lambda n: f"{n:X}") if uppercase else (lambda n: f"{n:x}")
        return spec.format
    if width:
        return f"{{:0{width}d}}".format
    return str


class MessageIdFactory:
    """Message ids as numbers, rendered for submit_sm_resp and (maybe differently) receipts.

    One number per message keeps the two renderings of an id convertible into each other, as
    with real SMSCs that answer in hex and report in decimal.
    """

    __slots__ = ("for_receipt", "for_response", "next")

    def __init__(self, config: MessageIds, rng: random.Random) -> None:
        self.for_response = _formatter(config.format, config.width, config.uppercase)
        receipt_format = config.receipt_format or config.format
        receipt_width = config.width if config.receipt_width is None else config.receipt_width
        self.for_receipt = _formatter(receipt_format, receipt_width, config.uppercase)
        if config.format == "uuid":
            bits = rng.getrandbits
            self.next: Callable[[], int] = lambda: bits(128)
        else:
            self.next = itertools.count(config.start).__next__


# ------------------------------------------------------------------ outcomes

# receipt stat → message_state TLV value
_STATES: Final[dict[str, int]] = {
    "DELIVRD": MessageState.DELIVERED,
    "UNDELIV": MessageState.UNDELIVERABLE,
    "EXPIRED": MessageState.EXPIRED,
    "REJECTD": MessageState.REJECTED,
    "DELETED": MessageState.DELETED,
    "ACCEPTD": MessageState.ACCEPTED,
    "UNKNOWN": MessageState.UNKNOWN,
    "ENROUTE": MessageState.ENROUTE,
}
NETWORK_TYPE_GSM: Final = 3


class ReceiptOutcome:
    """One outcome ready to send: stat, err text, and its prebuilt TLVs."""

    __slots__ = ("dlvrd", "err", "err_text", "stat", "state_tlvs", "success")

    def __init__(self, stat: str, err: int) -> None:
        self.stat = stat
        self.err = err
        self.err_text = f"{err:03d}"
        self.success = stat == "DELIVRD"
        self.dlvrd = "001" if self.success else "000"
        state = Tlv(Tag.message_state, bytes((_STATES[stat],)))
        if err:
            network = Tlv(Tag.network_error_code, bytes((NETWORK_TYPE_GSM,)) + err.to_bytes(2))
            self.state_tlvs: tuple[Tlv, ...] = (state, network)
        else:
            self.state_tlvs = (state,)


class OutcomePicker:
    """Draws final outcomes by weight (seeded), as prebuilt ``ReceiptOutcome`` objects."""

    __slots__ = ("_cumulative", "_outcomes", "_random", "_total")

    def __init__(self, outcomes: tuple[Outcome, ...], rng: random.Random) -> None:
        self._outcomes = [ReceiptOutcome(o.stat, o.err) for o in outcomes if o.weight > 0]
        self._cumulative = list(itertools.accumulate(o.weight for o in outcomes if o.weight > 0))
        self._total = self._cumulative[-1]
        self._random = rng.random

    def pick(self) -> ReceiptOutcome:
        outcomes = self._outcomes
        if len(outcomes) == 1:
            return outcomes[0]
        i = bisect.bisect_right(self._cumulative, self._random() * self._total)
        return outcomes[i] if i < len(outcomes) else outcomes[-1]


def intermediate_outcome(stat: str) -> ReceiptOutcome:
    return ReceiptOutcome(stat, 0)


# ------------------------------------------------------------------ rate limits


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` banked. Time comes from the caller."""

    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.stamp = -math.inf  # full until first used: the clock may not be running yet

    def take(self, now: float) -> bool:
        """Take one token if there is one."""
        tokens = self.tokens
        if now > self.stamp:
            tokens = min(self.burst, tokens + (now - self.stamp) * self.rate)
            self.stamp = now
        if tokens >= 1.0:
            self.tokens = tokens - 1.0
            return True
        self.tokens = tokens
        return False


# ------------------------------------------------------------------ receipt text


class ReceiptFormatter:
    """Receipt texts in the configured variant, encoded for the receipt's data_coding."""

    __slots__ = (
        "_date_key",
        "_date_value",
        "_encode",
        "_fmt",
        "_template",
        "_unit",
        "include_text",
    )

    def __init__(self, config: Receipts) -> None:
        sep = " " if config.date_key == "space" else "_"
        keys = ["id", "sub", "dlvrd", f"submit{sep}date", f"done{sep}date", "stat", "err"]
        text_key: str = config.text_key
        if config.key_case == "upper":
            keys = [k.upper() for k in keys]
            text_key = "TEXT"
        self.include_text = config.include_text
        k_id, k_sub, k_dlvrd, k_submit, k_done, k_stat, k_err = keys
        # %-formatting: the cheapest way to fill seven fields in CPython.
        template = (
            f"{k_id}:%s {k_sub}:001 {k_dlvrd}:%s {k_submit}:%s {k_done}:%s {k_stat}:%s {k_err}:%s"
        )
        template += f" {text_key}:%s" if config.include_text else "%.0s"
        self._template = template
        # Formatting a date costs more than the rest of a receipt, and receipts come in bursts
        # within one minute (or second): keep the last one.
        self._unit = 1 if config.date_digits == 12 else 60
        self._fmt = "%y%m%d%H%M%S" if config.date_digits == 12 else "%y%m%d%H%M"
        self._date_key = -1
        self._date_value = ""
        if config.data_coding == 0:
            self._encode: Callable[[str], bytes] = _gsm7_or_replace
        elif config.data_coding == 1:
            self._encode = lambda s: s.encode("ascii", "replace")
        else:
            self._encode = lambda s: s.encode("latin-1", "replace")

    def date(self, wall: float) -> str:
        """``YYMMDDhhmm`` (or with seconds) in UTC for a ``time.time()`` value."""
        key = int(wall) // self._unit
        if key != self._date_key:
            self._date_value = time.strftime(self._fmt, time.gmtime(key * self._unit))
            self._date_key = key
        return self._date_value

    def text(
        self,
        message_id: str,
        outcome: ReceiptOutcome,
        submitted: float,
        done: float,
        original: str,
    ) -> bytes:
        date = self.date
        submit_date = date(submitted)
        # Immediate receipts (the default) are done within the minute they were submitted.
        done_date = submit_date if done == submitted else date(done)
        text = self._template % (
            message_id,
            outcome.dlvrd,
            submit_date,
            done_date,
            outcome.stat,
            outcome.err_text,
            original,
        )
        return self._encode(text)


def _gsm7_or_replace(text: str) -> bytes:
    try:
        return encode_gsm7(text)  # (``encode_units`` would only dispatch to it)
    except EncodingError:
        cleaned = "".join(ch if ch.isascii() and ch.isprintable() else "?" for ch in text)
        return encode_gsm7(cleaned)


def original_text(short_message: bytes, data_coding: int, esm_class: int) -> str:
    """The first 20 characters of a submitted message, roughly decoded, for ``text:``.

    Exact decoding is the client's job; a receipt only echoes a hint of the text, so this is
    cheap: skip a UDH, read UCS2 as UTF-16, anything else as Latin-1 (GSM7 unpacked letters
    and digits coincide with ASCII).
    """
    data = short_message
    if esm_class & 0x40 and data:
        data = data[data[0] + 1 :]
    if data_coding == 8:
        return data[:40].decode("utf-16-be", "replace")[:20]
    return data[:20].decode("latin-1")


__all__ = [
    "MessageIdFactory",
    "OutcomePicker",
    "ReceiptFormatter",
    "ReceiptOutcome",
    "Sampler",
    "TokenBucket",
    "constant",
    "intermediate_outcome",
    "make_sampler",
    "original_text",
]
