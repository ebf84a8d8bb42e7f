"""The receipt text parser's one-match fast path reads exactly what the general parser reads."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from smpp_bridge.codec.receipt import parse_receipt_fields, parse_receipt_fields_generally

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
