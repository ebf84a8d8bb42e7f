"""Store and forward, the drop fault and the ledger, over loopback TCP: receipts survive the
connections that carried them, the drop fault answers exactly what it should, and the ledger
says what became of every accepted message."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from smpp_bridge.codec import BindTransceiver, Framer, Pdu, SubmitSm, decode, encode
from smpp_bridge.errors import SessionClosedError
from smpp_bridge.simulator import (
    Faults,
    LedgerConfig,
    Receipts,
    Simulator,
    read_ledger,
    run_simulator,
)
from smpp_bridge.simulator.ledger import COLUMNS, FORMAT, text_hash
from tests.integration.test_simulator import (
    PW,
    Inbox,
    eventually,
    make_config,
    session,
    stream_all,
    submit_pdu,
)

pytestmark = pytest.mark.anyio


async def send_reconnecting(
    sim: Simulator, pdus: list[SubmitSm], inbox: Inbox, *, window: int = 50
) -> tuple[int, list[str]]:
    """Send every PDU, reconnecting after each drop and sending again whatever got no
    submit_sm_resp (outcome unknown) or a refusal; the number of connections and the ids."""
    todo = list(range(len(pdus)))
    ids: list[str] = []
    connections = 0
    while todo:
        connections += 1
        done: set[int] = set()
        try:
            async with session(
                sim, window=window, response_timeout=5.0, on_delivery=inbox
            ) as client:
                async for batch in client.submit_stream([pdus[i] for i in todo], tags=list(todo)):
                    for result in batch:
                        if result.ok and result.message_id is not None:
                            ids.append(result.message_id)
                            assert isinstance(result.tag, int)
                            done.add(result.tag)
        except* SessionClosedError:
            pass  # the drop: what got no answer goes again on the next connection
        todo = [i for i in todo if i not in done]
    return connections, ids


def all_settled(sim: Simulator) -> bool:
    ledger = sim.stats.ledger
    assert ledger is not None
    return ledger.fates()["pending"] == 0


# ------------------------------------------------------------------ the ledger


async def test_ledger_records_every_accepted_submit_and_its_receipt(tmp_path: Path) -> None:
    path = tmp_path / "ledger.json"
    config = make_config(ledger=LedgerConfig(path=str(path)))
    inbox = Inbox()
    with anyio.fail_after(10):
        async with run_simulator(config) as sim:
            async with session(sim, on_delivery=inbox) as client:
                results = await stream_all(
                    client,
                    [
                        submit_pdu(1, rd=1, text=b"one"),
                        submit_pdu(2, rd=0, text=b"two"),
                        submit_pdu(1, rd=1, text=b"one"),  # the same message again
                    ],
                )
                await inbox.wait_for(2)
                await eventually(lambda: sim.stats.account("esme").dlrs_acked == 2)
            ledger = sim.stats.ledger
            assert ledger is not None
            rows = list(ledger.rows())
    ids = [r.message_id for r in results]
    assert [r.message_id for r in rows] == ids
    first, second, third = rows
    assert first.system_id == "esme" and first.source_addr == "ACME"
    assert first.destination_addr == "34600000001"
    assert first.text_hash == f"{text_hash(b'one'):016x}"
    assert (first.receipt_owed, first.receipt_stat, first.receipt_sends) == (True, "DELIVRD", 1)
    assert first.receipt_acked and first.receipt_fate == "acked"
    assert (second.receipt_owed, second.receipt_stat, second.receipt_fate) == (False, None, "none")
    assert first.submits == third.submits == 2 and second.submits == 1
    # Written at stop: the same rows, the counters, and the duplicate group.
    data = read_ledger(path)
    assert data["format"] == FORMAT
    assert data["columns"] == list(COLUMNS)
    assert [tuple(row) for row in data["messages"]] == [tuple(r) for r in rows]
    assert data["totals"]["accepted"] == 3 and data["totals"]["dlrs_lost"] == 0
    assert data["accounts"]["esme"]["dlrs_acked"] == 2
    (dup,) = data["duplicates"]
    assert dup["submits"] == 2 and dup["message_ids"] == [ids[0], ids[2]]
    assert dup["destination_addr"] == "34600000001"


async def test_ledger_is_off_by_default() -> None:
    async with run_simulator(make_config()) as sim:
        assert sim.stats.ledger is None
        with pytest.raises(RuntimeError, match="not enabled"):
            sim.stats.write_ledger("/nonexistent/ledger.json")


# ------------------------------------------------------------------ store and forward


async def test_receipts_of_a_closed_bind_go_to_the_next_one() -> None:
    # route "same", receipts due after the bind went away: stored, not lost.
    config = make_config(
        receipts=Receipts(route="same", delay=0.3), ledger=LedgerConfig(enabled=True)
    )
    inbox = Inbox()
    with anyio.fail_after(10):
        async with run_simulator(config) as sim:
            async with session(sim) as client:
                await stream_all(client, [submit_pdu(i, rd=1) for i in range(20)])
            await eventually(lambda: len(sim.accounts["esme"].store) == 20)
            async with session(sim, bind="rx", on_delivery=inbox):
                await inbox.wait_for(20)
                await eventually(lambda: all_settled(sim))
            counters = sim.stats.account("esme")
            assert counters.dlrs_lost == 0 and counters.dlrs_acked == 20


async def test_unanswered_receipts_of_a_dropped_connection_are_redelivered_first() -> None:
    config = make_config(ledger=LedgerConfig(enabled=True))
    never = anyio.Event()

    async def hold(delivery: object) -> None:
        await never.wait()  # never answers: the deliver_sm stay outstanding

    inbox = Inbox()
    with anyio.fail_after(10):
        async with run_simulator(config) as sim:
            async with session(sim, bind="tx") as tx:
                await stream_all(tx, [submit_pdu(i, rd=1) for i in range(15)])
            with anyio.CancelScope() as scope:
                async with session(sim, bind="rx", on_delivery=hold, window=10):
                    # Our window (10) is out on this bind, 5 wait in the store.
                    await eventually(lambda: len(sim.accounts["esme"].store) == 5)
                    scope.cancel()  # the connection drops, no unbind, nothing answered
            async with session(sim, bind="rx", on_delivery=inbox):
                items = await inbox.wait_for(15)
                await eventually(lambda: all_settled(sim))
            # The ten sent first come back first, in their order.
            ids = [d.receipt.message_id for d in items if d.receipt is not None]
            assert ids == [str(i) for i in range(1, 16)]
            counters = sim.stats.account("esme")
            assert counters.dlrs_redelivered == 10
            assert counters.dlrs == {"DELIVRD": 15}  # counted once each
            assert counters.dlrs_acked == 15 and counters.dlrs_lost == 0
            ledger = sim.stats.ledger
            assert ledger is not None
            assert sorted(r.receipt_sends for r in ledger.rows()) == [1] * 5 + [2] * 10


async def test_permanent_refusal_is_a_failure_at_once() -> None:
    config = make_config(receipts=Receipts(retry_interval=0.05), ledger=LedgerConfig(enabled=True))
    refusing = Inbox(answer=0x66)  # ESME_RX_R_APPN: reject this message
    with anyio.fail_after(10):
        async with run_simulator(config) as sim, session(sim, on_delivery=refusing) as client:
            await client.submit(submit_pdu(rd=1))
            await eventually(lambda: sim.stats.account("esme").deliver_failures == 1)
            await anyio.sleep(0.2)
            counters = sim.stats.account("esme")
            assert counters.deliver_retries == 0 and counters.dlrs_lost == 0
            assert len(refusing.items) == 1
            ledger = sim.stats.ledger
            assert ledger is not None
            assert ledger.fates() == {"refused": 1}


async def test_store_expiry_and_limit_are_counted_as_lost() -> None:
    config = make_config(
        receipts=Receipts(store_expiry=0.5, store_limit=4), ledger=LedgerConfig(enabled=True)
    )
    with anyio.fail_after(10):
        async with run_simulator(config) as sim:
            async with session(sim, bind="tx") as tx:
                await stream_all(tx, [submit_pdu(i, rd=1) for i in range(6)])
            counters = sim.stats.account("esme")
            assert counters.store_overflows == 2 and counters.dlrs_lost == 2
            await eventually(lambda: counters.dlrs_expired == 4)
            assert counters.dlrs_lost == 6 and not sim.accounts["esme"].store
            ledger = sim.stats.ledger
            assert ledger is not None
            assert ledger.fates() == {"overflow": 2, "expired": 4}


async def test_a_stored_mo_expires_after_store_expiry_not_at_once() -> None:
    """An MO message sent while no bind can take it waits in the store for ``store_expiry``
    from then (it used to count from the epoch and vanish at the first sweep), and its
    expiry is counted."""
    config = make_config(receipts=Receipts(store_expiry=2.0))
    with anyio.fail_after(10):
        async with run_simulator(config) as sim:
            assert sim.send_mo("esme", "hello") == 1
            store = sim.accounts["esme"].store
            await anyio.sleep(1.2)  # a sweep has passed
            assert len(store) == 1
            counters = sim.stats.account("esme")
            await eventually(lambda: counters.mo_expired == 1)
            assert not store and counters.dlrs_lost == 0


# ------------------------------------------------------------------ the drop fault


async def test_drop_at_every_nth_submit_loses_no_receipt() -> None:
    # The measured scenario, scaled: the connection drops at every 300th submit, mid-window,
    # receipts immediate on the same bind. Reconnecting, the client gets every receipt.
    n = 2000
    config = make_config(
        receipts=Receipts(route="same", delay=0.0),
        faults=Faults(drop_at_submit=300),
        ledger=LedgerConfig(enabled=True),
    )
    inbox = Inbox()
    with anyio.fail_after(40):
        async with run_simulator(config) as sim:
            connections, ids = await send_reconnecting(
                sim, [submit_pdu(i, rd=1) for i in range(n)], inbox
            )
            async with session(sim, bind="rx", on_delivery=inbox):
                await eventually(lambda: all_settled(sim), timeout=20)
            counters = sim.stats.account("esme")
            ledger = sim.stats.ledger
            assert ledger is not None
            rows = list(ledger.rows())
    assert counters.fault_drops >= 6 and connections >= 7
    assert counters.ignored_after_drop >= counters.fault_drops
    assert counters.dlrs_lost == 0 and counters.deliver_failures == 0
    # Every accepted message (answered or not) has a receipt, and the ESME acked it.
    assert len(rows) == counters.accepted >= n
    assert all(r.receipt_acked for r in rows)
    received = {d.receipt.message_id for d in inbox.items if d.receipt is not None}
    assert received == {r.message_id for r in rows}
    assert set(ids) <= received
    # Each receipt counted once; its extra sends are the redeliveries.
    assert counters.dlrs_total == len(rows)
    assert sum(r.receipt_sends for r in rows) == len(rows) + counters.dlrs_redelivered


def _frames(framer: Framer, data: bytes) -> list[Pdu]:
    return [decode(frame) for frame in framer.feed(data)]


@pytest.mark.parametrize("mode", ["close", "half_close"])
async def test_drop_answers_what_came_before_then_fin(mode: Any) -> None:
    config = make_config(faults=Faults(drop_at_submit=3, drop_mode=mode, drop_linger=0.5))
    framer = Framer()
    with anyio.fail_after(10):
        async with run_simulator(config) as sim:
            assert sim.port is not None
            stream = await anyio.connect_tcp("127.0.0.1", sim.port)
            async with stream:
                await stream.send(encode(BindTransceiver(system_id="esme", password=PW), 1))
                got = _frames(framer, await stream.receive())
                assert [p.command_name for p in got] == ["bind_transceiver_resp"]
                # Five submits in one write: the drop comes at the third.
                await stream.send(b"".join(encode(submit_pdu(i), i + 2) for i in range(5)))
                got = []
                with pytest.raises(anyio.EndOfStream):
                    while True:
                        got += _frames(framer, await stream.receive())
                fin_at = anyio.current_time()
                # The first two submits answered, then FIN: nothing else.
                assert [(p.command_name, p.command_status) for p in got] == [
                    ("submit_sm_resp", 0)
                ] * 2
                # Still reading: more submits are taken in and ignored.
                await stream.send(b"".join(encode(submit_pdu(i), i + 10) for i in range(2)))
                counters = sim.stats.account("esme")
                await eventually(lambda: counters.ignored_after_drop == 5)
                if mode == "close":
                    await eventually(lambda: not sim.sessions)
                    assert anyio.current_time() - fin_at >= 0.4
                else:
                    await anyio.sleep(0.8)
                    assert len(sim.sessions) == 1  # until the peer closes
            await eventually(lambda: not sim.sessions)
            assert counters.accepted == 2 and counters.submits == 2
            assert counters.fault_drops == 1
