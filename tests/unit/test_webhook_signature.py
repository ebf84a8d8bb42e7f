"""Properties of the webhook signature: ``verify_signature`` answers True or False for any
header values (never raises), and what ``sign`` signed verifies only unchanged and in time.
"""

from __future__ import annotations

import hashlib
import hmac

from hypothesis import given, settings
from hypothesis import strategies as st

from smpp_bridge.bridge.webhook import sign, signable_key, verify_signature

SECRET = "s3cret-for-tests"
NOW = 1_800_000_000

# Any str a header parser could hand over, lone surrogates included.
anything = st.text(st.characters(codec=None, exclude_categories=()), max_size=80)
digits = st.integers(min_value=0, max_value=10**500).map(str)
near = st.integers(min_value=NOW - 400, max_value=NOW + 100).map(str)
timestamps = st.one_of(anything, digits, near, st.just(str(NOW)))
keys = st.one_of(anything, st.from_regex(r"[0-9]{1,20}(-[0-9]{1,5})?", fullmatch=True))
hexes = st.text("0123456789abcdefABCDEF", min_size=60, max_size=68)
headers = st.one_of(
    anything, hexes.map(lambda h: f"sha256={h}"), hexes.map(lambda h: f" sha256={h}\n")
)
bounds = st.one_of(st.none(), st.floats(min_value=0, max_value=1e12))


@settings(max_examples=500, deadline=None)
@given(
    timestamp=timestamps,
    key=keys,
    body=st.binary(max_size=64),
    header=headers,
    max_age=bounds,
    max_skew=st.floats(0, 1e6),
    at_now=st.booleans(),
)
def test_verify_never_raises(
    *,
    timestamp: str,
    key: str,
    body: bytes,
    header: str,
    max_age: float | None,
    max_skew: float,
    at_now: bool,
) -> None:
    result = verify_signature(
        SECRET,
        timestamp,
        key,
        body,
        header,
        max_age=max_age,
        max_skew=max_skew,
        now=NOW if at_now else None,
    )
    assert result is False or result is True


signable_keys = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1).filter(
    lambda k: "." not in k and len(k) <= 200
)


@settings(max_examples=300, deadline=None)
@given(
    st.integers(min_value=NOW - 300, max_value=NOW + 60),
    signable_keys,
    st.binary(max_size=200),
)
def test_signed_verifies_and_is_the_documented_hmac(ts: int, key: str, body: bytes) -> None:
    header = sign(SECRET, str(ts), key, body)
    mac = hmac.new(SECRET.encode(), f"{ts}.{key}.".encode() + body, hashlib.sha256)
    assert header == "sha256=" + mac.hexdigest()
    assert verify_signature(SECRET, str(ts), key, body, header, now=NOW)


@settings(max_examples=300, deadline=None)
@given(signable_keys, st.binary(max_size=100), st.data())
def test_any_change_to_key_body_or_timestamp_fails(
    key: str, body: bytes, data: st.DataObject
) -> None:
    header = sign(SECRET, str(NOW), key, body)
    other_key = data.draw(signable_keys.filter(lambda k: k != key), label="other key")
    other_body = data.draw(st.binary(max_size=100).filter(lambda b: b != body), label="body")
    other_ts = data.draw(
        st.integers(NOW - 300, NOW + 60).filter(lambda t: t != NOW), label="timestamp"
    )
    assert not verify_signature(SECRET, str(NOW), other_key, body, header, now=NOW)
    assert not verify_signature(SECRET, str(NOW), key, other_body, header, now=NOW)
    assert not verify_signature(SECRET, str(other_ts), key, body, header, now=NOW)


@given(anything)
def test_signable_key_is_visible_ascii_without_dots(key: str) -> None:
    expected = 0 < len(key) <= 200 and all("!" <= c <= "~" and c != "." for c in key)
    assert signable_key(key) is expected
