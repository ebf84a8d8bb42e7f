"""``smpp-bridge pdu decode|encode``: one PDU between wire hex and its JSON form (``jsonform``)."""

from __future__ import annotations

import argparse
import re
import sys
from typing import TYPE_CHECKING, Final

import msgspec

from ..codec.constants import status_name
from ..codec.jsonform import pdu_from_dict, pdu_to_dict
from ..codec.pdus import PDU_TYPES_BY_NAME, Pdu, decode, encode
from ..codec.text import DEFAULT_PROFILE, EncodingProfile, profile_named
from ..errors import FieldError, RemoteProtocolError
from . import EXIT_OK, CliError, write_json

if TYPE_CHECKING:
    from . import Subparsers

PROFILES: Final = ("spec", "reference")

_SEPARATORS = re.compile(r"[\s:,]+")
_HEX_DIGITS = re.compile(r"[0-9a-fA-F]*")

_JSON_SHAPE = """\
The JSON object: "command" (e.g. "submit_sm"), "command_id", "command_status" (an int; a name
such as "ESME_RTHROTTLED" is accepted on input) and "command_status_name", "sequence_number",
every mandatory field by its SMPP name (octet strings such as short_message in hex;
dest_addresses and unsuccess_smes as arrays of objects), "tlvs" as an ordered array of
{"tag": name, "value": typed value} (hex for octet strings and unknown tags) or
{"tag": name, "hex": raw octets} when the value is not well-formed for its tag. Message PDUs
also show "text" (decoded under --profile, UDH removed) and "udh" (hex, when esm_class has
0x40); encode ignores those two and "command_status_name"."""


def register(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "pdu",
        help="decode and encode single PDUs (hex <-> JSON)",
        description="Convert one SMPP PDU between wire hex and JSON.",
        epilog=_JSON_SHAPE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(title="commands", dest="pdu_command", required=True)

    dec = commands.add_parser(
        "decode",
        help="print a PDU given in hex as JSON",
        description=(
            "Print the PDU given in hex as one JSON object, indented (--compact: on one line).\n"
            "Hex may contain spaces, colons, commas and 0x prefixes; with no HEX argument it\n"
            "is read from stdin. Bad input (not hex, truncated, malformed, unknown command_id)\n"
            "exits with status 2 and one line of JSON on stderr, e.g.\n"
            '{"error": "...", "command_status": 2, "sequence_number": 9}.'
        ),
        epilog=_JSON_SHAPE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    dec.add_argument("hex", nargs="*", metavar="HEX", help="the PDU, header included")
    _add_profile(dec)
    dec.add_argument("--compact", action="store_true", help="print the JSON on one line")
    dec.set_defaults(handler=decode_command)

    enc = commands.add_parser(
        "encode",
        help="print the hex of a PDU given as JSON",
        description=(
            "Read one PDU as JSON (the shape `pdu decode` prints) from FILE or stdin and\n"
            "print its wire form in lowercase hex. Bad JSON or a bad field exits with status 2\n"
            'and one line of JSON on stderr: {"error": "...", "field": "..."}.'
        ),
        epilog=_JSON_SHAPE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    enc.add_argument(
        "file", nargs="?", default="-", metavar="FILE", help="JSON file ('-' or absent: stdin)"
    )
    enc.set_defaults(handler=encode_command)


def _add_profile(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--profile",
        choices=PROFILES,
        default=None,
        help=(
            "which charset each data_coding means when decoding text: 'spec' (SMPP: 3 is "
            "Latin-1) or 'reference' (3 is Latin-9); default: "
            f"{DEFAULT_PROFILE.name}"
        ),
    )


def _profile(name: str | None) -> EncodingProfile:
    return DEFAULT_PROFILE if name is None else profile_named(name)


def parse_hex(text: str) -> bytes:
    """The octets of ``text``: hex digits, optionally split by spaces/colons/commas, 0x-prefixed."""
    digits: list[str] = []
    for token in _SEPARATORS.split(text.strip()):
        bare = token[2:] if token[:2] in ("0x", "0X") else token
        if not _HEX_DIGITS.fullmatch(bare):
            raise CliError(f"not hex: {token[:40]!r}")
        digits.append(bare)
    joined = "".join(digits)
    if not joined:
        raise CliError("no hex digits in the input")
    if len(joined) % 2:
        raise CliError(f"odd number of hex digits ({len(joined)}): the last octet is incomplete")
    return bytes.fromhex(joined)


def decode_command(args: argparse.Namespace) -> int:
    text = " ".join(args.hex) if args.hex else sys.stdin.read()
    frame = parse_hex(text)
    try:
        pdu = decode(frame)
    except RemoteProtocolError as exc:
        details: dict[str, object] = {
            "command_status": exc.command_status,
            "command_status_name": status_name(exc.command_status),
            "sequence_number": exc.sequence_number,
        }
        if exc.command_id is not None:
            details["command_id"] = exc.command_id
        raise CliError(str(exc), **details) from None
    write_json(pdu_to_dict(pdu, _profile(args.profile)), pretty=not args.compact)
    return EXIT_OK


def encode_command(args: argparse.Namespace) -> int:
    path: str = args.file
    if path == "-":
        data = sys.stdin.buffer.read()
    else:
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as exc:
            raise CliError(f"cannot read {path}: {exc.strerror}", file=path) from None
    try:
        obj = msgspec.json.decode(data)
    except msgspec.DecodeError as exc:
        raise CliError(f"invalid JSON: {exc}") from None
    try:
        pdu: Pdu = pdu_from_dict(obj)
        wire = encode(pdu)
    except FieldError as exc:
        details: dict[str, object] = {"field": exc.field}
        if exc.pdu in PDU_TYPES_BY_NAME:
            details["command"] = exc.pdu
        raise CliError(str(exc), **details) from None
    sys.stdout.write(wire.hex() + "\n")
    return EXIT_OK
