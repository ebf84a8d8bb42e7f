"""What was read off the socket is handed to the application even when the peer is gone.

A raw TCP "SMSC" accepts the bind, writes N deliver_sm and closes the connection in the same
burst; our client (``open_session``) with a slow handler must still see every one of them. The
drain is bounded: a handler that never returns does not hold ``Driver.run`` forever, and the
caller cancelling ``run`` still stops everything at once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.abc
import pytest
import trio.testing

from smpp_bridge.client import Delivery, open_session
from smpp_bridge.codec import (
    BindTransceiver,
    BindTransceiverResp,
    DeliverSm,
    Framer,
    Pdu,
    decode,
    encode,
)
from smpp_bridge.driver.driver import Driver
from smpp_bridge.session import Connection, Role, SessionConfig
from smpp_bridge.testing import memory_stream_pair

pytestmark = pytest.mark.anyio

N = 20


def receipt(n: int) -> DeliverSm:
    text = f"id:{n} sub:001 dlvrd:001 submit date:2401011200 done date:2401011201 stat:DELIVRD"
    return DeliverSm(
        sequence_number=1000 + n,
        source_addr="34600000001",
        destination_addr="ACME",
        esm_class=0x04,
        short_message=text.encode(),
    )


async def read_pdu(stream: anyio.abc.ByteStream, framer: Framer) -> Pdu:
    while True:
        frames = framer.feed(await stream.receive())
        if frames:
            return decode(frames[0])


Peer = Callable[[anyio.abc.SocketStream], Awaitable[None]]


def burst_then_close(count: int) -> Peer:
    """An SMSC that binds the client, writes ``count`` receipts and closes in the same burst."""

    async def serve(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            bind = await read_pdu(stream, Framer())
            data = encode(BindTransceiverResp(bind.sequence_number, 0, system_id="RAW"))
            data += b"".join(encode(receipt(n)) for n in range(count))
            await stream.send(data)
            await stream.send_eof()

    return serve


async def run_against(peer: Peer, **session: Any) -> None:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, peer)
        async with open_session(
            "127.0.0.1", port, "esme", "secret", enquire_link_interval=None, **session
        ) as client:
            await client.driver.wait_closed()
        tg.cancel_scope.cancel()


async def test_receipts_written_just_before_the_close_all_reach_a_slow_handler() -> None:
    seen: list[Delivery] = []

    async def on_delivery(delivery: Delivery) -> None:
        await anyio.sleep(0.05)
        seen.append(delivery)

    with anyio.fail_after(20):
        await run_against(burst_then_close(N), on_delivery=on_delivery)
    assert len(seen) == N
    assert sorted(d.receipt.message_id for d in seen if d.receipt) == sorted(
        str(n) for n in range(N)
    )


async def test_receipts_written_just_before_the_close_all_reach_a_slow_batch_handler() -> None:
    seen: list[Pdu] = []

    async def on_batch(pdus: list[Pdu]) -> list[Pdu | int | None]:
        await anyio.sleep(0.05)
        seen.extend(pdus)
        return [None] * len(pdus)

    with anyio.fail_after(20):
        await run_against(burst_then_close(N), on_request_batch=on_batch)
    assert sorted(p.sequence_number for p in seen) == [1000 + n for n in range(N)]


# ------------------------------------------------------------------ bounds, in memory


@pytest.fixture
def anyio_backend() -> Any:
    return ("trio", {"clock": trio.testing.MockClock(autojump_threshold=0)})


def bound_esme(stream: anyio.abc.ByteStream, **driver: Any) -> Driver:
    conn = Connection(Role.ESME, SessionConfig(enquire_link_interval=None))
    return Driver(stream, conn, **driver)


async def peer_burst(stream: anyio.abc.ByteStream, count: int) -> None:
    """Play the SMSC side of ``bound_esme``: answer its bind, send receipts, close."""
    bind = await read_pdu(stream, Framer())
    data = encode(BindTransceiverResp(bind.sequence_number, 0, system_id="MEM"))
    data += b"".join(encode(receipt(n)) for n in range(count))
    await stream.send(data)
    await stream.aclose()


async def drain_after_burst(
    on_request: Callable[[Pdu], Awaitable[None]],
    after_close: Callable[[Driver, anyio.CancelScope], Awaitable[None]],
    **driver: Any,
) -> Driver:
    """A bound client driver whose peer sends 3 receipts and closes; once the driver has seen
    the close, ``after_close(driver, scope of its run)``; returns when ``run`` has ended."""
    ours, theirs = memory_stream_pair()
    esme = bound_esme(ours, on_request=on_request, **driver)
    with anyio.fail_after(100):
        async with anyio.create_task_group() as tg:
            await tg.start(esme.run)
            tg.start_soon(peer_burst, theirs, 3)
            await esme.request(BindTransceiver(system_id="esme", password="pw"))
            await esme.wait_closed()
            await after_close(esme, tg.cancel_scope)
    return esme


async def test_a_handler_that_never_returns_is_abandoned_after_the_drain_timeout() -> None:
    calls: list[int] = []

    async def stuck(pdu: Pdu) -> None:
        calls.append(pdu.sequence_number)
        await anyio.sleep_forever()

    async def after_close(driver: Driver, scope: anyio.CancelScope) -> None:
        closed_at = anyio.current_time()
        await driver.wait_stopped()
        assert anyio.current_time() - closed_at == pytest.approx(5.0, abs=1.5)

    driver = await drain_after_burst(stuck, after_close, close_drain_timeout=5.0)
    assert calls == [1000]  # the first never returned: the other two were never started
    assert driver.abandoned == 3


async def test_cancelling_run_stops_the_drain_at_once() -> None:
    started = anyio.Event()

    async def stuck(pdu: Pdu) -> None:
        started.set()
        await anyio.sleep_forever()

    cancelled_at = 0.0

    async def after_close(driver: Driver, scope: anyio.CancelScope) -> None:
        nonlocal cancelled_at
        await started.wait()
        cancelled_at = anyio.current_time()
        scope.cancel()

    await drain_after_burst(stuck, after_close, close_drain_timeout=1000.0)
    assert anyio.current_time() - cancelled_at < 1.0
