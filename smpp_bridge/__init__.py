"""smpp-bridge: an SMPP client (ESME) library, a queue-driven daemon and an SMSC simulator.

The names here are the library's public API; everything else is internal unless its own
package says otherwise (``smpp_bridge.codec`` and ``smpp_bridge.session``, the pure core, are
public for those who drive SMPP themselves; ``smpp_bridge.simulator`` is the test SMSC).

One session::

    async with open_session("127.0.0.1", 2775, "system", "secret") as smpp:
        parts = await smpp.submit_text("ACME", "+34600000001", "Your code is 1234")

Many binds, with retries, throttling and delivery-report correlation::

    async with open_pool(PoolConfig(accounts=[AccountConfig(...)]), handler) as pool:
        await pool.send(OutboundMessage(...))

Everything runs on anyio: under trio or asyncio alike.
"""

from .client import Client, Delivery, SubmitResult, open_session
from .codec.receipt import Receipt
from .codec.status import Status
from .codec.text import EncodingProfile, profile_named
from .errors import (
    BindError,
    CommandStatusError,
    ConfigError,
    EncodingError,
    FieldError,
    LocalProtocolError,
    PoolClosed,
    ProtocolError,
    QueueBackendError,
    QueueClosedError,
    QueueError,
    RemoteProtocolError,
    ResponseTimeoutError,
    SessionClosedError,
    SmppError,
    StoreClosedError,
    WindowFull,
)
from .pool import (
    AccountConfig,
    BindPool,
    BindSnapshot,
    DlrEvent,
    InboundMessage,
    OutboundMessage,
    PoolConfig,
    PoolHandler,
    PoolStatus,
    SubmitOutcome,
    open_pool,
)

__version__ = "0.1.0"

__all__ = [
    "AccountConfig",
    "BindError",
    "BindPool",
    "BindSnapshot",
    "Client",
    "CommandStatusError",
    "ConfigError",
    "Delivery",
    "DlrEvent",
    "EncodingError",
    "EncodingProfile",
    "FieldError",
    "InboundMessage",
    "LocalProtocolError",
    "OutboundMessage",
    "PoolClosed",
    "PoolConfig",
    "PoolHandler",
    "PoolStatus",
    "ProtocolError",
    "QueueBackendError",
    "QueueClosedError",
    "QueueError",
    "Receipt",
    "RemoteProtocolError",
    "ResponseTimeoutError",
    "SessionClosedError",
    "SmppError",
    "Status",
    "StoreClosedError",
    "SubmitOutcome",
    "SubmitResult",
    "WindowFull",
    "__version__",
    "open_pool",
    "open_session",
    "profile_named",
]
