"""Pure builders of the PDUs an ESME sends: the TON/NPI of an address as users write it, and
the ``submit_sm`` PDUs of one text (segmented under an encoding profile). No I/O: the client,
the pool and the simulator all build their submits here."""

from __future__ import annotations

import functools
from typing import Final

from .constants import Npi, Ton
from .pdus import SubmitSm
from .segment import Concat, TextSplitter, split_text
from .text import EncodingProfile


def address(addr: str) -> tuple[int, int, str]:
    """TON, NPI and address for an address as users write it.

    ``+34600000001`` → international E.164 (1/1, without the plus); nine or more digits → 1/1
    too; fewer digits (a short code) → 0/0, leaving it to the SMSC; anything else →
    alphanumeric (5/0).
    """
    if addr[:1] == "+":
        digits = addr[1:]
        if digits.isdigit():
            return _INTERNATIONAL, _ISDN, digits
    elif addr.isdigit():
        if len(addr) > 8:
            return _INTERNATIONAL, _ISDN, addr
        return _TON_UNKNOWN, _NPI_UNKNOWN, addr
    return _ALPHANUMERIC, _NPI_UNKNOWN, addr


# Read once: an Enum member read through its class costs a lookup per message.
_INTERNATIONAL: Final = Ton.INTERNATIONAL
_ALPHANUMERIC: Final = Ton.ALPHANUMERIC
_TON_UNKNOWN: Final = Ton.UNKNOWN
_ISDN: Final = Npi.ISDN
_NPI_UNKNOWN: Final = Npi.UNKNOWN


def build_submits(
    source: str,
    destination: str,
    text: str,
    *,
    profile: EncodingProfile,
    reference: int,
    encoding: str = "auto",
    concat: Concat = "udh8",
    registered_delivery: int = 1,
    max_parts: int = 255,
    template: SubmitSm | None = None,
    splitter: TextSplitter | None = None,
) -> list[SubmitSm]:
    """The submit_sm PDUs of one text message, segmented under ``profile`` (pure).

    ``template`` supplies the fields text and addresses do not decide (service_type,
    validity, priority, TLVs, extra esm_class bits). ``splitter`` (a ``TextSplitter`` of the
    same profile) remembers the segmentation of texts sent again and again. Raises
    ``EncodingError`` when the text cannot be sent as asked (unrepresentable, more than
    ``max_parts``).
    """
    if splitter is not None and splitter.profile is profile:
        split = splitter.split(
            text, encoding=encoding, concat=concat, reference=reference, max_parts=max_parts
        )
    else:
        split = split_text(
            text,
            profile=profile,
            encoding=encoding,
            concat=concat,
            reference=reference,
            max_parts=max_parts,
        )
    s_ton, s_npi, s_addr = source_address(source)
    d_ton, d_npi, d_addr = address(destination)
    base = template if template is not None else _NO_TEMPLATE
    data_coding = split.data_coding
    segments = split.segments
    if len(segments) == 1 and base is _NO_TEMPLATE:
        # The common case, with the defaults of the template left to the struct.
        seg = segments[0]
        return [
            SubmitSm(
                source_addr_ton=s_ton,
                source_addr_npi=s_npi,
                source_addr=s_addr,
                dest_addr_ton=d_ton,
                dest_addr_npi=d_npi,
                destination_addr=d_addr,
                esm_class=seg.esm_class,
                registered_delivery=registered_delivery,
                data_coding=data_coding,
                short_message=seg.short_message,
                tlvs=seg.tlvs,
            )
        ]
    return [
        SubmitSm(
            service_type=base.service_type,
            source_addr_ton=s_ton,
            source_addr_npi=s_npi,
            source_addr=s_addr,
            dest_addr_ton=d_ton,
            dest_addr_npi=d_npi,
            destination_addr=d_addr,
            esm_class=base.esm_class | seg.esm_class,
            protocol_id=base.protocol_id,
            priority_flag=base.priority_flag,
            schedule_delivery_time=base.schedule_delivery_time,
            validity_period=base.validity_period,
            registered_delivery=registered_delivery,
            data_coding=data_coding,
            short_message=seg.short_message,
            tlvs=base.tlvs + seg.tlvs,
        )
        for seg in segments
    ]


_NO_TEMPLATE: Final = SubmitSm()
# Senders repeat (a few brands, short codes): their TON/NPI is worked out once.
source_address: Final = functools.lru_cache(maxsize=256)(address)


__all__ = ["address", "build_submits", "source_address"]
