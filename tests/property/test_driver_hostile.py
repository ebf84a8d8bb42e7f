"""A hostile peer never gets an exception out of ``Driver.run()``.

The peer writes anything (random bytes, valid PDUs of every type under duplicated or random
sequence numbers, truncated frames, garbage lengths) in any chunking, then closes. In both roles
and with every kind of handler (async per request, batch, inline, the simulator's real inline
handler) the driver must answer what it can, count the rest, hand every request it read to the
application, and end cleanly when the peer closes.
"""

from __future__ import annotations

import struct
from typing import Any

import anyio
import anyio.abc
import pytest
import trio.testing
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from smpp_bridge.codec import (
    PDU_TYPES,
    BindTransceiver,
    BindTransceiverResp,
    Pdu,
    SmeAddress,
    SubmitMulti,
    SubmitSm,
    encode,
)
from smpp_bridge.driver.driver import Driver
from smpp_bridge.session import Connection, Role, SessionConfig
from smpp_bridge.simulator import Account, Simulator, SimulatorConfig
from smpp_bridge.testing import memory_stream_pair

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> Any:
    # Virtual time: the session's timers and the close drain take no real time.
    return ("trio", {"clock": trio.testing.MockClock(autojump_threshold=0)})


def sample(cls: type[Pdu], seq: int) -> Pdu:
    if cls is SubmitMulti:
        return SubmitMulti(seq, dest_addresses=(SmeAddress("34600000001", 1, 1),))
    if cls is BindTransceiver:
        return BindTransceiver(seq, system_id="esme", password="secret")
    return cls(sequence_number=seq)


# Few numbers, so duplicates (and responses to our own requests) are common.
sequence_numbers = st.one_of(st.sampled_from([1, 2, 3, 50]), st.integers(0, 0xFFFFFFFF))
pdu_types = st.sampled_from(sorted(PDU_TYPES.values(), key=lambda c: c.command_id))


def with_status(data: bytes, status: int) -> bytes:
    return data[:8] + struct.pack(">I", status) + data[12:]


# Valid PDUs of every type (requests and responses), now and then with an error status.
pdus = st.builds(
    lambda cls, seq, status: with_status(encode(sample(cls, seq & 0x7FFFFFFF)), status),
    pdu_types,
    sequence_numbers,
    st.sampled_from([0, 0, 0, 8]),
)
request_types = st.sampled_from(
    sorted(
        (c for c in PDU_TYPES.values() if c.response_type is not None), key=lambda c: c.command_id
    )
)
# Two requests under one number, in one write (a resend, a peer's sequence bug).
duplicates = st.builds(
    lambda a, b, seq: encode(sample(a, seq)) + encode(sample(b, seq)),
    request_types,
    request_types | st.just(SubmitSm),
    st.sampled_from([1, 2, 50, 0x7FFFFFFF]),
)
# Framing kept, body broken: the session answers it (or not) and goes on.
bad_bodies = st.builds(
    lambda cid, seq, body: struct.pack(">IIII", 16 + len(body), cid, 0, seq) + body,
    st.sampled_from(sorted(PDU_TYPES)) | st.integers(0, 0xFFFFFFFF),
    sequence_numbers,
    st.binary(max_size=30),
)
# Framing lost: everything after it is never read.
breakers = st.one_of(
    pdus.flatmap(lambda data: st.integers(1, len(data) - 1).map(lambda n: data[:n])),  # truncated
    st.binary(min_size=1, max_size=40),
    st.builds(
        lambda length, cid, seq: struct.pack(">IIII", length, cid, 0, seq),
        st.integers(0, 0xFFFFFFFF),
        st.sampled_from(sorted(PDU_TYPES)),
        sequence_numbers,
    ),
)
scripts = st.tuples(
    st.lists(st.one_of(pdus, pdus, duplicates, bad_bodies), max_size=25),
    st.lists(breakers, max_size=2),
    st.lists(st.integers(1, 64), min_size=1, max_size=8),
).map(lambda t: (b"".join(t[0]) + b"".join(t[1]), t[2]))


def chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    out: list[bytes] = []
    i = k = 0
    while i < len(data):
        n = cuts[k % len(cuts)] * 7
        out.append(data[i : i + n])
        i, k = i + n, k + 1
    return out


async def play(peer: anyio.abc.ByteStream, script: list[bytes]) -> None:
    """Write the script, then close; read (and ignore) whatever the driver answers."""

    async def drain() -> None:
        try:
            while await peer.receive():
                pass
        except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
            pass

    async with anyio.create_task_group() as tg:
        tg.start_soon(drain)
        for chunk in script:
            try:
                await peer.send(chunk)
            except anyio.BrokenResourceError:
                break  # the driver closed first (a fatal error): fine
            await anyio.sleep(0.01)
        await peer.aclose()


HANDLERS = ["default", "answer", "batch", "inline", "failing"]


def make_driver(stream: anyio.abc.ByteStream, role: Role, handler: str) -> Driver:
    conn = Connection(role, SessionConfig(enquire_link_interval=5.0, response_timeout=3.0))
    kwargs: dict[str, Any] = {}
    if handler == "answer":

        async def on_request(pdu: Pdu) -> None:
            if not isinstance(pdu, BindTransceiver):
                await anyio.sleep(0.05)  # still unanswered when the next write comes

        kwargs["on_request"] = on_request
    elif handler == "batch":

        async def on_batch(batch: list[Pdu]) -> list[Pdu | int | None]:
            await anyio.lowlevel.checkpoint()
            return [None] * len(batch)

        kwargs["batch_handler"] = on_batch
    elif handler == "inline":

        def inline(pdu: Pdu) -> Pdu | None:
            return pdu.response() if pdu.response_type is not None else None

        kwargs["inline_handler"] = inline
    elif handler == "failing":

        async def broken(pdu: Pdu) -> None:
            raise RuntimeError("application bug")

        def broken_inline(pdu: Pdu) -> None:
            if pdu.sequence_number % 2:
                raise RuntimeError("inline bug")

        kwargs["on_request"] = broken
        kwargs["inline_handler"] = broken_inline
    return Driver(stream, conn, **kwargs)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    script=scripts,
    role=st.sampled_from([Role.ESME, Role.SMSC]),
    handler=st.sampled_from(HANDLERS),
    bind_first=st.booleans(),
)
async def test_any_peer_bytes_never_escape_the_driver(
    script: tuple[bytes, list[int]], role: Role, handler: str, bind_first: bool
) -> None:
    data, cuts = script
    ours, theirs = memory_stream_pair()
    driver = make_driver(ours, role, handler)
    script_chunks = chunks(data, cuts)
    if bind_first:
        # Get past the bind (in a write of its own: what follows it in the same receive would
        # find the session still binding) so the bound-state paths are exercised.
        if role is Role.ESME:
            script_chunks.insert(0, encode(BindTransceiverResp(1, system_id="peer")))
        else:
            script_chunks.insert(0, encode(sample(BindTransceiver, 1)))
    with anyio.fail_after(10_000):  # virtual seconds
        async with anyio.create_task_group() as tg:
            await tg.start(driver.run)
            if bind_first and role is Role.ESME:
                driver.start_request(sample(BindTransceiver, 0), lambda *_: None)
            tg.start_soon(play, theirs, script_chunks)
            await driver.wait_stopped()
    assert driver.closed
    event(f"duplicate sequence numbers seen: {driver.duplicate_sequences > 0}")
    event(f"protocol errors seen: {driver.protocol_errors > 0}")
    event(f"closed: {(driver.closed_reason or '').partition(':')[0]}")
    assert driver.abandoned == 0  # every request read was handed to the application
    if handler != "failing":
        assert driver.answers_dropped == 0


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(script=scripts, bind_first=st.booleans())
async def test_any_peer_bytes_never_escape_the_simulator(
    script: tuple[bytes, list[int]], bind_first: bool
) -> None:
    data, cuts = script
    script_chunks = chunks(data, cuts)
    if bind_first:
        script_chunks.insert(0, encode(sample(BindTransceiver, 1)))
    config = SimulatorConfig(seed=7, accounts=(Account(system_id="esme", password="secret"),))
    ours, theirs = memory_stream_pair()
    with anyio.fail_after(10_000):
        async with Simulator(config) as sim, anyio.create_task_group() as tg:
            tg.start_soon(play, theirs, script_chunks)
            await sim.serve_stream(ours)  # returns (does not raise) once the peer is gone
            assert not sim.sessions
