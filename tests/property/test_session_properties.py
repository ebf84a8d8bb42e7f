"""Property tests of the sans-IO session.

* Every (state, role, command) triple, checked against an oracle written here from the facts
  sheet's permission matrix (smpp-facts §2.2/§2.3), not from ``PERMISSIONS``.
* Whatever bytes arrive, ``receive_data`` never raises, and the session only ever answers with
  responses; chunking never changes the outcome.
* Sequence numbers stay in 1..0x7FFFFFFF, wrap, and skip numbers still outstanding.
* A stateful test runs an ESME and an SMSC against each other with random sends, answers,
  partial deliveries, timer advances and closes, and keeps a ledger of every request.
"""

from __future__ import annotations

import dataclasses
import itertools
import struct
from typing import Final

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)
from msgspec.structs import replace

from smpp_bridge.codec import (
    AlertNotification,
    BindReceiver,
    BindTransceiver,
    BindTransmitter,
    CancelBroadcastSm,
    CancelSm,
    CommandStatus,
    DataSm,
    DeliverSm,
    Framer,
    GenericNack,
    Outbind,
    Pdu,
    QueryBroadcastSm,
    QuerySm,
    ReplaceSm,
    SmeAddress,
    SubmitMulti,
    SubmitSm,
    Unbind,
    decode,
    encode,
)
from smpp_bridge.codec.constants import MAX_SEQUENCE, RESPONSE_BIT
from smpp_bridge.codec.pdus import BroadcastSm
from smpp_bridge.errors import LocalProtocolError, WindowFull
from smpp_bridge.session import (
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
from tests.strategies import REQUEST_TYPES, RESPONSE_TYPES, pdus, pdus_of

S = CommandStatus
QUIET = SessionConfig(enquire_link_interval=None)
ESME, SMSC = Role.ESME, Role.SMSC

# ------------------------------------------------------------------------------- the oracle

# smpp-facts §2.2 (Table 2-1), one row per request, columns OPEN, BOUND_TX, BOUND_RX,
# BOUND_TRX; "E" ESME may issue, "S" SMSC may issue. Resolutions the sheet gives: replace_sm in
# TRX (guidance), data_sm both ways in every bound state (v3.4), enquire_link in every
# connected state (v5.0). The v5.0 broadcast operations are ESME->SMSC on transmitter-capable
# binds, like submit_sm (an assumption: the sheet lists their ids only).
MATRIX: Final[dict[str, tuple[str, str, str, str]]] = {
    "bind_transmitter": ("E", "", "", ""),
    "bind_receiver": ("E", "", "", ""),
    "bind_transceiver": ("E", "", "", ""),
    "outbind": ("S", "", "", ""),
    "unbind": ("", "ES", "ES", "ES"),
    "submit_sm": ("", "E", "", "E"),
    "submit_multi": ("", "E", "", "E"),
    "data_sm": ("", "ES", "ES", "ES"),
    "deliver_sm": ("", "", "S", "S"),
    "query_sm": ("", "E", "", "E"),
    "cancel_sm": ("", "E", "", "E"),
    "replace_sm": ("", "E", "", "E"),
    "enquire_link": ("ES", "ES", "ES", "ES"),
    "alert_notification": ("", "", "S", "S"),
    "broadcast_sm": ("", "E", "", "E"),
    "query_broadcast_sm": ("", "E", "", "E"),
    "cancel_broadcast_sm": ("", "E", "", "E"),
}
_COLUMN: Final = {State.OPEN: 0, State.BOUND_TX: 1, State.BOUND_RX: 2, State.BOUND_TRX: 3}
_BINDS: Final = frozenset({"bind_transmitter", "bind_receiver", "bind_transceiver"})
_LETTER: Final = {ESME: "E", SMSC: "S"}


def oracle_allows(
    command: str, state: State, held: State | None, sender: Role, *, receiving: bool
) -> bool:
    """Whether ``sender`` may issue ``command`` while the session under test is in ``state``.

    ``held`` is the bound state kept through UNBINDING. The states Table 2-1 has no column for:
    OUTBOUND (outbind exchanged) admits the ESME's bind, as OPEN does (§2.2.1); BINDING and
    UNBOUND admit enquire_link only (v5.0); in UNBINDING the peer may still send what the bind
    allowed (its requests may cross our unbind), while we ourselves send only enquire_link;
    CLOSED admits nothing.
    """
    if state is State.CLOSED:
        return False
    if command == "enquire_link":
        return True
    if state is State.OUTBOUND:
        return command in _BINDS and sender is ESME
    if state is State.UNBINDING:
        if not receiving:
            return False
        assert held is not None
        state = held
    column = _COLUMN.get(state)
    return column is not None and _LETTER[sender] in MATRIX[command][column]


# A session that is bound, or binding, or still bound while its unbind is in flight.
_HOLDS_BIND: Final = frozenset(
    {State.BINDING, State.BOUND_TX, State.BOUND_RX, State.BOUND_TRX, State.UNBINDING}
)


def oracle_reject_status(command: str, state: State) -> int:
    """The status a disallowed request is answered with (§2.3): a second bind is "already
    bound"; anything else not allowed now is "incorrect bind status"."""
    return S.ESME_RALYBND if command in _BINDS and state in _HOLDS_BIND else S.ESME_RINVBNDSTS


def test_oracle_names_every_request_type() -> None:
    assert sorted(MATRIX) == sorted(cls.command_name for cls in REQUEST_TYPES)


# ---------------------------------------------------------------------------- reaching states

BIND_OF: Final[dict[str, type[BindTransmitter]]] = {
    "tx": BindTransmitter,
    "rx": BindReceiver,
    "trx": BindTransceiver,
}
HELD_OF: Final = {"tx": State.BOUND_TX, "rx": State.BOUND_RX, "trx": State.BOUND_TRX}
SCENARIOS: Final = (
    "open",
    "outbound",
    *(f"binding_{k}" for k in BIND_OF),
    *(f"bound_{k}" for k in BIND_OF),
    *(f"unbinding_{k}" for k in BIND_OF),
    "unbound",
    "closed",
)


class Reached:
    """A connection driven into a scenario, with what it has outstanding and pending."""

    def __init__(self, role: Role, scenario: str) -> None:
        esme, smsc = Connection(ESME, QUIET), Connection(SMSC, QUIET)
        self.me, self.peer = (esme, smsc) if role is ESME else (smsc, esme)
        self.role = role
        self.outstanding: dict[int, Pdu] = {}  # our requests awaiting a response
        self.inbound: dict[int, type[Pdu]] = {}  # peer requests awaiting our response
        kind = scenario.rsplit("_", 1)[-1]
        self.held: State | None = HELD_OF.get(kind)
        if scenario == "outbound":
            smsc.send(Outbind(system_id="smsc"), 0.0)
            self._flow(smsc, esme)
        elif scenario.startswith("binding"):
            bind = BIND_OF[kind]()
            seq = esme.send(bind, 0.0)
            self._flow(esme, smsc)
            if role is ESME:
                self.outstanding[seq] = bind
            else:
                self.inbound[seq] = type(bind)
        elif scenario.startswith(("bound", "unbinding")) or scenario == "unbound":
            seq = esme.send(BIND_OF.get(kind, BindTransceiver)(), 0.0)
            self._flow(esme, smsc)
            [received] = [e.pdu for e in smsc.events() if isinstance(e, RequestReceived)]
            smsc.send(received.response(), 0.0)
            self._flow(smsc, esme)
            if scenario.startswith("unbinding"):
                unbind = Unbind()
                self.outstanding[self.me.send(unbind, 0.0)] = unbind
            elif scenario == "unbound":
                self.peer.send(Unbind(), 0.0)
                self._flow(self.peer, self.me)
        elif scenario == "closed":
            self.me.close()
        self.me.events()
        self.me.data_to_send()
        self.state = self.me.state
        assert self.state is EXPECTED_STATE[scenario], (scenario, self.state)

    @staticmethod
    def _flow(src: Connection, dst: Connection) -> None:
        data = src.data_to_send()
        if data:
            dst.receive_data(data, 0.0)


EXPECTED_STATE: Final[dict[str, State]] = {
    "open": State.OPEN,
    "outbound": State.OUTBOUND,
    **{f"binding_{k}": State.BINDING for k in BIND_OF},
    **{f"bound_{k}": held for k, held in HELD_OF.items()},
    **{f"unbinding_{k}": State.UNBINDING for k in BIND_OF},
    "unbound": State.UNBOUND,
    "closed": State.CLOSED,
}


def wire(data: bytes) -> list[Pdu]:
    framer = Framer()
    frames = framer.feed(data)
    assert framer.buffered == 0
    return [decode(f) for f in frames]


def other(role: Role) -> Role:
    return SMSC if role is ESME else ESME


EVERY_STATE = settings(
    max_examples=2,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("role", [ESME, SMSC])
@EVERY_STATE
@given(data=st.data())
def test_every_request_from_the_peer_in_every_state(
    role: Role, scenario: str, data: st.DataObject
) -> None:
    for cls in REQUEST_TYPES:
        r = Reached(role, scenario)
        me, state = r.me, r.state
        pdu = data.draw(pdus_of(cls), label=cls.command_name)
        seq = pdu.sequence_number
        pending = me.inbound_pending
        me.receive_data(encode(pdu), 1.0)
        events = me.events()
        out = wire(me.data_to_send())
        name = cls.command_name
        if state is State.CLOSED:
            assert (events, out) == ([], [])
            continue
        if oracle_allows(name, state, r.held, other(role), receiving=True):
            if name == "enquire_link":
                assert events == []
                assert [(type(p), p.sequence_number, p.command_status) for p in out] == [
                    (cls.response_type, seq, 0)
                ]
            elif name == "unbind":
                assert events == [StateChanged(state, State.UNBOUND), UnbindReceived(pdu)]
                assert [(type(p), p.sequence_number, p.command_status) for p in out] == [
                    (cls.response_type, seq, 0)
                ]
            else:
                changed = {"outbind": State.OUTBOUND, **dict.fromkeys(_BINDS, State.BINDING)}
                expected: list[Event] = [RequestReceived(pdu)]
                if name in changed:
                    expected.insert(0, StateChanged(state, changed[name]))
                assert events == expected
                assert out == []
                grew = 1 if cls.response_type is not None else 0
                assert me.inbound_pending == pending + grew
        else:
            status = oracle_reject_status(name, state)
            assert events == [RequestRejected(pdu, status)]
            if cls.response_type is None:
                assert out == []  # outbind, alert_notification: nothing to answer with
            else:
                assert [(type(p), p.sequence_number, p.command_status) for p in out] == [
                    (cls.response_type, seq, status)
                ]
            assert me.state is state
            assert me.inbound_pending == pending


@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("role", [ESME, SMSC])
@EVERY_STATE
@given(data=st.data())
def test_every_response_from_the_peer_in_every_state(
    role: Role, scenario: str, data: st.DataObject
) -> None:
    outstanding = list(Reached(role, scenario).outstanding)
    for cls in RESPONSE_TYPES:
        drawn = data.draw(pdus_of(cls), label=cls.command_name)
        # The drawn sequence number (almost always unmatched), then each outstanding one.
        for seq in (drawn.sequence_number, *outstanding):
            r = Reached(role, scenario)
            me, state = r.me, r.state
            pdu = replace(drawn, sequence_number=seq)
            before = me.outstanding
            me.receive_data(encode(pdu), 1.0)
            events = me.events()
            assert wire(me.data_to_send()) == []  # a response is never answered
            if state is State.CLOSED:
                assert events == []
                continue
            request = r.outstanding.get(seq)
            matches = request is not None and (
                cls is GenericNack or cls.command_id == request.command_id | RESPONSE_BIT
            )
            if not matches:
                assert events == [UnexpectedResponse(pdu)]
                assert (me.state, me.outstanding) == (state, before)
                continue
            assert request is not None
            assert events[-1] == ResponseReceived(request, pdu)
            assert me.outstanding == before - 1
            if isinstance(request, BindTransmitter):
                ok = pdu.command_status == 0 and cls is not GenericNack
                assert me.state is (HELD_OF[scenario.split("_")[1]] if ok else State.OPEN)
            elif isinstance(request, Unbind):
                assert me.state is State.UNBOUND
            assert events[:-1] == ([StateChanged(state, me.state)] if me.state != state else [])


@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("role", [ESME, SMSC])
@EVERY_STATE
@given(data=st.data())
def test_every_local_send_in_every_state(role: Role, scenario: str, data: st.DataObject) -> None:
    for cls in REQUEST_TYPES:
        r = Reached(role, scenario)
        me, state = r.me, r.state
        pdu = data.draw(pdus_of(cls), label=cls.command_name)
        before = me.outstanding
        name = cls.command_name
        if not oracle_allows(name, state, r.held, role, receiving=False):
            with pytest.raises(LocalProtocolError) as info:
                me.send(pdu, 1.0)
            assert not isinstance(info.value, WindowFull)
            assert not me.has_data_to_send
            assert (me.state, me.outstanding, me.events()) == (state, before, [])
            continue
        seq = me.send(pdu, 1.0)
        assert 1 <= seq <= MAX_SEQUENCE
        assert seq not in r.outstanding
        assert wire(me.data_to_send()) == [replace(pdu, sequence_number=seq)]
        assert me.outstanding == before + (cls.response_type is not None)
        changes = {
            "outbind": State.OUTBOUND,
            "unbind": State.UNBINDING,
            **dict.fromkeys(_BINDS, State.BINDING),
        }
        assert me.state is changes.get(name, state)
    # Responses: only to a request the peer is waiting on (generic_nack: any time).
    for cls in RESPONSE_TYPES:
        r = Reached(role, scenario)
        me, state = r.me, r.state
        pdu = data.draw(pdus_of(cls), label=cls.command_name)
        waiting = r.inbound.get(pdu.sequence_number)
        answers = waiting is not None and waiting.response_type is cls
        if state is not State.CLOSED and (answers or cls is GenericNack):
            assert me.send(pdu, 1.0) == pdu.sequence_number
            assert wire(me.data_to_send()) == [pdu]
        else:
            with pytest.raises(LocalProtocolError):
                me.send(pdu, 1.0)
            assert not me.has_data_to_send
            assert me.state is state


# --------------------------------------------------------------------------- hostile input

HEADER = struct.Struct(">IIII")
COMMAND_IDS = st.one_of(
    st.sampled_from([cls.command_id for cls in (*REQUEST_TYPES, *RESPONSE_TYPES)]),
    st.integers(0, 0xFFFFFFFF),
)


@st.composite
def framed_garbage(draw: st.DrawFn) -> bytes:
    """A frame with a plausible header and a random body (sometimes a wrong length)."""
    body = draw(st.binary(max_size=80))
    length = draw(st.one_of(st.just(16 + len(body)), st.integers(0, 0xFFFFFFFF)))
    cid = draw(COMMAND_IDS)
    return (
        HEADER.pack(length, cid, draw(st.integers(0, 0xFFFFFFFF)), draw(st.integers(0, 9))) + body
    )


CHUNKS = st.lists(
    st.one_of(st.binary(max_size=64), framed_garbage(), pdus().map(encode)), max_size=8
)


@pytest.mark.parametrize("scenario", ["open", "bound_trx", "unbinding_rx"])
@pytest.mark.parametrize("role", [ESME, SMSC])
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chunks=CHUNKS)
def test_random_bytes_never_raise_and_are_only_ever_answered_with_responses(
    role: Role, scenario: str, chunks: list[bytes]
) -> None:
    me = Reached(role, scenario).me
    for i, chunk in enumerate(chunks):
        me.receive_data(chunk, float(i))  # b"" is EOF: covered too
        for event in me.events():
            assert isinstance(event, Event)
        me.handle_timer(float(i))
        for pdu in wire(me.data_to_send()):
            assert pdu.command_id & RESPONSE_BIT, f"the session sent a request: {pdu}"
    assert me.outstanding >= 0 and 0 <= me.window_free <= me.config.window


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    stream=st.lists(pdus(), min_size=1, max_size=6).map(lambda ps: b"".join(map(encode, ps))),
    cuts=st.lists(st.integers(0, 10_000), max_size=6),
    role=st.sampled_from([ESME, SMSC]),
)
def test_chunking_never_changes_the_outcome(stream: bytes, cuts: list[int], role: Role) -> None:
    whole = Reached(role, "bound_trx").me
    whole.receive_data(stream, 1.0)
    split = Reached(role, "bound_trx").me
    points = sorted({0, len(stream), *(c % (len(stream) + 1) for c in cuts)})
    for a, b in itertools.pairwise(points):
        if b > a:
            split.receive_data(stream[a:b], 1.0)
    assert split.events() == whole.events()
    assert split.data_to_send() == whole.data_to_send()
    assert split.state is whole.state


# ------------------------------------------------------------------------- sequence numbers


@settings(max_examples=100, deadline=None)
@given(
    start=st.one_of(st.integers(1, 5), st.integers(MAX_SEQUENCE - 8, MAX_SEQUENCE)),
    ops=st.lists(st.one_of(st.just(-1), st.just(-2), st.integers(0, 20)), max_size=40),
)
def test_sequence_numbers_wrap_and_skip_outstanding(start: int, ops: list[int]) -> None:
    """-1 sends a data_sm; -2 jumps the counter to 0x7FFFFFFF (as after a long session);
    n >= 0 answers the n-th outstanding request (if any)."""
    esme = Reached(ESME, "bound_trx").me
    esme._next_seq = start
    live: list[int] = []
    previous: int | None = None
    for op in ops:
        if op == -2:
            esme._next_seq = MAX_SEQUENCE
            previous = MAX_SEQUENCE - 1
            continue
        if op >= 0:
            if live:
                seq = live.pop(op % len(live))
                esme.receive_data(encode(DataSm(sequence_number=seq).response()), 1.0)
                assert isinstance(esme.events()[-1], ResponseReceived)
            continue
        if len(live) >= esme.config.window:
            continue
        seq = esme.send(DataSm(), 1.0)
        assert 1 <= seq <= MAX_SEQUENCE
        assert seq not in live
        # The next free number after the previous one, cyclically over 1..MAX.
        expected = start if previous is None else previous % MAX_SEQUENCE + 1
        while expected in live:
            expected = expected % MAX_SEQUENCE + 1
        assert seq == expected
        previous = seq
        live.append(seq)
    assert esme.outstanding == len(live)


# --------------------------------------------------------------------- stateful: two peers

SAMPLE: Final[dict[type[Pdu], Pdu]] = {
    SubmitSm: SubmitSm(source_addr="1", destination_addr="2", short_message=b"hi"),
    SubmitMulti: SubmitMulti(dest_addresses=(SmeAddress("2"),)),
    DeliverSm: DeliverSm(source_addr="2", destination_addr="1"),
    QuerySm: QuerySm(message_id="1"),
    CancelSm: CancelSm(message_id="1"),
    ReplaceSm: ReplaceSm(message_id="1"),
    AlertNotification: AlertNotification(source_addr="2"),
    BroadcastSm: BroadcastSm(message_id="1"),
    QueryBroadcastSm: QueryBroadcastSm(message_id="1"),
    CancelBroadcastSm: CancelBroadcastSm(message_id="1"),
}
# Requests that take a window slot, as the facts sheet's guidance has it: session management
# (binds, unbind, enquire_link) must get through a full window; outbind/alert have no response.
UNWINDOWED_NAMES: Final = _BINDS | {"unbind", "enquire_link", "outbind", "alert_notification"}
WINDOW = 3
MACHINE_CONFIG = SessionConfig(
    window=WINDOW,
    response_timeout=8.0,
    enquire_link_interval=7.0,
    enquire_link_timeout=3.0,
    inactivity_timeout=40.0,
)


def sample(cls: type[Pdu]) -> Pdu:
    return SAMPLE.get(cls) or cls()


class Side:
    """One peer and everything the test knows about it."""

    def __init__(self, role: Role, config: SessionConfig) -> None:
        self.role = role
        self.conn = Connection(role, config)
        self.sent: dict[int, Pdu] = {}  # application requests awaiting their fate
        self.fates: dict[int, list[str]] = {}  # how each request ended (exactly one)
        self.timed_out: set[int] = set()
        self.inbound: dict[int, Pdu] = {}  # peer requests awaiting our answer
        self.wire: bytearray = bytearray()  # bytes on their way to the *other* side
        self.eof_sent = False  # our close reached the wire: the other side gets EOF
        self.state = State.OPEN  # as reported by StateChanged
        self.closed = False


class TwoPeers(RuleBasedStateMachine):
    """An ESME and an SMSC joined by an in-memory wire, driven at random."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.esme = Side(ESME, MACHINE_CONFIG)
        smsc_config = dataclasses.replace(MACHINE_CONFIG, session_init_timeout=30.0)
        self.smsc = Side(SMSC, smsc_config)
        # Once a bind or unbind timed out, the two sides may legitimately disagree.
        self.desynced = False

    @initialize()
    def start(self) -> None:
        assert self.esme.conn.state is self.smsc.conn.state is State.OPEN

    def sides(self, name: str) -> tuple[Side, Side]:
        return (self.esme, self.smsc) if name == "esme" else (self.smsc, self.esme)

    # -------------------------------------------------------------------- bookkeeping

    def absorb(self, side: Side, events: list[Event] | None = None) -> None:
        """Pull the side's events and check each against the ledger."""
        conn = side.conn
        for event in conn.events() if events is None else events:
            if isinstance(event, ResponseReceived):
                seq = event.response.sequence_number
                assert side.sent.pop(seq) is event.request
                side.fates.setdefault(seq, []).append("answered")
            elif isinstance(event, ResponseTimedOut):
                seq = event.sequence_number
                assert side.sent.pop(seq) is event.request
                side.fates.setdefault(seq, []).append("timed out")
                side.timed_out.add(seq)
                if event.request.command_name in _BINDS | {"unbind"}:
                    self.desynced = True
            elif isinstance(event, ConnectionClosed):
                assert not side.closed
                side.closed = True
                for seq, request in event.outstanding:
                    assert side.sent.pop(seq) is request
                    side.fates.setdefault(seq, []).append("closed")
                assert side.sent == {}, "a request vanished at close"
                side.inbound.clear()
            elif isinstance(event, RequestReceived):
                pdu = event.pdu
                if pdu.response_type is not None:
                    assert pdu.sequence_number not in side.inbound
                    side.inbound[pdu.sequence_number] = pdu
            elif isinstance(event, UnexpectedResponse):
                # Only ever a late answer to something that timed out here.
                assert event.pdu.sequence_number in side.timed_out, event
            elif isinstance(event, StateChanged):
                assert event.old is side.state
                side.state = event.new
            elif isinstance(event, ProtocolErrorReceived):
                raise AssertionError(f"well-behaved peers exchanged garbage: {event}")
            else:
                assert isinstance(event, RequestRejected | UnbindReceived)
        side.wire += conn.data_to_send()
        if side.closed:
            side.eof_sent = True

    def deliver(self, src: Side, dst: Side, size: int | None) -> None:
        self.absorb(src)
        data = bytes(src.wire if size is None else src.wire[:size])
        del src.wire[: len(data)]
        if data:
            dst.conn.receive_data(data, self.now)
        elif src.eof_sent and not dst.closed:
            dst.conn.receive_data(b"", self.now)
        self.absorb(dst)
        if dst.closed:
            src.wire.clear()  # nothing more reaches a closed side

    # -------------------------------------------------------------------------- rules

    @rule(
        who=st.sampled_from(["esme", "smsc"]),
        cls=st.sampled_from(REQUEST_TYPES),
        timeout=st.none() | st.sampled_from([1.0, 4.0]),
    )
    def send_request(self, who: str, cls: type[Pdu], timeout: float | None) -> None:
        """Any request: the session must refuse what the oracle forbids."""
        side, _ = self.sides(who)
        conn = side.conn
        name = cls.command_name
        state = conn.state
        pdu = sample(cls)
        windowed_live = sum(1 for p in side.sent.values() if p.command_name not in UNWINDOWED_NAMES)
        allowed = oracle_allows(name, state, None, side.role, receiving=False)
        full = name not in UNWINDOWED_NAMES and windowed_live >= WINDOW
        before = conn.has_data_to_send, conn.outstanding
        try:
            seq = conn.send(pdu, self.now, timeout=timeout)
        except WindowFull:
            assert allowed and full
            assert (conn.has_data_to_send, conn.outstanding) == before
            return
        except LocalProtocolError:
            assert not allowed
            assert (conn.has_data_to_send, conn.outstanding, conn.state) == (*before, state)
            return
        assert allowed and not full
        if cls.response_type is not None:
            assert seq not in side.sent
            side.sent[seq] = pdu
        self.absorb(side)

    @rule(
        who=st.sampled_from(["esme", "smsc"]),
        pick=st.integers(0, 20),
        timeout=st.none() | st.sampled_from([1.0, 4.0]),
    )
    def send_allowed_request(self, who: str, pick: int, timeout: float | None) -> None:
        """A request the oracle allows now (so that the peers get somewhere)."""
        side, _ = self.sides(who)
        state = side.conn.state
        allowed = [
            cls
            for cls in REQUEST_TYPES
            if oracle_allows(cls.command_name, state, None, side.role, receiving=False)
        ]
        if allowed:
            self.send_request(who, allowed[pick % len(allowed)], timeout)

    @rule(
        who=st.sampled_from(["esme", "smsc"]),
        pick=st.integers(0, 10),
        status=st.sampled_from([0, 0, 0, S.ESME_RSYSERR, -1]),
    )
    def answer(self, who: str, pick: int, status: int) -> None:
        side, _ = self.sides(who)
        if not side.inbound:
            return
        seq = list(side.inbound)[pick % len(side.inbound)]
        request = side.inbound.pop(seq)
        response = GenericNack(seq, S.ESME_RSYSERR) if status < 0 else request.response(status)
        side.conn.send(response, self.now)
        self.absorb(side)

    @rule(
        who=st.sampled_from(["esme", "smsc"]),
        size=st.none() | st.integers(1, 40),
    )
    def transmit(self, who: str, size: int | None) -> None:
        src, dst = self.sides(who)
        self.deliver(src, dst, size)

    @rule(dt=st.sampled_from([0.5, 1.0, 2.5, 4.0, 6.0]))
    def advance(self, dt: float) -> None:
        self.now += dt
        for side in (self.esme, self.smsc):
            conn = side.conn
            deadline = conn.next_deadline()
            conn.handle_timer(self.now)
            events = conn.events()
            if deadline is None or deadline > self.now:
                # Nothing due yet: a timer must never fire early.
                assert events == [] and not conn.has_data_to_send, (deadline, self.now, events)
            self.absorb(side, events)

    @rule(
        who=st.sampled_from(["esme", "smsc"]),
        how=st.sampled_from(["close", "failed"]),
        roll=st.integers(0, 9),
    )
    def hang_up(self, who: str, how: str, roll: int) -> None:
        if roll != 9:
            return  # rarely: a closed pair has little left to explore
        side, _ = self.sides(who)
        if how == "close":
            side.conn.close()
        else:
            side.conn.send_failed()
        self.absorb(side)
        assert side.closed

    @precondition(
        lambda self: not self.desynced and self.esme.conn.state in (State.OPEN, State.OUTBOUND)
    )
    @rule(cls=st.sampled_from([BindTransmitter, BindReceiver, BindTransceiver]))
    def bind(self, cls: type[Pdu]) -> None:
        """A whole bind exchange (random rules alone rarely get that far before a timeout)."""
        self.send_request("esme", cls, None)
        self.settle(0)

    @precondition(lambda self: not self.desynced)
    @rule(status=st.sampled_from([0, 0, 0, S.ESME_RBINDFAIL]))
    def settle(self, status: int) -> None:
        """Run a full exchange: deliver everything and answer every request, no time passing."""
        for _ in range(20):
            for side in (self.esme, self.smsc):
                for seq, request in list(side.inbound.items()):
                    del side.inbound[seq]
                    side.conn.send(request.response(status), self.now)
            self.deliver(self.esme, self.smsc, None)
            self.deliver(self.smsc, self.esme, None)
            quiet = not (self.esme.wire or self.smsc.wire or self.esme.inbound or self.smsc.inbound)
            eof_pending = any(
                s.eof_sent and not o.closed
                for s, o in ((self.esme, self.smsc), (self.smsc, self.esme))
            )
            if quiet and not eof_pending:
                break
        else:
            raise AssertionError("the peers never went quiet")
        if self.desynced:
            return
        # After a full exchange both sides agree on whether, and how, they are bound.
        e, s = self.esme.conn.state, self.smsc.conn.state
        assert e is s, (e, s)
        assert e not in (State.BINDING, State.UNBINDING)

    # --------------------------------------------------------------------- invariants

    @invariant()
    def ledgers_match_the_sessions(self) -> None:
        for side in (self.esme, self.smsc):
            conn = side.conn
            assert all(len(f) == 1 for f in side.fates.values()), side.fates
            assert not set(side.fates) & set(side.sent)
            keepalive = {conn._enquire_seq} - {None}
            assert set(conn._outstanding) - keepalive == set(side.sent)
            assert conn.inbound_pending == len(side.inbound)
            assert side.state is conn.state
            windowed = sum(1 for p in side.sent.values() if p.command_name not in UNWINDOWED_NAMES)
            assert 0 <= conn.window_free <= conn.config.window
            assert conn.window_free == conn.config.window - windowed
            if side.closed:
                assert conn.state is State.CLOSED and conn.outstanding == 0
                assert conn.next_deadline() is None

    def teardown(self) -> None:
        # Every request sent ends exactly one way: answered, timed out, or listed at close.
        for side in (self.esme, self.smsc):
            side.conn.close("teardown")
            self.absorb(side)
            assert side.sent == {}
            assert all(len(f) == 1 for f in side.fates.values())


TwoPeers.TestCase.settings = settings(
    max_examples=80,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_two_peers = TwoPeers.TestCase
