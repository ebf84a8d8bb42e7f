"""The per-message ledger: every submit the simulator accepted, and what became of its receipt.

A soak test compares it with what the ESME (the daemon's events) reports: the daemon's ``sent``
event carries the SMSC message_id, which is the ledger's key. Kept compact for 1M-message runs
(about 100 bytes a message: parallel arrays, interned system_ids and sources), and written as
one JSON file at stop (``ledger.path`` in the config, ``--ledger PATH`` on the command line),
also obtainable in-process as ``sim.stats.ledger``.

The file (``format`` ``smpp-bridge-simulator-ledger/1``) is one JSON object::

    {
      "format": "smpp-bridge-simulator-ledger/1",
      "written_at": "2026-04-21T10:15:00Z",          # UTC, when the file was written
      "totals": {...},                                # Counters.as_dict() summed over accounts
      "accounts": {"esme": {...}, ...},               # Counters.as_dict() per system_id
      "columns": ["message_id", "system_id", "source_addr", "destination_addr", "text_hash",
                  "receipt_owed", "receipt_stat", "receipt_sends", "receipt_acked",
                  "receipt_fate", "submits"],
      "messages": [["1", "esme", "ACME", "34600000001", "9b2f0c1d2e3f4a5b",
                    true, "DELIVRD", 1, true, "acked", 1], ...],
      "duplicates": [{"system_id": "esme", "destination_addr": "34600000001",
                      "text_hash": "9b2f0c1d2e3f4a5b", "submits": 2,
                      "message_ids": ["7", "3012"]}, ...]
    }

One row per accepted submit_sm / data_sm, in the order they were accepted; a submit_multi has
one row per SME destination (same message_id). Columns:

- ``message_id``: as the submit_sm_resp gave it (the receipt's text may render it differently).
- ``system_id``, ``source_addr``, ``destination_addr``: of the submit, as received.
- ``text_hash``: 16 hex digits, ``hashlib.blake2b(data, digest_size=8).hexdigest()`` of the
  short_message octets as received (UDH included), or of the message_payload TLV's value when
  short_message is empty.
- ``receipt_owed``: a final receipt is due (registered_delivery asked for one, receipts on).
- ``receipt_stat``: its stat (``DELIVRD``, ``UNDELIV`` ...), ``null`` when none is owed.
- ``receipt_sends``: how many times its deliver_sm was sent (first send, retries after a
  refusal or a timeout, redeliveries after a dropped connection).
- ``receipt_acked``: a deliver_sm_resp with command_status 0 came back for it.
- ``receipt_fate``: ``none`` (not owed), ``pending`` (owed, not acknowledged yet: scheduled,
  stored or in flight when the file was written), ``acked``, ``refused`` (the ESME refused it
  permanently, or every attempt), ``expired`` (``receipts.store_expiry`` passed),
  ``overflow`` (``receipts.store_limit`` was reached).
- ``submits``: accepted submits with the same (system_id, destination_addr, text_hash): more
  than 1 is a duplicate; ``duplicates`` lists each such group with its message_ids.
"""

from __future__ import annotations

import hashlib
import os
import time
from array import array
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final, NamedTuple

import msgspec

FORMAT: Final = "smpp-bridge-simulator-ledger/1"
COLUMNS: Final = (
    "message_id",
    "system_id",
    "source_addr",
    "destination_addr",
    "text_hash",
    "receipt_owed",
    "receipt_stat",
    "receipt_sends",
    "receipt_acked",
    "receipt_fate",
    "submits",
)
# receipt_fate codes (one octet per message).
NONE: Final = 0
PENDING: Final = 1
ACKED: Final = 2
REFUSED: Final = 3
EXPIRED: Final = 4
OVERFLOW: Final = 5
FATES: Final = ("none", "pending", "acked", "refused", "expired", "overflow")
_STATS: Final = ("DELIVRD", "UNDELIV", "EXPIRED", "REJECTD", "DELETED", "ACCEPTD", "UNKNOWN")
_STAT_CODE: Final = {stat: i + 1 for i, stat in enumerate(_STATS)}
_MAX_SENDS: Final = 0xFFFF
_CHUNK: Final = 10_000  # rows encoded per msgspec call when writing


def text_hash(data: bytes) -> int:
    """The 64-bit hash the ledger keeps of a message's octets (see the module docstring)."""
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest())


class LedgerRow(NamedTuple):
    """One accepted message as the file shows it (the column order of ``COLUMNS``)."""

    message_id: str
    system_id: str
    source_addr: str
    destination_addr: str
    text_hash: str
    receipt_owed: bool
    receipt_stat: str | None
    receipt_sends: int
    receipt_acked: bool
    receipt_fate: str
    submits: int


class Ledger:
    """Every accepted submit and its receipt's fate; rows are addressed by their index."""

    def __init__(self, render_id: Callable[[int], str], *, wide_ids: bool = False) -> None:
        self._render = render_id
        # Message numbers (rendered into message_ids when read): 64-bit unless uuids.
        self._numbers: array[int] | list[int] = [] if wide_ids else array("Q")
        self._sids: array[int] = array("I")
        self._sources: array[int] = array("I")
        self._dests: list[str] = []
        self._hashes: array[int] = array("Q")
        self._stats: array[int] = array("B")
        self._sends: array[int] = array("H")
        self._fates: array[int] = array("B")
        self._names: list[str] = []  # interned system_ids and source addresses
        self._name_index: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._dests)

    def _intern(self, name: str) -> int:
        index = self._name_index.get(name)
        if index is None:
            index = self._name_index[name] = len(self._names)
            self._names.append(name)
        return index

    # ------------------------------------------------------------------ recording

    def add(self, number: int, system_id: str, source: str, dest: str, data: bytes) -> int:
        """Record an accepted submit; its row index."""
        index = len(self._dests)
        self._numbers.append(number)
        self._sids.append(self._intern(system_id))
        self._sources.append(self._intern(source))
        self._dests.append(dest)
        self._hashes.append(text_hash(data))
        self._stats.append(0)
        self._sends.append(0)
        self._fates.append(NONE)
        return index

    def owe(self, index: int, stat: str) -> None:
        """A final receipt with ``stat`` is due for row ``index``."""
        self._stats[index] = _STAT_CODE.get(stat, len(_STATS))
        self._fates[index] = PENDING

    def sent(self, index: int) -> None:
        sends = self._sends[index]
        if sends < _MAX_SENDS:
            self._sends[index] = sends + 1

    def settle(self, index: int, fate: int) -> None:
        """Row ``index``'s receipt was acked, refused, expired or overflowed."""
        if self._fates[index] != ACKED:  # an ack is final (a late duplicate changes nothing)
            self._fates[index] = fate

    # ------------------------------------------------------------------ reading

    def _keys(self) -> list[int]:
        sids, dests, hashes = self._sids, self._dests, self._hashes
        return [hash((sids[i], dests[i], hashes[i])) for i in range(len(dests))]

    def rows(self) -> Iterator[LedgerRow]:
        """Every row, in acceptance order."""
        keys = self._keys()
        counts = Counter(keys)
        render, names = self._render, self._names
        for i, key in enumerate(keys):
            stat = self._stats[i]
            fate = self._fates[i]
            yield LedgerRow(
                render(self._numbers[i]),
                names[self._sids[i]],
                names[self._sources[i]],
                self._dests[i],
                f"{self._hashes[i]:016x}",
                fate != NONE,
                (_STATS[stat - 1] if stat <= len(_STATS) else "UNKNOWN") if stat else None,
                self._sends[i],
                fate == ACKED,
                FATES[fate],
                counts[key],
            )

    def find(self, message_id: str) -> list[LedgerRow]:
        """The rows of ``message_id`` (more than one for a submit_multi)."""
        return [row for row in self.rows() if row.message_id == message_id]

    def fates(self) -> Counter[str]:
        """How many rows have each receipt_fate."""
        return Counter(FATES[f] for f in self._fates)

    def duplicates(self) -> list[dict[str, Any]]:
        """Groups of more than one accepted submit with the same system_id, destination and
        text, with their message_ids."""
        keys = self._keys()
        counts = Counter(keys)
        groups: dict[int, dict[str, Any]] = {}
        names = self._names
        for i, key in enumerate(keys):
            n = counts[key]
            if n < 2:
                continue
            group = groups.get(key)
            if group is None:
                group = groups[key] = {
                    "system_id": names[self._sids[i]],
                    "destination_addr": self._dests[i],
                    "text_hash": f"{self._hashes[i]:016x}",
                    "submits": n,
                    "message_ids": [],
                }
            group["message_ids"].append(self._render(self._numbers[i]))
        return list(groups.values())

    # ------------------------------------------------------------------ the file

    def write(
        self,
        path: str | Path,
        totals: dict[str, Any],
        accounts: dict[str, dict[str, Any]],
    ) -> None:
        """Write the ledger file (see the module docstring), atomically (temp + rename)."""
        encode = msgspec.json.encode
        target = Path(path)
        tmp = target.with_name(target.name + ".tmp")
        head = {
            "format": FORMAT,
            "written_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "totals": totals,
            "accounts": accounts,
            "columns": COLUMNS,
        }
        with tmp.open("wb") as f:
            f.write(encode(head)[:-1])  # the object stays open for the rows
            f.write(b',"messages":[')
            chunk: list[LedgerRow] = []
            first = True
            for row in self.rows():
                chunk.append(row)
                if len(chunk) >= _CHUNK:
                    f.write((b"" if first else b",") + encode(chunk)[1:-1])
                    first = False
                    chunk = []
            if chunk:
                f.write((b"" if first else b",") + encode(chunk)[1:-1])
            f.write(b'],"duplicates":')
            f.write(encode(self.duplicates()))
            f.write(b"}")
        os.replace(tmp, target)


def read_ledger(path: str | Path) -> dict[str, Any]:
    """A ledger file as plain data (for tests and checkers)."""
    data: dict[str, Any] = msgspec.json.decode(Path(path).read_bytes())
    return data


__all__ = [
    "COLUMNS",
    "FATES",
    "FORMAT",
    "Ledger",
    "LedgerRow",
    "read_ledger",
    "text_hash",
]
