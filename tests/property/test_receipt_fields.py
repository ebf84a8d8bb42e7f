"""The receipt text parser's one-match fast path reads exactly what the general parser reads."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from hypothesis import given
from hypothesis import strategies as st

from smpp_bridge.codec import receipt
from smpp_bridge.codec.receipt import (
    parse_receipt,
    parse_receipt_fields,
    parse_receipt_fields_generally,
)
from smpp_bridge.codec.tlv import Tag, Tlv

# Characters that could confuse either parser: separators, key letters, non-ASCII whitespace,
# letters whose case folding is not ASCII's, line breaks.
TRICKY = " :_\t\n\u00a0\u2028İıſKidsubtextaterrDONE0123456789"
KEYS = ("id", "sub", "dlvrd", "submit date", "done date", "stat", "err")


@st.composite
def cased(draw: st.DrawFn, key: str) -> str:
    """``key`` in any mix of cases, with ``_`` or a space inside the date keys."""
    letters = "".join(c.upper() if draw(st.booleans()) else c for c in key)
    return letters.replace(" ", draw(st.sampled_from([" ", "_"])))


# No whitespace, no colon: values the fast path accepts, key letters and all.
clean_values = st.text(alphabet="0123456789ABCDEFabcdefİıſKidsubtextaterrDONE_-", max_size=12)
values = st.one_of(
    clean_values,
    st.text(alphabet=TRICKY, max_size=8),
    st.sampled_from(["text:", "id:x", "stat", " ", "DELIVRD", ":"]),
)


@st.composite
def receipt_texts(draw: st.DrawFn, values: st.SearchStrategy[str] = values) -> str:
    parts = [f"{draw(cased(key))}:{draw(values)}" for key in KEYS]
    text = " ".join(parts)
    if draw(st.booleans()):
        text += f" {draw(cased('text'))}:{draw(st.text(alphabet=TRICKY, max_size=20))}"
    if draw(st.integers(0, 4)) == 0:
        # Damage it somewhere: the fast path must then either agree or step aside.
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.text(alphabet=TRICKY, min_size=1, max_size=3)) + text[at:]
    return text


@given(receipt_texts())
def test_fast_path_reads_the_same_fields_as_the_general_parser(text: str) -> None:
    fast = parse_receipt_fields(text)
    general = parse_receipt_fields_generally(text)
    assert fast == general
    assert list(fast) == list(general)


@given(receipt_texts(clean_values))
def test_standard_layouts_read_the_same_fields_as_the_general_parser(text: str) -> None:
    fast = parse_receipt_fields(text)
    general = parse_receipt_fields_generally(text)
    assert fast == general
    assert list(fast) == list(general)


@given(st.text(alphabet=TRICKY, max_size=60))
def test_any_text_reads_the_same_either_way(text: str) -> None:
    assert parse_receipt_fields(text) == parse_receipt_fields_generally(text)


@contextmanager
def general_parser_only() -> Iterator[None]:
    """Make the fast path's pattern match nothing, so every text takes the general path."""
    standard = receipt._STANDARD
    receipt._STANDARD = re.compile(r"(?!)")
    try:
        yield
    finally:
        receipt._STANDARD = standard


TLV_SETS = st.sampled_from(
    [
        (),
        (Tlv(Tag.receipted_message_id, b"77\x00"), Tlv(Tag.message_state, b"\x02")),
        (Tlv(Tag.message_state, b"\x05"), Tlv(Tag.network_error_code, b"\x03\x00\x0b")),
        (Tlv(Tag.receipted_message_id, b"\x00"),),
    ]
)


@given(
    st.one_of(receipt_texts(clean_values), receipt_texts(), st.just("")),
    TLV_SETS,
    st.sampled_from([0x00, 0x04, 0x20]),
)
def test_parse_receipt_reads_the_same_either_way(
    text: str, tlvs: tuple[Tlv, ...], esm_class: int
) -> None:
    fast = parse_receipt(esm_class, tlvs, text)
    with general_parser_only():
        general = parse_receipt(esm_class, tlvs, text)
    assert fast == general


def test_the_usual_receipt_takes_the_fast_path() -> None:
    text = (
        "id:0A1B sub:001 dlvrd:001 submit date:2405011230 done date:2405011231 "
        "stat:DELIVRD err:000 text:Hello: world"
    )
    assert parse_receipt_fields(text) == {
        "id": "0A1B",
        "sub": "001",
        "dlvrd": "001",
        "submit_date": "2405011230",
        "done_date": "2405011231",
        "stat": "DELIVRD",
        "err": "000",
        "text": "Hello: world",
    }
