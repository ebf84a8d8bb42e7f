"""Envelopes: send requests in, events out, as JSON with a published schema.

A producer puts one send request (a JSON object) or a bulk of up to ``max_batch`` (a JSON
array) on the requests queue. ``parse_batch`` turns that payload into one ``Valid`` or
``Invalid`` per item, so a bad item never spoils its neighbours and never raises; ``validate``
checks what the types cannot (E.164 numbers, sender ids, encodability, part limits, TLVs)
and answers with a reason that names the field, like ``to: not an E.164 number: '12ab'``;
``to_outbound`` makes the pool's ``OutboundMessage``. Events, one JSON object per status
transition, are encoded with ``encode_events`` and read back with ``decode_event``.

The hot path is one msgspec decode per payload, a few string checks and one part count per
request: a short GSM 7-bit text is counted in septets without being encoded, and nothing is
segmented here (the pool segments once, under the profile of the account it routes to).
``json_schemas()`` gives the JSON Schemas published in ``schema/`` for producers and
consumers in other languages (``tools/gen_schema.py`` writes them).
"""

from .event import STATUSES, TERMINAL_STATUSES, Event, decode_event, encode_events
from .request import (
    DEFAULT_MAX_BATCH,
    DEFAULT_MAX_PARTS,
    ENCODINGS,
    MAX_CLIENT_ID,
    MAX_VALIDITY,
    Encoding,
    Invalid,
    Limits,
    Parsed,
    SendRequest,
    TlvSpec,
    Valid,
    encode_request,
    parse_batch,
)
from .schema import SCHEMA_DIALECT, SendPayload, json_schemas
from .validation import (
    Checked,
    absolute_time,
    check,
    parse_time,
    relative_time,
    to_outbound,
    validate,
)

__all__ = [
    "DEFAULT_MAX_BATCH",
    "DEFAULT_MAX_PARTS",
    "ENCODINGS",
    "MAX_CLIENT_ID",
    "MAX_VALIDITY",
    "SCHEMA_DIALECT",
    "STATUSES",
    "TERMINAL_STATUSES",
    "Checked",
    "Encoding",
    "Event",
    "Invalid",
    "Limits",
    "Parsed",
    "SendPayload",
    "SendRequest",
    "TlvSpec",
    "Valid",
    "absolute_time",
    "check",
    "decode_event",
    "encode_events",
    "encode_request",
    "json_schemas",
    "parse_batch",
    "parse_time",
    "relative_time",
    "to_outbound",
    "validate",
]
