"""An independent SMSC over raw TCP (codec only: not our session or driver) that drops
connections the way a real one was measured to.

At every ``drop_every``-th submit_sm (counted over all connections) it stops answering on
that connection: answers already written are flushed, the socket is half-closed (FIN) and
destroyed ``linger`` seconds later; later submits on it are ignored. A receipt is written on
the same bind right after each submit_sm_resp (when the submit asks for one); a receipt whose
deliver_sm_resp never came is delivered again after the next bind (on whichever connection
binds next), as real SMSCs do. ``duplicate_receipts`` sends every receipt twice (a buggy
SMSC). ``mode`` plays the other shutdown cases: ``"stall"`` accepts connections and never
answers anything; ``"throttle"`` answers every submit_sm with ESME_RTHROTTLED.

Everything it did is counted, so a test can compare every message against it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal

import anyio
import anyio.abc
import msgspec

from smpp_bridge.codec import (
    BindReceiver,
    BindTransceiver,
    BindTransmitter,
    CommandStatus,
    DeliverSm,
    DeliverSmResp,
    EnquireLink,
    Framer,
    Pdu,
    SubmitSm,
    SubmitSmResp,
    Unbind,
    decode,
    encode,
)
from smpp_bridge.codec.receipt import format_receipt

Mode = Literal["drop", "stall", "throttle"]


class DroppingSmsc:
    def __init__(
        self,
        *,
        drop_every: int | None = None,
        linger: float = 0.5,
        receipts: bool = True,
        duplicate_receipts: bool = False,
        mode: Mode = "drop",
    ) -> None:
        self.drop_every = drop_every
        self.linger = linger
        self.receipts = receipts
        self.duplicate_receipts = duplicate_receipts
        self.mode: Mode = mode
        self.port = 0
        self.submits = 0  # submit_sm read, over all connections
        self.accepted: list[str] = []  # message ids answered in a submit_sm_resp
        self.receipt_ids: set[str] = set()  # ids a receipt was written for
        self.receipts_written = 0  # deliver_sm written, repeats included
        self.redelivered = 0
        self.drops = 0
        self.connections = 0
        self.binds = 0
        self._unacked: dict[str, DeliverSm] = {}  # message id -> its receipt, unanswered
        self._next_id = 0

    def _receipt(self, message_id: str) -> DeliverSm:
        text = format_receipt(message_id, "DELIVRD")
        return DeliverSm(
            source_addr="34600000001",
            destination_addr="ACME",
            esm_class=0x04,
            short_message=text.encode("ascii"),
        )

    async def serve(self, stream: anyio.abc.SocketStream) -> None:
        self.connections += 1
        framer = Framer()
        seq = 0
        in_flight: dict[int, str] = {}  # deliver_sm sequence -> message id
        dropped = False

        def deliver(out: list[bytes], receipt: DeliverSm, message_id: str) -> None:
            nonlocal seq
            seq += 1
            in_flight[seq] = message_id
            out.append(encode(msgspec.structs.replace(receipt, sequence_number=seq)))
            self.receipts_written += 1

        try:
            async with stream:
                while True:
                    try:
                        data = await stream.receive()
                    except (anyio.EndOfStream, anyio.BrokenResourceError):
                        return
                    if dropped or self.mode == "stall":
                        continue  # read and ignored
                    out: list[bytes] = []
                    closing = False
                    for frame in framer.feed(data):
                        pdu: Pdu = decode(frame)
                        if isinstance(pdu, BindTransmitter | BindReceiver | BindTransceiver):
                            self.binds += 1
                            out.append(encode(pdu.response(system_id="DROPPY")))
                            for message_id, receipt in list(self._unacked.items()):
                                self.redelivered += 1
                                deliver(out, receipt, message_id)
                        elif isinstance(pdu, SubmitSm):
                            self.submits += 1
                            if self.mode == "throttle":
                                out.append(encode(pdu.response(CommandStatus.ESME_RTHROTTLED)))
                                continue
                            if self.drop_every and self.submits % self.drop_every == 0:
                                dropped = True
                                break
                            self._next_id += 1
                            message_id = f"{self._next_id:x}"
                            out.append(encode(SubmitSmResp(pdu.sequence_number, 0, message_id)))
                            self.accepted.append(message_id)
                            if self.receipts and pdu.registered_delivery & 1:
                                receipt = self._receipt(message_id)
                                self._unacked[message_id] = receipt
                                self.receipt_ids.add(message_id)
                                deliver(out, receipt, message_id)
                                if self.duplicate_receipts:
                                    deliver(out, receipt, message_id)
                        elif isinstance(pdu, DeliverSmResp):
                            message_id = in_flight.pop(pdu.sequence_number, "")
                            self._unacked.pop(message_id, None)
                        elif isinstance(pdu, EnquireLink | Unbind):
                            out.append(encode(pdu.response()))
                            closing = isinstance(pdu, Unbind)
                    if out:
                        await stream.send(b"".join(out))
                    if closing:
                        return
                    if dropped:
                        self.drops += 1
                        await stream.send_eof()
                        with anyio.move_on_after(self.linger):
                            while True:
                                await stream.receive()  # read and ignored
        except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
            return

    @property
    def unacked(self) -> int:
        """Receipts whose deliver_sm_resp never came."""
        return len(self._unacked)


@asynccontextmanager
async def running(smsc: DroppingSmsc) -> AsyncIterator[DroppingSmsc]:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    smsc.port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, smsc.serve)
        try:
            yield smsc
        finally:
            tg.cancel_scope.cancel()


async def dead_port() -> int:
    """A local port nobody listens on (connections are refused)."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port: int = listener.extra(anyio.abc.SocketAttribute.local_port)
    await listener.aclose()
    return port
