"""A small scripted SMSC for client tests, on the same session core and driver.

It exists so the client's tests do not depend on the full simulator: each knob here is one
behaviour a test needs to provoke (hold responses, never answer, refuse binds, send deliveries).
"""

from __future__ import annotations

from collections.abc import Callable

import anyio
import anyio.abc

from smpp_bridge.codec import (
    BindReceiver,
    BindTransceiver,
    BindTransmitter,
    CommandStatus,
    Pdu,
    SubmitSm,
    SubmitSmResp,
)
from smpp_bridge.driver.driver import Driver
from smpp_bridge.session import Connection, Role, SessionConfig


class ScriptedSmsc:
    """An SMSC peer for one connection.

    ``mode``: ``"answer"`` answers every submit_sm at once; ``"hold"`` answers only when
    ``release`` is set; ``"silent"`` never answers submits.
    """

    def __init__(
        self,
        stream: anyio.abc.ByteStream,
        *,
        mode: str = "answer",
        password: str = "secret",
        submit_status: int = 0,
        enquire_link_interval: float | None = None,
        message_id: Callable[[int], str] = str,
    ) -> None:
        self.mode = mode
        self.password = password
        self.submit_status = submit_status
        self.message_id = message_id
        self.release = anyio.Event()
        self.submits: list[SubmitSm] = []
        self._numbers: dict[int, int] = {}  # sequence_number -> arrival number (1-based)
        self.max_outstanding_seen = 0
        self.conn = Connection(
            Role.SMSC, SessionConfig(window=100, enquire_link_interval=enquire_link_interval)
        )
        self.driver = Driver(
            stream, self.conn, on_request=self._on_request, inline_handler=self._inline
        )

    def _inline(self, pdu: Pdu) -> Pdu | None:
        if isinstance(pdu, BindTransmitter | BindReceiver | BindTransceiver):
            if pdu.password != self.password:
                return pdu.response(CommandStatus.ESME_RINVPASWD)
            return pdu.response(system_id="SCRIPTED")
        if isinstance(pdu, SubmitSm):
            self.submits.append(pdu)
            self._numbers[pdu.sequence_number] = len(self.submits)
            self.max_outstanding_seen = max(self.max_outstanding_seen, self.conn.inbound_pending)
            if self.mode == "answer":
                return self._answer(pdu)
        return None

    def _answer(self, pdu: SubmitSm) -> Pdu:
        if self.submit_status:
            return SubmitSmResp(pdu.sequence_number, self.submit_status)
        number = self._numbers.pop(pdu.sequence_number)
        return SubmitSmResp(pdu.sequence_number, 0, self.message_id(number))

    async def _on_request(self, pdu: Pdu) -> Pdu | int | None:
        if isinstance(pdu, SubmitSm):
            if self.mode == "silent":
                await anyio.sleep_forever()
            await self.release.wait()
            return self._answer(pdu)
        return None

    def send(self, pdu: Pdu) -> None:
        """Send a request or raw PDU to the ESME."""
        self.driver.send_pdu(pdu)

    async def send_raw(self, data: bytes) -> None:
        await self.driver.stream.send(data)
