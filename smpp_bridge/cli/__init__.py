"""The ``smpp-bridge`` command: a thin layer of subcommands over the library.

Each subcommand module exposes ``register(subparsers)``, which adds its parser and sets
``handler`` (``Callable[[argparse.Namespace], int]``) as a default; ``cli.main`` lists the
modules. Handlers print JSON on stdout and report bad input by raising ``CliError``, which
``main`` prints as one line of JSON on stderr with exit status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, NoReturn, TextIO, TypeAlias

import msgspec

Handler: TypeAlias = Callable[[argparse.Namespace], int]

EXIT_OK: Final = 0
# Bad input or usage, as argparse itself uses.
EXIT_USAGE: Final = 2

__all__ = [
    "EXIT_OK",
    "EXIT_USAGE",
    "CliError",
    "Handler",
    "JsonErrorParser",
    "UsageError",
    "write_json",
]


class UsageError(Exception):
    """The command line does not parse; ``main`` prints it as JSON with the usage line."""

    def __init__(self, message: str, usage: str) -> None:
        super().__init__(message)
        self.message = message
        self.usage = usage


class JsonErrorParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors come out like every other error: as JSON.

    Subcommand parsers inherit the class (``add_subparsers`` uses the parent's).
    """

    def error(self, message: str) -> NoReturn:
        raise UsageError(message, self.format_usage().strip())


if TYPE_CHECKING:
    # For type checkers only: argparse's class is not subscriptable at runtime.
    Subparsers: TypeAlias = argparse._SubParsersAction[JsonErrorParser]


class CliError(Exception):
    """Bad input to a subcommand: ``message`` plus details, printed as ``{"error": ...}``."""

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        return {"error": self.message, **self.details}


def write_json(obj: object, stream: TextIO | None = None, *, pretty: bool = False) -> None:
    """Write ``obj`` as JSON and a newline: indented when ``pretty``, else on one line.

    Non-ASCII text is written as is (UTF-8 terminals read it); a stream that cannot encode it
    gets ``\\u`` escapes (four hex digits) instead of a crash.
    """
    out = sys.stdout if stream is None else stream
    data = msgspec.json.encode(obj)
    if pretty:
        data = msgspec.json.format(data, indent=2)
    text = data.decode("utf-8")
    try:
        text.encode(out.encoding or "utf-8")
    except (UnicodeEncodeError, LookupError):
        text = json.dumps(json.loads(text), ensure_ascii=True, indent=2 if pretty else None)
    out.write(text + "\n")
