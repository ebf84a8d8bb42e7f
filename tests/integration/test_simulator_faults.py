"""The simulator's fault injection over loopback TCP: each fault, and what a client sees."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from smpp_bridge.codec import (
    BindTransceiver,
    CommandStatus,
    DeliverSm,
    EnquireLink,
    Pdu,
    Tag,
)
from smpp_bridge.errors import ResponseTimeoutError, SessionClosedError
from smpp_bridge.session import State
from smpp_bridge.simulator import (
    Account,
    Faults,
    QueueFullBursts,
    Receipts,
    SubmitBehaviour,
    run_simulator,
)
from tests.integration.test_simulator import (
    PW,
    Inbox,
    eventually,
    make_config,
    raw_esme,
    session,
    stream_all,
    submit_pdu,
)

pytestmark = pytest.mark.anyio

S = CommandStatus


async def test_close_after_n_pdus_drops_the_connection() -> None:
    # PDU 1 is the bind; the 4th PDU (third submit) arrives and the connection drops.
    config = make_config(faults=Faults(close_after_pdus=4))
    with anyio.fail_after(10):
        async with run_simulator(config) as sim, session(sim) as client:
            await client.submit(submit_pdu(1))
            await client.submit(submit_pdu(2))
            with pytest.raises(SessionClosedError):
                await client.submit(submit_pdu(3))
            assert client.closed
            await eventually(lambda: not sim.sessions)
            counters = sim.stats.account("esme")
            assert counters.fault_closes == 1
            assert counters.accepted == 2
            assert counters.binds == 0


async def test_stall_stops_reading_and_answering_then_resumes() -> None:
    config = make_config(faults=Faults(stall_after_pdus=3, stall_for=0.6))
    answered: list[str] = []

    def settled(request: Pdu, response: Pdu | None, error: BaseException | None) -> None:
        assert response is not None
        answered.append(request.command_name)

    with anyio.fail_after(10):
        async with run_simulator(config) as sim, raw_esme(sim) as driver:
            await driver.request(BindTransceiver(system_id="esme", password=PW))
            await driver.request(submit_pdu(1))
            start = anyio.current_time()
            driver.start_request(submit_pdu(2), settled)  # the third PDU: the stall begins
            driver.start_request(EnquireLink(), settled)
            await anyio.sleep(0.3)
            # Stalled: nothing is answered, not even enquire_link.
            assert answered == []
            await eventually(lambda: len(answered) == 2)
            assert anyio.current_time() - start >= 0.6
            assert sorted(answered) == ["enquire_link", "submit_sm"]
            await driver.request(submit_pdu(3))
            assert sim.stats.account("esme").stalls == 1
            assert sim.stats.account("esme").accepted == 3


async def test_drop_every_response() -> None:
    config = make_config(faults=Faults(drop_response_probability=1.0))
    with anyio.fail_after(10):
        async with run_simulator(config) as sim, session(sim) as client:
            with pytest.raises(ResponseTimeoutError):
                await client.submit(submit_pdu(), timeout=0.2)
            assert sim.stats.account("esme").responses_dropped == 1
            # The dropped answer does not count against the window for ever.
            assert sim.stats.account("esme").accepted == 1


async def test_drop_some_responses_by_probability() -> None:
    config = make_config(faults=Faults(drop_response_probability=0.3))
    with anyio.fail_after(15):
        async with (
            run_simulator(config) as sim,
            session(sim, window=50, response_timeout=0.2) as client,
        ):
            results = await stream_all(client, [submit_pdu(i) for i in range(200)])
            timed_out = sum(isinstance(r.error, ResponseTimeoutError) for r in results)
            counters = sim.stats.account("esme")
            assert timed_out == counters.responses_dropped
            assert 20 < timed_out < 100
            assert sum(r.ok for r in results) == 200 - timed_out
            assert counters.accepted == 200


async def test_delay_some_responses() -> None:
    config = make_config(
        faults=Faults(delay_response_probability=1.0, delay_response=0.3),
    )
    with anyio.fail_after(10):
        async with run_simulator(config) as sim, session(sim) as client:
            start = anyio.current_time()
            await client.submit(submit_pdu())
            assert anyio.current_time() - start >= 0.3
            assert sim.stats.account("esme").responses_delayed == 1


@pytest.mark.parametrize("kind", ["command_id", "body"])
async def test_garbled_pdu_is_answered_and_the_session_goes_on(kind: Any) -> None:
    config = make_config(faults=Faults(garble_after_pdus=2, garble=kind))
    seen: list[Pdu] = []

    def inline(pdu: Pdu) -> Pdu | None:
        seen.append(pdu)
        return None

    with anyio.fail_after(10):
        async with run_simulator(config) as sim, raw_esme(sim, inline) as driver:
            await driver.request(BindTransceiver(system_id="esme", password=PW))
            await driver.request(submit_pdu(1))
            # The client nacked (or refused) the garbage and stays bound.
            assert driver.protocol_errors == 1
            assert driver.conn.state is State.BOUND_TRX
            await driver.request(submit_pdu(2))
            assert seen == []  # nothing garbled reached the application
            # The simulator sees the ESME's answer to its garbage as a response to nothing.
            await eventually(lambda: driver.bytes_sent > 0)
            driver.close("done")
            await eventually(lambda: not sim.sessions)
            counters = sim.stats.account("esme")
            assert counters.garbled == 1
            assert counters.protocol_errors == 1
            assert counters.accepted == 2


async def test_garbled_length_loses_framing_and_the_client_closes() -> None:
    config = make_config(faults=Faults(garble_after_pdus=2, garble="length"))
    with anyio.fail_after(10):
        async with run_simulator(config) as sim, raw_esme(sim) as driver:
            await driver.request(BindTransceiver(system_id="esme", password=PW))
            with pytest.raises(SessionClosedError):
                await driver.request(submit_pdu(1))
            assert driver.closed_reason is not None
            assert "framing" in driver.closed_reason
            assert sim.stats.account("esme").garbled == 1


async def test_receipt_before_submit_sm_resp() -> None:
    config = make_config(faults=Faults(receipt_before_resp=True))
    order: list[str] = []

    def inline(pdu: Pdu) -> Pdu | None:
        if isinstance(pdu, DeliverSm):
            order.append("receipt")
            return pdu.response()
        return None

    def settled(request: Pdu, response: Pdu | None, error: BaseException | None) -> None:
        order.append("resp")

    with anyio.fail_after(10):
        async with run_simulator(config) as sim, raw_esme(sim, inline) as driver:
            await driver.request(BindTransceiver(system_id="esme", password=PW))
            for i in range(3):
                driver.start_request(submit_pdu(i, rd=1), settled)
            await eventually(lambda: len(order) == 6)
    assert order == ["receipt", "resp"] * 3


async def test_receipt_before_delayed_resp() -> None:
    # With a receipt delay, the response is held until the receipt has gone.
    config = make_config(receipts=Receipts(delay=0.2), faults=Faults(receipt_before_resp=True))
    inbox = Inbox()
    with anyio.fail_after(10):
        async with run_simulator(config) as sim, session(sim, on_delivery=inbox) as client:
            start = anyio.current_time()
            resp = await client.submit(submit_pdu(rd=1))
            assert anyio.current_time() - start >= 0.2
            (delivery,) = await inbox.wait_for(1)
            assert delivery.receipt is not None
            assert delivery.receipt.message_id == resp.message_id


@pytest.mark.parametrize("state", [0, 42, 99])
async def test_congestion_state_on_responses(state: int) -> None:
    config = make_config(faults=Faults(congestion_state=state))
    with anyio.fail_after(10):
        async with run_simulator(config) as sim, session(sim) as client:
            resp = await client.submit(submit_pdu())
            tlv = resp.tlv(Tag.congestion_state)
            assert tlv is not None and tlv.typed() == state


async def test_congestion_state_auto_follows_the_window() -> None:
    config = make_config(
        Account(system_id="esme", password=PW, window=10),
        submit=SubmitBehaviour(latency=0.2),
        faults=Faults(congestion_state="auto"),
    )
    with anyio.fail_after(10):
        async with run_simulator(config) as sim, session(sim, window=10) as client:
            results = await stream_all(client, [submit_pdu(i) for i in range(10)])
            levels = sorted(
                int.from_bytes(tlv.value)
                for r in results
                if r.response is not None and (tlv := r.response.tlv(Tag.congestion_state))
            )
            assert levels == [10 * i for i in range(1, 10)] + [99]


async def test_queue_full_bursts_by_submit_count() -> None:
    config = make_config(faults=Faults(queue_full=QueueFullBursts(every=10, length=3)))
    with anyio.fail_after(10):
        async with run_simulator(config) as sim, session(sim, window=1) as client:
            results = await stream_all(client, [submit_pdu(i) for i in range(25)])
            refused = [i + 1 for i, r in enumerate(results) if not r.ok]
            assert refused == [8, 9, 10, 18, 19, 20]
            assert all(
                r.response is not None and r.response.command_status == S.ESME_RMSGQFUL
                for r in results
                if not r.ok
            )
            assert sim.stats.account("esme").rejected == {S.ESME_RMSGQFUL: 6}


async def test_queue_full_bursts_by_time() -> None:
    config = make_config(
        faults=Faults(queue_full=QueueFullBursts(every=0.4, length=0.2, unit="seconds")),
    )
    with anyio.fail_after(10):
        async with run_simulator(config) as sim, session(sim) as client:
            statuses: set[int] = set()
            for i in range(20):
                resp = await client.request(submit_pdu(i), check=False)
                statuses.add(resp.command_status)
                await anyio.sleep(0.05)
            assert statuses == {0, S.ESME_RMSGQFUL}
            assert sim.stats.account("esme").rejected[S.ESME_RMSGQFUL] > 0


async def test_stall_from_the_bind_holds_the_bind_response() -> None:
    config = make_config(faults=Faults(stall_after_pdus=1, stall_for=0.3))
    with anyio.fail_after(10):
        async with run_simulator(config) as sim:
            start = anyio.current_time()
            async with session(sim) as client:
                assert anyio.current_time() - start >= 0.3
                await client.submit(submit_pdu())
            assert sim.stats.account("esme").accepted == 1
