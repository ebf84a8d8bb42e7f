"""PDUs as JSON-ready dicts, and back, losslessly: the shape ``smpp-bridge pdu`` speaks.

``pdu_to_dict`` names everything in SMPP's own words: ``command`` (the snake-case PDU name),
``command_id``, ``command_status`` (+ ``command_status_name``), ``sequence_number``, every
mandatory field by its SMPP name, ``tlvs`` as an ordered list (tags may repeat and order is
kept), and for text-bearing PDUs the derived ``text`` and ``udh``. ``pdu_from_dict`` reads the
same shape back, ignores the derived keys and refuses anything it does not know, naming it.

The two are inverse: ``pdu_from_dict(pdu_to_dict(p)) == p`` for every PDU ``decode`` can return,
including TLVs whose value is malformed for their tag (kept as raw ``hex``) and vendor tags.
``pdu_from_dict`` checks shapes and types only; ranges and lengths are ``encode``'s job, so a
PDU read off the wire that our encoder would refuse still round-trips through JSON.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any, Final

from ..errors import EncodingError, FieldError
from .constants import ESM_UDHI, CommandStatus, status_name
from .pdus import (
    PDU_TYPES,
    PDU_TYPES_BY_NAME,
    CStr,
    DataSm,
    DeliverSm,
    DestAddresses,
    Destination,
    DistributionList,
    Int,
    Pdu,
    ReplaceSm,
    ShortMessage,
    SmeAddress,
    SubmitMulti,
    SubmitSm,
    UnsuccessSme,
    UnsuccessSmes,
    layout,
)
from .segment import decode_short_message
from .text import DEFAULT_PROFILE, EncodingProfile
from .tlv import TLV_SPECS, Tag, Tlv, resolve_tag

__all__ = ["pdu_from_dict", "pdu_to_dict", "tlv_from_dict", "tlv_to_dict"]

_HEADER_KEYS: Final = ("command", "command_id", "command_status", "sequence_number")
# Derived on output, ignored on input.
_DERIVED_KEYS: Final = frozenset({"command_status_name"})
_TEXT_KEYS: Final = frozenset({"text", "udh"})
# PDUs whose body is a message, so ``text``/``udh`` are shown. replace_sm carries neither
# data_coding nor esm_class: its text is read as data_coding 0 without UDH.
_TEXT_PDUS: Final[frozenset[type[Pdu]]] = frozenset(
    {SubmitSm, DeliverSm, SubmitMulti, ReplaceSm, DataSm}
)

# --------------------------------------------------------------------------------------------
# TLVs


def tlv_to_dict(tlv: Tlv) -> dict[str, Any]:
    """``{"tag": name, "value": typed}``, or ``{"tag": name, "hex": raw}`` when not canonical.

    ``value`` is typed by the tag: an int, a str, hex for octet strings and unknown tags, null
    for a flag without value. A value that would not re-encode to exactly the same octets (a
    wrong size for its tag, a C string without its NUL) is kept as raw ``hex`` instead, so the
    TLV re-encodes byte for byte.
    """
    spec = TLV_SPECS.get(tlv.tag)
    typed = tlv.typed()
    value: int | str | None
    if spec is None or spec.kind == "octets":
        value = tlv.value.hex()
    elif isinstance(typed, bytes):
        # An int/cstr/flag tag whose octets do not read as that type.
        return {"tag": tlv.name, "hex": tlv.value.hex()}
    else:
        value = typed
    try:
        canonical = Tlv.make(tlv.tag, typed) == tlv
    except FieldError:
        canonical = False
    if canonical:
        return {"tag": tlv.name, "value": value}
    return {"tag": tlv.name, "hex": tlv.value.hex()}


def tlv_from_dict(obj: object, *, pdu: str = "tlv", field: str = "tlv") -> Tlv:
    """The TLV described by ``obj`` (the shape of ``tlv_to_dict``).

    ``tag`` is a name (``message_state``, ``vendor_0x1400``, ``0x1400``) or a number. ``value``
    is typed and validated against the tag's spec; ``hex`` is taken raw, for any tag.
    Errors are ``FieldError`` naming ``pdu`` and ``field``.
    """
    if not isinstance(obj, Mapping):
        raise FieldError(pdu, field, f"expected an object, got {_json_type(obj)}")
    _reject_unknown(pdu, field + ".", obj, ("tag", "value", "hex"))
    if "tag" not in obj:
        raise FieldError(pdu, field + ".tag", "missing")
    tag_obj = obj["tag"]
    if not isinstance(tag_obj, str | int) or isinstance(tag_obj, bool):
        raise FieldError(pdu, field + ".tag", f"expected a name or a number, got {tag_obj!r}")
    try:
        tag = resolve_tag(tag_obj)
    except FieldError as exc:
        raise FieldError(pdu, field + ".tag", f"{tag_obj!r}: {exc.reason}") from None
    if ("value" in obj) == ("hex" in obj):
        raise FieldError(pdu, field, 'needs exactly one of "value" (typed) or "hex" (raw)')
    if "hex" in obj:
        return Tlv(tag, _hex(pdu, field + ".hex", obj["hex"]))
    value = obj["value"]
    path = field + ".value"
    spec = TLV_SPECS.get(tag)
    typed: int | str | bytes | None
    if spec is None or spec.kind == "octets":
        typed = _hex(pdu, path, value)
    elif spec.kind == "int":
        typed = _int(pdu, path, value)
    elif spec.kind == "cstr":
        typed = _str(pdu, path, value)
    else:
        # A flag: null when present without a value, else one octet.
        typed = None if value is None else _int(pdu, path, value)
    try:
        return Tlv.make(tag, typed)
    except FieldError as exc:
        raise FieldError(pdu, path, f"{exc.field}: {exc.reason}") from None


# --------------------------------------------------------------------------------------------
# PDUs


def pdu_to_dict(pdu: Pdu, profile: EncodingProfile = DEFAULT_PROFILE) -> dict[str, Any]:
    """The PDU as a dict of JSON values (see the module docstring); ``profile`` reads ``text``."""
    out: dict[str, Any] = {
        "command": pdu.command_name,
        "command_id": pdu.command_id,
        "command_status": pdu.command_status,
        "command_status_name": status_name(pdu.command_status),
        "sequence_number": pdu.sequence_number,
    }
    for name, kind in layout(type(pdu)):
        value = getattr(pdu, name)
        if isinstance(kind, ShortMessage):
            out[name] = value.hex()
        elif isinstance(kind, DestAddresses):
            out[name] = [_dest_to_dict(d) for d in value]
        elif isinstance(kind, UnsuccessSmes):
            out[name] = [_unsuccess_to_dict(u) for u in value]
        else:
            out[name] = value
    out["tlvs"] = [tlv_to_dict(t) for t in pdu.tlv_list]
    if type(pdu) in _TEXT_PDUS:
        out.update(_text_of(pdu, profile))
    return out


def pdu_from_dict(d: object) -> Pdu:
    """The PDU described by ``d`` (the shape of ``pdu_to_dict``).

    ``command`` (or ``command_id``) picks the PDU type; both may be given when they agree.
    ``command_status`` is an int or a name (``ESME_RTHROTTLED``, ``0x00000058``). Missing
    fields take their defaults; ``text``, ``udh`` and ``command_status_name`` are ignored;
    any other unknown key is an error. Raises ``FieldError`` naming the offending field.
    """
    if not isinstance(d, Mapping):
        raise FieldError("pdu", "(root)", f"expected a JSON object, got {_json_type(d)}")
    cls = _pdu_type(d)
    name = cls.command_name
    fields = layout(cls)
    allowed = [*_HEADER_KEYS, *(f for f, _ in fields), "tlvs", *_DERIVED_KEYS]
    if cls in _TEXT_PDUS:
        allowed.extend(_TEXT_KEYS)
    _reject_unknown(name, "", d, allowed)

    kwargs: dict[str, Any] = {}
    if "sequence_number" in d:
        kwargs["sequence_number"] = _int(name, "sequence_number", d["sequence_number"])
    if "command_status" in d:
        kwargs["command_status"] = _status(name, "command_status", d["command_status"])
    for field, kind in fields:
        if field not in d:
            continue
        value = d[field]
        if isinstance(kind, Int):
            kwargs[field] = _int(name, field, value)
        elif isinstance(kind, CStr):
            kwargs[field] = _str(name, field, value)
        elif isinstance(kind, ShortMessage):
            kwargs[field] = _hex(name, field, value)
        elif isinstance(kind, DestAddresses):
            items = _list(name, field, value)
            kwargs[field] = tuple(
                _dest_from_dict(name, f"{field}[{i}]", item) for i, item in enumerate(items)
            )
        else:
            items = _list(name, field, value)
            kwargs[field] = tuple(
                _unsuccess_from_dict(name, f"{field}[{i}]", item) for i, item in enumerate(items)
            )
    if "tlvs" in d:
        items = _list(name, "tlvs", d["tlvs"])
        kwargs["tlvs"] = tuple(
            tlv_from_dict(item, pdu=name, field=f"tlvs[{i}]") for i, item in enumerate(items)
        )
    return cls(**kwargs)


def _pdu_type(d: Mapping[str, object]) -> type[Pdu]:
    command = d.get("command")
    command_id = d.get("command_id")
    if command_id is not None and (not isinstance(command_id, int) or isinstance(command_id, bool)):
        raise FieldError("pdu", "command_id", f"expected an integer, got {command_id!r}")
    if command is None:
        if command_id is None:
            raise FieldError("pdu", "command", 'missing: name the PDU, e.g. "submit_sm"')
        by_id = PDU_TYPES.get(command_id)
        if by_id is None:
            raise FieldError("pdu", "command_id", f"unknown command_id 0x{command_id:08X}")
        return by_id
    if not isinstance(command, str):
        raise FieldError("pdu", "command", f"expected a PDU name, got {command!r}")
    cls = PDU_TYPES_BY_NAME.get(command)
    if cls is None:
        raise FieldError(
            "pdu", "command", f"unknown PDU {command!r}{_suggest(command, PDU_TYPES_BY_NAME)}"
        )
    if command_id is not None and command_id != cls.command_id:
        raise FieldError(
            command,
            "command_id",
            f"0x{command_id:08X} is not {command} (0x{cls.command_id:08X})",
        )
    return cls


# --------------------------------------------------------------------------------------------
# Structured mandatory fields


def _dest_to_dict(d: Destination) -> dict[str, Any]:
    if isinstance(d, SmeAddress):
        return {
            "dest_flag": 1,
            "dest_addr_ton": d.dest_addr_ton,
            "dest_addr_npi": d.dest_addr_npi,
            "destination_addr": d.destination_addr,
        }
    return {"dest_flag": 2, "dl_name": d.dl_name}


def _dest_from_dict(pdu: str, path: str, obj: object) -> Destination:
    if not isinstance(obj, Mapping):
        raise FieldError(pdu, path, f"expected an object, got {_json_type(obj)}")
    flag = obj.get("dest_flag")
    if flag is None:
        # Let a hand-written destination omit the flag: the keys say which kind it is.
        flag = 2 if "dl_name" in obj else 1
    if flag == 1 and not isinstance(flag, bool):
        _reject_unknown(
            pdu,
            path + ".",
            obj,
            ("dest_flag", "dest_addr_ton", "dest_addr_npi", "destination_addr"),
        )
        return SmeAddress(
            _str(pdu, path + ".destination_addr", obj.get("destination_addr", "")),
            _int(pdu, path + ".dest_addr_ton", obj.get("dest_addr_ton", 0)),
            _int(pdu, path + ".dest_addr_npi", obj.get("dest_addr_npi", 0)),
        )
    if flag == 2 and not isinstance(flag, bool):
        _reject_unknown(pdu, path + ".", obj, ("dest_flag", "dl_name"))
        return DistributionList(_str(pdu, path + ".dl_name", obj.get("dl_name", "")))
    raise FieldError(
        pdu, path + ".dest_flag", f"{flag!r} is neither 1 (SME) nor 2 (distribution list)"
    )


def _unsuccess_to_dict(u: UnsuccessSme) -> dict[str, Any]:
    return {
        "dest_addr_ton": u.dest_addr_ton,
        "dest_addr_npi": u.dest_addr_npi,
        "destination_addr": u.destination_addr,
        "error_status_code": u.error_status_code,
    }


def _unsuccess_from_dict(pdu: str, path: str, obj: object) -> UnsuccessSme:
    if not isinstance(obj, Mapping):
        raise FieldError(pdu, path, f"expected an object, got {_json_type(obj)}")
    _reject_unknown(
        pdu,
        path + ".",
        obj,
        ("dest_addr_ton", "dest_addr_npi", "destination_addr", "error_status_code"),
    )
    return UnsuccessSme(
        _str(pdu, path + ".destination_addr", obj.get("destination_addr", "")),
        _status(pdu, path + ".error_status_code", obj.get("error_status_code", 0)),
        _int(pdu, path + ".dest_addr_ton", obj.get("dest_addr_ton", 0)),
        _int(pdu, path + ".dest_addr_npi", obj.get("dest_addr_npi", 0)),
    )


# --------------------------------------------------------------------------------------------
# Text


def _text_of(pdu: Pdu, profile: EncodingProfile) -> dict[str, Any]:
    """``text`` and ``udh`` (when esm_class has UDHI) of a message PDU, as far as they exist."""
    esm_class: int = getattr(pdu, "esm_class", 0)
    data_coding: int = getattr(pdu, "data_coding", 0)
    body: bytes = getattr(pdu, "short_message", b"")
    if not body:
        payload = pdu.tlv(Tag.message_payload)
        if payload is not None:
            body = payload.value
    out: dict[str, Any] = {}
    try:
        decoded = decode_short_message(body, data_coding, esm_class, profile)
    except EncodingError:
        decoded = None  # a malformed UDH
    # Binary data_codings (2, 4, 8-bit TP-DCS groups) are not text: their octets are all
    # there is, in short_message.
    if decoded is not None and decoded.encoding != "binary":
        out["text"] = decoded.text
    if esm_class & ESM_UDHI and body and 1 + body[0] <= len(body):
        out["udh"] = body[: 1 + body[0]].hex()
    return out


# --------------------------------------------------------------------------------------------
# Typed reading of JSON values


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "an array"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__


def _int(pdu: str, field: str, value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise FieldError(pdu, field, f"expected an integer, got {_json_type(value)}")
    return value


def _str(pdu: str, field: str, value: object) -> str:
    if not isinstance(value, str):
        raise FieldError(pdu, field, f"expected a string, got {_json_type(value)}")
    return value


def _hex(pdu: str, field: str, value: object) -> bytes:
    if not isinstance(value, str):
        raise FieldError(pdu, field, f"expected a hex string, got {_json_type(value)}")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise FieldError(pdu, field, f"not a hex string: {value[:40]!r}") from None


def _list(pdu: str, field: str, value: object) -> list[object]:
    if not isinstance(value, list | tuple):
        raise FieldError(pdu, field, f"expected an array, got {_json_type(value)}")
    return list(value)


def _status(pdu: str, field: str, value: object) -> int:
    """A command_status given as an int, an SMPP name, or the hex label ``status_name`` gives."""
    if isinstance(value, str):
        if value in CommandStatus.__members__:
            return int(CommandStatus[value])
        label = value.removeprefix("VENDOR_")
        if label[:2].lower() == "0x":
            try:
                return int(label, 16)
            except ValueError:
                pass
        raise FieldError(
            pdu,
            field,
            f"unknown command_status {value!r}{_suggest(value, CommandStatus.__members__)}",
        )
    return _int(pdu, field, value)


def _reject_unknown(
    pdu: str, prefix: str, obj: Mapping[Any, object], allowed: tuple[str, ...] | list[str]
) -> None:
    unknown = [k for k in obj if k not in allowed]
    if not unknown:
        return
    names = ", ".join(f"{k!r}{_suggest(str(k), allowed)}" for k in unknown)
    plural = "s" if len(unknown) > 1 else ""
    raise FieldError(pdu, f"{prefix}{unknown[0]}", f"unknown field{plural} {names}")


def _suggest(word: str, choices: Mapping[str, object] | tuple[str, ...] | list[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
