"""The ESME side: ``open_session`` binds one SMPP session (over the driver) and yields a
``Client`` with ``submit``/``submit_many``/``send_text``, and parses what the SMSC delivers
(``Delivery``, with its receipt)."""

from .delivery import Delivery, parse_delivery, receipt_of
from .esme import BindType, Client, SubmitResult, open_session

__all__ = [
    "BindType",
    "Client",
    "Delivery",
    "SubmitResult",
    "open_session",
    "parse_delivery",
    "receipt_of",
]
