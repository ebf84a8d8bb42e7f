"""A deliver_sm / data_sm, parsed: either a delivery receipt or an inbound (MO) message."""

from __future__ import annotations

import msgspec

from ..codec.pdus import DataSm, DeliverSm
from ..codec.receipt import Receipt, is_receipt, parse_receipt
from ..codec.segment import ConcatInfo, decode_short_message
from ..codec.text import EncodingProfile
from ..codec.tlv import Tag
from ..errors import EncodingError


class Delivery(msgspec.Struct, frozen=True):
    """What the SMSC delivered. ``receipt`` is set for delivery receipts; ``text`` is the
    decoded user data (UDH removed) for inbound messages and receipts alike; ``concat`` says
    which part of a concatenated inbound message this is.

    (A frozen ``msgspec.Struct``, like the PDUs: one is made per delivery, and a frozen
    dataclass of eight fields costs several times more to make.)"""

    pdu: DeliverSm | DataSm
    source_addr: str
    destination_addr: str
    text: str
    receipt: Receipt | None
    concat: ConcatInfo | None
    udh: bytes | None
    error: str | None = None

    @property
    def is_receipt(self) -> bool:
        return self.receipt is not None


def parse_delivery(pdu: DeliverSm | DataSm, profile: EncodingProfile) -> Delivery:
    """Parse a deliver_sm/data_sm under the account's encoding profile. Never raises: a body
    that does not decode is kept raw and described in ``error``."""
    user_data = pdu.short_message if isinstance(pdu, DeliverSm) else b""
    if not user_data:
        payload = pdu.tlv(Tag.message_payload)
        if payload is not None:
            user_data = payload.value
    error: str | None = None
    text = ""
    concat: ConcatInfo | None = None
    udh: bytes | None = None
    try:
        decoded = decode_short_message(user_data, pdu.data_coding, pdu.esm_class, profile)
        text = decoded.text
        udh = decoded.udh.raw if decoded.udh is not None else None
        concat = decoded.concat
    except EncodingError as exc:
        error = str(exc)
        text = user_data.decode("latin-1")
    receipt = (
        parse_receipt(pdu.esm_class, pdu.tlvs, text)
        if is_receipt(pdu.esm_class, pdu.tlvs)
        else None
    )
    return Delivery(
        pdu=pdu,
        source_addr=pdu.source_addr,
        destination_addr=pdu.destination_addr,
        text=text,
        receipt=receipt,
        concat=concat,
        udh=udh,
        error=error,
    )
