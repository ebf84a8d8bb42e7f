"""``submit_stream`` refills a full window in runs of ``refill`` slots, and settles everything."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
import trio.testing

from smpp_bridge.client import SubmitResult
from tests.integration.test_client import pair, submit

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> Any:
    return ("trio", {"clock": trio.testing.MockClock(autojump_threshold=0)})


@pytest.mark.parametrize("refill", [None, 1, 3, 7, 50])
async def test_every_refill_size_settles_everything_within_the_window(refill: int | None) -> None:
    with anyio.fail_after(30):
        async with pair({"mode": "hold"}, window=7) as (client, smsc):
            results: list[SubmitResult] = []

            async def consume() -> None:
                stream = client.submit_stream((submit(i) for i in range(50)), refill=refill)
                async for batch in stream:
                    results.extend(batch)

            async with anyio.create_task_group() as tg:
                tg.start_soon(consume)
                await anyio.sleep(1)
                assert len(smsc.submits) == 7  # stopped at the window
                smsc.release.set()
            assert len(results) == 50
            assert all(r.ok for r in results)
            assert smsc.max_outstanding_seen <= 7


async def test_a_full_window_waits_for_a_run_of_free_slots() -> None:
    with anyio.fail_after(30):
        async with pair(window=20) as (client, _):
            waits: list[int] = []
            wait_window = client.driver.wait_window

            async def recording_wait(slots: int = 1) -> None:
                waits.append(slots)
                await wait_window(slots)

            client.driver.wait_window = recording_wait  # type: ignore[method-assign]
            count = 0
            async for batch in client.submit_stream(submit(i) for i in range(100)):
                count += len(batch)
            assert count == 100
            assert waits and set(waits) == {20 // 12}
            count = 0
            waits.clear()
            async for batch in client.submit_stream((submit(i) for i in range(100)), refill=5):
                count += len(batch)
            assert count == 100
            assert waits and set(waits) == {5}
