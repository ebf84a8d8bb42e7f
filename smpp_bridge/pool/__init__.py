"""Many binds behind one ``send``: routing, reconnects with backoff, TPS budgets and adaptive
throttling, retries and unknown outcomes by policy, DLR correlation (with parking of receipts
that come before their response), inbound reassembly and opt-outs.

The names here are the pool's API for the layers above it (the daemon, the CLI); the modules
under it are internal.
"""

from .backoff import Backoff
from .correlation import (
    DEFAULT_TTL,
    CorrelationRecord,
    CorrelationStore,
    IdMode,
    MemoryCorrelationStore,
    MessageIdResolver,
    ParkedReceipt,
    ParkingStore,
    canonical_id,
    decode_parked,
    decode_record,
    encode_parked,
    encode_record,
    possible_keys,
)
from .dlr import DlrEvent
from .inbound import InboundMessage
from .persist import until_done
from .pool import (
    CLOSE_TIMEOUT,
    AccountConfig,
    BindPool,
    BindSnapshot,
    OutboundMessage,
    PoolConfig,
    PoolHandler,
    PoolStatus,
    SubmitOutcome,
    UnknownPolicy,
    open_pool,
)

__all__ = [
    "CLOSE_TIMEOUT",
    "DEFAULT_TTL",
    "AccountConfig",
    "Backoff",
    "BindPool",
    "BindSnapshot",
    "CorrelationRecord",
    "CorrelationStore",
    "DlrEvent",
    "IdMode",
    "InboundMessage",
    "MemoryCorrelationStore",
    "MessageIdResolver",
    "OutboundMessage",
    "ParkedReceipt",
    "ParkingStore",
    "PoolConfig",
    "PoolHandler",
    "PoolStatus",
    "SubmitOutcome",
    "UnknownPolicy",
    "canonical_id",
    "decode_parked",
    "decode_record",
    "encode_parked",
    "encode_record",
    "open_pool",
    "possible_keys",
    "until_done",
]
