"""The encoding half of the PDU codec: a straight-line encoder generated per PDU type from its
declared layout (the ``dataclasses`` technique), and ``diagnose``'s slow walk that names the
field a value cannot be encoded in."""

from __future__ import annotations

import struct
import typing
from collections.abc import Callable
from typing import Any, Final

from ..errors import FieldError
from .pdu_types import (
    MAX_DESTS,
    MAX_SHORT_MESSAGE,
    PDU_TYPES,
    CStr,
    DestAddresses,
    Destination,
    DistributionList,
    Int,
    Pdu,
    ShortMessage,
    SmeAddress,
    Time,
    UnsuccessSme,
    layout,
)
from .tlv import Tlv

_HEADER = struct.Struct(">IIII")
_INT_CODES = {1: "B", 2: "H", 4: "I"}


def _field_error(cls: type[Pdu], field: str, reason: str) -> FieldError:
    return FieldError(cls.command_name, field, reason)


def _cstr_bytes(cls: type[Pdu], field: str, value: object, max_octets: int, time: bool) -> bytes:
    """Validated wire octets (without NUL) of a C-Octet String field."""
    if not isinstance(value, str):
        raise _field_error(cls, field, f"expected str, got {type(value).__name__}")
    try:
        raw = value.encode("latin-1")
    except UnicodeEncodeError as exc:
        raise _field_error(cls, field, f"character {value[exc.start]!r} is not one octet") from None
    if b"\x00" in raw:
        raise _field_error(cls, field, "contains a NUL character")
    if time:
        if len(raw) not in (0, 16):
            raise _field_error(cls, field, f"time must be empty or 16 characters, got {len(raw)}")
    elif len(raw) >= max_octets:
        raise _field_error(cls, field, f"{len(raw)} characters, at most {max_octets - 1} allowed")
    return raw


def _check_int(cls: type[Pdu], field: str, value: object, size: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise _field_error(cls, field, f"expected int, got {type(value).__name__}")
    if not 0 <= value < 1 << (8 * size):
        raise _field_error(cls, field, f"{value} does not fit in {size} octet(s)")
    return value


def _encode_dests(cls: type[Pdu], dests: tuple[Destination, ...]) -> bytes:
    if not isinstance(dests, tuple | list):
        raise _field_error(cls, "dest_addresses", "expected a tuple of destinations")
    if not 1 <= len(dests) <= MAX_DESTS:
        raise _field_error(cls, "dest_addresses", f"{len(dests)} destinations, 1..255 allowed")
    out = [bytes((len(dests),))]
    for i, d in enumerate(dests):
        name = f"dest_addresses[{i}]"
        if isinstance(d, SmeAddress):
            ton = _check_int(cls, name + ".dest_addr_ton", d.dest_addr_ton, 1)
            npi = _check_int(cls, name + ".dest_addr_npi", d.dest_addr_npi, 1)
            addr = _cstr_bytes(cls, name + ".destination_addr", d.destination_addr, 21, False)
            out.append(bytes((1, ton, npi)) + addr + b"\x00")
        elif isinstance(d, DistributionList):
            out.append(
                b"\x02" + _cstr_bytes(cls, name + ".dl_name", d.dl_name, 21, False) + b"\x00"
            )
        else:
            raise _field_error(cls, name, "expected SmeAddress or DistributionList")
    return b"".join(out)


def _encode_unsuccess(cls: type[Pdu], items: tuple[UnsuccessSme, ...]) -> bytes:
    if not isinstance(items, tuple | list) or len(items) > 255:
        raise _field_error(cls, "unsuccess_smes", "expected a tuple of at most 255 entries")
    out = [bytes((len(items),))]
    for i, u in enumerate(items):
        name = f"unsuccess_smes[{i}]"
        if not isinstance(u, UnsuccessSme):
            raise _field_error(cls, name, "expected UnsuccessSme")
        ton = _check_int(cls, name + ".dest_addr_ton", u.dest_addr_ton, 1)
        npi = _check_int(cls, name + ".dest_addr_npi", u.dest_addr_npi, 1)
        addr = _cstr_bytes(cls, name + ".destination_addr", u.destination_addr, 21, False)
        code = _check_int(cls, name + ".error_status_code", u.error_status_code, 4)
        out.append(bytes((ton, npi)) + addr + b"\x00" + code.to_bytes(4, "big"))
    return b"".join(out)


_TLV_HEADER_PACK = struct.Struct(">HH").pack


def _encode_tlvs_checked(cls: type[Pdu], tlvs: object) -> bytes:
    """The wire form of a PDU's TLVs; ``FieldError`` names the first TLV that cannot go out.

    The fast path checks exact types only and lets ``pack`` refuse a tag or length that does
    not fit in two octets; anything it refuses is walked again by ``_encode_tlvs_slowly``,
    which builds the field names (f-strings cost more than the encoding) only then.
    """
    if type(tlvs) is tuple:
        out = []
        pack = _TLV_HEADER_PACK
        try:
            for t in tlvs:
                value = t.value
                tag = t.tag
                # An int or an IntEnum (``Tag``) but not a bool, as ``_check_int`` wants.
                if (
                    type(t) is not Tlv
                    or type(value) is not bytes
                    or (type(tag) is not int and (type(tag) is bool or not isinstance(tag, int)))
                ):
                    break
                out.append(pack(tag, len(value)) + value)
            else:
                return b"".join(out)
        except (struct.error, AttributeError):
            pass
    return _encode_tlvs_slowly(cls, tlvs)


def _encode_tlvs_slowly(cls: type[Pdu], tlvs: object) -> bytes:
    if not isinstance(tlvs, tuple | list):
        raise _field_error(cls, "tlvs", f"expected a tuple of Tlv, got {type(tlvs).__name__}")
    out = []
    for i, t in enumerate(tlvs):
        if not isinstance(t, Tlv):
            raise _field_error(cls, f"tlvs[{i}]", f"expected Tlv, got {type(t).__name__}")
        _check_int(cls, f"tlvs[{i}].tag", t.tag, 2)
        if not isinstance(t.value, bytes):
            raise _field_error(cls, f"tlvs[{i}].value", "expected bytes")
        if len(t.value) > 0xFFFF:
            raise _field_error(cls, f"tlvs[{i}].value", f"{len(t.value)} octets exceed 65535")
        out.append(struct.pack(">HH", t.tag, len(t.value)) + t.value)
    return b"".join(out)


def _diagnose(cls: type[Pdu], pdu: Pdu, seq: int) -> FieldError:
    """Walk the fields slowly and return the error for the first one that cannot be encoded."""
    try:
        # ``seq`` is the number being encoded: the PDU's own or the caller's override.
        _check_int(cls, "sequence_number", seq, 4)
        _check_int(cls, "command_status", pdu.command_status, 4)
        for name, kind in layout(cls):
            value = getattr(pdu, name)
            if isinstance(kind, CStr):
                _cstr_bytes(cls, name, value, kind.max, isinstance(kind, Time))
            elif isinstance(kind, Int):
                _check_int(cls, name, value, kind.size)
            elif isinstance(kind, ShortMessage):
                if not isinstance(value, bytes | bytearray):
                    raise _field_error(cls, name, f"expected bytes, got {type(value).__name__}")
                if len(value) > MAX_SHORT_MESSAGE:
                    raise _field_error(
                        cls, name, f"{len(value)} octets, at most 254 (use message_payload)"
                    )
            elif isinstance(kind, DestAddresses):
                _encode_dests(cls, value)
            else:
                _encode_unsuccess(cls, value)
        _encode_tlvs_checked(cls, getattr(pdu, "tlvs", ()))
    except FieldError as exc:
        return exc
    return _field_error(cls, "?", "cannot be encoded")


def _compile_encoder(cls: type[Pdu]) -> Callable[[Pdu, int], bytes]:
    """Generate ``encode(pdu, sequence_number) -> bytes`` for one PDU type."""
    ns: dict[str, Any] = {
        "cls": cls,
        "HEADER": _HEADER.pack,
        "Tlv": Tlv,
        "diagnose": _diagnose,
        "encode_dests": _encode_dests,
        "encode_unsuccess": _encode_unsuccess,
        "encode_tlvs": _encode_tlvs_checked,
        "FieldError": FieldError,
        "struct": struct,
    }
    lines: list[str] = []
    pieces: list[str] = []  # expressions of bytes, joined in order
    int_group: list[tuple[str, int]] = []  # pending consecutive integers (expr, size)

    def flush_ints() -> None:
        if not int_group:
            return
        fmt = ">" + "".join(_INT_CODES[size] for _, size in int_group)
        key = f"P{len(ns)}"
        ns[key] = struct.Struct(fmt).pack
        pieces.append(f"{key}({', '.join(e for e, _ in int_group)})")
        int_group.clear()

    for name, kind in layout(cls):
        if isinstance(kind, Int):
            int_group.append((f"p.{name}", kind.size))
        elif isinstance(kind, CStr):
            flush_ints()
            var = f"v_{name}"
            # An empty string (the usual service_type and times) needs no encoding or checks;
            # anything else, a non-str included, takes the checked path.
            lines.append(f"    {var} = p.{name}")
            lines.append(f"    if {var} == '':")
            lines.append(f"      {var} = b''")
            lines.append("    else:")
            lines.append(f"      {var} = {var}.encode('latin-1')")
            if isinstance(kind, Time):
                lines.append(f"      if len({var}) != 16 or 0 in {var}: raise ERR")
            else:
                lines.append(f"      if len({var}) >= {kind.max} or 0 in {var}: raise ERR")
            pieces.append(var)
            pieces.append("b'\\x00'")
        elif isinstance(kind, ShortMessage):
            lines.append(f"    sm = p.{name}")
            lines.append(f"    if len(sm) > {MAX_SHORT_MESSAGE}: raise ERR")
            int_group.append(("len(sm)", 1))
            flush_ints()
            pieces.append("sm")
        elif isinstance(kind, DestAddresses):
            flush_ints()
            pieces.append(f"encode_dests(cls, p.{name})")
        else:
            flush_ints()
            pieces.append(f"encode_unsuccess(cls, p.{name})")
    flush_ints()
    joined = "".join(f"{e}, " for e in pieces)
    lines.append("    tl = p.tlvs")
    lines.append("    if tl:")
    # The trailing comma keeps it a tuple when there are no mandatory fields (enquire_link...).
    lines.append(f"        body = b''.join(({joined}encode_tlvs(cls, tl),))")
    lines.append("    else:")
    lines.append(f"        body = b''.join(({joined}))")
    lines.append("    return HEADER(16 + len(body), CID, p.command_status, seq) + body")
    src = (
        "def encode(p, seq):\n"
        "  try:\n"
        + "\n".join("  " + line for line in lines)
        + "\n  except FieldError:\n    raise\n"
        "  except Exception:\n    raise diagnose(cls, p, seq) from None\n"
        "  raise diagnose(cls, p, seq)\n"
    )
    # ``raise ERR`` jumps to the except branch, which names the field.
    src = src.replace("raise ERR", "raise ValueError")
    ns["CID"] = cls.command_id
    exec(compile(src, f"<smpp encoder {cls.command_name}>", "exec"), ns)
    return typing.cast(Callable[[Pdu, int], bytes], ns["encode"])


ENCODERS: Final[dict[type[Pdu], Callable[[Pdu, int], bytes]]] = {
    cls: _compile_encoder(cls) for cls in PDU_TYPES.values()
}


def encode(pdu: Pdu, sequence_number: int | None = None) -> bytes:
    """The wire bytes of ``pdu``; ``sequence_number`` overrides the PDU's own when given.

    Raises ``FieldError`` naming the field when a value cannot be encoded exactly.
    """
    try:
        enc = ENCODERS[type(pdu)]
    except KeyError:
        raise TypeError(f"not an SMPP PDU: {type(pdu).__name__}") from None
    return enc(pdu, pdu.sequence_number if sequence_number is None else sequence_number)
