"""``smpp-bridge config check FILE``: load a daemon configuration and say what it sets up.

Prints ``{"ok": true, "file": ..., "accounts": [...], "queue": {...}, ...}`` (never a password,
secret or URL credential) or, when the file is wrong, the usual error JSON naming the key
(``{"error": "expected int, got str", "path": "accounts[0].port", "file": ...}``, exit 2).
Environment references (``${NAME}``) are resolved as the daemon would, so a missing variable
is caught here too.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from . import EXIT_OK, CliError, write_json

if TYPE_CHECKING:
    from . import Subparsers


def register(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "config",
        help="check a daemon configuration file",
        description="Commands about the daemon's TOML configuration file.",
    )
    commands = parser.add_subparsers(
        title="commands", dest="config_command", metavar="COMMAND", required=True
    )
    check = commands.add_parser(
        "check",
        help="load FILE as the daemon would and print what it configures",
        description=(
            "Load FILE as `smpp-bridge run` would (environment references resolved, every key "
            "checked) and print a JSON summary without secrets; exit 2 with the offending key "
            "when it is wrong."
        ),
    )
    check.add_argument("file", metavar="FILE", help="the daemon's TOML configuration")
    check.add_argument("--pretty", action="store_true", help="indent the JSON")
    check.set_defaults(handler=check_config)


def check_config(args: argparse.Namespace) -> int:
    from ..bridge.config import ConfigError, load_config

    try:
        config = load_config(args.file)
    except ConfigError as exc:
        details = {"path": exc.path} if exc.path else {}
        raise CliError(exc.reason, **details, file=args.file) from None
    except OSError as exc:
        raise CliError(f"cannot read the file: {exc.strerror or exc}", file=args.file) from None
    write_json({"ok": True, "file": args.file, **config.summary()}, pretty=args.pretty)
    return EXIT_OK
