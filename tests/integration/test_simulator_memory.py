"""The simulator over in-memory streams with a fake clock: long delays and rates take no time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
import trio.testing

from smpp_bridge.client import Client, open_session
from smpp_bridge.codec import CommandStatus
from smpp_bridge.errors import ResponseTimeoutError, SessionClosedError
from smpp_bridge.simulator import (
    Account,
    Exponential,
    Faults,
    MobileOriginated,
    Receipts,
    ServerConfig,
    Simulator,
    SimulatorConfig,
)
from smpp_bridge.testing import memory_stream_pair
from tests.integration.test_simulator import (
    PW,
    Inbox,
    eventually,
    make_config,
    stream_all,
    submit_pdu,
)

pytestmark = pytest.mark.anyio

S = CommandStatus


@pytest.fixture
def anyio_backend() -> Any:
    # The clock jumps ahead whenever every task is blocked.
    return ("trio", {"clock": trio.testing.MockClock(autojump_threshold=0)})


@asynccontextmanager
async def in_memory(sim: Simulator, **kwargs: Any) -> AsyncIterator[Client]:
    client_end, server_end = memory_stream_pair()
    sim.start_stream(server_end)
    kwargs.setdefault("enquire_link_interval", None)
    async with open_session("memory", 0, "esme", PW, stream=client_end, **kwargs) as client:
        yield client


async def test_long_receipt_delays_are_served_by_one_scheduler() -> None:
    delay = Exponential(mean=60.0, max=600.0)
    inbox = Inbox()
    with anyio.fail_after(3600):
        async with Simulator(make_config(receipts=Receipts(delay=delay))) as sim:
            async with in_memory(sim, on_delivery=inbox, window=50) as client:
                start = anyio.current_time()
                await stream_all(client, [submit_pdu(i, rd=1) for i in range(300)])
                # Every receipt is pending in the scheduler's heap, none sent yet.
                assert inbox.items == []
                assert len(sim.scheduler) == 300
                items = await inbox.wait_for(300)
                elapsed = anyio.current_time() - start
            assert sorted(int(d.receipt.message_id) for d in items if d.receipt) == list(
                range(1, 301)
            )
            assert 100 < elapsed <= 601
            assert len(sim.scheduler) == 0


async def test_tps_bucket_is_exact_on_a_fake_clock() -> None:
    config = make_config(Account(system_id="esme", password=PW, tps=10.0, tps_burst=5))
    with anyio.fail_after(100):
        async with Simulator(config) as sim, in_memory(sim, window=20) as client:
            first = await stream_all(client, [submit_pdu(i) for i in range(20)])
            assert sum(r.ok for r in first) == 5
            await anyio.sleep(0.3)  # three tokens back
            second = await stream_all(client, [submit_pdu(i) for i in range(20)])
            assert sum(r.ok for r in second) == 3
            await anyio.sleep(60)  # refilled, but never beyond the burst
            third = await stream_all(client, [submit_pdu(i) for i in range(20)])
            assert sum(r.ok for r in third) == 5
            assert sim.stats.account("esme").rejected == {S.ESME_RTHROTTLED: 47}


async def test_mo_rate_over_fake_time() -> None:
    config = make_config(mo=MobileOriginated(rate=0.5, count=4, texts=("one", "two")))
    inbox = Inbox()
    with anyio.fail_after(100):
        async with Simulator(config) as sim, in_memory(sim, on_delivery=inbox):
            start = anyio.current_time()
            items = await inbox.wait_for(4)
            elapsed = anyio.current_time() - start
            await anyio.sleep(10)
            assert [d.text for d in items] == ["one", "two", "one", "two"]
            assert len(inbox.items) == 4  # count reached: no more
            assert 7.9 <= elapsed <= 8.1  # one every two seconds
            assert sim.stats.account("esme").mos == 4


async def test_exponential_mo_arrivals_with_a_seed_repeat() -> None:
    async def arrival_times() -> list[float]:
        config = make_config(mo=MobileOriginated(rate=2, count=5, arrivals="exponential"))
        inbox = Inbox()
        async with Simulator(config) as sim, in_memory(sim, on_delivery=inbox):
            start = anyio.current_time()
            times: list[float] = []
            while len(times) < 5:
                await inbox.wait_for(len(times) + 1)
                times.append(round(anyio.current_time() - start, 6))
        return times

    with anyio.fail_after(100):
        first = await arrival_times()
        assert first == await arrival_times()
        assert len(set(first)) == 5


async def test_stall_without_end_leaves_requests_unanswered() -> None:
    config = make_config(faults=Faults(stall_after_pdus=2))
    with anyio.fail_after(100):
        async with Simulator(config) as sim, in_memory(sim) as client:
            with pytest.raises(ResponseTimeoutError):
                await client.submit(submit_pdu(), timeout=5)
            assert sim.stats.account("esme").accepted == 0


async def test_session_init_timeout_closes_a_silent_connection() -> None:
    config = SimulatorConfig(server=ServerConfig(session_init_timeout=10.0))
    with anyio.fail_after(100):
        async with Simulator(config) as sim:
            client_end, server_end = memory_stream_pair()
            sim.start_stream(server_end)
            start = anyio.current_time()
            async with client_end:
                with pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)):
                    await client_end.receive()
            assert 10.0 <= anyio.current_time() - start < 12.0
            await eventually(lambda: not sim.sessions)
            assert sim.stats.unbound.session_init_timeouts == 1


async def test_simulator_sends_enquire_link_when_configured() -> None:
    config = make_config(server=ServerConfig(enquire_link_interval=30.0))
    with anyio.fail_after(1000):
        async with Simulator(config) as sim, in_memory(sim) as client:
            await anyio.sleep(95)
            # The client answered every probe: the session is still up.
            assert not client.closed
            (session,) = sim.sessions
            assert session.driver.writes >= 3


async def test_receipt_retry_after_the_session_is_lost() -> None:
    config = make_config(receipts=Receipts(delay=5.0, retry_interval=1.0))
    inbox = Inbox()
    with anyio.fail_after(100):
        async with Simulator(config) as sim:
            async with in_memory(sim) as client:
                await client.submit(submit_pdu(rd=1))
            # The receipt comes due with no bind to take it: parked, then handed over.
            await anyio.sleep(10)
            assert len(sim.accounts["esme"].store) == 1
            async with in_memory(sim, on_delivery=inbox):
                (delivery,) = await inbox.wait_for(1)
            assert delivery.receipt is not None and delivery.receipt.message_id == "1"


async def test_serving_needs_a_running_simulator() -> None:
    sim = Simulator(make_config())
    client_end, server_end = memory_stream_pair()
    async with client_end, server_end:
        with pytest.raises(RuntimeError, match="not running"):
            await sim.serve_stream(server_end)
        with pytest.raises(RuntimeError, match="not running"):
            sim.start_stream(server_end)


async def test_unknown_account_for_send_mo() -> None:
    async with Simulator(make_config()) as sim:
        with pytest.raises(KeyError):
            sim.send_mo("nobody", "hi")


async def test_closed_client_fails_outstanding_with_session_closed() -> None:
    config = make_config(faults=Faults(close_after_pdus=2))
    with anyio.fail_after(100):
        async with Simulator(config) as sim, in_memory(sim) as client:
            with pytest.raises(SessionClosedError):
                await client.submit(submit_pdu())
            assert sim.stats.account("esme").fault_closes == 1


async def test_an_error_in_the_body_comes_out_unwrapped() -> None:
    with pytest.raises(ValueError, match="from the body"):
        async with Simulator(make_config()):
            raise ValueError("from the body")
