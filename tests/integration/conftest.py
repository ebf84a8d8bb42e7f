"""Fixtures shared by the integration tests."""

from __future__ import annotations

import collections
from typing import Any

import pytest

from smpp_bridge.codec.pdus import SubmitSm
from smpp_bridge.simulator.smsc import SmscSession


@pytest.fixture
def accepted_per_destination(monkeypatch: pytest.MonkeyPatch) -> collections.Counter[str]:
    """Every destination the in-process simulator accepted a submit_sm for, counted."""
    counts: collections.Counter[str] = collections.Counter()
    original = SmscSession._submit_sm

    def counting(self: SmscSession, pdu: SubmitSm) -> Any:
        before = self.counters.accepted
        answer = original(self, pdu)
        if self.counters.accepted > before:
            counts[pdu.destination_addr] += 1
        return answer

    monkeypatch.setattr(SmscSession, "_submit_sm", counting)
    return counts
