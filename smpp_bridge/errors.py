"""One hierarchy of errors for the whole package.

``LocalProtocolError`` means *we* were about to break the protocol (a field too long, a PDU not
allowed in this state); ``RemoteProtocolError`` means the *peer* did. A remote error carries what
is needed to answer it: the sequence number (0 when it could not be read), the command_id of the
offending PDU, and the command_status the answer should carry.
"""

from __future__ import annotations

_ESME_RSYSERR = 0x00000008


class SmppError(Exception):
    """Base class of every error raised by smpp-bridge."""


class ProtocolError(SmppError):
    """The SMPP protocol was violated, by one side or the other."""

    def __init__(
        self,
        message: str,
        *,
        command_status: int = _ESME_RSYSERR,
        sequence_number: int = 0,
        command_id: int | None = None,
    ) -> None:
        super().__init__(message)
        self.command_status = int(command_status)
        self.sequence_number = sequence_number
        self.command_id = command_id


class LocalProtocolError(ProtocolError):
    """We were asked to do something the protocol does not allow (nothing was sent)."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something we cannot accept.

    ``command_status`` is the status to answer with; ``command_id`` is the offending PDU's
    command_id when the header could be read. ``fatal`` is true when framing is lost and the
    connection must be closed after answering.
    """

    def __init__(
        self,
        message: str,
        *,
        command_status: int = _ESME_RSYSERR,
        sequence_number: int = 0,
        command_id: int | None = None,
        fatal: bool = False,
    ) -> None:
        super().__init__(
            message,
            command_status=command_status,
            sequence_number=sequence_number,
            command_id=command_id,
        )
        self.fatal = fatal


class FieldError(LocalProtocolError):
    """A PDU field cannot be encoded: too long, wrong type, out of range."""

    def __init__(self, pdu: str, field: str, reason: str) -> None:
        super().__init__(f"{pdu}.{field}: {reason}")
        self.pdu = pdu
        self.field = field
        self.reason = reason


class EncodingError(SmppError, ValueError):
    """Text cannot be represented in the requested encoding, or a part limit is exceeded."""


class CommandStatusError(SmppError):
    """A request was answered with a non-zero command_status."""

    def __init__(self, command_status: int, message: str = "") -> None:
        from .codec.constants import status_name

        name = status_name(command_status)
        super().__init__(f"{name} (0x{command_status:08X}){': ' + message if message else ''}")
        self.command_status = command_status
        self.status_name = name
