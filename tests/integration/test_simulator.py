"""The SMSC simulator over loopback TCP (and TLS), driven by our ESME client: binds, message
ids, throttling, windows, receipts, MO traffic. Faults are in test_simulator_faults.py, the
config in test_simulator_config.py, and fake-clock runs in test_simulator_memory.py."""

from __future__ import annotations

import re
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import msgspec
import pytest
import trustme

from smpp_bridge.client import Client, Delivery, SubmitResult, open_session
from smpp_bridge.codec import (
    BindTransceiver,
    CommandStatus,
    DataSm,
    DataSmResp,
    DeliverSm,
    Pdu,
    QuerySm,
    SmeAddress,
    SubmitMulti,
    SubmitSm,
    Tag,
)
from smpp_bridge.driver.driver import Driver
from smpp_bridge.errors import BindError
from smpp_bridge.session import Connection, Role, SessionConfig
from smpp_bridge.simulator import (
    Account,
    Fixed,
    MessageIds,
    MobileOriginated,
    Outcome,
    Receipts,
    ServerConfig,
    Simulator,
    SimulatorConfig,
    SubmitBehaviour,
    Uniform,
    run_simulator,
)

pytestmark = pytest.mark.anyio

S = CommandStatus
PW = "secret"


def make_config(*accounts: Account, **sections: Any) -> SimulatorConfig:
    """A seeded config with the given accounts (default: one "esme" account)."""
    return SimulatorConfig(
        seed=7, accounts=accounts or (Account(system_id="esme", password=PW),), **sections
    )


def submit_pdu(n: int = 0, *, rd: int = 0, text: bytes = b"Hello") -> SubmitSm:
    return SubmitSm(
        source_addr="ACME",
        destination_addr=f"3460000{n:04d}",
        dest_addr_ton=1,
        dest_addr_npi=1,
        short_message=text,
        registered_delivery=rd,
    )


class Inbox:
    """Collects what the client is delivered, and lets a test wait for a count."""

    def __init__(self, answer: int | None = None) -> None:
        self.items: list[Delivery] = []
        self.answer = answer
        self._changed = anyio.Event()

    async def __call__(self, delivery: Delivery) -> int | None:
        self.items.append(delivery)
        self._changed.set()
        return self.answer

    async def wait_for(self, count: int) -> list[Delivery]:
        while len(self.items) < count:
            self._changed = anyio.Event()
            await self._changed.wait()
        return self.items

    @property
    def receipts(self) -> list[Delivery]:
        return [d for d in self.items if d.receipt is not None]


@asynccontextmanager
async def session(
    sim: Simulator,
    system_id: str = "esme",
    password: str = PW,
    bind: Any = "trx",
    **kwargs: Any,
) -> AsyncIterator[Client]:
    assert sim.port is not None
    kwargs.setdefault("enquire_link_interval", None)
    async with open_session("127.0.0.1", sim.port, system_id, password, bind, **kwargs) as c:
        yield c


async def stream_all(client: Client, pdus: list[SubmitSm]) -> list[SubmitResult]:
    results: list[SubmitResult] = []
    async for batch in client.submit_stream(pdus):
        results.extend(batch)
    return results


async def eventually(check: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait until ``check()`` holds (the simulator notices closes and acks asynchronously)."""
    with anyio.fail_after(timeout):
        while not check():
            await anyio.sleep(0.01)


# ------------------------------------------------------------------ binds


@pytest.mark.parametrize("bind", ["tx", "rx", "trx"])
async def test_bind_each_type_and_unbind(bind: str) -> None:
    with anyio.fail_after(10):
        async with run_simulator(make_config()) as sim:
            async with session(sim, bind=bind) as client:
                assert client.smsc_system_id == "SMPPSIM"
                account = sim.accounts["esme"]
                assert [s.bind_type for s in account.sessions] == [bind]
                assert sim.stats.account("esme").binds == 1
            await eventually(lambda: not sim.sessions)
            counters = sim.stats.account("esme")
            assert counters.binds == 0
            assert counters.bind_total == 1


async def test_bind_response_carries_sc_interface_version() -> None:
    with anyio.fail_after(10):
        async with run_simulator(make_config()) as sim, raw_esme(sim) as driver:
            resp = await driver.request(
                BindTransceiver(system_id="esme", password=PW, interface_version=0x34)
            )
            version = resp.tlv(Tag.sc_interface_version)
            assert version is not None and version.typed() == 0x34
        async with run_simulator(make_config()) as sim, raw_esme(sim) as driver:
            # A v3.3 ESME gets no TLVs (sheet 2.3, version negotiation).
            resp = await driver.request(
                BindTransceiver(system_id="esme", password=PW, interface_version=0x33)
            )
            assert resp.tlv(Tag.sc_interface_version) is None


@pytest.mark.parametrize(
    ("system_id", "password", "status"),
    [
        ("esme", "wrong", S.ESME_RINVPASWD),
        ("nobody", PW, S.ESME_RINVSYSID),
    ],
)
async def test_bind_refused_for_bad_credentials(system_id: str, password: str, status: int) -> None:
    with anyio.fail_after(10):
        async with run_simulator(make_config()) as sim:
            with pytest.raises(BindError) as info:
                async with session(sim, system_id, password):
                    pytest.fail("bound with bad credentials")
            assert info.value.command_status == status
            failures = sim.stats.total().bind_failures
            assert failures == {status: 1}


@pytest.mark.parametrize("limit_status", ["ESME_RALYBND", "ESME_RBINDFAIL"])
async def test_too_many_binds_refused_with_configured_status(limit_status: str) -> None:
    config = make_config(
        Account(system_id="esme", password=PW, max_binds=2),
        server=ServerConfig(bind_limit_status=limit_status),
    )
    with anyio.fail_after(10):
        async with run_simulator(config) as sim:
            async with session(sim), session(sim, bind="rx"):
                with pytest.raises(BindError) as info:
                    async with session(sim, bind="tx"):
                        pytest.fail("a third bind was accepted")
                assert info.value.command_status == CommandStatus[limit_status]
            # Once the two unbind, a new bind is welcome again.
            await eventually(lambda: sim.stats.account("esme").binds == 0)
            async with session(sim):
                pass


async def test_bind_type_not_allowed_for_account() -> None:
    config = make_config(Account(system_id="esme", password=PW, bind_types=("rx",)))
    with anyio.fail_after(10):
        async with run_simulator(config) as sim:
            with pytest.raises(BindError) as info:
                async with session(sim, bind="trx"):
                    pytest.fail("bound as transceiver")
            assert info.value.command_status == S.ESME_RBINDFAIL
            async with session(sim, bind="rx"):
                pass


async def test_accept_any_binds_unknown_accounts_with_any_password() -> None:
    config = make_config(server=ServerConfig(accept_any=True))
    with anyio.fail_after(10):
        async with run_simulator(config) as sim:
            async with session(sim, "stranger", "whatever") as client:
                await client.submit(submit_pdu())
            async with session(sim, "esme", "not-it") as client:
                await client.submit(submit_pdu())
            assert sim.stats.account("stranger").accepted == 1
            assert sim.stats.account("esme").accepted == 1


async def test_over_tls() -> None:
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    with anyio.fail_after(10):
        async with run_simulator(make_config(), ssl_context=server_ctx) as sim:
            assert sim.port is not None
            async with open_session(
                "localhost", sim.port, "esme", PW, tls=client_ctx, enquire_link_interval=None
            ) as client:
                resp = await client.submit(submit_pdu())
                assert resp.message_id == "1"
            assert sim.stats.account("esme").accepted == 1


# ------------------------------------------------------------------ submits and message ids


@pytest.mark.parametrize(
    ("ids", "pattern"),
    [
        (MessageIds(), r"[1-9][0-9]*"),
        (MessageIds(width=10), r"[0-9]{10}"),
        (MessageIds(format="hex", start=0xFFF0), r"[0-9a-f]{4,}"),
        (MessageIds(format="hex", uppercase=True, start=0xFFF0), r"[0-9A-F]{4,}"),
        (
            MessageIds(format="uuid"),
            r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
        ),
    ],
)
async def test_message_id_formats(ids: MessageIds, pattern: str) -> None:
    config = make_config(submit=SubmitBehaviour(message_id=ids))
    with anyio.fail_after(10):
        async with run_simulator(config) as sim, session(sim) as client:
            results = await stream_all(client, [submit_pdu(i) for i in range(20)])
            message_ids = [r.message_id or "" for r in results]
            assert all(re.fullmatch(pattern, m) for m in message_ids), message_ids
            assert len(set(message_ids)) == 20


async def test_receipt_id_format_differs_from_response_but_names_the_same_number() -> None:
    # As some SMSCs do: hex in submit_sm_resp, zero-padded decimal in the receipt text.
    ids = MessageIds(format="hex", receipt_format="decimal", receipt_width=12, start=0xABC)
    config = make_config(submit=SubmitBehaviour(message_id=ids), receipts=Receipts(tlvs=False))
    inbox = Inbox()
    with anyio.fail_after(10):
        async with run_simulator(config) as sim, session(sim, on_delivery=inbox) as client:
            resp = await client.submit(submit_pdu(rd=1))
            assert resp.message_id == "abc"
            (delivery,) = await inbox.wait_for(1)
            assert delivery.receipt is not None
            assert delivery.receipt.message_id == f"{0xABC:012d}"
            assert int(delivery.receipt.message_id) == int(resp.message_id, 16)


async def test_data_sm_submit_multi_and_unsupported_requests() -> None:
    inbox = Inbox()
    with anyio.fail_after(10):
        async with run_simulator(make_config()) as sim, session(sim, on_delivery=inbox) as client:
            resp = await client.request(
                DataSm(source_addr="ACME", destination_addr="34600000001", registered_delivery=1)
            )
            assert isinstance(resp, DataSmResp) and resp.message_id == "1"
            multi = SubmitMulti(
                source_addr="ACME",
                dest_addresses=(SmeAddress("34600000001", 1, 1), SmeAddress("34600000002", 1, 1)),
                short_message=b"to both",
                registered_delivery=1,
            )
            await client.request(multi)
            # One receipt for the data_sm, one per destination of the submit_multi.
            items = await inbox.wait_for(3)
            assert sorted(d.source_addr for d in items) == [
                "34600000001",
                "34600000001",
                "34600000002",
            ]
            query = await client.request(QuerySm(message_id="1"), check=False)
            assert query.command_status == S.ESME_RQUERYFAIL
            assert sim.stats.account("esme").accepted == 2


async def test_latency_holds_responses_without_serialising_them() -> None:
    config = make_config(submit=SubmitBehaviour(latency=Fixed(value=0.2)))
    with anyio.fail_after(10):
        async with run_simulator(config) as sim, session(sim, window=50) as client:
            start = anyio.current_time()
            results = await stream_all(client, [submit_pdu(i) for i in range(50)])
            elapsed = anyio.current_time() - start
            assert all(r.ok for r in results)
            # Each waited its latency; together they took about one latency, not fifty.
            assert 0.2 <= elapsed < 2.0


async def test_random_latency_distribution_is_applied() -> None:
    config = make_config(submit=SubmitBehaviour(latency=Uniform(low=0.05, high=0.1)))
    with anyio.fail_after(10):
        async with run_simulator(config) as sim, session(sim) as client:
            start = anyio.current_time()
            await client.submit(submit_pdu())
            assert anyio.current_time() - start >= 0.05


# ------------------------------------------------------------------ throttling and windows


async def test_tps_limit_answers_throttled_beyond_the_bucket() -> None:
    config = make_config(Account(system_id="esme", password=PW, tps=20.0, tps_burst=5))
    with anyio.fail_after(10):
        async with run_simulator(config) as sim, session(sim, window=40) as client:
            start = anyio.current_time()
            results = await stream_all(client, [submit_pdu(i) for i in range(40)])
            elapsed = anyio.current_time() - start
            ok = sum(r.ok for r in results)
            throttled = [r for r in results if not r.ok]
            assert all(
                r.response is not None and r.response.command_status == S.ESME_RTHROTTLED
                for r in throttled
            )
            # The burst, plus what the rate refilled while the 40 were in flight.
            assert 5 <= ok <= 5 + int(20 * elapsed) + 1
            assert throttled
            counters = sim.stats.account("esme")
            assert counters.rejected == {S.ESME_RTHROTTLED: len(throttled)}
            assert counters.accepted == ok
            # After a pause the bucket has refilled.
            await anyio.sleep(0.3)
            await client.submit(submit_pdu())


@pytest.mark.parametrize("status", ["ESME_RTHROTTLED", "ESME_RMSGQFUL"])
async def test_window_enforced_with_configured_status(status: str) -> None:
    # Responses are held back by latency, so the first five stay outstanding while the
    # client (allowed 20 by its own window) sends fifteen more.
    config = make_config(
        Account(system_id="esme", password=PW, window=5, window_status=status),
        submit=SubmitBehaviour(latency=0.3),
    )
    with anyio.fail_after(10):
        async with run_simulator(config) as sim, session(sim, window=20) as client:
            results = await stream_all(client, [submit_pdu(i) for i in range(20)])
            statuses = sorted(r.response.command_status for r in results if r.response)
            assert statuses == [0] * 5 + [CommandStatus[status]] * 15
            assert sim.stats.account("esme").rejected == {CommandStatus[status]: 15}


async def test_window_compliant_client_is_never_refused() -> None:
    config = make_config(
        Account(system_id="esme", password=PW, window=5), submit=SubmitBehaviour(latency=0.01)
    )
    with anyio.fail_after(10):
        async with run_simulator(config) as sim, session(sim, window=5) as client:
            results = await stream_all(client, [submit_pdu(i) for i in range(100)])
            assert all(r.ok for r in results)
            assert sim.stats.account("esme").rejected == {}


async def test_window_counts_answers_until_written_with_immediate_answers() -> None:
    # No latency: answers go out as soon as each batch is read, and a client within the
    # window is never refused however fast it goes.
    config = make_config(Account(system_id="esme", password=PW, window=10))
    with anyio.fail_after(10):
        async with run_simulator(config) as sim, session(sim, window=10) as client:
            results = await stream_all(client, [submit_pdu(i % 100) for i in range(2000)])
            assert all(r.ok for r in results)
            assert sim.stats.account("esme").accepted == 2000


# ------------------------------------------------------------------ receipts


async def test_receipt_outcome_mix_matches_simulator_counters() -> None:
    outcomes = (
        Outcome(stat="DELIVRD", weight=5),
        Outcome(stat="UNDELIV", weight=2, err=1),
        Outcome(stat="EXPIRED", weight=1, err=27),
        Outcome(stat="REJECTD", weight=1, err=11),
        Outcome(stat="DELETED", weight=1, err=6),
    )
    config = make_config(receipts=Receipts(outcomes=outcomes, delay=Uniform(low=0, high=0.05)))
    inbox = Inbox()
    n = 300
    with anyio.fail_after(15):
        async with run_simulator(config) as sim, session(sim, on_delivery=inbox) as client:
            results = await stream_all(client, [submit_pdu(i, rd=1) for i in range(n)])
            sent_ids = {r.message_id for r in results}
            items = await inbox.wait_for(n)
            await eventually(lambda: sim.stats.account("esme").dlrs_acked == n)
        seen: dict[str, int] = {}
        errs: dict[str, int] = {o.stat: o.err for o in outcomes}
        for d in items:
            receipt = d.receipt
            assert receipt is not None and receipt.final
            seen[receipt.stat] = seen.get(receipt.stat, 0) + 1
            assert int(receipt.err or "0") == errs[receipt.stat]
            assert receipt.message_state is not None
            state = d.pdu.tlv(Tag.message_state)
            assert state is not None and state.typed() == receipt.message_state
            error_tlv = d.pdu.tlv(Tag.network_error_code)
            if errs[receipt.stat]:
                assert error_tlv is not None
                assert int.from_bytes(error_tlv.value[1:]) == errs[receipt.stat]
            else:
                assert error_tlv is None
        assert {d.receipt.message_id for d in items if d.receipt} == sent_ids
        counters = sim.stats.account("esme")
        assert seen == counters.dlrs
        assert set(seen) == set(errs)  # every outcome occurred
        assert counters.dlrs_total == n


@pytest.mark.parametrize(
    ("rd", "expect"),
    [
        (0x00, set()),
        (0x01, {"DELIVRD", "UNDELIV"}),
        (0x02, {"UNDELIV"}),
        (0x03, {"DELIVRD"}),
    ],
)
async def test_registered_delivery_selects_receipts(rd: int, expect: set[str]) -> None:
    outcomes = (Outcome(stat="DELIVRD"), Outcome(stat="UNDELIV", err=1))
    config = make_config(receipts=Receipts(outcomes=outcomes))
    inbox = Inbox()
    with anyio.fail_after(10):
        async with run_simulator(config) as sim, session(sim, on_delivery=inbox) as client:
            await stream_all(client, [submit_pdu(i, rd=rd) for i in range(60)])
            # A final marker submit asking for any receipt flushes the ones before it.
            await client.submit(submit_pdu(99, rd=1))
            await eventually(lambda: sim.stats.account("esme").dlrs_acked >= 1)
            await eventually(lambda: len(inbox.items) == sim.stats.account("esme").dlrs_total)
        stats = {d.receipt.stat for d in inbox.items[:-1] if d.receipt}
        assert stats == expect


async def test_intermediate_notifications_come_before_the_final_receipt() -> None:
    config = make_config(
        receipts=Receipts(intermediate=("ENROUTE", "ACCEPTD"), delay=0.05, intermediate_delay=0)
    )
    inbox = Inbox()
    with anyio.fail_after(10):
        async with run_simulator(config) as sim, session(sim, on_delivery=inbox) as client:
            with_intermediates = await client.submit(submit_pdu(1, rd=0x11))
            await inbox.wait_for(3)
            plain = await client.submit(submit_pdu(2, rd=0x01))
            items = await inbox.wait_for(4)
        first = [d.receipt for d in items if d.receipt and d.receipt.message_id == "1"]
        assert [r.stat for r in first if r] == ["ENROUTE", "ACCEPTD", "DELIVRD"]
        assert [d.pdu.esm_class & 0x3C for d in items[:3]] == [0x20, 0x20, 0x04]
        assert with_intermediates.message_id == "1" and plain.message_id == "2"
        assert items[3].receipt is not None and items[3].receipt.stat == "DELIVRD"
        counters = sim.stats.account("esme")
        assert counters.intermediates == {"ENROUTE": 1, "ACCEPTD": 1}
        assert counters.dlrs == {"DELIVRD": 2}


@pytest.mark.parametrize(
    ("variant", "pattern"),
    [
        (
            Receipts(),
            r"id:1 sub:001 dlvrd:001 submit date:\d{10} done date:\d{10} stat:DELIVRD "
            r"err:000 text:Hello there",
        ),
        (
            Receipts(text_key="Text", date_key="underscore", date_digits=12),
            r"id:1 sub:001 dlvrd:001 submit_date:\d{12} done_date:\d{12} stat:DELIVRD "
            r"err:000 Text:Hello there",
        ),
        (
            Receipts(key_case="upper", include_text=False),
            r"ID:1 SUB:001 DLVRD:001 SUBMIT DATE:\d{10} DONE DATE:\d{10} STAT:DELIVRD ERR:000",
        ),
    ],
)
async def test_receipt_text_variants_parse(variant: Receipts, pattern: str) -> None:
    config = make_config(receipts=msgspec.structs.replace(variant, tlvs=False))
    inbox = Inbox()
    with anyio.fail_after(10):
        async with run_simulator(config) as sim, session(sim, on_delivery=inbox) as client:
            await client.submit(submit_pdu(rd=1, text=b"Hello there"))
            (delivery,) = await inbox.wait_for(1)
        # The receipt's text travels as GSM 7-bit (data_coding 0), so "_" must survive it.
        assert re.fullmatch(pattern, delivery.text), delivery.text
        assert delivery.pdu.tlvs == ()
        assert delivery.receipt is not None
        assert delivery.receipt.message_id == "1" and delivery.receipt.stat == "DELIVRD"


async def test_receipts_route_to_any_receiver_of_the_account() -> None:
    inbox = Inbox()
    with anyio.fail_after(10):
        async with run_simulator(make_config()) as sim:
            async with session(sim, bind="tx") as tx, session(sim, bind="rx", on_delivery=inbox):
                await stream_all(tx, [submit_pdu(i, rd=1) for i in range(5)])
                items = await inbox.wait_for(5)
            assert sorted(d.receipt.message_id for d in items if d.receipt) == list("12345")


async def test_receipts_routed_to_the_submitting_bind_only() -> None:
    config = make_config(receipts=Receipts(route="same"))
    on_rx = Inbox()
    on_trx = Inbox()
    with anyio.fail_after(10):
        async with run_simulator(config) as sim:
            async with (
                session(sim, bind="rx", on_delivery=on_rx),
                session(sim, bind="trx", on_delivery=on_trx) as trx,
                session(sim, bind="tx") as tx,
            ):
                for i in range(5):
                    await trx.submit(submit_pdu(i, rd=1))
                await on_trx.wait_for(5)
                assert on_rx.items == []
                # A transmitter cannot take its receipt: it goes to a receiving bind instead.
                await tx.submit(submit_pdu(9, rd=1))
                await eventually(lambda: sim.stats.account("esme").dlrs_acked == 6)
            assert len(on_trx.items) + len(on_rx.items) == 6
            assert sim.stats.account("esme").dlrs_lost == 0


async def test_receipts_wait_for_a_receiver_to_bind() -> None:
    inbox = Inbox()
    with anyio.fail_after(10):
        async with run_simulator(make_config()) as sim:
            async with session(sim, bind="tx") as tx:
                await stream_all(tx, [submit_pdu(i, rd=1) for i in range(3)])
            assert len(sim.accounts["esme"].store) == 3
            async with session(sim, bind="rx", on_delivery=inbox):
                items = await inbox.wait_for(3)
            assert len(items) == 3
            assert not sim.accounts["esme"].store


async def test_refused_receipt_is_retried() -> None:
    config = make_config(receipts=Receipts(retry_interval=0.05, max_attempts=3))
    refusing = Inbox(answer=S.ESME_RX_T_APPN)
    with anyio.fail_after(10):
        async with run_simulator(config) as sim, session(sim, on_delivery=refusing) as client:
            await client.submit(submit_pdu(rd=1))
            await refusing.wait_for(3)
            await eventually(lambda: sim.stats.account("esme").deliver_failures == 1)
            counters = sim.stats.account("esme")
            assert counters.deliver_retries == 2
            # Refused every time: a delivery failure, not a receipt the simulator lost.
            assert counters.dlrs_lost == 0 and counters.dlrs_acked == 0
            assert counters.dlrs == {"DELIVRD": 1}  # one receipt, however often attempted


async def test_deliveries_beyond_our_window_wait_their_turn() -> None:
    config = make_config(server=ServerConfig(window=2))
    inbox = Inbox()

    async def slow(delivery: Delivery) -> None:
        await anyio.sleep(0.005)
        await inbox(delivery)

    with anyio.fail_after(10):
        async with run_simulator(config) as sim, session(sim, on_delivery=slow) as client:
            await stream_all(client, [submit_pdu(i, rd=1) for i in range(30)])
            items = await inbox.wait_for(30)
        assert sorted(int(d.receipt.message_id) for d in items if d.receipt) == list(range(1, 31))


# ------------------------------------------------------------------ MO traffic


async def test_mo_traffic_at_a_rate_in_concatenated_parts() -> None:
    long_text = "This reply is long enough to need more than one part. " * 4
    config = make_config(mo=MobileOriginated(rate=50, count=3, texts=("STOP", long_text)))
    inbox = Inbox()
    with anyio.fail_after(10):
        async with run_simulator(config) as sim, session(sim, bind="rx", on_delivery=inbox):
            await eventually(lambda: sim.stats.account("esme").mo_acked == 3 + 1)
        items = inbox.items
        assert [d.text for d in items[:1]] == ["STOP"]
        parts = [d for d in items if d.concat is not None]
        assert len(parts) == 2
        assert (
            "".join(d.text for d in sorted(parts, key=lambda d: d.concat.seqnum if d.concat else 0))
            == long_text
        )
        assert {d.concat.total for d in parts if d.concat} == {2}
        assert all(d.pdu.esm_class & 0x40 for d in parts)
        assert items[-1].text == "STOP"  # the third message starts the texts over
        counters = sim.stats.account("esme")
        assert counters.mos == 3 and counters.mo_parts == 4
        assert all(d.receipt is None for d in items)
        assert items[0].source_addr == "34600000000" and items[0].destination_addr == "ACME"


@pytest.mark.parametrize("concat", ["udh16", "sar", "payload"])
async def test_send_mo_on_demand(concat: Any) -> None:
    text = "€ and emoji 🙂 " * 12
    inbox = Inbox()
    with anyio.fail_after(10):
        async with run_simulator(make_config()) as sim, session(sim, on_delivery=inbox):
            parts = sim.send_mo("esme", text, source_addr="+447700900123", concat=concat)
            items = await inbox.wait_for(parts)
        assert (parts == 1) == (concat == "payload")
        ordered = sorted(items, key=lambda d: d.concat.seqnum if d.concat else 0)
        assert "".join(d.text for d in ordered) == text
        assert items[0].source_addr == "447700900123"
        assert sim.stats.account("esme").mo_parts == parts


# ------------------------------------------------------------------ raw wire order


@asynccontextmanager
async def raw_esme(
    sim: Simulator, inline: Callable[[Pdu], Pdu | None] | None = None
) -> AsyncIterator[Driver]:
    """A bare ESME session (Connection + Driver) whose inline handler sees PDUs in wire order."""
    assert sim.port is not None
    stream = await anyio.connect_tcp("127.0.0.1", sim.port)
    conn = Connection(Role.ESME, SessionConfig(enquire_link_interval=None))
    driver = Driver(stream, conn, inline_handler=inline)
    async with anyio.create_task_group() as tg:
        await tg.start(driver.run)
        yield driver
        tg.cancel_scope.cancel()


async def test_receipt_follows_its_response_on_the_wire() -> None:
    order: list[str] = []

    def inline(pdu: Pdu) -> Pdu | None:
        if isinstance(pdu, DeliverSm):
            order.append("receipt")
            return pdu.response()
        return None

    with anyio.fail_after(10):
        async with run_simulator(make_config()) as sim, raw_esme(sim, inline) as driver:
            await driver.request(BindTransceiver(system_id="esme", password=PW))
            for i in range(5):

                def settled(req: Pdu, resp: Pdu | None, err: BaseException | None) -> None:
                    order.append("resp")

                driver.start_request(submit_pdu(i, rd=1), settled)
            await eventually(lambda: len(order) == 10)
        # Each receipt (sent with no delay) still follows the response that announced it.
        for i in range(len(order) + 1):
            assert order[:i].count("resp") >= order[:i].count("receipt"), order


async def test_v33_esme_gets_receipts_without_tlvs() -> None:
    received: list[DeliverSm] = []

    def inline(pdu: Pdu) -> Pdu | None:
        if isinstance(pdu, DeliverSm):
            received.append(pdu)
            return pdu.response()
        return None

    with anyio.fail_after(10):
        async with run_simulator(make_config()) as sim, raw_esme(sim, inline) as driver:
            await driver.request(
                BindTransceiver(system_id="esme", password=PW, interface_version=0x33)
            )
            await driver.request(submit_pdu(rd=1))
            await eventually(lambda: len(received) == 1)
        assert received[0].tlvs == ()
        assert b"id:1 " in received[0].short_message
