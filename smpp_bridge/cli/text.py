"""``smpp-bridge text split``: how a text would be encoded and segmented into short messages."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any, Final

from ..codec.jsonform import tlv_to_dict
from ..codec.segment import SplitMessage, split_text
from ..codec.text import DEFAULT_PROFILE, REFERENCE_PROFILE, EncodingProfile, profile_named
from . import EXIT_OK, CliError, write_json

if TYPE_CHECKING:
    from . import Subparsers

ENCODINGS: Final = ("auto", "gsm7", "latin9", "latin1", "ucs2")
CONCATS: Final = ("udh8", "udh16", "sar", "payload")
PROFILES: Final = ("spec", "reference")


def register(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "text",
        help="encode and segment message text",
        description="Show how a text is encoded and split into short messages.",
    )
    commands = parser.add_subparsers(title="commands", dest="text_command", required=True)
    split = commands.add_parser(
        "split",
        help="split a text into short_message parts",
        description=(
            "Print, as one JSON object, the encoding and data_coding chosen for TEXT and each "
            "part as it would travel in a submit_sm: short_message (hex), esm_class, udh (hex, "
            "when the part has one) and tlvs. With no TEXT, the text is read from stdin (one "
            "trailing newline removed). Errors exit with status 2 and one line of JSON on "
            "stderr."
        ),
    )
    split.add_argument("text", nargs="?", metavar="TEXT", help="the message text")
    split.add_argument(
        "--encoding",
        choices=ENCODINGS,
        default="auto",
        help="auto (default): GSM 7-bit when it fits, else UCS-2",
    )
    split.add_argument(
        "--concat",
        choices=CONCATS,
        default="udh8",
        help=(
            "how parts are tied together: UDH with an 8-bit (default) or 16-bit reference, "
            "SAR TLVs, or one message_payload TLV"
        ),
    )
    split.add_argument(
        "--profile",
        choices=PROFILES,
        default=None,
        help=(
            "the SMSC's data_coding table: 'spec' (3 = Latin-1) or 'reference' (3 = Latin-9); "
            f"default: {DEFAULT_PROFILE.name}, or reference with --encoding latin9"
        ),
    )
    split.add_argument(
        "--reference", type=int, default=0, metavar="N", help="concatenation reference number"
    )
    split.add_argument(
        "--max-parts", type=int, default=255, metavar="N", help="refuse texts needing more parts"
    )
    split.add_argument("--compact", action="store_true", help="print the JSON on one line")
    split.set_defaults(handler=split_command)


def _profile(args: argparse.Namespace) -> EncodingProfile:
    if args.profile is not None:
        return profile_named(args.profile)
    # Latin-9 has no data_coding in the SMPP table; the reference SMSC gives it 3.
    return REFERENCE_PROFILE if args.encoding == "latin9" else DEFAULT_PROFILE


def split_to_dict(split: SplitMessage, profile: EncodingProfile) -> dict[str, Any]:
    """The JSON shape ``text split`` prints."""
    parts: list[dict[str, Any]] = []
    for seg in split.segments:
        part: dict[str, Any] = {
            "short_message": seg.short_message.hex(),
            "esm_class": seg.esm_class,
            "units": seg.units,
        }
        if seg.udh:
            part["udh"] = seg.udh.hex()
        part["tlvs"] = [tlv_to_dict(t) for t in seg.tlvs]
        parts.append(part)
    return {
        "profile": profile.name,
        "encoding": split.encoding,
        "data_coding": split.data_coding,
        "locking_shift": split.locking_shift,
        "single_shift": split.single_shift,
        "parts": len(parts),
        "units": [p["units"] for p in parts],
        "segments": parts,
    }


def split_command(args: argparse.Namespace) -> int:
    if args.text is None:
        text = sys.stdin.read()
        text = text.removesuffix("\n").removesuffix("\r")
    else:
        text = args.text
    profile = _profile(args)
    try:
        split = split_text(
            text,
            profile=profile,
            encoding=args.encoding,
            concat=args.concat,
            reference=args.reference,
            max_parts=args.max_parts,
        )
    except ValueError as exc:
        # EncodingError (a ValueError) or an argument split_text refuses.
        raise CliError(str(exc), encoding=args.encoding, profile=profile.name) from None
    write_json(split_to_dict(split, profile), pretty=not args.compact)
    return EXIT_OK
