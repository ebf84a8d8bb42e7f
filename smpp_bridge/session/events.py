"""Events the sans-IO session hands to its driver. Small, frozen, and named for what happened.

They are frozen ``msgspec.Struct``s like the PDUs, not dataclasses: one or two are made per PDU,
and a frozen dataclass's ``__init__`` (``object.__setattr__`` per field) costs five times more.
"""

from __future__ import annotations

import msgspec

from ..codec.pdus import Pdu
from ..errors import RemoteProtocolError
from .state import State


class _NeedData:
    """Sentinel: no complete event until more bytes arrive."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA = _NeedData()


class Event(msgspec.Struct, frozen=True):
    """Base class of every session event."""


class RequestReceived(Event, frozen=True):
    """The peer sent a request the driver must act on and answer (``pdu.response()``).

    enquire_link and unbind are answered by the session itself and not reported here.
    """

    pdu: Pdu


class DuplicateSequence(Event, frozen=True):
    """The peer sent a request under a sequence number it is still waiting on an answer for.

    A protocol error of the peer's, and not fatal: the session keeps both (its
    ``RequestReceived`` follows this event) and each of its responses answers one of them, so
    both are handed on and answered (the layers above recognise a message that arrives twice).
    """

    pdu: Pdu


class ResponseReceived(Event, frozen=True):
    """A response (or generic_nack) matched one of our outstanding requests."""

    request: Pdu
    response: Pdu


class ResponseTimedOut(Event, frozen=True):
    """No response arrived for ``request`` within its deadline: its outcome is unknown."""

    request: Pdu
    sequence_number: int


class UnexpectedResponse(Event, frozen=True):
    """A response that matches nothing outstanding (late, duplicated, or from a lost request)."""

    pdu: Pdu


class RequestRejected(Event, frozen=True):
    """The peer sent a request not allowed now; the session answered it with ``status``."""

    pdu: Pdu
    status: int


class ProtocolErrorReceived(Event, frozen=True):
    """The peer sent bytes that do not decode; the session queued the answer (if any)."""

    error: RemoteProtocolError


class StateChanged(Event, frozen=True):
    """The session moved from ``old`` to ``new`` (bound, unbound, ...)."""

    old: State
    new: State


class UnbindReceived(Event, frozen=True):
    """The peer asked to unbind; unbind_resp is already queued. Close after sending it."""

    pdu: Pdu


class ConnectionClosed(Event, frozen=True):
    """The session is over. ``outstanding`` are the requests (by sequence number) that never
    got a response: their outcome is unknown, and the driver must report or retry each."""

    reason: str
    outstanding: tuple[tuple[int, Pdu], ...] = ()
    clean: bool = False
