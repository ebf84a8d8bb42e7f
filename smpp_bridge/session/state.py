"""Session states and who may send which request in each, as data (smpp-facts §2).

Responses are not in the table: a response is legal when it answers an outstanding request, so
its permission follows from the request's. ``None`` in ``Role`` sets means "nobody".
"""

from __future__ import annotations

from enum import Enum
from typing import Final

from ..codec.constants import CommandId


class Role(Enum):
    ESME = "esme"
    SMSC = "smsc"

    # Members are singletons, so identity hashing agrees with equality; Enum's own __hash__
    # is Python code and runs on every permission lookup (twice per PDU).
    __hash__ = object.__hash__


class State(Enum):
    OPEN = "open"  # connected, not bound
    OUTBOUND = "outbound"  # v5.0: outbind exchanged, ESME's bind expected
    BINDING = "binding"  # a bind request is in flight, its response pending
    BOUND_TX = "bound_tx"
    BOUND_RX = "bound_rx"
    BOUND_TRX = "bound_trx"
    UNBINDING = "unbinding"  # unbind sent, unbind_resp pending
    UNBOUND = "unbound"  # unbind exchanged, connection not closed yet
    CLOSED = "closed"

    __hash__ = object.__hash__  # see Role


BOUND_STATES: Final = frozenset({State.BOUND_TX, State.BOUND_RX, State.BOUND_TRX})
OPEN_STATES: Final = frozenset(set(State) - {State.CLOSED})

E = frozenset({Role.ESME})
S = frozenset({Role.SMSC})
ES = frozenset({Role.ESME, Role.SMSC})
TX = (State.BOUND_TX, State.BOUND_TRX)
RX = (State.BOUND_RX, State.BOUND_TRX)
ANY_BOUND = (State.BOUND_TX, State.BOUND_RX, State.BOUND_TRX)

C = CommandId


def _rows(states: tuple[State, ...], roles: frozenset[Role]) -> dict[State, frozenset[Role]]:
    return dict.fromkeys(states, roles)


# request command_id -> state -> roles that may send it in that state.
PERMISSIONS: Final[dict[int, dict[State, frozenset[Role]]]] = {
    C.bind_transmitter: _rows((State.OPEN, State.OUTBOUND), E),
    C.bind_receiver: _rows((State.OPEN, State.OUTBOUND), E),
    C.bind_transceiver: _rows((State.OPEN, State.OUTBOUND), E),
    C.outbind: _rows((State.OPEN,), S),
    C.unbind: _rows(ANY_BOUND, ES),
    C.submit_sm: _rows(TX, E),
    C.submit_multi: _rows(TX, E),
    C.query_sm: _rows(TX, E),
    C.cancel_sm: _rows(TX, E),
    # v3.4's table lists BOUND_TX only; §2.2 and v5.0 allow TRX too.
    C.replace_sm: _rows(TX, E),
    C.deliver_sm: _rows(RX, S),
    # v3.4 allows data_sm both ways in every bound state.
    C.data_sm: _rows(ANY_BOUND, ES),
    C.alert_notification: _rows(RX, S),
    # v5.0 allows enquire_link in every connected state; v3.4 peers tolerate it when bound.
    C.enquire_link: _rows(tuple(OPEN_STATES), ES),
    C.broadcast_sm: _rows(TX, E),
    C.query_broadcast_sm: _rows(TX, E),
    C.cancel_broadcast_sm: _rows(TX, E),
}

BIND_STATES: Final[dict[int, State]] = {
    C.bind_transmitter: State.BOUND_TX,
    C.bind_receiver: State.BOUND_RX,
    C.bind_transceiver: State.BOUND_TRX,
}
BIND_RESPONSES: Final = frozenset(
    {C.bind_transmitter_resp, C.bind_receiver_resp, C.bind_transceiver_resp}
)
# Requests that do not take a window slot: session management must always get through.
UNWINDOWED: Final = frozenset(
    {
        C.enquire_link,
        C.unbind,
        C.bind_transmitter,
        C.bind_receiver,
        C.bind_transceiver,
        C.outbind,
        C.alert_notification,
    }
)


def may_send(command_id: int, state: State, role: Role) -> bool:
    """Whether ``role`` may issue request ``command_id`` in ``state``."""
    rows = PERMISSIONS.get(command_id)
    return rows is not None and role in rows.get(state, frozenset())
