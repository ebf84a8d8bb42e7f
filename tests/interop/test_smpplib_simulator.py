"""smpplib, an independent SMPP client, as the ESME against our simulator.

smpplib is synchronous (blocking sockets), so it runs in a worker thread while the simulator
runs in the test's event loop. It binds, submits asking for a receipt, reads the
submit_sm_resp and the receipt (answering it with deliver_sm_resp), and unbinds.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest
import smpplib.client
import smpplib.consts
import smpplib.exceptions

from smpp_bridge.simulator import (
    Account,
    MessageIds,
    Receipts,
    SimulatorConfig,
    SubmitBehaviour,
    run_simulator,
)

pytestmark = pytest.mark.anyio

CONFIG = SimulatorConfig(
    seed=1,
    accounts=(Account(system_id="esme", password="secret"),),
    submit=SubmitBehaviour(message_id=MessageIds(format="hex", start=0x1F)),
    receipts=Receipts(delay=0.05),
)


def smpplib_session(port: int, texts: list[bytes]) -> dict[str, Any]:
    """Bind, submit each text with a receipt requested, collect responses and receipts."""
    client = smpplib.client.Client("127.0.0.1", port, timeout=5, allow_unknown_opt_params=True)
    sent: list[Any] = []
    received: list[Any] = []

    # smpplib calls its handlers with ``pdu=`` as a keyword.
    def on_sent(pdu: Any) -> None:
        sent.append(pdu)

    def on_received(pdu: Any) -> None:
        received.append(pdu)

    client.set_message_sent_handler(on_sent)
    client.set_message_received_handler(on_received)
    client.connect()
    try:
        bind = client.bind_transceiver(system_id="esme", password="secret")
        for text in texts:
            client.send_message(
                source_addr_ton=smpplib.consts.SMPP_TON_ALNUM,
                source_addr="ACME",
                dest_addr_ton=smpplib.consts.SMPP_TON_INTL,
                dest_addr_npi=smpplib.consts.SMPP_NPI_ISDN,
                destination_addr="34600000001",
                short_message=text,
                registered_delivery=True,
            )
        while len(sent) < len(texts) or len(received) < len(texts):
            client.read_once()  # answers each deliver_sm with deliver_sm_resp
        unbind = client.unbind()
    finally:
        client.disconnect()
    return {"bind": bind, "sent": sent, "received": received, "unbind": unbind}


async def test_smpplib_binds_submits_gets_and_answers_receipts_and_unbinds() -> None:
    with anyio.fail_after(20):
        async with run_simulator(CONFIG) as sim:
            assert sim.port is not None
            port = sim.port
            result = await anyio.to_thread.run_sync(
                smpplib_session, port, [b"Hello from smpplib", b"Second"]
            )
            bind, sent, received = result["bind"], result["sent"], result["received"]
            assert bind.status == 0
            assert bind.system_id == b"SMPPSIM"
            assert [p.status for p in sent] == [0, 0]
            message_ids = [p.message_id for p in sent]
            assert message_ids == [b"1f", b"20"]
            assert result["unbind"].command == "unbind_resp"
            # Each receipt names its message, in the text and in receipted_message_id.
            for pdu in received:
                assert pdu.esm_class & 0x3C == 0x04  # SMSC delivery receipt
                assert pdu.receipted_message_id in message_ids
                assert b"stat:DELIVRD" in pdu.short_message
                assert pdu.message_state == smpplib.consts.SMPP_MESSAGE_STATE_DELIVERED
                assert pdu.source_addr == b"34600000001"
                assert pdu.destination_addr == b"ACME"
            assert sorted(p.receipted_message_id for p in received) == message_ids
            with anyio.fail_after(5):
                while sim.sessions:
                    await anyio.sleep(0.01)
            counters = sim.stats.account("esme")
            assert counters.accepted == 2
            assert counters.dlrs_acked == 2  # smpplib's deliver_sm_resp reached us
            assert counters.binds == 0 and counters.bind_total == 1


def smpplib_bind(port: int, password: str) -> int:
    client = smpplib.client.Client("127.0.0.1", port, timeout=5, allow_unknown_opt_params=True)
    client.connect()
    try:
        client.bind_transmitter(system_id="esme", password=password)
    except smpplib.exceptions.PDUError as exc:
        return int(exc.args[1])
    finally:
        client.disconnect()
    return 0


async def test_smpplib_bind_with_a_wrong_password_is_refused() -> None:
    with anyio.fail_after(20):
        async with run_simulator(CONFIG) as sim:
            assert sim.port is not None
            status = await anyio.to_thread.run_sync(smpplib_bind, sim.port, "wrong")
            assert status == smpplib.consts.SMPP_ESME_RINVPASWD
            assert sim.stats.account("esme").bind_failures == {0x0E: 1}
