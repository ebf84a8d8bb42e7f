"""A peer reusing a sequence number it is still waiting on: both requests are handed on and
each may be answered once; the session reports the duplicate (``DuplicateSequence``)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from smpp_bridge.codec import (
    BindTransceiver,
    CancelSm,
    DataSm,
    DeliverSm,
    DeliverSmResp,
    GenericNack,
    Pdu,
    QuerySm,
    SubmitSm,
    SubmitSmResp,
    encode,
)
from smpp_bridge.errors import LocalProtocolError
from smpp_bridge.session import (
    Connection,
    DuplicateSequence,
    Event,
    RequestReceived,
    Role,
    SessionConfig,
)

QUIET = SessionConfig(enquire_link_interval=None)


def bound(role: Role) -> Connection:
    """A bound (transceiver) session of ``role``, its bind handshake already done."""
    conn = Connection(role, QUIET)
    if role is Role.SMSC:
        conn.receive_data(encode(BindTransceiver(1, system_id="e", password="p")), 0.0)
        [request] = [e for e in conn.events() if isinstance(e, RequestReceived)]
        conn.send(request.pdu.response(system_id="s"), 0.0)
    else:
        conn.send(BindTransceiver(system_id="e", password="p"), 0.0)
        conn.receive_data(encode(BindTransceiver(1).response(system_id="s")), 0.0)
    conn.data_to_send()
    conn.events()
    assert conn.bound
    return conn


def submit(text: bytes) -> SubmitSm:
    return SubmitSm(50, source_addr="1", destination_addr="2", short_message=text)


def deliver(text: bytes) -> DeliverSm:
    return DeliverSm(50, source_addr="2", destination_addr="1", short_message=text)


def requests(events: list[Event]) -> list[Pdu]:
    return [e.pdu for e in events if isinstance(e, RequestReceived)]


def duplicates(events: list[Event]) -> list[Pdu]:
    return [e.pdu for e in events if isinstance(e, DuplicateSequence)]


@pytest.mark.parametrize(
    ("role", "make", "resp"),
    [(Role.SMSC, submit, SubmitSmResp), (Role.ESME, deliver, DeliverSmResp)],
    ids=["submit_sm-to-smsc", "deliver_sm-to-esme"],
)
def test_two_requests_with_one_sequence_number_are_both_answered(
    role: Role, make: Callable[[bytes], SubmitSm], resp: type[SubmitSmResp]
) -> None:
    conn = bound(role)
    first, second = make(b"one"), make(b"two")
    conn.receive_data(encode(first) + encode(second), 1.0)  # one write, one receive
    events = conn.events()
    assert requests(events) == [first, second]
    assert duplicates(events) == [second]
    assert conn.inbound_pending == 2

    assert conn.send(first.response(), 1.0) == 50
    assert conn.inbound_pending == 1
    assert conn.send(second.response(), 1.0) == 50
    assert conn.inbound_pending == 0
    assert conn.data_to_send() == encode(resp(50)) * 2

    # A third answer answers nothing: the peer is waiting on no more requests with seq 50.
    with pytest.raises(LocalProtocolError, match="answers no request"):
        conn.send(first.response(), 1.0)
    assert conn.data_to_send() == b""
    assert conn.bound


def test_duplicates_of_different_commands_are_each_answered_by_their_own_response() -> None:
    conn = bound(Role.SMSC)
    pdus: list[Pdu] = [
        submit(b"a"),
        QuerySm(50, message_id="1"),
        DataSm(50, source_addr="1", destination_addr="2"),
        submit(b"b"),
        CancelSm(50, message_id="1"),
    ]
    conn.receive_data(b"".join(encode(p) for p in pdus), 0.0)
    events = conn.events()
    assert requests(events) == pdus
    assert duplicates(events) == pdus[1:]
    assert conn.inbound_pending == 5
    # Answered in any order: each response consumes one request of its own command.
    for pdu in reversed(pdus):
        conn.send(pdu.response(), 0.0)
    assert conn.inbound_pending == 0
    with pytest.raises(LocalProtocolError):
        conn.send(pdus[1].response(), 0.0)


def test_a_response_of_a_command_not_waiting_under_that_number_is_refused() -> None:
    conn = bound(Role.SMSC)
    conn.receive_data(encode(submit(b"a")) + encode(submit(b"b")), 0.0)
    conn.events()
    with pytest.raises(LocalProtocolError):
        conn.send(QuerySm(50).response(), 0.0)
    assert conn.inbound_pending == 2


def test_generic_nack_consumes_one_of_the_duplicates() -> None:
    conn = bound(Role.SMSC)
    conn.receive_data(encode(submit(b"a")) + encode(submit(b"b")), 0.0)
    conn.events()
    conn.send(GenericNack(50, 8), 0.0)
    assert conn.inbound_pending == 1
    conn.send(submit(b"b").response(), 0.0)
    assert conn.inbound_pending == 0


def test_the_number_is_reusable_once_both_are_answered() -> None:
    conn = bound(Role.SMSC)
    conn.receive_data(encode(submit(b"a")) + encode(submit(b"b")), 0.0)
    conn.events()
    conn.send(submit(b"a").response(), 0.0)
    conn.send(submit(b"b").response(), 0.0)
    conn.receive_data(encode(submit(b"c")), 0.0)
    events = conn.events()
    assert duplicates(events) == []
    assert requests(events) == [submit(b"c")]


def test_close_forgets_duplicates() -> None:
    conn = bound(Role.SMSC)
    conn.receive_data(encode(submit(b"a")) * 3, 0.0)
    conn.events()
    assert conn.inbound_pending == 3
    conn.close()
    assert conn.inbound_pending == 0
