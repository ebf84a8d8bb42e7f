"""``smpp-bridge``: the entry point, which builds the parser from the subcommand modules.

A subcommand lives in its own module exposing ``register(subparsers)`` and is listed in
``REGISTRARS``. Every module is imported to build the parser, so one with heavy dependencies
(the daemon, the simulator) should import them inside its handler.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Final

from .. import __version__
from ..log import configure_logging
from . import (
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    Handler,
    JsonErrorParser,
    UsageError,
    config,
    daemon,
    pdu,
    send,
    simulator,
    text,
    write_json,
)

if TYPE_CHECKING:
    from . import Subparsers

# Each adds its subcommand(s); help lists them in this order.
REGISTRARS: Final[tuple[Callable[[Subparsers], None], ...]] = (
    pdu.register,
    text.register,
    simulator.register,
    send.register,
    daemon.register,
    config.register,
)


def build_parser() -> argparse.ArgumentParser:
    parser = JsonErrorParser(
        prog="smpp-bridge",
        description="SMPP client library, sender daemon and SMSC simulator.",
        epilog=(
            "Results are JSON on stdout. Errors, including usage errors, are one line of JSON "
            'on stderr ({"error": "...", ...}) with exit status 2.'
        ),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(title="commands", dest="command", required=True)
    for register in REGISTRARS:
        register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``smpp-bridge`` with ``argv`` (default ``sys.argv[1:]``); the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        write_json({"error": exc.message, "usage": exc.usage}, sys.stderr)
        return EXIT_USAGE
    except SystemExit as exc:  # --help and --version exit through argparse
        return exc.code if isinstance(exc.code, int) else EXIT_OK
    handler: Handler = args.handler
    # Logs go to stderr (JSON lines when not a terminal): stdout carries the command's JSON.
    configure_logging(os.environ.get("SMPP_BRIDGE_LOG_LEVEL", "info"))
    try:
        return handler(args)
    except CliError as exc:
        write_json(exc.to_dict(), sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        # The reader went away (``| head``): silence the flush at exit, as the Python docs advise.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
