"""Unit tests of the sans-IO session: flows, answers, sequence numbers, window, timers, closing.

Time is always passed in explicitly; nothing here reads a clock. The exhaustive (state, role,
command) check against an independent permission oracle lives in
``tests/property/test_session_properties.py``.
"""

from __future__ import annotations

import struct
from typing import TypeVar

import pytest
from msgspec.structs import replace

from smpp_bridge.codec import (
    AlertNotification,
    BindReceiver,
    BindReceiverResp,
    BindTransceiver,
    BindTransceiverResp,
    BindTransmitter,
    BindTransmitterResp,
    CommandId,
    CommandStatus,
    DataSm,
    DeliverSm,
    DeliverSmResp,
    EnquireLink,
    EnquireLinkResp,
    Framer,
    GenericNack,
    Outbind,
    Pdu,
    QuerySm,
    SmeAddress,
    SubmitMulti,
    SubmitSm,
    SubmitSmResp,
    Unbind,
    UnbindResp,
    decode,
    encode,
)
from smpp_bridge.codec.constants import MAX_SEQUENCE
from smpp_bridge.errors import FieldError, LocalProtocolError, WindowFull
from smpp_bridge.session import (
    NEED_DATA,
    Connection,
    ConnectionClosed,
    Event,
    ProtocolErrorReceived,
    RequestReceived,
    RequestRejected,
    ResponseReceived,
    ResponseTimedOut,
    Role,
    SessionConfig,
    State,
    StateChanged,
    UnbindReceived,
    UnexpectedResponse,
)

S = CommandStatus
C = CommandId
# No keepalive unless a test asks for one: it would otherwise add PDUs to the wire.
QUIET = SessionConfig(enquire_link_interval=None)

BIND_KINDS: list[tuple[type[BindTransmitter], type[BindTransmitterResp], State]] = [
    (BindTransmitter, BindTransmitterResp, State.BOUND_TX),
    (BindReceiver, BindReceiverResp, State.BOUND_RX),
    (BindTransceiver, BindTransceiverResp, State.BOUND_TRX),
]


def submit(text: bytes = b"Hi") -> SubmitSm:
    return SubmitSm(source_addr="447700900001", destination_addr="447700900002", short_message=text)


def deliver() -> DeliverSm:
    return DeliverSm(source_addr="447700900002", destination_addr="447700900001")


def wire(data: bytes) -> list[Pdu]:
    """The PDUs in a byte string, decoded independently of the session."""
    framer = Framer()
    frames = framer.feed(data)
    assert framer.buffered == 0, "trailing partial PDU on the wire"
    return [decode(frame) for frame in frames]


def header(length: int, command_id: int, status: int, seq: int) -> bytes:
    return struct.pack(">IIII", length, command_id, status, seq)


def state(conn: Connection) -> State:
    """The state, read through a call so mypy does not keep an earlier narrowing."""
    return conn.state


def kinds(events: list[Event]) -> list[type[Event]]:
    return [type(e) for e in events]


E = TypeVar("E", bound=Event)


def of_type(events: list[Event], cls: type[E]) -> list[E]:
    return [e for e in events if isinstance(e, cls)]


class Pair:
    """An ESME and an SMSC connection joined by a perfect in-memory wire."""

    def __init__(
        self,
        esme_config: SessionConfig = QUIET,
        smsc_config: SessionConfig = QUIET,
        now: float = 0.0,
    ) -> None:
        self.esme = Connection(Role.ESME, esme_config, now=now)
        self.smsc = Connection(Role.SMSC, smsc_config, now=now)

    # b"" is EOF to receive_data, so an empty buffer is not passed on.
    def to_smsc(self, now: float = 0.0) -> None:
        if data := self.esme.data_to_send():
            self.smsc.receive_data(data, now)

    def to_esme(self, now: float = 0.0) -> None:
        if data := self.smsc.data_to_send():
            self.esme.receive_data(data, now)

    def bind(self, bind: type[BindTransmitter] = BindTransceiver, now: float = 0.0) -> None:
        """Bind and drain every event of both sides."""
        self.esme.send(bind(system_id="esme1", password="pw"), now)
        self.to_smsc(now)
        [request] = of_type(self.smsc.events(), RequestReceived)
        self.smsc.send(request.pdu.response(system_id="smsc"), now)
        self.to_esme(now)
        self.esme.events()
        self.smsc.events()
        assert self.esme.bound and self.smsc.bound


def bound_pair(
    bind: type[BindTransmitter] = BindTransceiver,
    esme_config: SessionConfig = QUIET,
    smsc_config: SessionConfig = QUIET,
    now: float = 0.0,
) -> Pair:
    pair = Pair(esme_config, smsc_config, now)
    pair.bind(bind, now)
    return pair


# ------------------------------------------------------------------------------------ binding


@pytest.mark.parametrize(("bind", "resp", "bound"), BIND_KINDS)
def test_bind_success_moves_both_sides_to_the_bound_state(
    bind: type[BindTransmitter], resp: type[BindTransmitterResp], bound: State
) -> None:
    pair = Pair()
    esme, smsc = pair.esme, pair.smsc
    request = bind(system_id="esme1", password="pw")
    seq = esme.send(request, 0.0)
    assert seq == 1
    assert esme.state is State.BINDING
    assert esme.events() == [StateChanged(State.OPEN, State.BINDING)]
    data = esme.data_to_send()
    assert data == encode(request, 1)

    smsc.receive_data(data, 0.0)
    events = smsc.events()
    assert events[0] == StateChanged(State.OPEN, State.BINDING)
    assert isinstance(events[1], RequestReceived)
    got = events[1].pdu
    assert type(got) is bind
    assert got == bind(1, 0, system_id="esme1", password="pw")
    assert smsc.inbound_pending == 1

    answer = got.response(system_id="smsc")
    assert type(answer) is resp
    assert smsc.send(answer, 0.0) == 1
    assert smsc.state is bound
    assert smsc.events() == [StateChanged(State.BINDING, bound)]
    assert smsc.inbound_pending == 0

    esme.receive_data(smsc.data_to_send(), 0.0)
    events = esme.events()
    assert events == [StateChanged(State.BINDING, bound), ResponseReceived(request, answer)]
    assert esme.state is bound
    assert esme.outstanding == 0


@pytest.mark.parametrize(("bind", "resp", "bound"), BIND_KINDS)
def test_bind_error_response_leaves_both_sides_open(
    bind: type[BindTransmitter], resp: type[BindTransmitterResp], bound: State
) -> None:
    pair = Pair()
    request = bind(system_id="esme1", password="bad")
    pair.esme.send(request, 0.0)
    pair.esme.events()
    pair.to_smsc()
    [received] = of_type(pair.smsc.events(), RequestReceived)
    answer = received.pdu.response(S.ESME_RINVPASWD)
    pair.smsc.send(answer, 0.0)
    assert pair.smsc.state is State.OPEN
    assert pair.smsc.events() == [StateChanged(State.BINDING, State.OPEN)]
    pair.to_esme()
    events = pair.esme.events()
    assert events == [StateChanged(State.BINDING, State.OPEN), ResponseReceived(request, answer)]
    assert answer.command_status == S.ESME_RINVPASWD
    assert pair.esme.state is State.OPEN
    # Open again: the ESME may retry.
    pair.bind(bind)
    assert pair.esme.state is bound


def test_bind_answered_by_generic_nack_leaves_both_sides_open() -> None:
    pair = Pair()
    pair.esme.send(BindTransceiver(system_id="esme1"), 0.0)
    pair.to_smsc()
    pair.smsc.events()
    pair.smsc.send(GenericNack(1, S.ESME_RINVCMDID), 0.0)
    assert pair.smsc.state is State.OPEN
    assert pair.smsc.inbound_pending == 0
    pair.to_esme()
    assert pair.esme.state is State.OPEN
    [response] = of_type(pair.esme.events(), ResponseReceived)
    assert response.response == GenericNack(1, S.ESME_RINVCMDID)


def test_bind_answered_with_the_wrong_response_type_is_refused() -> None:
    pair = Pair()
    pair.esme.send(BindTransmitter(system_id="esme1"), 0.0)
    pair.to_smsc()
    pair.smsc.events()
    with pytest.raises(LocalProtocolError):
        pair.smsc.send(BindReceiverResp(1), 0.0)
    assert not pair.smsc.has_data_to_send
    assert pair.smsc.state is State.BINDING
    pair.smsc.send(BindTransmitterResp(1), 0.0)
    assert state(pair.smsc) is State.BOUND_TX


def test_esme_cannot_send_a_second_bind_while_binding() -> None:
    esme = Connection(Role.ESME, QUIET)
    esme.send(BindTransmitter(), 0.0)
    esme.data_to_send()
    with pytest.raises(LocalProtocolError):
        esme.send(BindReceiver(), 0.0)
    assert not esme.has_data_to_send
    assert esme.outstanding == 1


@pytest.mark.parametrize("bind", [BindReceiver, BindTransceiver])
def test_outbind_flow(bind: type[BindTransmitter]) -> None:
    pair = Pair()
    esme, smsc = pair.esme, pair.smsc
    outbind = Outbind(system_id="smsc", password="pw")
    assert smsc.send(outbind, 0.0) == 1
    assert smsc.state is State.OUTBOUND
    assert smsc.outstanding == 0  # no response PDU exists
    pair.to_esme()
    events = esme.events()
    assert events == [
        StateChanged(State.OPEN, State.OUTBOUND),
        RequestReceived(Outbind(1, 0, system_id="smsc", password="pw")),
    ]
    assert esme.state is State.OUTBOUND
    assert esme.inbound_pending == 0
    assert not esme.has_data_to_send  # outbind is answered by a bind, never by a _resp

    esme.send(bind(system_id="esme1"), 0.0)
    assert state(esme) is State.BINDING
    pair.to_smsc()
    [request] = of_type(smsc.events(), RequestReceived)
    smsc.send(request.pdu.response(), 0.0)
    pair.to_esme()
    expected = State.BOUND_RX if bind is BindReceiver else State.BOUND_TRX
    assert esme.state is smsc.state is expected


def test_esme_may_not_send_outbind_and_smsc_may_not_bind() -> None:
    esme = Connection(Role.ESME, QUIET)
    smsc = Connection(Role.SMSC, QUIET)
    with pytest.raises(LocalProtocolError):
        esme.send(Outbind(), 0.0)
    for bind, _, _ in BIND_KINDS:
        with pytest.raises(LocalProtocolError):
            smsc.send(bind(), 0.0)
    assert not esme.has_data_to_send and not smsc.has_data_to_send
    assert esme.state is smsc.state is State.OPEN


# ------------------------------------------------------------------- wrong-state handling


def test_submit_on_a_receiver_bind_is_answered_with_rinvbndsts() -> None:
    smsc = bound_pair(BindReceiver).smsc
    smsc.receive_data(encode(submit(), 77), 1.0)
    events = smsc.events()
    assert events == [RequestRejected(replace(submit(), sequence_number=77), S.ESME_RINVBNDSTS)]
    assert wire(smsc.data_to_send()) == [SubmitSmResp(77, S.ESME_RINVBNDSTS)]
    assert smsc.inbound_pending == 0
    assert smsc.state is State.BOUND_RX


def test_submit_before_bind_is_answered_with_rinvbndsts() -> None:
    smsc = Connection(Role.SMSC, QUIET)
    smsc.receive_data(encode(submit(), 3), 0.0)
    assert kinds(smsc.events()) == [RequestRejected]
    assert wire(smsc.data_to_send()) == [SubmitSmResp(3, S.ESME_RINVBNDSTS)]
    assert smsc.state is State.OPEN


@pytest.mark.parametrize("bind", [BindTransmitter, BindReceiver, BindTransceiver])
def test_second_bind_on_a_bound_session_is_answered_with_ralybnd(
    bind: type[BindTransmitter],
) -> None:
    smsc = bound_pair(BindTransmitter).smsc
    smsc.receive_data(encode(bind(), 9), 1.0)
    [event] = smsc.events()
    assert isinstance(event, RequestRejected) and event.status == S.ESME_RALYBND
    [answer] = wire(smsc.data_to_send())
    assert answer.command_id == bind.command_id | 0x80000000
    assert (answer.sequence_number, answer.command_status) == (9, S.ESME_RALYBND)
    assert smsc.state is State.BOUND_TX


def test_bind_after_unbind_is_rinvbndsts_not_ralybnd() -> None:
    pair = bound_pair()
    pair.esme.send(Unbind(), 0.0)
    pair.to_smsc()
    assert pair.smsc.state is State.UNBOUND
    pair.smsc.events()
    pair.smsc.data_to_send()
    pair.smsc.receive_data(encode(BindTransmitter(), 40), 0.0)
    [answer] = wire(pair.smsc.data_to_send())
    assert answer == BindTransmitterResp(40, S.ESME_RINVBNDSTS)


@pytest.mark.parametrize("pdu", [AlertNotification(), Outbind()])
def test_unanswerable_request_in_wrong_state_is_rejected_silently(pdu: Pdu) -> None:
    # An alert_notification to an OPEN ESME; an outbind to an SMSC: neither has a _resp.
    conn = Connection(Role.ESME if isinstance(pdu, AlertNotification) else Role.SMSC, QUIET)
    conn.receive_data(encode(pdu, 5), 0.0)
    [event] = conn.events()
    assert isinstance(event, RequestRejected)
    assert event.pdu.sequence_number == 5
    assert event.status == S.ESME_RINVBNDSTS
    assert not conn.has_data_to_send
    assert conn.data_to_send() == b""


def test_alert_notification_in_rx_is_a_request_without_pending_answer() -> None:
    esme = bound_pair(BindReceiver).esme
    esme.receive_data(encode(AlertNotification(source_addr="1"), 8), 0.0)
    [event] = esme.events()
    assert isinstance(event, RequestReceived)
    assert esme.inbound_pending == 0
    assert not esme.has_data_to_send


def test_local_send_not_allowed_raises_and_queues_nothing() -> None:
    pair = bound_pair(BindReceiver)
    with pytest.raises(LocalProtocolError) as info:
        pair.esme.send(submit(), 1.0)
    assert info.value.command_status == S.ESME_RINVBNDSTS
    assert not pair.esme.has_data_to_send
    assert pair.esme.outstanding == 0
    assert pair.esme.events() == []
    # The sequence number was not consumed either.
    assert pair.esme.send(DataSm(), 1.0) == 2


def test_enquire_link_is_answered_automatically_and_not_reported() -> None:
    esme = bound_pair().esme
    esme.receive_data(encode(EnquireLink(), 12), 0.0)
    assert esme.next_event() is NEED_DATA
    assert wire(esme.data_to_send()) == [EnquireLinkResp(12)]


def test_request_received_while_our_unbind_is_in_flight_is_still_accepted() -> None:
    pair = bound_pair(BindReceiver)
    pair.esme.send(Unbind(), 0.0)
    assert pair.esme.state is State.UNBINDING
    pair.esme.receive_data(encode(deliver(), 50), 0.0)
    events = pair.esme.events()
    assert kinds(events) == [StateChanged, RequestReceived]
    pair.esme.send(DeliverSmResp(50), 0.0)
    assert wire(pair.esme.data_to_send())[-1] == DeliverSmResp(50)


# ------------------------------------------------------------------------ undecodable input


def test_unknown_command_id_gets_generic_nack_with_its_sequence() -> None:
    esme = bound_pair().esme
    esme.receive_data(header(16, 0x00000099, 0, 4242), 0.0)
    [event] = esme.events()
    assert isinstance(event, ProtocolErrorReceived)
    assert event.error.command_status == S.ESME_RINVCMDID
    assert wire(esme.data_to_send()) == [GenericNack(4242, S.ESME_RINVCMDID)]
    assert esme.state is State.BOUND_TRX  # not fatal
    esme.receive_data(encode(EnquireLink(), 5), 0.0)
    assert wire(esme.data_to_send()) == [EnquireLinkResp(5)]


def test_unknown_response_command_id_is_never_answered() -> None:
    esme = bound_pair().esme
    esme.receive_data(header(16, 0x80000099, 0, 6), 0.0)
    assert kinds(esme.events()) == [ProtocolErrorReceived]
    assert not esme.has_data_to_send


@pytest.mark.parametrize("length", [0, 8, 15, 1_000_000])
def test_bad_command_length_is_nacked_then_fatal(length: int) -> None:
    pair = bound_pair()
    pair.esme.send(submit(), 0.0)
    pair.esme.data_to_send()
    pair.esme.receive_data(header(length, C.submit_sm, 0, 31), 1.0)
    events = pair.esme.events()
    assert kinds(events) == [ProtocolErrorReceived, StateChanged, ConnectionClosed]
    closed = events[-1]
    assert isinstance(closed, ConnectionClosed)
    assert closed.outstanding == ((2, submit()),)
    assert not closed.clean
    assert pair.esme.state is State.CLOSED
    assert wire(pair.esme.data_to_send()) == [GenericNack(31, S.ESME_RINVCMDLEN)]
    # Nothing after that is read.
    pair.esme.receive_data(encode(EnquireLink(), 1), 2.0)
    assert pair.esme.events() == []
    assert not pair.esme.has_data_to_send


def test_command_length_above_the_configured_cap_is_fatal() -> None:
    conn = Connection(Role.SMSC, SessionConfig(enquire_link_interval=None, max_command_length=64))
    conn.receive_data(encode(submit(b"x" * 100), 3), 0.0)
    assert conn.state is State.CLOSED
    assert wire(conn.data_to_send()) == [GenericNack(3, S.ESME_RINVCMDLEN)]


def test_bad_length_after_a_good_pdu_in_the_same_chunk_is_handled_at_once() -> None:
    esme = bound_pair().esme
    esme.receive_data(encode(EnquireLink(), 7) + header(5, 0, 0, 0), 0.0)
    assert esme.state is State.CLOSED
    assert wire(esme.data_to_send()) == [EnquireLinkResp(7), GenericNack(0, S.ESME_RINVCMDLEN)]
    assert kinds(esme.events()) == [ProtocolErrorReceived, StateChanged, ConnectionClosed]


def test_body_error_is_answered_by_the_requests_own_response() -> None:
    smsc = bound_pair().smsc
    good = bytearray(encode(SubmitSm(source_addr="1" * 20), 21))
    # source_addr starts after service_type NUL (16), ton, npi: its NUL is at 16 + 3 + 20.
    assert good[39] == 0
    good[39] = ord("1")
    smsc.receive_data(bytes(good), 0.0)
    [event] = smsc.events()
    assert isinstance(event, ProtocolErrorReceived)
    assert event.error.command_status == S.ESME_RINVSRCADR
    assert wire(smsc.data_to_send()) == [SubmitSmResp(21, S.ESME_RINVSRCADR)]
    assert smsc.inbound_pending == 0
    assert smsc.state is State.BOUND_TRX


def test_broken_response_body_is_not_answered_and_request_stays_outstanding() -> None:
    pair = bound_pair()
    seq = pair.esme.send(submit(), 0.0)
    pair.esme.data_to_send()
    body = b"x" * 70  # message_id without NUL within 65 octets
    pair.esme.receive_data(header(16 + len(body), C.submit_sm_resp, 0, seq) + body, 1.0)
    assert kinds(pair.esme.events()) == [ProtocolErrorReceived]
    assert not pair.esme.has_data_to_send
    assert pair.esme.outstanding == 1


def test_byte_at_a_time_gives_the_same_events_as_one_chunk() -> None:
    stream = encode(deliver(), 3) + encode(EnquireLink(), 4) + encode(DataSm(), 5)
    whole = bound_pair(BindReceiver).esme
    whole.receive_data(stream, 1.0)
    split = bound_pair(BindReceiver).esme
    for i in range(len(stream)):
        split.receive_data(stream[i : i + 1], 1.0)
    assert whole.events() == split.events()
    assert whole.data_to_send() == split.data_to_send()


# ------------------------------------------------------------------------ sequence numbers


def test_sequence_numbers_start_at_one_and_increase() -> None:
    esme = bound_pair().esme  # the bind took 1
    seqs = [esme.send(submit(), 0.0) for _ in range(3)]
    seqs.append(esme.send(EnquireLink(), 0.0))
    seqs.append(esme.send(DataSm(), 0.0))
    assert seqs == [2, 3, 4, 5, 6]
    assert [p.sequence_number for p in wire(esme.data_to_send())] == seqs


def test_a_requests_own_sequence_number_is_ignored() -> None:
    esme = bound_pair().esme
    seq = esme.send(SubmitSm(sequence_number=999), 0.0)
    assert seq == 2
    assert wire(esme.data_to_send())[0].sequence_number == 2


def test_sequence_wraps_to_one_and_never_uses_zero() -> None:
    esme = bound_pair(esme_config=SessionConfig(enquire_link_interval=None, window=100)).esme
    esme._next_seq = MAX_SEQUENCE - 1
    seqs = [esme.send(DataSm(), 0.0) for _ in range(3)]
    assert seqs == [MAX_SEQUENCE - 1, MAX_SEQUENCE, 1]
    assert [p.sequence_number for p in wire(esme.data_to_send())] == seqs


def test_sequence_wrap_skips_numbers_still_outstanding() -> None:
    pair = bound_pair()  # bind = 1, answered
    esme = pair.esme
    assert [esme.send(DataSm(), 0.0) for _ in range(3)] == [2, 3, 4]
    # Answer 3 only: 2 and 4 stay outstanding.
    pair.to_smsc()
    received = [e.pdu for e in of_type(pair.smsc.events(), RequestReceived)]
    pair.smsc.send(received[1].response(), 0.0)
    pair.to_esme()
    esme.events()
    esme._next_seq = MAX_SEQUENCE
    seqs = [esme.send(DataSm(), 0.0) for _ in range(4)]
    assert seqs == [MAX_SEQUENCE, 1, 3, 5]


def test_sequence_wrap_when_the_last_number_is_still_outstanding() -> None:
    esme = bound_pair().esme
    esme._next_seq = MAX_SEQUENCE
    assert esme.send(DataSm(), 0.0) == MAX_SEQUENCE
    esme._next_seq = MAX_SEQUENCE  # a whole cycle later, that request is still unanswered
    assert esme.send(DataSm(), 0.0) == 1
    assert esme.send(DataSm(), 0.0) == 2


def test_each_new_connection_starts_at_one() -> None:
    assert Connection(Role.ESME).send(BindTransmitter(), 0.0) == 1
    assert Connection(Role.SMSC).send(Outbind(), 0.0) == 1


# ----------------------------------------------------------------------------------- window


def test_window_full_raises_and_queues_nothing() -> None:
    pair = bound_pair(esme_config=SessionConfig(enquire_link_interval=None, window=3))
    esme = pair.esme
    assert esme.window_free == 3
    for i in range(3):
        esme.send(submit(), 0.0)
        assert esme.window_free == 2 - i
    queued = esme.data_to_send()
    with pytest.raises(WindowFull) as info:
        esme.send(submit(), 0.0)
    assert isinstance(info.value, LocalProtocolError)
    assert info.value.command_status == S.ESME_RMSGQFUL
    assert not esme.has_data_to_send
    assert esme.outstanding == 3
    assert len(wire(queued)) == 3


def test_window_slot_freed_by_a_response() -> None:
    pair = bound_pair(esme_config=SessionConfig(enquire_link_interval=None, window=1))
    pair.esme.send(submit(), 0.0)
    with pytest.raises(WindowFull):
        pair.esme.send(submit(), 0.0)
    pair.to_smsc()
    [request] = of_type(pair.smsc.events(), RequestReceived)
    pair.smsc.send(request.pdu.response(message_id="m1"), 0.0)
    pair.to_esme()
    assert pair.esme.window_free == 1
    pair.esme.send(submit(), 0.0)
    assert pair.esme.window_free == 0


def test_window_slot_freed_by_a_generic_nack() -> None:
    pair = bound_pair(esme_config=SessionConfig(enquire_link_interval=None, window=1))
    seq = pair.esme.send(submit(), 0.0)
    pair.esme.receive_data(encode(GenericNack(seq, S.ESME_RSYSERR)), 0.0)
    assert kinds(pair.esme.events()) == [ResponseReceived]
    assert pair.esme.window_free == 1


def test_window_slot_freed_by_a_timeout() -> None:
    config = SessionConfig(enquire_link_interval=None, window=1, response_timeout=5.0)
    esme = bound_pair(esme_config=config).esme
    esme.send(submit(), 0.0)
    assert esme.window_free == 0
    esme.handle_timer(5.0)
    assert kinds(esme.events()) == [ResponseTimedOut]
    assert esme.window_free == 1


def test_session_requests_do_not_take_window_slots() -> None:
    config = SessionConfig(enquire_link_interval=None, window=1)
    esme = Connection(Role.ESME, config)
    esme.send(BindTransceiver(), 0.0)
    assert esme.window_free == 1
    esme.receive_data(encode(BindTransceiverResp(1)), 0.0)
    esme.send(submit(), 0.0)
    assert esme.window_free == 0
    esme.send(EnquireLink(), 0.0)  # window full, but session management gets through
    esme.send(Unbind(), 0.0)
    assert esme.window_free == 0
    assert esme.outstanding == 3


# ----------------------------------------------------------------------------------- timers


def test_response_times_out_exactly_at_the_deadline() -> None:
    config = SessionConfig(enquire_link_interval=None, response_timeout=5.0)
    esme = bound_pair(esme_config=config).esme
    request = submit()
    seq = esme.send(request, 10.0)
    assert esme.next_deadline() == 15.0
    esme.handle_timer(14.999)
    assert esme.events() == []
    esme.handle_timer(15.0)
    assert esme.events() == [ResponseTimedOut(request, seq)]
    assert esme.outstanding == 0
    assert esme.next_deadline() is None


def test_per_request_timeout_overrides_the_default() -> None:
    esme = bound_pair().esme
    esme.send(submit(), 0.0, timeout=2.0)
    assert esme.next_deadline() == 2.0
    esme.handle_timer(2.0)
    assert kinds(esme.events()) == [ResponseTimedOut]


def test_a_shorter_deadline_behind_a_longer_one_fires_on_time() -> None:
    esme = bound_pair().esme  # response_timeout 30
    long_seq = esme.send(submit(), 0.0)
    short_seq = esme.send(submit(b"short"), 1.0, timeout=2.0)
    assert esme.next_deadline() == 3.0
    esme.handle_timer(3.0)
    assert [e.sequence_number for e in of_type(esme.events(), ResponseTimedOut)] == [short_seq]
    assert esme.next_deadline() == 30.0
    esme.handle_timer(30.0)
    assert [e.sequence_number for e in of_type(esme.events(), ResponseTimedOut)] == [long_seq]


def test_next_deadline_follows_requests_as_they_come_and_go() -> None:
    config = SessionConfig(enquire_link_interval=None, response_timeout=10.0)
    pair = bound_pair(esme_config=config)
    esme = pair.esme
    assert esme.next_deadline() is None
    esme.send(submit(), 0.0)
    assert esme.next_deadline() == 10.0
    esme.send(submit(), 4.0)
    assert esme.next_deadline() == 10.0
    pair.to_smsc(4.0)
    first, _ = (e.pdu for e in of_type(pair.smsc.events(), RequestReceived))
    pair.smsc.send(first.response(), 5.0)
    pair.to_esme(5.0)
    assert esme.next_deadline() == 14.0  # the first is answered, the second remains
    esme.handle_timer(14.0)
    assert esme.next_deadline() is None


def test_enquire_link_sent_after_interval_of_silence() -> None:
    config = SessionConfig(enquire_link_interval=30.0, enquire_link_timeout=10.0)
    pair = bound_pair(esme_config=config, smsc_config=QUIET)
    esme = pair.esme
    assert esme.next_deadline() == 30.0
    esme.handle_timer(29.9)
    assert not esme.has_data_to_send
    esme.handle_timer(30.0)
    [probe] = wire(esme.data_to_send())
    assert isinstance(probe, EnquireLink)
    assert esme.events() == []  # the session's own keepalive is not an application request
    assert esme.next_deadline() == 40.0
    esme.receive_data(encode(EnquireLinkResp(probe.sequence_number)), 35.0)
    assert esme.events() == []  # answered keepalive: nothing to report
    assert esme.outstanding == 0
    assert esme.next_deadline() == 65.0


def test_any_received_pdu_resets_the_enquire_link_timer() -> None:
    config = SessionConfig(enquire_link_interval=30.0)
    esme = bound_pair(BindReceiver, esme_config=config).esme
    esme.receive_data(encode(deliver(), 9), 20.0)
    assert esme.next_deadline() == 50.0
    esme.handle_timer(49.0)
    assert not esme.has_data_to_send


def test_missing_enquire_link_resp_closes_and_lists_outstanding_requests() -> None:
    config = SessionConfig(
        enquire_link_interval=30.0, enquire_link_timeout=10.0, response_timeout=60.0
    )
    esme = bound_pair(esme_config=config).esme
    request = submit()
    seq = esme.send(request, 1.0)
    esme.data_to_send()
    esme.handle_timer(30.0)
    assert not of_type(esme.events(), ConnectionClosed)
    esme.handle_timer(39.9)
    assert esme.events() == []
    esme.handle_timer(40.0)
    events = esme.events()
    [closed] = of_type(events, ConnectionClosed)
    assert closed.outstanding == ((seq, request),)
    assert "enquire_link" in closed.reason
    assert esme.state is State.CLOSED
    assert esme.next_deadline() is None


def test_enquire_link_sent_by_the_application_times_out_like_any_request() -> None:
    config = SessionConfig(enquire_link_interval=None, enquire_link_timeout=10.0)
    esme = bound_pair(esme_config=config).esme
    probe = EnquireLink()
    seq = esme.send(probe, 0.0)
    esme.handle_timer(10.0)
    assert esme.events() == [ResponseTimedOut(probe, seq)]
    assert esme.state is State.BOUND_TRX


def test_enquire_link_sent_by_the_application_is_listed_at_close() -> None:
    esme = bound_pair().esme
    probe = EnquireLink()
    seq = esme.send(probe, 0.0)
    esme.receive_data(b"", 1.0)
    [closed] = of_type(esme.events(), ConnectionClosed)
    assert closed.outstanding == ((seq, probe),)


def test_inactivity_timeout_closes_the_session() -> None:
    config = SessionConfig(enquire_link_interval=None, inactivity_timeout=60.0)
    esme = bound_pair(BindReceiver, esme_config=config).esme
    assert esme.next_deadline() == 60.0
    esme.receive_data(encode(deliver(), 3), 30.0)
    assert esme.next_deadline() == 90.0
    esme.handle_timer(89.9)
    assert esme.state is State.BOUND_RX
    esme.handle_timer(90.0)
    assert state(esme) is State.CLOSED
    [closed] = of_type(esme.events(), ConnectionClosed)
    assert "inactivity" in closed.reason


def test_session_init_timeout_closes_an_unbound_smsc_connection() -> None:
    config = SessionConfig(enquire_link_interval=None, session_init_timeout=10.0)
    smsc = Connection(Role.SMSC, config, now=100.0)
    assert smsc.next_deadline() == 110.0
    smsc.handle_timer(109.99)
    assert smsc.state is State.OPEN
    smsc.handle_timer(110.0)
    assert state(smsc) is State.CLOSED
    [closed] = of_type(smsc.events(), ConnectionClosed)
    assert "session init" in closed.reason


def test_session_init_timer_stops_once_a_bind_arrives() -> None:
    config = SessionConfig(enquire_link_interval=None, session_init_timeout=10.0)
    smsc = Connection(Role.SMSC, config)
    smsc.receive_data(encode(BindTransmitter(), 1), 5.0)
    assert smsc.next_deadline() is None
    smsc.handle_timer(50.0)
    assert smsc.state is State.BINDING
    # A refused bind reopens the session, and the timer starts again from then.
    smsc.send(BindTransmitterResp(1, S.ESME_RBINDFAIL), 60.0)
    assert smsc.next_deadline() == 70.0


def test_session_init_timer_runs_through_an_unanswered_outbind() -> None:
    config = SessionConfig(enquire_link_interval=None, session_init_timeout=10.0)
    smsc = Connection(Role.SMSC, config)
    smsc.send(Outbind(system_id="smsc"), 1.0)
    assert smsc.state is State.OUTBOUND
    assert smsc.next_deadline() == 10.0
    smsc.handle_timer(10.0)
    assert state(smsc) is State.CLOSED


def test_bind_timeout_reopens_the_session() -> None:
    esme = Connection(Role.ESME, SessionConfig(enquire_link_interval=None, response_timeout=5.0))
    bind = BindTransceiver()
    esme.send(bind, 0.0)
    esme.handle_timer(5.0)
    assert esme.events() == [
        StateChanged(State.OPEN, State.BINDING),
        StateChanged(State.BINDING, State.OPEN),
        ResponseTimedOut(bind, 1),
    ]
    assert esme.state is State.OPEN


# ---------------------------------------------------------------------------------- unbind


@pytest.mark.parametrize("initiator", ["esme", "smsc"])
def test_unbind_either_way(initiator: str) -> None:
    pair = bound_pair(BindTransceiver)
    us, them = (pair.esme, pair.smsc) if initiator == "esme" else (pair.smsc, pair.esme)
    unbind = Unbind()
    seq = us.send(unbind, 1.0)
    assert us.state is State.UNBINDING
    assert us.events() == [StateChanged(State.BOUND_TRX, State.UNBINDING)]
    them.receive_data(us.data_to_send(), 1.0)
    assert them.events() == [
        StateChanged(State.BOUND_TRX, State.UNBOUND),
        UnbindReceived(Unbind(seq)),
    ]
    assert them.state is State.UNBOUND
    data = them.data_to_send()
    assert wire(data) == [UnbindResp(seq)]
    us.receive_data(data, 1.0)
    assert us.events() == [
        StateChanged(State.UNBINDING, State.UNBOUND),
        ResponseReceived(unbind, UnbindResp(seq)),
    ]
    # The initiator closes; the other side sees EOF: both clean.
    us.close()
    them.receive_data(b"", 2.0)
    for conn in (us, them):
        [closed] = of_type(conn.events(), ConnectionClosed)
        assert closed.clean and closed.outstanding == ()
        assert conn.state is State.CLOSED


def test_crossing_unbinds() -> None:
    pair = bound_pair()
    pair.esme.send(Unbind(), 0.0)
    pair.smsc.send(Unbind(), 0.0)
    pair.to_smsc()
    pair.to_esme()
    pair.to_smsc()
    pair.to_esme()
    assert pair.esme.state is pair.smsc.state is State.UNBOUND
    assert pair.esme.outstanding == pair.smsc.outstanding == 0


def test_unbind_timeout_leaves_the_session_unbound() -> None:
    config = SessionConfig(enquire_link_interval=None, response_timeout=5.0)
    esme = bound_pair(esme_config=config).esme
    unbind = Unbind()
    seq = esme.send(unbind, 0.0)
    esme.handle_timer(5.0)
    assert esme.events()[-1] == ResponseTimedOut(unbind, seq)
    assert esme.state is State.UNBOUND


def test_unbind_not_allowed_before_bind() -> None:
    esme = Connection(Role.ESME, QUIET)
    with pytest.raises(LocalProtocolError):
        esme.send(Unbind(), 0.0)
    esme.receive_data(encode(Unbind(), 3), 0.0)
    assert wire(esme.data_to_send()) == [UnbindResp(3, S.ESME_RINVBNDSTS)]
    assert esme.state is State.OPEN


# ------------------------------------------------------------------ unexpected responses


def test_late_response_after_timeout_is_unexpected() -> None:
    config = SessionConfig(enquire_link_interval=None, response_timeout=5.0)
    esme = bound_pair(esme_config=config).esme
    seq = esme.send(submit(), 0.0)
    esme.data_to_send()
    esme.handle_timer(5.0)
    assert kinds(esme.events()) == [ResponseTimedOut]
    late = SubmitSmResp(seq, 0, message_id="m")
    esme.receive_data(encode(late), 6.0)
    assert esme.events() == [UnexpectedResponse(late)]
    assert not esme.has_data_to_send


def test_duplicate_response_is_unexpected_and_never_answered() -> None:
    esme = bound_pair().esme
    seq = esme.send(submit(), 0.0)
    esme.data_to_send()
    answer = encode(SubmitSmResp(seq, 0, message_id="m"))
    esme.receive_data(answer, 0.0)
    assert kinds(esme.events()) == [ResponseReceived]
    esme.receive_data(answer, 0.0)
    assert kinds(esme.events()) == [UnexpectedResponse]
    assert not esme.has_data_to_send


def test_response_of_the_wrong_type_is_unexpected_and_request_stays() -> None:
    esme = bound_pair().esme
    request = submit()
    seq = esme.send(request, 0.0)
    esme.receive_data(encode(DeliverSmResp(seq)), 0.0)
    assert kinds(esme.events()) == [UnexpectedResponse]
    assert esme.outstanding == 1
    esme.receive_data(encode(SubmitSmResp(seq, 0, message_id="m")), 0.0)
    [event] = esme.events()
    assert isinstance(event, ResponseReceived) and event.request is request


def test_out_of_order_responses_are_matched_by_sequence() -> None:
    esme = bound_pair().esme
    first, second = submit(b"1"), submit(b"2")
    s1, s2 = esme.send(first, 0.0), esme.send(second, 0.0)
    esme.receive_data(encode(SubmitSmResp(s2, 0, "b")) + encode(SubmitSmResp(s1, 0, "a")), 0.0)
    assert [
        (e.request, e.response.sequence_number) for e in of_type(esme.events(), ResponseReceived)
    ] == [
        (second, s2),
        (first, s1),
    ]


# ------------------------------------------------------------------------ closing and EOF


def test_eof_reports_every_outstanding_request() -> None:
    esme = bound_pair(esme_config=SessionConfig(enquire_link_interval=None, window=5)).esme
    requests = [submit(bytes([i])) for i in range(3)] + [QuerySm(message_id="1"), DataSm()]
    seqs = [esme.send(r, 0.0) for r in requests]
    esme.send(Unbind(), 0.0)
    esme.receive_data(b"", 1.0)
    [closed] = of_type(esme.events(), ConnectionClosed)
    assert closed.outstanding == (*zip(seqs, requests, strict=True), (7, Unbind()))
    assert not closed.clean
    assert closed.reason == "peer closed the connection"
    assert esme.outstanding == 0 and esme.window_free == 5


def test_nothing_happens_after_close() -> None:
    pair = bound_pair()
    esme = pair.esme
    esme.receive_data(b"", 0.0)
    esme.events()
    esme.receive_data(encode(EnquireLink(), 1), 1.0)
    esme.receive_data(b"", 1.0)
    esme.handle_timer(1000.0)
    esme.close()
    esme.send_failed()
    assert esme.events() == []
    assert not esme.has_data_to_send
    with pytest.raises(LocalProtocolError):
        esme.send(EnquireLink(), 2.0)
    with pytest.raises(LocalProtocolError):
        esme.send(EnquireLinkResp(1), 2.0)
    assert esme.next_deadline() is None


def test_send_failed_drops_queued_bytes_and_reports_outstanding() -> None:
    esme = bound_pair().esme
    request = submit()
    seq = esme.send(request, 0.0)
    assert esme.has_data_to_send
    esme.send_failed("broken pipe")
    assert not esme.has_data_to_send
    assert esme.events() == [
        StateChanged(State.BOUND_TRX, State.CLOSED),
        ConnectionClosed("broken pipe", ((seq, request),), False),
    ]


def test_close_keeps_what_was_queued_and_is_clean_only_when_unbound() -> None:
    pair = bound_pair()
    pair.esme.send(EnquireLink(), 0.0)
    pair.esme.close()
    assert wire(pair.esme.data_to_send()) == [EnquireLink(2)]
    [closed] = of_type(pair.esme.events(), ConnectionClosed)
    assert not closed.clean
    assert closed.reason == "closed locally"


# ------------------------------------------------------------------------------ responses


def test_response_to_a_request_never_received_is_refused() -> None:
    smsc = bound_pair().smsc
    with pytest.raises(LocalProtocolError):
        smsc.send(SubmitSmResp(5), 0.0)
    assert not smsc.has_data_to_send


def test_response_answers_only_once() -> None:
    smsc = bound_pair().smsc
    smsc.receive_data(encode(submit(), 8), 0.0)
    smsc.events()
    assert smsc.inbound_pending == 1
    assert smsc.send(SubmitSmResp(8, 0, "id"), 0.0) == 8
    assert smsc.inbound_pending == 0
    with pytest.raises(LocalProtocolError):
        smsc.send(SubmitSmResp(8, 0, "id"), 0.0)
    assert wire(smsc.data_to_send()) == [SubmitSmResp(8, 0, "id")]


def test_response_of_the_wrong_type_for_a_pending_request_is_refused() -> None:
    smsc = bound_pair().smsc
    smsc.receive_data(encode(submit(), 8), 0.0)
    with pytest.raises(LocalProtocolError):
        smsc.send(DeliverSmResp(8), 0.0)
    assert smsc.inbound_pending == 1
    assert not smsc.has_data_to_send


def test_response_that_cannot_be_encoded_can_be_retried() -> None:
    smsc = bound_pair().smsc
    smsc.receive_data(encode(submit(), 8), 0.0)
    with pytest.raises(FieldError):
        smsc.send(SubmitSmResp(8, 0, message_id="x" * 80), 0.0)
    assert smsc.inbound_pending == 1
    assert not smsc.has_data_to_send
    smsc.send(SubmitSmResp(8, 0, message_id="x"), 0.0)
    assert smsc.inbound_pending == 0


def test_request_that_cannot_be_encoded_changes_nothing() -> None:
    esme = bound_pair().esme
    with pytest.raises(FieldError):
        esme.send(SubmitSm(source_addr="1" * 30), 0.0)
    with pytest.raises(FieldError):
        esme.send(SubmitMulti(), 0.0)  # no destinations
    assert esme.outstanding == 0
    assert not esme.has_data_to_send
    assert esme.window_free == 10
    assert esme.send(SubmitMulti(dest_addresses=(SmeAddress("1"),)), 0.0) > 1


def test_deliver_sm_answered_by_the_esme_application() -> None:
    pair = bound_pair(BindReceiver)
    pair.smsc.send(deliver(), 0.0)
    pair.to_esme()
    [request] = of_type(pair.esme.events(), RequestReceived)
    assert pair.esme.inbound_pending == 1
    pair.esme.send(request.pdu.response(), 0.0)
    pair.to_smsc()
    [response] = of_type(pair.smsc.events(), ResponseReceived)
    assert response.response == DeliverSmResp(1)


# ---------------------------------------------------------------------------- output buffer


def test_data_to_send_coalesces_everything_into_one_buffer() -> None:
    pair = bound_pair()
    esme = pair.esme
    assert not esme.has_data_to_send
    requests = [submit(bytes([i])) for i in range(5)]
    seqs = [esme.send(r, 0.0) for r in requests]
    esme.receive_data(encode(EnquireLink(), 77), 0.0)  # auto-answer joins the same buffer
    assert esme.has_data_to_send
    data = esme.data_to_send()
    expected = b"".join(encode(r, s) for r, s in zip(requests, seqs, strict=True))
    assert data == expected + encode(EnquireLinkResp(77))
    assert not esme.has_data_to_send
    assert esme.data_to_send() == b""


def test_next_event_returns_need_data_when_empty() -> None:
    esme = Connection(Role.ESME, QUIET)
    assert esme.next_event() is NEED_DATA
    esme.send(BindTransmitter(), 0.0)
    assert esme.next_event() == StateChanged(State.OPEN, State.BINDING)
    assert esme.next_event() is NEED_DATA


def test_config_validation() -> None:
    with pytest.raises(ValueError):
        SessionConfig(window=0)
    with pytest.raises(ValueError):
        SessionConfig(response_timeout=0)
    with pytest.raises(ValueError):
        SessionConfig(enquire_link_interval=-1.0)
