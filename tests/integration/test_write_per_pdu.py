"""The simulator's write-per-PDU mode: each PDU in its own send, as many SMSCs write."""

from __future__ import annotations

import argparse
import struct

import anyio
import anyio.abc
import pytest

from smpp_bridge.cli.main import build_parser
from smpp_bridge.cli.simulator import build_config
from smpp_bridge.client import open_session
from smpp_bridge.simulator import ServerConfig, Simulator
from smpp_bridge.testing import memory_stream_pair
from tests.integration.test_simulator import PW, Inbox, make_config, stream_all, submit_pdu

pytestmark = pytest.mark.anyio


class Recorder(anyio.abc.ByteStream):
    """Passes a stream through, keeping every ``send`` as it was made."""

    def __init__(self, inner: anyio.abc.ByteStream) -> None:
        self.inner = inner
        self.sends: list[bytes] = []

    async def send(self, item: bytes) -> None:
        self.sends.append(bytes(item))
        await self.inner.send(item)

    async def receive(self, max_bytes: int = 65536) -> bytes:
        return await self.inner.receive(max_bytes)

    async def send_eof(self) -> None:
        await self.inner.send_eof()

    async def aclose(self) -> None:
        await self.inner.aclose()


def pdu_count(data: bytes) -> int:
    count = pos = 0
    while pos < len(data):
        (length,) = struct.unpack_from(">I", data, pos)
        pos += length
        count += 1
    assert pos == len(data)
    return count


@pytest.mark.parametrize("per_pdu", [False, True])
async def test_each_pdu_goes_in_its_own_send_only_when_asked(per_pdu: bool) -> None:
    config = make_config(server=ServerConfig(write_per_pdu=per_pdu))
    inbox = Inbox()
    with anyio.fail_after(10):
        async with Simulator(config) as sim:
            client_end, server_end = memory_stream_pair()
            recorder = Recorder(server_end)
            sim.start_stream(recorder)
            async with open_session(
                "memory", 0, "esme", PW, stream=client_end, window=20, on_delivery=inbox
            ) as client:
                results = await stream_all(client, [submit_pdu(i, rd=1) for i in range(40)])
                assert all(r.ok for r in results)
                await inbox.wait_for(40)
    counts = [pdu_count(data) for data in recorder.sends]
    assert sum(counts) >= 1 + 40 + 40  # bind_resp, submit_sm_resp and receipts at least
    if per_pdu:
        assert set(counts) == {1}
    else:
        assert max(counts) > 1  # answers to a burst of submits share a send


def test_write_per_pdu_command_line_flag() -> None:
    args = build_parser().parse_args(["simulator", "--accept-any", "--write-per-pdu"])
    assert isinstance(args, argparse.Namespace)
    assert build_config(args).server.write_per_pdu
    args = build_parser().parse_args(["simulator", "--accept-any"])
    assert not build_config(args).server.write_per_pdu
