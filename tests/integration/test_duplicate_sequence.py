"""A peer reusing a sequence number it is still waiting on, over real TCP: our simulator and our
client answer both requests, count the peer's mistake, and stay up."""

from __future__ import annotations

import anyio
import anyio.abc
import pytest

from smpp_bridge.client import Delivery, open_session
from smpp_bridge.codec import (
    BindTransceiver,
    BindTransceiverResp,
    DeliverSm,
    DeliverSmResp,
    Framer,
    Pdu,
    SubmitSm,
    SubmitSmResp,
    Unbind,
    UnbindResp,
    decode,
    encode,
)
from smpp_bridge.simulator import Account, SimulatorConfig, run_simulator

pytestmark = pytest.mark.anyio

PW = "secret"


class Wire:
    """A raw SMPP peer on one TCP stream: write bytes, read whole PDUs."""

    def __init__(self, stream: anyio.abc.SocketStream) -> None:
        self.stream = stream
        self.framer = Framer()
        self.pending: list[Pdu] = []

    async def read(self) -> Pdu:
        while not self.pending:
            self.pending.extend(decode(f) for f in self.framer.feed(await self.stream.receive()))
        return self.pending.pop(0)


def submit(text: bytes) -> SubmitSm:
    return SubmitSm(50, source_addr="ACME", destination_addr="34600000001", short_message=text)


async def test_simulator_answers_a_submit_sm_sent_twice_under_one_number_and_stays_up() -> None:
    config = SimulatorConfig(seed=7, accounts=(Account(system_id="esme", password=PW),))
    with anyio.fail_after(20):
        async with run_simulator(config) as sim:
            assert sim.port is not None
            async with await anyio.connect_tcp("127.0.0.1", sim.port) as stream:
                wire = Wire(stream)
                await stream.send(encode(BindTransceiver(1, system_id="esme", password=PW)))
                assert (await wire.read()).command_status == 0
                await stream.send(encode(submit(b"one")) + encode(submit(b"two")))
                first, second = await wire.read(), await wire.read()
                assert isinstance(first, SubmitSmResp) and isinstance(second, SubmitSmResp)
                assert (first.sequence_number, second.sequence_number) == (50, 50)
                assert first.command_status == second.command_status == 0
                assert first.message_id != second.message_id  # two messages, two ids
                await stream.send(encode(Unbind(2)))
                assert isinstance(await wire.read(), UnbindResp)
            # The next client finds the simulator up.
            async with open_session(
                "127.0.0.1", sim.port, "esme", PW, enquire_link_interval=None
            ) as client:
                resp = await client.submit(submit(b"three"))
                assert resp.command_status == 0
            assert sim.stats.account("esme").accepted == 3


async def test_client_answers_two_deliver_sm_under_one_number_and_survives() -> None:
    seen: list[Delivery] = []
    answers: list[Pdu] = []
    after: list[Pdu] = []

    async def smsc(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            wire = Wire(stream)
            bind = await wire.read()
            await stream.send(encode(BindTransceiverResp(bind.sequence_number, system_id="RAW")))
            deliver = [
                DeliverSm(7, source_addr="34600000001", destination_addr="ACME", short_message=t)
                for t in (b"hello", b"again")
            ]
            await stream.send(encode(deliver[0]) + encode(deliver[1]))
            answers.extend([await wire.read(), await wire.read()])
            # The client still works: it submits, and we answer.
            request = await wire.read()
            after.append(request)
            await stream.send(encode(SubmitSmResp(request.sequence_number, message_id="X1")))
            unbind = await wire.read()
            await stream.send(encode(UnbindResp(unbind.sequence_number)))

    async def on_delivery(delivery: Delivery) -> None:
        seen.append(delivery)

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    with anyio.fail_after(20):
        async with listener, anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, smsc)
            async with open_session(
                "127.0.0.1", port, "esme", PW, enquire_link_interval=None, on_delivery=on_delivery
            ) as client:
                while len(answers) < 2:
                    await anyio.sleep(0.01)
                resp = await client.submit(submit(b"after"))
                assert resp.message_id == "X1"
                assert client.driver.duplicate_sequences == 1
                assert client.driver.protocol_errors == 1
                assert client.driver.answers_dropped == 0
            tg.cancel_scope.cancel()
    assert [d.text for d in seen] == ["hello", "again"]
    assert [type(a) for a in answers] == [DeliverSmResp, DeliverSmResp]
    assert [(a.sequence_number, a.command_status) for a in answers] == [(7, 0), (7, 0)]
    assert isinstance(after[0], SubmitSm)


async def test_a_submit_read_with_a_framing_error_still_gets_its_receipt() -> None:
    """A submit_sm and a header with an impossible command_length in one segment: the session
    closes (no response can go), but the submit was accepted and its receipt is owed: it goes
    to the account's other bind, not left pending for ever."""
    config = SimulatorConfig(seed=7, accounts=(Account(system_id="esme", password=PW),))
    bad_header = (5).to_bytes(4, "big") + bytes(12)
    with anyio.fail_after(20):
        async with run_simulator(config) as sim:
            assert sim.port is not None
            async with (
                await anyio.connect_tcp("127.0.0.1", sim.port) as keep,
                await anyio.connect_tcp("127.0.0.1", sim.port) as broken,
            ):
                other, wire = Wire(keep), Wire(broken)
                for stream, w in ((keep, other), (broken, wire)):
                    await stream.send(encode(BindTransceiver(1, system_id="esme", password=PW)))
                    assert (await w.read()).command_status == 0
                pdu = SubmitSm(
                    50,
                    source_addr="ACME",
                    destination_addr="34600000001",
                    short_message=b"owed",
                    registered_delivery=1,
                )
                await broken.send(encode(pdu) + bad_header)
                receipt = await other.read()
                assert isinstance(receipt, DeliverSm) and receipt.esm_class & 0x04
                await keep.send(encode(DeliverSmResp(receipt.sequence_number)))
            counters = sim.stats.account("esme")
            assert counters.accepted == 1 and counters.dlrs_lost == 0
