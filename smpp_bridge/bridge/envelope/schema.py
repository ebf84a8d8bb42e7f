"""The JSON Schemas published in ``schema/`` for producers and consumers in other languages
(``tools/gen_schema.py`` writes them), generated from the envelope types themselves."""

from __future__ import annotations

import inspect
from typing import Annotated, Any, Final

import msgspec
from msgspec import Meta

from .event import Event
from .request import DEFAULT_MAX_BATCH, SendRequest

# ---------------------------------------------------------------------------------------------
# JSON Schemas

SCHEMA_DIALECT: Final = "https://json-schema.org/draft/2020-12/schema"

SendPayload = (
    SendRequest
    | Annotated[
        list[SendRequest],
        Meta(min_length=1, max_length=DEFAULT_MAX_BATCH, description="a bulk request"),
    ]
)


def _schema(kind: Any, schema_id: str, title: str, description: str) -> dict[str, Any]:
    generated = msgspec.json.schema(kind)
    head: dict[str, Any] = {
        "$schema": SCHEMA_DIALECT,
        "$id": schema_id,
        "title": title,
        "description": description,
    }
    # msgspec puts the definitions under "$defs" and the root as a "$ref" or "anyOf".
    cleaned: dict[str, Any] = _clean_descriptions(head | generated)
    return cleaned


def _clean_descriptions(node: Any) -> Any:
    """Every ``description`` dedented as ``inspect.cleandoc`` does.

    msgspec copies docstrings into descriptions, and its releases differ on whether they strip
    the docstrings' indentation (0.22 keeps it, 0.23 strips it): normalising here keeps the
    published schema the same whichever msgspec a fresh install resolves.
    """
    if isinstance(node, dict):
        return {
            key: inspect.cleandoc(value)
            if key == "description" and isinstance(value, str)
            else _clean_descriptions(value)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_clean_descriptions(item) for item in node]
    return node


def json_schemas() -> dict[str, str]:
    """The published schemas: file name under ``schema/`` → its text (stable, sorted keys)."""
    schemas = {
        "send-request.schema.json": _schema(
            SendPayload,
            "https://smpp-bridge.dev/schema/send-request.schema.json",
            "smpp-bridge send request",
            "One send request (a JSON object), or a bulk request: an array of up to "
            f"{DEFAULT_MAX_BATCH} of them (the daemon's limits.max_batch).",
        ),
        "event.schema.json": _schema(
            Event,
            "https://smpp-bridge.dev/schema/event.schema.json",
            "smpp-bridge event",
            "One status transition of a message, or an inbound message.",
        ),
    }
    return {
        name: msgspec.json.format(msgspec.json.encode(schema, order="sorted"), indent=2).decode()
        + "\n"
        for name, schema in schemas.items()
    }


__all__ = ["SCHEMA_DIALECT", "SendPayload", "json_schemas"]
