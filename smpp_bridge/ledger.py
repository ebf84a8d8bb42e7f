"""One ledger per run: what went in, what the SMSC saw, what came out — counted, not sampled.

A soak or fault run ends with three records of the same messages:

- the **requests** it enqueued (``clientId``, destination, text);
- the **SMSC's ledger** (the simulator's ``--ledger`` file): every submit it accepted, by
  destination and text, with the receipt it owed and how often it sent it;
- the daemon's **events**.

``check_run`` compares them and returns a ``LedgerReport``: counts for the note, and every
broken promise as a ``Problem`` naming the request, so a failing test names the first message
that went missing and shows its history instead of "assert 9 998 == 10 000". The promises:

1. every request has exactly one submit outcome (``sent``, ``error`` or ``unknown``), any
   surplus ``sent`` flagged ``possibleDuplicate``;
2. what the SMSC accepted is what the daemon said it sent: a request accepted at the SMSC has
   a ``sent`` event, one accepted more than once says ``possibleDuplicate``, and no ``sent``
   event claims a submit the SMSC never accepted;
3. every receipt the SMSC sent yields exactly one final event; a receipt sent again (after a
   drop, or twice on purpose) is suppressed, and counted as such, or (after a crash of the
   daemon that published it, before it could answer) published again flagged
   ``possibleDuplicate``;
4. no receipt is left unmatched or parked.

Pure data in, data out: the callers read the files and stores (``tools/soak.py``, the soak
tests).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

# Receipt stats (as the SMSC writes them) and the final event status each one gives.
FINAL_OF_STAT: Final[Mapping[str, str]] = {
    "DELIVRD": "delivered",
    "UNDELIV": "failed",
    "EXPIRED": "expired",
    "DELETED": "canceled",
    "REJECTD": "rejected",
    "ACCEPTD": "accepted",
    "UNKNOWN": "unknown",
}
# Event statuses that settle a submit (one per request), and those a final receipt gives.
SUBMIT_OUTCOMES: Final = frozenset({"sent", "error", "unknown"})
RECEIPT_FINALS: Final = frozenset(FINAL_OF_STAT.values())


@dataclass(frozen=True, slots=True)
class Request:
    """One request the run enqueued."""

    client_id: str
    to: str  # as enqueued: "+E.164"
    text: str


@dataclass(frozen=True, slots=True)
class SmscMessage:
    """One submit the SMSC accepted, from its ledger."""

    message_id: str
    destination: str  # as the SMSC received it (no "+")
    text: str  # the text, or any fingerprint of it (the simulator's ledger keeps a hash)
    receipt_stat: str | None  # the final stat it owed, None when no receipt was asked for
    receipt_sends: int  # deliver_sm PDUs written for that final receipt (0: not yet)
    receipt_acked: bool  # a deliver_sm_resp OK came back for it


@dataclass(frozen=True, slots=True)
class Problem:
    """One broken promise, about one request (``client_id``) or one SMSC message."""

    kind: str
    client_id: str | None
    detail: str


@dataclass
class LedgerReport:
    """The counts of one run and what did not add up."""

    requests: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)  # submit outcome by status
    accepted_at_smsc: int = 0  # submits the SMSC accepted (resends included)
    resent: int = 0  # requests the SMSC accepted more than once
    sent_events: int = 0
    flagged_duplicates: int = 0  # sent events marked possibleDuplicate
    receipts_owed: int = 0  # final receipts the SMSC owed
    receipts_sent: int = 0  # of those, written at least once
    receipt_writes: int = 0  # deliver_sm PDUs for them, redeliveries included
    finals: Counter[str] = field(default_factory=Counter)  # final events by status
    suppressed: int = 0  # receipt writes beyond the first that made no second event
    flagged_finals: int = 0  # final events beyond the first, each flagged possibleDuplicate
    unmatched: int = 0
    unmatched_explained: int = 0  # receipts of submits whose outcome was reported unknown
    parked: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def first(self, kind: str | None = None) -> Problem | None:
        """The first problem (of ``kind``), in request order."""
        for problem in self.problems:
            if kind is None or problem.kind == kind:
                return problem
        return None

    def summary(self) -> dict[str, Any]:
        """The counts as plain data (for a note, a log line, a JSON file)."""
        kinds = Counter(p.kind for p in self.problems)
        return {
            "requests": self.requests,
            "outcomes": dict(self.outcomes),
            "accepted_at_smsc": self.accepted_at_smsc,
            "resent": self.resent,
            "sent_events": self.sent_events,
            "flagged_duplicates": self.flagged_duplicates,
            "receipts_owed": self.receipts_owed,
            "receipts_sent": self.receipts_sent,
            "receipt_writes": self.receipt_writes,
            "finals": dict(self.finals),
            "suppressed": self.suppressed,
            "flagged_finals": self.flagged_finals,
            "unmatched": self.unmatched,
            "unmatched_explained": self.unmatched_explained,
            "parked": self.parked,
            "problems": dict(kinds),
        }


def _destination_key(address: str) -> str:
    return address[1:] if address.startswith("+") else address


def check_run(
    requests: Iterable[Request],
    events: Iterable[Mapping[str, Any]],
    smsc: Iterable[SmscMessage],
    *,
    parked: int = 0,
    expect_receipts: bool = True,
) -> LedgerReport:
    """Compare a run's requests, the SMSC's ledger and the daemon's events (see the module).

    Requests are told apart at the SMSC by destination (the SMSC's ledger keeps only a hash
    of the octets, which depends on the encoding), so each request of a run needs its own.
    ``parked`` is what the daemon's correlation store still holds parked at the end. With
    ``expect_receipts`` every accepted submit must have had its receipt sent.
    """
    report = LedgerReport(parked=parked)
    ordered = list(requests)
    report.requests = len(ordered)
    by_key: dict[str, str] = {_destination_key(r.to): r.client_id for r in ordered}

    accepted: defaultdict[str, list[SmscMessage]] = defaultdict(list)
    owner_of_id: dict[str, str | None] = {}
    for message in smsc:
        client_id = by_key.get(_destination_key(message.destination))
        owner_of_id[message.message_id] = client_id
        report.accepted_at_smsc += 1
        if client_id is None:
            report.problems.append(
                Problem(
                    "stray submit",
                    None,
                    f"the SMSC accepted {message.message_id} to {message.destination}, "
                    "which no request asked for",
                )
            )
            continue
        accepted[client_id].append(message)

    outcomes: defaultdict[str, list[Mapping[str, Any]]] = defaultdict(list)
    finals_by_id: defaultdict[str, list[Mapping[str, Any]]] = defaultdict(list)
    unmatched: list[Mapping[str, Any]] = []
    for event in events:
        status = event.get("status")
        client_id = event.get("clientId")
        if status in SUBMIT_OUTCOMES and not _is_unmatched(event):
            if client_id is not None:
                outcomes[client_id].append(event)
            if status == "sent":
                report.sent_events += 1
                report.flagged_duplicates += bool(event.get("possibleDuplicate"))
        if _is_unmatched(event):
            unmatched.append(event)
        elif status in RECEIPT_FINALS and event.get("id") is not None and not event.get("segment"):
            finals_by_id[str(event["id"])].append(event)
            report.finals[str(status)] += 1

    # A receipt no mapping claimed is a broken promise, unless the daemon told the user its
    # submit was in doubt: outcome reported unknown, or resent and flagged possibleDuplicate
    # (the first response never came, so the daemon never learnt that id).
    in_doubt = {
        cid
        for cid, mine in outcomes.items()
        if any(e["status"] == "unknown" or e.get("possibleDuplicate") for e in mine)
    }
    unmatched_by_id: defaultdict[str, list[Mapping[str, Any]]] = defaultdict(list)
    late: list[Problem] = []  # listed after the requests' own problems
    for event in unmatched:
        report.unmatched += 1
        owner = owner_of_id.get(str(event.get("id")))
        if owner is None or owner not in in_doubt:
            late.append(Problem("unmatched receipt", owner, f"event {_brief(event)}"))
        else:
            report.unmatched_explained += 1
            unmatched_by_id[str(event.get("id"))].append(event)

    for request in ordered:
        cid = request.client_id
        mine = outcomes.get(cid, [])
        taken = accepted.get(cid, [])
        for event in mine:
            report.outcomes[str(event["status"])] += 1
        sent = [e for e in mine if e["status"] == "sent"]
        if not mine:
            report.problems.append(
                Problem("no outcome", cid, f"accepted {len(taken)}x at the SMSC, no event")
            )
        elif len(mine) > 1 and not all(e.get("possibleDuplicate") for e in mine[1:]):
            report.problems.append(
                Problem(
                    "outcome twice",
                    cid,
                    "outcomes " + ", ".join(_brief(e) for e in mine) + " (surplus not flagged)",
                )
            )
        if len(taken) > 1:
            report.resent += 1
            if not any(e.get("possibleDuplicate") for e in sent):
                report.problems.append(
                    Problem(
                        "silent duplicate",
                        cid,
                        f"accepted {len(taken)}x at the SMSC "
                        f"({', '.join(m.message_id for m in taken)}) and no sent event says "
                        "possibleDuplicate",
                    )
                )
        if taken and not sent and not any(e["status"] == "unknown" for e in mine):
            report.problems.append(
                Problem(
                    "accepted, not sent",
                    cid,
                    f"accepted as {taken[0].message_id} but the outcome is "
                    + (", ".join(_brief(e) for e in mine) or "missing"),
                )
            )
        if sent and not taken:
            report.problems.append(
                Problem("sent, not accepted", cid, f"{_brief(sent[0])} but the SMSC has no submit")
            )
        for message in taken:
            _check_receipt(
                report,
                cid,
                message,
                finals_by_id.get(message.message_id) or unmatched_by_id.get(message.message_id, []),
                expect_receipts=expect_receipts,
            )

    report.problems += late
    for message_id, finals in finals_by_id.items():
        if message_id not in owner_of_id:
            report.problems.append(
                Problem(
                    "final without submit",
                    finals[0].get("clientId"),
                    f"{_brief(finals[0])}: the SMSC never accepted {message_id}",
                )
            )
    if parked:
        report.problems.append(Problem("left parked", None, f"{parked} receipts still parked"))
    return report


def _check_receipt(
    report: LedgerReport,
    client_id: str,
    message: SmscMessage,
    finals: list[Mapping[str, Any]],
    *,
    expect_receipts: bool,
) -> None:
    if message.receipt_stat is None:
        return
    report.receipts_owed += 1
    if message.receipt_sends:
        report.receipts_sent += 1
        report.receipt_writes += message.receipt_sends
        report.suppressed += max(message.receipt_sends - len(finals), 0)
    elif expect_receipts:
        report.problems.append(
            Problem(
                "receipt never sent",
                client_id,
                f"the SMSC owes a {message.receipt_stat} receipt for {message.message_id} "
                "and never sent it",
            )
        )
    if message.receipt_sends and not finals:
        report.problems.append(
            Problem(
                "no final event",
                client_id,
                f"the SMSC sent the {message.receipt_stat} receipt for {message.message_id} "
                f"{message.receipt_sends}x (acked: {message.receipt_acked}); no final event",
            )
        )
        return
    if len(finals) > 1:
        if not all(e.get("possibleDuplicate") for e in finals[1:]):
            report.problems.append(
                Problem(
                    "final twice",
                    client_id,
                    f"{message.message_id}: " + ", ".join(_brief(e) for e in finals),
                )
            )
            return
        report.flagged_finals += len(finals) - 1
    if finals and not _is_unmatched(finals[0]):
        expected = FINAL_OF_STAT.get(message.receipt_stat)
        if expected is not None and finals[0]["status"] != expected:
            report.problems.append(
                Problem(
                    "wrong final",
                    client_id,
                    f"{message.message_id}: the SMSC sent {message.receipt_stat}, the event "
                    f"says {finals[0]['status']}",
                )
            )


def smsc_messages(ledger: Mapping[str, Any]) -> list[SmscMessage]:
    """The rows of the simulator's ledger (``smpp_bridge.simulator.ledger``, format
    ``smpp-bridge-simulator-ledger/1``) as ``SmscMessage``s."""
    fmt = ledger.get("format")
    if fmt != "smpp-bridge-simulator-ledger/1":
        raise ValueError(f"not a simulator ledger (format {fmt!r})")
    col = {name: i for i, name in enumerate(ledger["columns"])}
    mid, dest, text = col["message_id"], col["destination_addr"], col["text_hash"]
    owed, stat, sends, acked = (
        col["receipt_owed"],
        col["receipt_stat"],
        col["receipt_sends"],
        col["receipt_acked"],
    )
    return [
        SmscMessage(
            str(row[mid]),
            str(row[dest]),
            str(row[text]),
            row[stat] if row[owed] else None,
            int(row[sends]),
            bool(row[acked]),
        )
        for row in ledger["messages"]
    ]


def _is_unmatched(event: Mapping[str, Any]) -> bool:
    return "unmatched" in str(event.get("reason") or "")


def _brief(event: Mapping[str, Any]) -> str:
    keys = ("status", "id", "code", "reason", "possibleDuplicate", "bind", "eventAt")
    return "{" + ", ".join(f"{k}={event[k]!r}" for k in keys if event.get(k) is not None) + "}"


def history(
    client_id: str,
    requests: Iterable[Request],
    events: Iterable[Mapping[str, Any]],
    smsc: Iterable[SmscMessage],
    record: Mapping[str, Any] | None = None,
) -> str:
    """Everything known about one request, for a failure message: the request, its store
    record (when the caller has one), its events in order, and the SMSC's ledger lines."""
    lines = [f"request {client_id}:"]
    found = next((r for r in requests if r.client_id == client_id), None)
    if found is not None:
        lines.append(f"  enqueued: to={found.to} text={found.text!r}")
    lines.append(f"  store record: {dict(record) if record is not None else 'none'}")
    mine = [e for e in events if e.get("clientId") == client_id]
    ids = {str(e["id"]) for e in mine if e.get("id") is not None}
    lines.append(f"  events ({len(mine)}):")
    lines += [f"    {_brief(e)}" for e in mine]
    key = _destination_key(found.to) if found is not None else None
    at_smsc = [m for m in smsc if m.message_id in ids or m.destination == key]
    lines.append(f"  SMSC ledger ({len(at_smsc)}):")
    lines += [
        f"    {m.message_id}: stat={m.receipt_stat} sends={m.receipt_sends} acked={m.receipt_acked}"
        for m in at_smsc
    ]
    return "\n".join(lines)


__all__ = [
    "FINAL_OF_STAT",
    "LedgerReport",
    "Problem",
    "Request",
    "SmscMessage",
    "check_run",
    "history",
    "smsc_messages",
]
