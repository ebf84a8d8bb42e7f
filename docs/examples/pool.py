"""A bind pool: two binds to one account, one message, its outcome and its receipt.

The pool hands what happened to a handler, in batches: ``on_outcomes`` (the submit outcome:
``sent``, ``error`` or ``unknown``), ``on_dlrs`` (receipts, correlated to their message) and
``on_inbound`` (mobile-originated messages). Each call completes before the SMSC gets its
``deliver_sm_resp``. Runs under trio (``python pool.py``) or asyncio (``python pool.py
asyncio``).
"""

from __future__ import annotations

import sys

import anyio

from smpp_bridge import (
    AccountConfig,
    DlrEvent,
    InboundMessage,
    OutboundMessage,
    PoolConfig,
    SubmitOutcome,
    open_pool,
)
from smpp_bridge.simulator import Account, SimulatorConfig, run_simulator


class Handler:
    def __init__(self) -> None:
        self.receipt_came = anyio.Event()

    async def on_outcomes(self, outcomes: list[SubmitOutcome]) -> None:
        for outcome in outcomes:
            print(f"{outcome.message.id}: {outcome.status} as {list(outcome.message_ids)}")

    async def on_dlrs(self, events: list[DlrEvent]) -> None:
        for event in events:
            print(f"{event.client_id}: receipt {event.status} for {event.message_id}")
        self.receipt_came.set()

    async def on_inbound(self, messages: list[InboundMessage]) -> None:
        for message in messages:
            print(f"from {message.source}: {message.text}")


async def main() -> None:
    sim_config = SimulatorConfig(accounts=(Account(system_id="demo", password="secret"),))
    handler = Handler()
    with anyio.fail_after(10):
        async with run_simulator(sim_config) as sim:
            assert sim.port is not None
            account = AccountConfig(
                name="demo", system_id="demo", password="secret", port=sim.port, binds=2
            )
            async with open_pool(PoolConfig(accounts=(account,)), handler) as pool:
                await pool.wait_ready()
                await pool.send(
                    OutboundMessage(
                        id="m-1",
                        client_id="order-42",
                        source="ACME",
                        destination="+34600000001",
                        text="Your parcel is on its way",
                    )
                )
                await handler.receipt_came.wait()
            # Leaving the block drained the pool: every message in flight got its outcome.


if __name__ == "__main__":
    if sys.argv[1:] == ["asyncio"]:
        import asyncio

        asyncio.run(main())
    else:
        import trio

        trio.run(main)
