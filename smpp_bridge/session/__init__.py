"""The SMPP session as a sans-IO state machine (h11's pattern): bytes and time in, events out."""

from ..errors import WindowFull
from .connection import Connection, SessionConfig
from .events import (
    NEED_DATA,
    ConnectionClosed,
    DuplicateSequence,
    Event,
    ProtocolErrorReceived,
    RequestReceived,
    RequestRejected,
    ResponseReceived,
    ResponseTimedOut,
    StateChanged,
    UnbindReceived,
    UnexpectedResponse,
)
from .state import BOUND_STATES, PERMISSIONS, Role, State, may_send

__all__ = [
    "BOUND_STATES",
    "NEED_DATA",
    "PERMISSIONS",
    "Connection",
    "ConnectionClosed",
    "DuplicateSequence",
    "Event",
    "ProtocolErrorReceived",
    "RequestReceived",
    "RequestRejected",
    "ResponseReceived",
    "ResponseTimedOut",
    "Role",
    "SessionConfig",
    "State",
    "StateChanged",
    "UnbindReceived",
    "UnexpectedResponse",
    "WindowFull",
    "may_send",
]
