"""Counters the simulator keeps per account (and sums globally), for tests and the stats line.

A test compares them with what its client saw: submits accepted and rejected by status,
receipts by stat, MO messages and parts. Counting is a plain attribute increment on the hot
path; the global view is summed when read, not maintained per message.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..codec.constants import status_name
from .ledger import Ledger

_INT_FIELDS = (
    "binds",
    "bind_total",
    "submits",
    "accepted",
    "responses_dropped",
    "responses_delayed",
    "dlrs_acked",
    "dlrs_lost",
    "dlrs_redelivered",
    "dlrs_expired",
    "store_overflows",
    "deliver_retries",
    "deliver_failures",
    "mos",
    "mo_parts",
    "mo_acked",
    "mo_redelivered",
    "mo_expired",
    "protocol_errors",
    "garbled",
    "fault_closes",
    "stalls",
    "fault_drops",
    "ignored_after_drop",
    "session_init_timeouts",
    "failed_bind_closes",
    "restarts",
    "connections_refused",
)
_DICT_FIELDS = ("bind_failures", "rejected", "dlrs", "intermediates")


class Counters:
    """What happened on one account (or, summed, on the whole simulator).

    ``binds`` are current binds; ``bind_total`` every successful bind. ``rejected`` and
    ``bind_failures`` count by command_status; ``dlrs`` (final receipts sent) and
    ``intermediates`` by stat, each receipt once however often it was retried.
    Receipts are stored per system_id while no receiving bind can take them, so
    ``dlrs_lost`` stays 0 unless the simulator gave one up by configuration: its
    ``receipts.store_expiry`` passed (also in ``dlrs_expired``) or the store was full
    (``receipts.store_limit``, also in ``store_overflows``, which counts MO parts too). A receipt
    the ESME refused permanently (or on every attempt) is a ``deliver_failures``, not lost.
    ``dlrs_redelivered`` counts sends of a receipt again after the connection that carried it
    dropped before its deliver_sm_resp (``mo_redelivered`` the same for MO parts, and
    ``mo_expired`` counts MO parts given up at ``store_expiry``); ``dlrs``
    counts each receipt once whatever the number of sends. ``mos`` are MO messages,
    ``mo_parts`` their deliver_sm PDUs.

    Faults: ``fault_closes`` (close_after_pdus), ``fault_drops`` (drop_at_submit and chaos
    drops), ``ignored_after_drop`` (requests not answered on a dropping connection),
    ``stalls``. Abuse limits (on ``Stats.unbound``): ``session_init_timeouts``,
    ``failed_bind_closes``; ``restarts`` and ``connections_refused`` (while a restart pauses
    listening) are simulator-wide, also on ``Stats.unbound``.
    """

    __slots__ = (*_INT_FIELDS, *_DICT_FIELDS)

    def __init__(self) -> None:
        self.binds = 0
        self.bind_total = 0
        self.submits = 0
        self.accepted = 0
        self.responses_dropped = 0
        self.responses_delayed = 0
        self.dlrs_acked = 0
        self.dlrs_lost = 0
        self.dlrs_redelivered = 0
        self.dlrs_expired = 0
        self.store_overflows = 0
        self.deliver_retries = 0
        self.deliver_failures = 0
        self.mos = 0
        self.mo_parts = 0
        self.mo_acked = 0
        self.mo_redelivered = 0
        self.mo_expired = 0
        self.protocol_errors = 0
        self.garbled = 0
        self.fault_closes = 0
        self.stalls = 0
        self.fault_drops = 0
        self.ignored_after_drop = 0
        self.session_init_timeouts = 0
        self.failed_bind_closes = 0
        self.restarts = 0
        self.connections_refused = 0
        self.bind_failures: dict[int, int] = {}
        self.rejected: dict[int, int] = {}
        self.dlrs: dict[str, int] = {}
        self.intermediates: dict[str, int] = {}

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    @property
    def dlrs_total(self) -> int:
        return sum(self.dlrs.values())

    def add(self, other: Counters) -> None:
        """Add ``other``'s counts into this one."""
        for name in _INT_FIELDS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for name in _DICT_FIELDS:
            mine: dict[Any, int] = getattr(self, name)
            for key, value in getattr(other, name).items():
                mine[key] = mine.get(key, 0) + value

    def as_dict(self) -> dict[str, Any]:
        """Plain data (statuses by name), for logs and JSON."""
        out: dict[str, Any] = {name: getattr(self, name) for name in _INT_FIELDS}
        out["bind_failures"] = {status_name(k): v for k, v in self.bind_failures.items()}
        out["rejected"] = {status_name(k): v for k, v in self.rejected.items()}
        out["dlrs"] = dict(self.dlrs)
        out["intermediates"] = dict(self.intermediates)
        return out

    def __repr__(self) -> str:
        shown = {k: v for k, v in self.as_dict().items() if v}
        return f"Counters({shown})"


class Stats:
    """Counters of every account, plus those of connections that never bound, and the
    per-message ledger when enabled (``ledger``; see ``ledger.py``)."""

    def __init__(self, ledger: Ledger | None = None) -> None:
        self.accounts: dict[str, Counters] = {}
        self.unbound = Counters()  # bind failures with no account, errors before any bind
        self.ledger = ledger

    def account(self, system_id: str) -> Counters:
        """The counters of ``system_id`` (created empty if it has none yet)."""
        found = self.accounts.get(system_id)
        if found is None:
            found = self.accounts[system_id] = Counters()
        return found

    def total(self) -> Counters:
        """Every account's counters summed (a fresh object: a snapshot)."""
        out = Counters()
        out.add(self.unbound)
        for counters in self.accounts.values():
            out.add(counters)
        return out

    def write_ledger(self, path: str | Path) -> None:
        """Write the ledger file: the totals, each account's counters and every message."""
        if self.ledger is None:
            raise RuntimeError("the ledger is not enabled (ledger.enabled or ledger.path)")
        accounts = {sid: c.as_dict() for sid, c in self.accounts.items()}
        self.ledger.write(path, self.total().as_dict(), accounts)


__all__ = ["Counters", "Stats"]
