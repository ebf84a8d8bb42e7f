"""One session: bind to an SMSC, send a text, wait for its delivery receipt.

The SMSC is the bundled simulator, started in-process on a free port. The same ``main`` runs
under trio (``python session.py``) and under asyncio (``python session.py asyncio``): the
library is written against anyio, which runs on both.
"""

from __future__ import annotations

import sys

import anyio

from smpp_bridge import Delivery, open_session
from smpp_bridge.simulator import Account, SimulatorConfig, run_simulator


async def main() -> None:
    config = SimulatorConfig(accounts=(Account(system_id="demo", password="secret"),))
    receipt_came = anyio.Event()

    async def on_delivery(delivery: Delivery) -> int | None:
        # Runs before the SMSC gets its deliver_sm_resp: persist here, then return.
        if delivery.receipt is not None:
            print(f"receipt for {delivery.receipt.message_id}: {delivery.receipt.status}")
            receipt_came.set()
        return None  # None answers ESME_ROK

    with anyio.fail_after(10):
        async with run_simulator(config) as sim:
            assert sim.port is not None  # set once it listens (port 0: any free port)
            async with open_session(
                "127.0.0.1", sim.port, "demo", "secret", on_delivery=on_delivery
            ) as client:
                responses = await client.submit_text("ACME", "+34600000001", "Your code is 1234")
                print("accepted as", [r.message_id for r in responses])
                await receipt_came.wait()
            # Leaving the block unbound the session; leaving the simulator's stops it.


if __name__ == "__main__":
    if sys.argv[1:] == ["asyncio"]:
        import asyncio

        asyncio.run(main())
    else:
        import trio

        trio.run(main)
