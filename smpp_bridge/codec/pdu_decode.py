"""The decoding half of the PDU codec: a straight-line decoder generated per PDU type from its
declared layout, one ``decode`` with the steady-state types inlined, the slow walk
(``_walk_decode``) that names the offending field when the fast decoder fails, and the answer
to a PDU that cannot be decoded (``error_response``)."""

from __future__ import annotations

import struct
import typing
from collections.abc import Callable
from typing import Any, Final

from ..errors import RemoteProtocolError
from .constants import (
    HEADER_LENGTH,
    RESPONSE_BIT,
)
from .pdu_encode import _HEADER, _INT_CODES
from .pdu_types import (
    PDU_TYPES,
    CStr,
    DeliverSm,
    DeliverSmResp,
    DestAddresses,
    Destination,
    DistributionList,
    EnquireLink,
    EnquireLinkResp,
    GenericNack,
    Int,
    Pdu,
    S,
    ShortMessage,
    SmeAddress,
    SubmitSm,
    SubmitSmResp,
    Time,
    UnsuccessSme,
    layout,
)
from .tlv import Tlv

_TLV_HEADER = struct.Struct(">HH")


def _decode_tlvs(frame: bytes, pos: int, end: int, seq: int, cid: int) -> tuple[Tlv, ...]:
    out = []
    unpack = _TLV_HEADER.unpack_from
    while pos < end:
        if pos + 4 > end:
            raise RemoteProtocolError(
                f"truncated TLV header at offset {pos}",
                command_status=S.ESME_RINVOPTPARSTREAM,
                sequence_number=seq,
                command_id=cid,
            )
        tag, length = unpack(frame, pos)
        pos += 4
        nxt = pos + length
        if nxt > end:
            raise RemoteProtocolError(
                f"TLV 0x{tag:04X} length {length} runs past the end of the PDU",
                command_status=S.ESME_RINVOPTPARSTREAM,
                sequence_number=seq,
                command_id=cid,
            )
        out.append(Tlv(tag, frame[pos:nxt]))
        pos = nxt
    return tuple(out)


def _read_cstr(frame: bytes, pos: int, end: int, max_octets: int) -> tuple[str, int]:
    # The NUL must come within the field's maximum (sheet 3.1): scanning further would let a
    # missing terminator swallow the following fields and surface as some later, wrong error.
    i = frame.index(0, pos, min(end, pos + max_octets))
    return frame[pos:i].decode("latin-1"), i + 1


def _decode_dests(frame: bytes, pos: int, end: int) -> tuple[tuple[Destination, ...], int]:
    count = frame[pos]
    if count == 0:
        # number_of_dests is 1..254 (v5.0: 255); the encoder refuses an empty list too.
        raise _BadDests("number_of_dests is 0", S.ESME_RINVNUMDESTS)
    pos += 1
    out: list[Destination] = []
    for _ in range(count):
        flag = frame[pos]
        if flag == 1:
            ton, npi = frame[pos + 1], frame[pos + 2]
            addr, pos = _read_cstr(frame, pos + 3, end, 21)
            out.append(SmeAddress(addr, ton, npi))
        elif flag == 2:
            name, pos = _read_cstr(frame, pos + 1, end, 21)
            out.append(DistributionList(name))
        else:
            raise _BadDests(
                f"dest_flag {flag} is neither 1 (SME) nor 2 (distribution list)",
                S.ESME_RINVDESTFLAG,
            )
    return tuple(out), pos


class _BadDests(Exception):
    """A submit_multi destination list error that has its own command_status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = int(status)


def _decode_unsuccess(frame: bytes, pos: int, end: int) -> tuple[tuple[UnsuccessSme, ...], int]:
    count = frame[pos]
    pos += 1
    out: list[UnsuccessSme] = []
    for _ in range(count):
        ton, npi = frame[pos], frame[pos + 1]
        addr, pos = _read_cstr(frame, pos + 2, end, 21)
        if pos + 4 > end:
            raise IndexError("error_status_code truncated")
        (code,) = struct.unpack_from(">I", frame, pos)
        pos += 4
        out.append(UnsuccessSme(addr, code, ton, npi))
    return tuple(out), pos


def _walk_decode(cls: type[Pdu], frame: bytes, seq: int, status: int) -> RemoteProtocolError:
    """Re-read a body that failed fast decoding and describe the first field that is wrong."""
    end = len(frame)
    pos = HEADER_LENGTH
    cid = cls.command_id
    for name, kind in layout(cls):
        try:
            if isinstance(kind, Int):
                if pos + kind.size > end:
                    raise IndexError
                pos += kind.size
            elif isinstance(kind, CStr):
                i = frame.index(0, pos, min(end, pos + kind.max))
                if isinstance(kind, Time) and i - pos not in (0, 16):
                    return RemoteProtocolError(
                        f"{cls.command_name}.{name}: time field of {i - pos} characters "
                        "(must be empty or 16)",
                        command_status=kind.status,
                        sequence_number=seq,
                        command_id=cid,
                    )
                pos = i + 1
            elif isinstance(kind, ShortMessage):
                n = frame[pos]
                pos += 1 + n
                if pos > end:
                    return RemoteProtocolError(
                        f"{cls.command_name}.{name}: sm_length {n} runs past the end of the PDU",
                        command_status=S.ESME_RINVMSGLEN,
                        sequence_number=seq,
                        command_id=cid,
                    )
            elif isinstance(kind, DestAddresses):
                _, pos = _decode_dests(frame, pos, end)
            else:
                _, pos = _decode_unsuccess(frame, pos, end)
        except _BadDests as exc:
            return RemoteProtocolError(
                f"{cls.command_name}.{name}: {exc}",
                command_status=exc.status,
                sequence_number=seq,
                command_id=cid,
            )
        except (ValueError, IndexError):
            status_for = kind.status if isinstance(kind, CStr) else S.ESME_RINVCMDLEN
            what = (
                f"has no NUL terminator within {kind.max} octets"
                if isinstance(kind, CStr)
                else "is truncated"
            )
            return RemoteProtocolError(
                f"{cls.command_name}.{name} {what} (offset {pos}, PDU length {end})",
                command_status=status_for,
                sequence_number=seq,
                command_id=cid,
            )
    return RemoteProtocolError(
        f"{cls.command_name}: malformed body",
        command_status=S.ESME_RINVCMDLEN,
        sequence_number=seq,
        command_id=cid,
    )


def _decoder_lines(cls: type[Pdu], ns: dict[str, Any], var: str) -> list[str]:
    """Straight-line source that decodes the body of a ``cls`` frame ``f`` (header already in
    ``seq``/``status``, ``end = len(f)``) and returns the PDU. ``var`` names ``cls`` in ``ns``;
    helpers it needs are added to ``ns`` under unique names."""
    ns[var] = cls
    ns[f"{var}_CID"] = cls.command_id
    fields = layout(cls)
    lines = ["pos = 16"]
    if cls.is_response and fields:
        # Error responses usually omit the body (and some peers omit it even on success).
        lines.append(f"if end == 16: return {var}(seq, status)")
    args: list[str] = []
    i = 0
    while i < len(fields):
        name, kind = fields[i]
        if isinstance(kind, Int):
            # Read a run of consecutive integers in one go.
            run = [(name, kind)]
            while i + 1 < len(fields) and isinstance(fields[i + 1][1], Int):
                i += 1
                run.append(typing.cast(tuple[str, Int], fields[i]))
            if all(k.size == 1 for _, k in run):
                n = len(run)
                if n == 1:
                    lines.append(f"{name} = f[pos]")
                else:
                    names = ", ".join(nm for nm, _ in run)
                    lines.append(f"{names} = f[pos:pos + {n}]")
                lines.append(f"pos += {n}")
            else:
                fmt = ">" + "".join(_INT_CODES[k.size] for _, k in run)
                key = f"U{len(ns)}"
                st = struct.Struct(fmt)
                ns[key] = st.unpack_from
                names = ", ".join(nm for nm, _ in run)
                lines.append(f"if pos + {st.size} > end: raise IndexError")
                lines.append(f"{names}{',' if len(run) == 1 else ''} = {key}(f, pos)")
                lines.append(f"pos += {st.size}")
            args.extend(nm for nm, _ in run)
        elif isinstance(kind, CStr):
            # Empty is the usual value of service_type and the time fields: one index
            # instead of a search, a slice and a decode.
            lines.append("if f[pos] == 0:")
            lines.append(f"  {name} = ''")
            lines.append("  pos += 1")
            lines.append("else:")
            lines.append(f"  i = f.index(0, pos, pos + {kind.max})")
            if isinstance(kind, Time):
                lines.append("  if i - pos != 16: raise ValueError")
            lines.append(f"  {name} = f[pos:i].decode('latin-1')")
            lines.append("  pos = i + 1")
            args.append(name)
        elif isinstance(kind, ShortMessage):
            lines.append("n = f[pos]")
            lines.append("pos += 1")
            lines.append(f"{name} = f[pos:pos + n]")
            lines.append("pos += n")
            lines.append("if pos > end: raise IndexError")
            args.append(name)
        elif isinstance(kind, DestAddresses):
            lines.append(f"{name}, pos = decode_dests(f, pos, end)")
            args.append(name)
        else:
            lines.append(f"{name}, pos = decode_unsuccess(f, pos, end)")
            args.append(name)
        i += 1
    lines.append(f"tlvs = decode_tlvs(f, pos, end, seq, {var}_CID) if pos < end else ()")
    args.append("tlvs")
    lines.append(f"return {var}(seq, status, {', '.join(args)})")
    return lines


_DECODER_HELPERS: Final[dict[str, Any]] = {
    "decode_tlvs": _decode_tlvs,
    "decode_dests": _decode_dests,
    "decode_unsuccess": _decode_unsuccess,
    "walk": _walk_decode,
    "BadDests": _BadDests,
}


def _build(name: str, signature: str, body: list[str], ns: dict[str, Any]) -> Any:
    """Compile ``def name(signature)`` as a closure over ``ns`` (free variables are read
    from cells, as fast as locals, and cost nothing per call)."""
    src = (
        f"def make({', '.join(ns)}):\n"
        f" def {name}({signature}):\n"
        + "".join(f"  {line}\n" for line in body)
        + f" return {name}\n"
    )
    scope: dict[str, Any] = {}
    exec(compile(src, f"<smpp {name}>", "exec"), scope)
    return scope["make"](**ns)


def _compile_decoder(cls: type[Pdu]) -> Callable[[bytes, int, int], Pdu]:
    """Generate ``decode(frame, seq, status) -> Pdu`` for one PDU type (header already read)."""
    ns = dict(_DECODER_HELPERS)
    body = ["try:", "  end = len(f)"]
    body += ["  " + line for line in _decoder_lines(cls, ns, "cls")]
    body += [
        "except (ValueError, IndexError, BadDests):",
        "  raise walk(cls, f, seq, status) from None",
    ]
    return typing.cast(
        Callable[[bytes, int, int], Pdu], _build("decode", "f, seq, status", body, ns)
    )


DECODERS: Final[dict[int, Callable[[bytes, int, int], Pdu]]] = {
    cid: _compile_decoder(cls) for cid, cls in PDU_TYPES.items()
}


def _short_frame(frame: bytes) -> RemoteProtocolError:
    return RemoteProtocolError(
        f"PDU of {len(frame)} octets is shorter than the 16-octet header",
        command_status=S.ESME_RINVCMDLEN,
        fatal=True,
    )


def _bad_length(length: int, end: int, cid: int, seq: int) -> RemoteProtocolError:
    return RemoteProtocolError(
        f"command_length {length} does not match the {end} octets of the PDU",
        command_status=S.ESME_RINVCMDLEN,
        sequence_number=seq,
        command_id=cid,
        fatal=True,
    )


def _unknown_command(cid: int, seq: int) -> RemoteProtocolError:
    return RemoteProtocolError(
        f"unknown command_id 0x{cid:08X}",
        command_status=S.ESME_RINVCMDID,
        sequence_number=seq,
        command_id=cid,
    )


# The PDUs of steady-state traffic, most frequent first: their bodies are inlined into
# ``decode`` (no second call); every other type goes through ``DECODERS``.
_INLINED: Final[tuple[type[Pdu], ...]] = (
    SubmitSmResp,
    DeliverSm,
    SubmitSm,
    DeliverSmResp,
    EnquireLinkResp,
    EnquireLink,
)


def _compile_decode() -> Callable[[bytes], Pdu]:
    ns = dict(_DECODER_HELPERS)
    ns.update(
        HEADER=_HEADER.unpack_from,
        struct_error=struct.error,
        short_frame=_short_frame,
        bad_length=_bad_length,
        unknown_command=_unknown_command,
        get_decoder=DECODERS.get,
    )
    body = [
        "try:",
        "  length, cid, status, seq = HEADER(f)",
        "except struct_error:",
        "  raise short_frame(f) from None",
        "end = len(f)",
        "if length != end: raise bad_length(length, end, cid, seq)",
    ]
    for n, cls in enumerate(_INLINED):
        var = f"T{n}"
        body.append(f"{'if' if n == 0 else 'elif'} cid == {cls.command_id}:")
        body.append("  try:")
        body += ["    " + line for line in _decoder_lines(cls, ns, var)]
        body.append("  except (ValueError, IndexError, BadDests):")
        body.append(f"    raise walk({var}, f, seq, status) from None")
    body += [
        "dec = get_decoder(cid)",
        "if dec is None: raise unknown_command(cid, seq)",
        "return dec(f, seq, status)",
    ]
    return typing.cast(Callable[[bytes], Pdu], _build("decode", "f", body, ns))


decode: Final[Callable[[bytes], Pdu]] = _compile_decode()
decode.__doc__ = """The PDU in ``frame`` (exactly one PDU, header included).

Raises ``RemoteProtocolError`` (and nothing else) for any malformed input; it carries the
sequence number, the command_id and the command_status to answer with.
"""


def error_response(error: RemoteProtocolError) -> Pdu | None:
    """The PDU that answers a PDU which failed to decode, or None when nothing should answer.

    A recognised request with a broken body is answered by its own response carrying the
    status; anything else by generic_nack. A response (command_id bit 31) is never answered.
    """
    cid = error.command_id
    if cid is not None and cid & RESPONSE_BIT:
        return None
    cls = PDU_TYPES.get(cid) if cid is not None else None
    if (
        cls is not None
        and cls.response_type is not None
        and error.command_status
        not in (
            S.ESME_RINVCMDLEN,
            S.ESME_RINVCMDID,
        )
    ):
        return cls.response_type(error.sequence_number, error.command_status)
    return GenericNack(error.sequence_number, error.command_status)
