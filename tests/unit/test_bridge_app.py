"""Pure pieces of the daemon: timestamps and the group commit."""

from __future__ import annotations

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from smpp_bridge.bridge.app import GroupCommit, _iso
from smpp_bridge.bridge.envelope import Event
from smpp_bridge.pool.dlr import iso_utc


@given(st.floats(min_value=0, max_value=4e9, allow_nan=False))
def test_cached_timestamps_equal_iso_utc(moment: float) -> None:
    assert _iso(moment) == iso_utc(moment)


def event(n: int) -> Event:
    return Event(id=str(n), client_id=None, status="sent", code=0, event_at="x")


@pytest.mark.anyio
async def test_group_commit_batches_concurrent_callers_and_reports_failures() -> None:
    flushed: list[tuple[list[str], list[str]]] = []
    fail = False

    async def flush(events: list[Event], stored: list[Event]) -> None:
        await anyio.sleep(0.01)
        if fail:
            raise OSError("disk full")
        flushed.append(([e.id or "" for e in events], [e.id or "" for e in stored]))

    commit = GroupCommit(flush)
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(commit.run)
            async with anyio.create_task_group() as callers:
                for n in range(20):
                    callers.start_soon(commit.submit, [event(n)], n % 2 == 0)
            # Twenty callers, far fewer writes; everyone's events written, stored ones marked.
            assert 1 <= len(flushed) < 20
            assert sorted(i for f in flushed for i in f[0]) == sorted(str(n) for n in range(20))
            assert sorted(i for f in flushed for i in f[1]) == sorted(
                str(n) for n in range(0, 20, 2)
            )
            fail = True
            with pytest.raises(OSError, match="disk full"):
                await commit.submit([event(99)], True)
            fail = False
            await commit.submit([event(100)], True)  # the next batch goes through
            assert flushed[-1][0] == ["100"]
            tg.cancel_scope.cancel()
