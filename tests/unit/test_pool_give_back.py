"""Which messages a drain may give back unsent: the SMSC must have no part of them, and no
part may be decided (accepted, refused for good, given up as unknown) or out."""

from __future__ import annotations

import pytest

from smpp_bridge.codec.pdus import SubmitSm
from smpp_bridge.pool import AccountConfig, BindPool, OutboundMessage, PoolConfig
from smpp_bridge.pool.pool import _Job
from tests.integration.test_pool import Recorder


def pool_and_job() -> tuple[BindPool, _Job]:
    """A two-part message whose parts were both handed out and refused (waiting to retry)."""
    config = PoolConfig(accounts=(AccountConfig(name="main", system_id="e", password="p", port=1),))
    pool = BindPool(config, Recorder())
    message = OutboundMessage(id="m", source="ACME", destination="+34600000001", text="x")
    job = _Job(pool, message, pool.accounts["main"], [SubmitSm(), SubmitSm()])
    job.sent_gen = [1, 1]
    return pool, job


@pytest.mark.anyio
async def test_only_a_message_refused_and_waiting_everywhere_is_given_back() -> None:
    pool, job = pool_and_job()
    assert pool._none_accepted(job)
    pool, job = pool_and_job()
    job.out = 1  # a part out: its answer may accept it
    assert not pool._none_accepted(job)
    pool, job = pool_and_job()
    job.message_ids[0], job.settled[0] = "id-1", True  # a part accepted
    assert not pool._none_accepted(job)
    pool, job = pool_and_job()
    job.possible_duplicate = True  # a part sent without an answer, to be resent
    assert not pool._none_accepted(job)
    pool, job = pool_and_job()
    job.unknown, job.settled[0] = True, True  # a part given up as unknown (report policy)
    assert not pool._none_accepted(job)
    pool, job = pool_and_job()
    job.code, job.settled[0] = 0x45, True  # a part refused for good
    assert not pool._none_accepted(job)
