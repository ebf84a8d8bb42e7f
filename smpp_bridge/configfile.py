"""What every TOML configuration file of the package shares: reading it, and its errors.

The simulator's behaviours and the daemon's settings are both frozen ``msgspec.Struct`` trees
converted from parsed TOML. When the conversion fails, msgspec names the offending value with a
JSON path (``$.accounts[0].port``); ``config_error`` turns that into the TOML key a user wrote
(``accounts[0].port``), so the error points at the line to fix.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import msgspec

from .errors import (
    ConfigError,
)

__all__ = ["ConfigError", "config_error", "read_toml"]


_AT = re.compile(r"^(?P<message>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_UNKNOWN = re.compile(r"^Object contains unknown field `(?P<key>[^`]*)`$")
_MISSING = re.compile(r"^Object missing required field `(?P<key>[^`]*)`$")
_EXPECTED = re.compile(r"^Expected `(?P<want>[^`]*)`(?P<rest>.*?)(?:, got `(?P<got>[^`]*)`)?$")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def config_error(exc: msgspec.ValidationError, *, plain: bool = False) -> ConfigError:
    """msgspec's message, reshaped so the path reads like the TOML key (``faults.garble``).

    An unknown key is reported at its own path with the reason ``unknown key``. With ``plain``
    the rest of msgspec's wording is made plainer too: a missing key is reported at its own
    path (``missing required key``), and type errors lose their backticks and capital
    (``expected int, got str``).
    """
    m = _AT.match(str(exc))
    assert m is not None  # the pattern matches any string
    message = m.group("message")
    path = (m.group("path") or "").lstrip(".")
    unknown = _UNKNOWN.match(message)
    if unknown:
        return ConfigError("unknown key", _join(path, unknown.group("key")))
    if plain:
        missing = _MISSING.match(message)
        if missing:
            return ConfigError("missing required key", _join(path, missing.group("key")))
        expected = _EXPECTED.match(message)
        if expected:
            got = expected.group("got")
            tail = f", got {got}" if got else ""
            message = f"expected {expected.group('want')}{expected.group('rest')}{tail}"
        elif message.startswith("Invalid enum value"):
            message = "invalid value" + message[len("Invalid enum value") :]
    return ConfigError(message, path)


def read_toml(path: str | Path) -> dict[str, Any]:
    """The parsed TOML file; ``ConfigError`` when it is not TOML (``OSError`` when unreadable).

    The error's ``path`` is the file's (there is no key to name yet).
    """
    with open(path, "rb") as f:
        try:
            return tomllib.load(f)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"not valid TOML: {exc}", str(path)) from None
