"""Events the sans-IO session hands to its driver. Small, frozen, and named for what happened."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..codec.pdus import Pdu
from ..errors import RemoteProtocolError
from .state import State


class _NeedData:
    """Sentinel: no complete event until more bytes arrive."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA = _NeedData()


@dataclass(frozen=True, slots=True)
class Event:
    """Base class of every session event."""


@dataclass(frozen=True, slots=True)
class RequestReceived(Event):
    """The peer sent a request the driver must act on and answer (``pdu.response()``).

    enquire_link and unbind are answered by the session itself and not reported here.
    """

    pdu: Pdu


@dataclass(frozen=True, slots=True)
class ResponseReceived(Event):
    """A response (or generic_nack) matched one of our outstanding requests."""

    request: Pdu
    response: Pdu


@dataclass(frozen=True, slots=True)
class ResponseTimedOut(Event):
    """No response arrived for ``request`` within its deadline: its outcome is unknown."""

    request: Pdu
    sequence_number: int


@dataclass(frozen=True, slots=True)
class UnexpectedResponse(Event):
    """A response that matches nothing outstanding (late, duplicated, or from a lost request)."""

    pdu: Pdu


@dataclass(frozen=True, slots=True)
class RequestRejected(Event):
    """The peer sent a request not allowed now; the session answered it with ``status``."""

    pdu: Pdu
    status: int


@dataclass(frozen=True, slots=True)
class ProtocolErrorReceived(Event):
    """The peer sent bytes that do not decode; the session queued the answer (if any)."""

    error: RemoteProtocolError


@dataclass(frozen=True, slots=True)
class StateChanged(Event):
    """The session moved from ``old`` to ``new`` (bound, unbound, ...)."""

    old: State
    new: State


@dataclass(frozen=True, slots=True)
class UnbindReceived(Event):
    """The peer asked to unbind; unbind_resp is already queued. Close after sending it."""

    pdu: Pdu


@dataclass(frozen=True, slots=True)
class ConnectionClosed(Event):
    """The session is over. ``outstanding`` are the requests (by sequence number) that never
    got a response: their outcome is unknown, and the driver must report or retry each."""

    reason: str
    outstanding: tuple[tuple[int, Pdu], ...] = field(default=())
    clean: bool = False
