"""How a simulated session plans the receipts of an accepted message: which receipts (final,
intermediate) it gets, when each is due, and whether they go out before the submit response.
A mixin of ``SmscSession``, so the hot path calls these as plain methods."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Final, cast

from ..codec.pdus import DataSm, DeliverSm, Pdu, SubmitMulti, SubmitSm
from ..codec.tlv import Tag, Tlv
from ..driver.driver import DEFERRED, Deferred
from ..errors import LocalProtocolError
from . import ledger as _ledger
from .behaviours import ReceiptOutcome, original_text
from .outbound import AccountState, Kind, Outbound
from .stream import SessionStream

if TYPE_CHECKING:
    from .server import Simulator
    from .smsc import SmscSession

_Answer = Pdu | Deferred | None  # what an inline handler returns (see Driver)

# Read once: an Enum member read through its class costs a lookup per receipt.
_RECEIPTED_MESSAGE_ID: Final = int(Tag.receipted_message_id)
_RECEIPT: Final = Kind.RECEIPT
_INTERMEDIATE: Final = Kind.INTERMEDIATE
ESM_RECEIPT: Final = 0x04
ESM_INTERMEDIATE: Final = 0x20
# registered_delivery: bits 0-1 select the final receipt, bit 4 asks for intermediates.
RD_FINAL_MASK: Final = 0x03
RD_INTERMEDIATE: Final = 0x10


class ReceiptPlanning:
    """The receipt half of ``SmscSession`` (which sets everything declared here)."""

    sim: Simulator
    stream: SessionStream
    account: AccountState | None
    _ledger: _ledger.Ledger | None
    _receipt_tlvs: bool
    _respond: Callable[[Pdu], Pdu | Deferred]
    _queue: Callable[[Pdu], None]
    _send_response: Callable[[Pdu], None]

    def _plan_receipts(
        self,
        pdu: SubmitSm | DataSm | SubmitMulti,
        number: int,
        message_id: str,
        dest: tuple[int, int, str],
        entry: int,
    ) -> tuple[list[tuple[float, Outbound]], bool]:
        """The receipts one accepted message gets, each with its delay from now, and whether
        they go out before the submit_sm_resp."""
        sim = self.sim
        rd = pdu.registered_delivery
        outcome = sim.pick_outcome()
        final = rd & RD_FINAL_MASK
        if final == 1:
            want_final = True
        elif final == 2:
            want_final = not outcome.success
        else:
            want_final = final == 3 and outcome.success
        intermediates = sim.intermediates if rd & RD_INTERMEDIATE or sim.always_intermediate else ()
        if not want_final and not intermediates:
            return [], False
        account = self.account
        assert account is not None
        wall = self.stream.now + sim.wall_offset
        delay = sim.receipt_delay()
        receipt_id = sim.ids.for_receipt(number)
        text = ""
        if sim.formatter.include_text and not isinstance(pdu, DataSm):
            text = original_text(pdu.short_message, pdu.data_coding, pdu.esm_class)
        # This mixin's self is the SmscSession: so named for the type checker, at no cost.
        if TYPE_CHECKING:
            me = cast("SmscSession", self)
        else:
            me = self
        origin = me if sim.route_origin else None
        avoid = sim.route_other
        before = sim.receipt_before_resp
        chaos = sim.chaos
        if chaos is not None:
            mode = chaos.receipt_mode()
            if mode == "before_resp":
                delay, before = 0.0, True
            elif mode == "other_bind":
                origin, avoid = me, True
            elif mode == "same_bind":
                delay, origin, avoid, before = 0.0, me, False, False
        outs: list[tuple[float, Outbound]] = []
        for step_outcome in intermediates:
            step = min(sim.intermediate_delay(), delay)
            built = self._receipt_pdu(
                pdu, dest, ESM_INTERMEDIATE, receipt_id, message_id, step_outcome, wall, step, text
            )
            outs.append(
                (
                    step,
                    Outbound(built, _INTERMEDIATE, step_outcome.stat, account, origin, -1, avoid),
                )
            )
        if want_final:
            built = self._receipt_pdu(
                pdu, dest, ESM_RECEIPT, receipt_id, message_id, outcome, wall, delay, text
            )
            outs.append(
                (delay, Outbound(built, _RECEIPT, outcome.stat, account, origin, entry, avoid))
            )
            if entry >= 0:
                ledger = self._ledger
                assert ledger is not None
                ledger.owe(entry, outcome.stat)
        return outs, before

    def _receipt_pdu(  # noqa: PLR0917 - a private hot-path helper: positional is cheaper
        self,
        pdu: SubmitSm | DataSm | SubmitMulti,
        dest: tuple[int, int, str],
        esm_class: int,
        receipt_id: str,
        message_id: str,
        outcome: ReceiptOutcome,
        wall: float,
        delay: float,
        text: str,
    ) -> DeliverSm:
        """A receipt deliver_sm: from the message's destination back to its source."""
        sim = self.sim
        body = sim.formatter.text(receipt_id, outcome, wall, wall + delay, text)
        tlvs: tuple[Tlv, ...] = ()
        if self._receipt_tlvs:
            # receipted_message_id carries the id as submit_sm_resp gave it (the spec's rule),
            # whatever rendering the text uses.
            tlvs = (
                Tlv(_RECEIPTED_MESSAGE_ID, message_id.encode("latin-1") + b"\x00"),
                *outcome.state_tlvs,
            )
        return DeliverSm(
            source_addr_ton=dest[0],
            source_addr_npi=dest[1],
            source_addr=dest[2],
            dest_addr_ton=pdu.source_addr_ton,
            dest_addr_npi=pdu.source_addr_npi,
            destination_addr=pdu.source_addr,
            esm_class=esm_class,
            data_coding=sim.receipt_data_coding,
            short_message=body,
            tlvs=tlvs,
        )

    def _respond_with_receipts(
        self, resp: Pdu, outs: list[tuple[float, Outbound]], before: bool
    ) -> _Answer:
        sim = self.sim
        now = self.stream.now
        last = 0.0
        immediate: list[Outbound] = []
        for delay, out in outs:
            if delay > 0:
                sim.scheduler.call_at(now + delay, sim.route, out)
                last = max(last, delay)
            else:
                immediate.append(out)
        if before:
            for out in immediate:
                sim.route(out)
            if last > 0:
                # Same due time, scheduled after the receipts: it leaves right after them.
                sim.scheduler.call_at(now + last, self._send_response, resp)
                return DEFERRED
            return self._respond(resp)
        if not immediate:
            return self._respond(resp)
        answer = self._respond(resp)
        if answer is not DEFERRED:
            # Queue the response ahead of the receipts it announces.
            assert isinstance(answer, Pdu)
            # (The session may have closed under this batch, read with a framing error: the
            # response cannot go then, but the receipts are owed all the same.)
            with contextlib.suppress(LocalProtocolError):
                self._queue(answer)
        for out in immediate:
            sim.route(out)
        return DEFERRED


__all__ = ["ESM_INTERMEDIATE", "ESM_RECEIPT", "ReceiptPlanning"]
