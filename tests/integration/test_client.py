"""The ESME client against a scripted SMSC: in memory with a fake clock, and over TCP and TLS."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.abc
import pytest
import trio.testing
import trustme

from smpp_bridge.client import Client, Delivery, SubmitResult, open_session
from smpp_bridge.codec import (
    CommandStatus,
    DeliverSm,
    DeliverSmResp,
    GenericNack,
    QuerySm,
    SubmitSm,
    Tlv,
    Unbind,
    decode,
)
from smpp_bridge.errors import (
    BindError,
    CommandStatusError,
    ResponseTimeoutError,
    SessionClosedError,
)
from smpp_bridge.session import State
from smpp_bridge.testing import memory_stream_pair
from tests.peers import ScriptedSmsc

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> Any:
    # A fake clock that jumps ahead whenever every task is blocked: timeouts take no real time.
    return ("trio", {"clock": trio.testing.MockClock(autojump_threshold=0)})


@asynccontextmanager
async def pair(
    smsc_kwargs: dict[str, Any] | None = None, **client_kwargs: Any
) -> AsyncIterator[tuple[Client, ScriptedSmsc]]:
    client_end, server_end = memory_stream_pair()
    smsc = ScriptedSmsc(server_end, **(smsc_kwargs or {}))
    async with anyio.create_task_group() as tg:
        await tg.start(smsc.driver.run)
        kwargs: dict[str, Any] = {"enquire_link_interval": None} | client_kwargs
        async with open_session("mem", 0, "esme", "secret", stream=client_end, **kwargs) as c:
            yield c, smsc
        tg.cancel_scope.cancel()


def submit(n: int = 0) -> SubmitSm:
    return SubmitSm(source_addr="ACME", destination_addr=f"3460000{n:04d}", short_message=b"hi")


async def test_bind_submit_unbind() -> None:
    with anyio.fail_after(10):
        async with pair() as (client, smsc):
            assert client.connection.state is State.BOUND_TRX
            assert client.smsc_system_id == "SCRIPTED"
            resp = await client.submit(submit())
            assert resp.message_id == "1"
            assert smsc.submits[0].destination_addr == "34600000000"
        # Leaving the block unbinds: the SMSC saw the unbind and both sides are done.
        assert client.connection.state in (State.UNBOUND, State.CLOSED)
        assert smsc.conn.state in (State.UNBOUND, State.CLOSED)


async def test_bind_refused_raises_bind_error() -> None:
    client_end, server_end = memory_stream_pair()
    smsc = ScriptedSmsc(server_end, password="other")
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            await tg.start(smsc.driver.run)
            with pytest.raises(BindError) as info:
                async with open_session("mem", 0, "esme", "secret", stream=client_end):
                    pytest.fail("bound with a wrong password")
            assert info.value.command_status == CommandStatus.ESME_RINVPASWD
            tg.cancel_scope.cancel()


async def test_rejected_submit_raises_with_status() -> None:
    with anyio.fail_after(10):
        async with pair({"submit_status": CommandStatus.ESME_RINVDSTADR}) as (client, _):
            with pytest.raises(CommandStatusError) as info:
                await client.submit(submit())
            assert info.value.command_status == CommandStatus.ESME_RINVDSTADR


async def test_window_is_never_exceeded_and_stream_settles_everything() -> None:
    with anyio.fail_after(30):
        async with pair({"mode": "hold"}, window=7) as (client, smsc):
            results: list[SubmitResult] = []

            async def consume() -> None:
                async for batch in client.submit_stream(submit(i) for i in range(50)):
                    results.extend(batch)

            async with anyio.create_task_group() as tg:
                tg.start_soon(consume)
                # The SMSC holds every response: the client stops at its window.
                await anyio.sleep(1)
                assert len(smsc.submits) == 7
                assert client.connection.window_free == 0
                smsc.release.set()
            assert len(results) == 50
            assert all(r.ok for r in results)
            assert sorted(int(r.message_id or 0) for r in results) == list(range(1, 51))
            assert smsc.max_outstanding_seen <= 7


async def test_response_timeout_is_an_unknown_outcome() -> None:
    with anyio.fail_after(100):
        async with pair({"mode": "silent"}, response_timeout=5.0) as (client, _):
            start = anyio.current_time()
            with pytest.raises(ResponseTimeoutError):
                await client.submit(submit())
            assert anyio.current_time() - start == pytest.approx(5.0, abs=1.01)
            # The window slot came back.
            assert client.connection.window_free == client.connection.config.window


async def test_enquire_link_keeps_alive_and_missing_response_closes() -> None:
    with anyio.fail_after(1000):
        async with pair(enquire_link_interval=30.0, enquire_link_timeout=10.0) as (client, smsc):
            await anyio.sleep(95)
            # Three enquire_links went out and were answered automatically: still bound.
            assert client.connection.state is State.BOUND_TRX
            # Now the SMSC stops reading: the next enquire_link gets no answer.
            smsc.driver.inline_handler = None
            smsc.conn.receive_data = lambda data, now=None: None  # type: ignore[method-assign]
            await anyio.sleep(45)
            assert client.closed
            assert "enquire_link" in (client.driver.closed_reason or "")
            with pytest.raises(SessionClosedError):
                await client.submit(submit())


async def test_unbind_from_the_smsc_closes_the_client() -> None:
    with anyio.fail_after(10):
        async with pair() as (client, smsc):
            smsc.send(Unbind())
            await client.driver.wait_closed()
            assert client.connection.state is State.CLOSED
            with pytest.raises(SessionClosedError):
                await client.submit(submit())


async def test_outstanding_requests_fail_when_the_peer_drops() -> None:
    with anyio.fail_after(10):
        async with pair({"mode": "silent"}) as (client, smsc):
            results: list[SubmitResult] = []

            async def consume() -> None:
                async for batch in client.submit_stream(submit(i) for i in range(5)):
                    results.extend(batch)

            async with anyio.create_task_group() as tg:
                tg.start_soon(consume)
                await anyio.sleep(0.5)
                await smsc.driver.stream.aclose()
            assert len(results) == 5
            assert all(isinstance(r.error, SessionClosedError) for r in results)


async def test_garbage_from_the_peer_gets_generic_nack() -> None:
    with anyio.fail_after(10):
        async with pair() as (client, smsc):
            # An unknown command id: answered with generic_nack, the session carries on.
            got: list[bytes] = []
            original = smsc.conn.receive_data

            def spy(data: bytes, now: float | None = None) -> None:
                got.append(data)
                original(data, now)

            smsc.conn.receive_data = spy  # type: ignore[method-assign]
            await smsc.send_raw(bytes.fromhex("00000010000000ff0000000000000042"))
            await anyio.sleep(0.5)
            nacks = [decode(d) for d in got if d[4:8] == b"\x80\x00\x00\x00"]
            assert nacks == [GenericNack(0x42, CommandStatus.ESME_RINVCMDID)]
            assert client.driver.protocol_errors == 1
            assert (await client.submit(submit())).message_id == "1"
            # A broken length loses the framing: nack, then the session closes.
            await smsc.send_raw(bytes.fromhex("00000005000000040000000000000043"))
            await client.driver.wait_closed()
            assert "framing" in (client.driver.closed_reason or "")


async def test_delivery_receipt_answered_after_the_handler_returns() -> None:
    seen: list[Delivery] = []
    handler_done = anyio.Event()

    async def on_delivery(d: Delivery) -> int | None:
        await anyio.sleep(3)  # the application persists first
        seen.append(d)
        handler_done.set()
        return None

    with anyio.fail_after(20):
        async with pair(on_delivery=on_delivery) as (_client, smsc):
            responses: list[Any] = []

            def record(request: Any, response: Any, error: Any) -> None:
                responses.append((anyio.current_time(), response))

            text = (
                b"id:0000000042 sub:001 dlvrd:001 submit date:2405011230 "
                b"done date:2405011231 stat:DELIVRD err:000 text:hello"
            )
            start = anyio.current_time()
            smsc.driver.start_request(
                DeliverSm(
                    source_addr="34600000001",
                    destination_addr="ACME",
                    esm_class=0x04,
                    short_message=text,
                    tlvs=(Tlv.make("receipted_message_id", "2a"), Tlv.make("message_state", 2)),
                ),
                record,
            )
            await handler_done.wait()
            await anyio.sleep(0.1)
            assert len(responses) == 1
            at, response = responses[0]
            assert isinstance(response, DeliverSmResp) and response.command_status == 0
            assert at - start >= 3
            receipt = seen[0].receipt
            assert receipt is not None
            assert receipt.message_id == "2a"  # the TLV wins over the text
            assert receipt.status == "delivered"
            assert receipt.submit_date == "2405011230"


async def test_failing_delivery_handler_asks_smsc_to_retry() -> None:
    async def on_delivery(d: Delivery) -> int | None:
        raise RuntimeError("database down")

    with anyio.fail_after(10):
        async with pair(on_delivery=on_delivery) as (_client, smsc):
            got: list[Any] = []
            smsc.driver.start_request(
                DeliverSm(source_addr="1", destination_addr="2", short_message=b"MO"),
                lambda req, resp, err: got.append(resp),
            )
            await anyio.sleep(1)
            assert got[0].command_status == CommandStatus.ESME_RX_T_APPN


async def test_submit_text_segments_long_messages() -> None:
    with anyio.fail_after(10):
        async with pair() as (client, smsc):
            text = "x" * 200
            parts = await client.submit_text("ACME", "+34600000001", text)
            assert len(parts) == 2
            assert [p.esm_class & 0x40 for p in smsc.submits] == [0x40, 0x40]
            assert smsc.submits[0].dest_addr_ton == 1
            assert smsc.submits[0].source_addr_ton == 5
            assert smsc.submits[0].registered_delivery == 1
            # The UDH says 2 parts, the same reference, in order.
            udhs = [p.short_message[:6] for p in smsc.submits]
            assert udhs[0][:5] == udhs[1][:5] and udhs[0][4] == 2
            assert [u[5] for u in udhs] == [1, 2]


async def test_request_not_allowed_on_a_receiver_bind() -> None:
    with anyio.fail_after(10):
        async with pair(bind="rx") as (client, _):
            from smpp_bridge.errors import LocalProtocolError

            with pytest.raises(LocalProtocolError):
                await client.submit(submit())
            # query_sm is a transmitter operation too.
            with pytest.raises(LocalProtocolError):
                await client.request(QuerySm(message_id="1"))


# ---------------------------------------------------------------- real sockets


async def serve_scripted(
    listener: anyio.abc.Listener[Any], make: Callable[[anyio.abc.ByteStream], ScriptedSmsc]
) -> None:
    async def handle(stream: Any) -> None:
        await make(stream).driver.run()

    async with listener:
        await listener.serve(handle)


@pytest.mark.parametrize("anyio_backend", ["trio", "asyncio"])
async def test_over_tcp_loopback(anyio_backend: str) -> None:
    with anyio.fail_after(20):
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        async with anyio.create_task_group() as tg:
            tg.start_soon(serve_scripted, listener, ScriptedSmsc)
            async with open_session("127.0.0.1", port, "esme", "secret", window=20) as client:
                results: list[SubmitResult] = []
                async for batch in client.submit_stream(submit(i) for i in range(500)):
                    results.extend(batch)
                assert len(results) == 500 and all(r.ok for r in results)
                # Coalescing: far fewer writes than PDUs.
                assert client.driver.writes < 500
            tg.cancel_scope.cancel()


@pytest.mark.parametrize("anyio_backend", ["trio"])  # real sockets: the real clock
async def test_over_tls_with_certificate_verification(anyio_backend: str) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("localhost")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    with anyio.fail_after(20):
        from anyio.streams.tls import TLSListener

        tcp = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
        port = tcp.extra(anyio.abc.SocketAttribute.local_port)
        listener = TLSListener(tcp, server_ctx, standard_compatible=False)
        async with anyio.create_task_group() as tg:
            tg.start_soon(serve_scripted, listener, ScriptedSmsc)
            async with open_session("localhost", port, "esme", "secret", tls=client_ctx) as client:
                assert (await client.submit(submit())).message_id == "1"
            # An untrusting client refuses the server's certificate.
            with pytest.raises(ssl.SSLError):
                async with open_session("localhost", port, "esme", "secret", tls=True):
                    pytest.fail("connected without trusting the certificate")
            tg.cancel_scope.cancel()
