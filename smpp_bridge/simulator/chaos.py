"""The seeded chaos profile at run time: one decision per submit, one per receipted message.

Decisions come from generators seeded by ``chaos.seed`` alone and are drawn in a fixed order
(one draw per submit, one per message with receipts, and parameter draws only for the action
taken), so the same seed makes the same decisions for the same sequence of submits, whatever
the timing. ``log`` keeps them (capped) for tests to compare runs.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import TYPE_CHECKING, Final

from ..codec.constants import CommandStatus
from ..codec.pdus import Pdu
from ..driver.driver import DEFERRED, Deferred
from .behaviours import make_sampler
from .config import Chaos, IdFormat, MessageIds

if TYPE_CHECKING:
    from .server import Simulator
    from .smsc import SmscSession

LOG_LIMIT: Final = 100_000
_ID_RENDERINGS: Final[tuple[tuple[IdFormat, IdFormat], ...]] = (
    ("decimal", "decimal"),
    ("hex", "hex"),
    ("hex", "decimal"),
    ("decimal", "hex"),
)


def chaos_message_ids(config: Chaos) -> MessageIds:
    """The id rendering of a chaos run, drawn from its seed."""
    rng = random.Random(f"{config.seed}:chaos:ids")
    fmt, receipt_fmt = rng.choice(_ID_RENDERINGS)
    return MessageIds(
        format=fmt,
        receipt_format=receipt_fmt,
        width=rng.choice((0, 0, 8, 10)),
        uppercase=rng.random() < 0.5,
        start=rng.randrange(1, 1 << 31),
    )


class ChaosEngine:
    """Decides, per submit and per receipted message, which misbehaviour to play."""

    def __init__(self, config: Chaos, sim: Simulator) -> None:
        self.config = config
        self.sim = sim
        seed = config.seed
        self._submit = random.Random(f"{seed}:chaos:submit").random
        self._params = random.Random(f"{seed}:chaos:params")
        self._receipt = random.Random(f"{seed}:chaos:receipt").random
        self._stall_for = make_sampler(config.stall_for, random.Random(f"{seed}:chaos:stall"))
        self._pause = make_sampler(config.restart_pause, random.Random(f"{seed}:chaos:pause"))
        c = config
        # Cumulative thresholds: one draw picks at most one action.
        self._drop = c.drop
        self._stall = self._drop + c.stall
        self._throttle = self._stall + c.throttle
        self._queue_full = self._throttle + c.queue_full
        self._restart = self._queue_full + c.restart
        self._before = c.receipt_before_resp
        self._other = self._before + c.receipt_other_bind
        self._same = self._other + c.receipt_same_bind
        self.submits = 0
        self.messages = 0
        self.burst_left = 0
        self.burst_status = 0
        self.counts: Counter[str] = Counter()
        # (what, index, action): what is "submit" or "receipt"; index counts from 1.
        self.log: list[tuple[str, int, str]] = []

    def _note(self, what: str, index: int, action: str) -> None:
        self.counts[action] += 1
        if len(self.log) < LOG_LIMIT:
            self.log.append((what, index, action))

    def on_submit(self, session: SmscSession, pdu: Pdu) -> Pdu | Deferred | None:
        """None to handle the submit as usual, else its answer (``DEFERRED`` when taken)."""
        self.submits += 1
        n = self.submits
        u = self._submit()
        if self.burst_left:
            self.burst_left -= 1
            return session.refuse(pdu, self.burst_status)
        if u >= self._restart:
            return None
        if u < self._drop:
            half = self._params.random() < self.config.half_close_share
            mode = "half_close" if half else "close"
            self._note("submit", n, f"drop_{mode}")
            session.drop(mode, f"chaos: drop ({mode}) at submit {n}")
            session.counters.ignored_after_drop += 1
            return DEFERRED
        if u < self._stall:
            self._note("submit", n, "stall")
            session.stall_for(self._stall_for())
            return None
        if u < self._queue_full:
            throttle = u < self._throttle
            low, high = self.config.burst_length
            self.burst_left = self._params.randint(low, high) - 1
            self.burst_status = (
                CommandStatus.ESME_RTHROTTLED if throttle else CommandStatus.ESME_RMSGQFUL
            )
            self._note("submit", n, "throttle" if throttle else "queue_full")
            return session.refuse(pdu, self.burst_status)
        self._note("submit", n, "restart")
        self.sim.restart(self._pause())
        return DEFERRED

    def receipt_mode(self) -> str:
        """How the receipts of one accepted message go out: "before_resp", "other_bind",
        "same_bind" or "" (as configured)."""
        self.messages += 1
        u = self._receipt()
        if u >= self._same:
            return ""
        if u < self._before:
            mode = "before_resp"
        elif u < self._other:
            mode = "other_bind"
        else:
            mode = "same_bind"
        self._note("receipt", self.messages, mode)
        return mode


__all__ = ["LOG_LIMIT", "ChaosEngine", "chaos_message_ids"]
