"""A deliver_sm / data_sm, parsed: either a delivery receipt or an inbound (MO) message."""

from __future__ import annotations

import msgspec

from ..codec.gsm7 import decode_gsm7, unpack_septets
from ..codec.pdus import DataSm, DeliverSm
from ..codec.receipt import Receipt, is_receipt, parse_receipt
from ..codec.segment import ESM_UDHI, ConcatInfo, decode_short_message
from ..codec.text import EncodingProfile, decode_units, encoding_for_data_coding
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


def receipt_of(pdu: DeliverSm | DataSm, profile: EncodingProfile) -> Receipt | None:
    """``parse_delivery(pdu, profile).receipt`` without the rest: the receipt a deliver_sm or
    data_sm carries, or None (not a receipt, or one naming no message). For the receipt path
    of a busy pool, which needs nothing else of the PDU."""
    esm_class = pdu.esm_class
    tlvs = pdu.tlvs
    if not is_receipt(esm_class, tlvs):
        return None
    user_data = pdu.short_message if isinstance(pdu, DeliverSm) else b""
    if not user_data:
        payload = pdu.tlv(Tag.message_payload)
        if payload is not None:
            user_data = payload.value
    if esm_class & ESM_UDHI:
        try:
            text = decode_short_message(user_data, pdu.data_coding, esm_class, profile).text
        except EncodingError:
            text = user_data.decode("latin-1")
    else:
        # ``decode_short_message`` without a UDH (what receipts have): no UDH, no shifts.
        encoding = encoding_for_data_coding(pdu.data_coding, profile)
        if encoding == "gsm7":
            if profile.gsm7_packed:
                user_data = unpack_septets(user_data)
            text = decode_gsm7(user_data)
        else:
            text = decode_units(user_data, encoding)
    return parse_receipt(esm_class, tlvs, text)
