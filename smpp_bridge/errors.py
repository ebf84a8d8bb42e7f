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


class WindowFull(LocalProtocolError):
    """Every window slot holds an outstanding request; wait for a response first."""


class SessionClosedError(SmppError):
    """The session ended before this request got its response; the outcome is unknown."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"session closed: {reason}")
        self.reason = reason


class ResponseTimeoutError(SmppError):
    """No response within the response timeout: the request may or may not have been processed."""

    def __init__(self, command_name: str, sequence_number: int) -> None:
        super().__init__(f"no response to {command_name} seq {sequence_number} in time")
        self.sequence_number = sequence_number


class BindError(CommandStatusError):
    """The SMSC refused the bind (wrong credentials, too many binds, ...)."""


class PoolClosed(SmppError):
    """The pool is draining or closed: the message was not sent.

    From ``send_many``: ``accepted`` of its messages were taken (they get outcomes); the rest
    were not.
    """

    def __init__(self, *args: object, accepted: int = 0) -> None:
        super().__init__(*args)
        self.accepted = accepted


class StoreClosedError(SmppError, RuntimeError):
    """A store (correlation, parking, message store) was used after ``aclose``."""


class QueueError(SmppError):
    """A work queue could not do what it was asked."""


class QueueClosedError(QueueError):
    """The queue object was closed."""


class QueueBackendError(QueueError):
    """The backend failed (database locked, Redis unreachable, ...); ``__cause__`` holds the
    backend's own exception. Safe to retry: a failed call changed nothing, or (a publish whose
    reply was lost) changed everything."""


class ConfigError(SmppError, ValueError):
    """The configuration is invalid; ``path`` names the offending key (``accounts[0].tps``)."""

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.reason = message
