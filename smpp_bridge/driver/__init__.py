"""The anyio driver: one SMPP session (``smpp_bridge.session``) over a byte stream, for either
role. One reader task feeds the session and settles requests, one writer coalesces outgoing
PDUs, a timer fires the session's deadlines, and an inbound task answers each peer request
only after its handler returns. The client (``open_session``) and the simulator both run on it.
"""

from .driver import BatchHandler, Callback, Deferred, Driver, InlineHandler, RequestHandler
from .tasks import BodyError, Signal

__all__ = [
    "BatchHandler",
    "BodyError",
    "Callback",
    "Deferred",
    "Driver",
    "InlineHandler",
    "RequestHandler",
    "Signal",
]
