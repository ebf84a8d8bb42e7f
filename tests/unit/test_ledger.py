"""The run ledger checker: each broken promise is found and named by its request."""

from __future__ import annotations

from typing import Any

from smpp_bridge.ledger import Request, SmscMessage, check_run, history

REQUESTS = [Request(f"k-{n}", f"+3460000000{n}", f"code {n}") for n in range(3)]


def smsc(n: int, message_id: str, *, sends: int = 1, stat: str | None = "DELIVRD") -> SmscMessage:
    return SmscMessage(message_id, f"3460000000{n}", f"code {n}", stat, sends, sends > 0)


def sent(n: int, message_id: str, **extra: Any) -> dict[str, Any]:
    return {"status": "sent", "clientId": f"k-{n}", "id": message_id, "code": 0, **extra}


def final(n: int, message_id: str, status: str = "delivered") -> dict[str, Any]:
    return {"status": status, "clientId": f"k-{n}", "id": message_id, "code": 0}


def clean_run() -> tuple[list[dict[str, Any]], list[SmscMessage]]:
    events = [sent(n, f"m{n}") for n in range(3)] + [final(n, f"m{n}") for n in range(3)]
    return events, [smsc(n, f"m{n}") for n in range(3)]


def test_a_clean_run_adds_up() -> None:
    events, ledger = clean_run()
    report = check_run(REQUESTS, events, ledger)
    assert report.ok, report.problems
    assert report.summary()["finals"] == {"delivered": 3}
    assert report.receipts_owed == report.receipts_sent == 3


def test_a_missing_final_names_the_request() -> None:
    events, ledger = clean_run()
    events = [e for e in events if not (e["clientId"] == "k-1" and e["status"] == "delivered")]
    report = check_run(REQUESTS, events, ledger)
    problem = report.first()
    assert problem is not None and (problem.kind, problem.client_id) == ("no final event", "k-1")
    text = history("k-1", REQUESTS, events, ledger)
    assert "m1: stat=DELIVRD sends=1" in text and "status='sent'" in text


def test_a_redelivered_receipt_is_suppressed_once_and_a_second_final_is_flagged() -> None:
    events, ledger = clean_run()
    ledger[2] = smsc(2, "m2", sends=3)
    report = check_run(REQUESTS, events, ledger)
    assert report.ok and report.suppressed == 2 and report.receipt_writes == 5
    report = check_run(REQUESTS, [*events, final(2, "m2")], ledger)
    assert [p.kind for p in report.problems] == ["final twice"]
    # Published again after a crash, flagged: counted, not a problem; the status still checked.
    again = {**final(2, "m2"), "possibleDuplicate": True}
    report = check_run(REQUESTS, [*events, again], ledger)
    assert report.ok and report.flagged_finals == 1 and report.suppressed == 1
    wrong = [e if e != final(2, "m2") else final(2, "m2", "failed") for e in events]
    report = check_run(REQUESTS, [*wrong, again], ledger)
    assert [p.kind for p in report.problems] == ["wrong final"]


def test_a_resend_must_say_possible_duplicate() -> None:
    events, ledger = clean_run()
    ledger.append(smsc(0, "m0b", sends=1))
    events.append(final(0, "m0b"))
    report = check_run(REQUESTS, events, ledger)
    assert [p.kind for p in report.problems] == ["silent duplicate"]
    flagged = [sent(0, "m0b", possibleDuplicate=True) if e == sent(0, "m0") else e for e in events]
    # The first attempt's response was lost: its receipt came back unmatched, which is
    # explained because the user was told the request may be doubled.
    flagged.append({"status": "unknown", "id": "m0", "reason": "unmatched receipt", "code": 0})
    flagged = [e for e in flagged if e != final(0, "m0")]
    report = check_run(REQUESTS, flagged, ledger)
    assert report.ok, report.problems
    assert report.unmatched_explained == 1 and report.resent == 1


def test_no_outcome_unmatched_and_parked_are_problems() -> None:
    events, ledger = clean_run()
    events = [e for e in events if e["clientId"] != "k-2"]
    events.append({"status": "unknown", "id": "zz", "reason": "unmatched receipt", "code": 0})
    report = check_run(REQUESTS, events, ledger, parked=2)
    kinds = [p.kind for p in report.problems]
    assert kinds[0] == "no outcome" and report.problems[0].client_id == "k-2"
    assert {"unmatched receipt", "left parked", "accepted, not sent"} <= set(kinds)


def test_a_sent_event_the_smsc_never_accepted_is_caught() -> None:
    events, ledger = clean_run()
    report = check_run(REQUESTS, events, ledger[:2])
    assert {p.kind for p in report.problems} == {"sent, not accepted", "final without submit"}


def test_an_unknown_outcome_excuses_its_unmatched_receipt() -> None:
    events, ledger = clean_run()
    events = [e for e in events if e["clientId"] != "k-1"]
    events += [
        {"status": "unknown", "clientId": "k-1", "id": None, "code": 0, "reason": "timeout"},
        {"status": "unknown", "id": "m1", "reason": "unmatched receipt", "code": 0},
    ]
    report = check_run(REQUESTS, events, ledger)
    assert report.ok, report.problems
    assert report.outcomes == {"sent": 2, "unknown": 1}
