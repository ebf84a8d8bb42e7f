"""command_status and bind-failure classification, checked row by row against the retry
guidance of the fact sheet (shared/reference/smpp-facts.md, section 5.1)."""

from __future__ import annotations

import ssl

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from smpp_bridge.codec.constants import CommandStatus as S
from smpp_bridge.errors import (
    BindError,
    CommandStatusError,
    EncodingError,
    FieldError,
    RemoteProtocolError,
    ResponseTimeoutError,
    SessionClosedError,
)
from smpp_bridge.pool.classify import (
    DEFAULT_POLICY,
    BindFailureClass,
    BindFailurePolicy,
    StatusClass,
    StatusPolicy,
    classify_bind_failure,
    classify_status,
    resolve_status,
)

C = StatusClass
B = BindFailureClass

# --- command_status: the sheet's rows ------------------------------------------------------------

# Sheet 5.1, restated as (codes, class). The receiver-side 0x64 RX_T_APPN means "retry later";
# 0x65/0x66 "stop for this destination" / "reject this message": permanent for the message.
SHEET_ROWS: list[tuple[list[int], StatusClass]] = [
    ([0x58, 0x14], C.BACKPRESSURE),
    ([0x08, 0xFF, 0x45, 0x102], C.TRANSIENT),
    ([0x04], C.SESSION),
    ([0x64], C.TRANSIENT),
    ([0x65, 0x66], C.PERMANENT),
    # Permanent: addressing
    ([0x0A, 0x0B, 0x48, 0x49, 0x50, 0x51, 0x33, 0x34, 0x40, 0x44], C.PERMANENT),
    # Permanent: parameters (0xC0-0xC4: TLV errors; 0x104-0x106: v5.0)
    ([0x01, 0x06, 0x07, 0x15, 0x42, 0x43, 0x54, 0x55, 0x61, 0x62, 0x63], C.PERMANENT),
    ([0xC0, 0xC1, 0xC2, 0xC3, 0xC4, 0x104, 0x105, 0x106], C.PERMANENT),
    # Permanent: auth/bind (in a submit response, not a bind response)
    ([0x0D, 0x0E, 0x0F, 0x53, 0x05, 0x100, 0x101, 0x103], C.PERMANENT),
    # Operation failed on an existing message; unsupported command (in a regular response)
    ([0x0C, 0x11, 0x13, 0x67], C.PERMANENT),
    ([0x03, 0x02], C.PERMANENT),
    # Transaction-mode outcome without a delivery_failure_reason
    ([0xFE], C.PERMANENT),
]


@pytest.mark.parametrize(
    ("status", "expected"),
    [(code, cls) for codes, cls in SHEET_ROWS for code in codes],
    ids=lambda v: f"0x{v:X}" if isinstance(v, int) else str(v),
)
def test_sheet_rows(status: int, expected: StatusClass) -> None:
    assert classify_status(status) is expected


def test_ok() -> None:
    assert classify_status(0) is C.OK
    assert classify_status(0, nack=True) is C.OK


def test_every_named_status_has_exactly_the_expected_retry_class() -> None:
    retryable = {code: cls for codes, cls in SHEET_ROWS if cls is not C.PERMANENT for code in codes}
    for status in S:
        got = classify_status(status)
        if status == 0:
            assert got is C.OK
        else:
            # Nothing outside the sheet's retry rows is retried by default.
            assert got is retryable.get(int(status), C.PERMANENT), status.name


@given(st.integers(0x400, 0x4FF))
def test_vendor_codes_are_permanent_by_default(status: int) -> None:
    assert classify_status(status) is C.PERMANENT


@pytest.mark.parametrize("status", [0x02, 0x03])
def test_generic_nack_on_a_valid_pdu_means_rebind(status: int) -> None:
    assert classify_status(status, nack=True) is C.SESSION
    assert classify_status(status) is C.PERMANENT


def test_generic_nack_with_other_statuses_classifies_by_status() -> None:
    assert classify_status(0x08, nack=True) is C.TRANSIENT
    assert classify_status(0x58, nack=True) is C.BACKPRESSURE
    assert classify_status(0x0B, nack=True) is C.PERMANENT


@pytest.mark.parametrize(
    ("reason", "expected"),
    [(0, C.TRANSIENT), (3, C.TRANSIENT), (1, C.PERMANENT), (2, C.PERMANENT), (None, C.PERMANENT)],
)
def test_delivery_failure_reason_decides_rdeliveryfailure(
    reason: int | None, expected: StatusClass
) -> None:
    assert classify_status(0xFE, delivery_failure_reason=reason) is expected
    # The reason only matters for ESME_RDELIVERYFAILURE.
    assert classify_status(0x0B, delivery_failure_reason=reason) is C.PERMANENT


# --- per-account policies ----------------------------------------------------------------------


def test_vendor_with_permanent_submitfail() -> None:
    policy = DEFAULT_POLICY.with_permanent(S.ESME_RSUBMITFAIL)
    assert classify_status(0x45, policy=policy) is C.PERMANENT
    assert classify_status(0x08, policy=policy) is C.TRANSIENT
    assert classify_status(0x45) is C.TRANSIENT  # the default is untouched


def test_vendor_transient_code() -> None:
    policy = DEFAULT_POLICY.with_transient(0x401)
    assert policy.classify(0x401) is C.TRANSIENT
    assert policy.classify(0x402) is C.PERMANENT


def test_custom_backpressure_code() -> None:
    policy = StatusPolicy(backpressure=frozenset({0x58, 0x14, 0x420}))
    assert policy.classify(0x420) is C.BACKPRESSURE
    # Moving a back-pressure code to transient takes it out of back-pressure.
    moved = policy.with_transient(0x420)
    assert moved.classify(0x420) is C.TRANSIENT


def test_policy_sets_take_precedence_over_session() -> None:
    # A vendor that uses ESME_RINVBNDSTS for a passing condition can say so.
    policy = DEFAULT_POLICY.with_transient(0x04)
    assert policy.classify(0x04) is C.TRANSIENT


def test_policy_validation() -> None:
    with pytest.raises(ValueError, match="ESME_ROK"):
        StatusPolicy(transient=frozenset({0}))
    with pytest.raises(ValueError, match="0x58"):
        StatusPolicy(transient=frozenset({0x58}))


def test_classes_are_strings_for_logs_and_json() -> None:
    assert str(C.BACKPRESSURE) == "backpressure"
    assert f"{B.AUTH}" == "auth"
    assert all(isinstance(c, str) for c in [*C, *B])


# --- bind failures -----------------------------------------------------------------------------

BIND_STATUS_ROWS: list[tuple[int, BindFailureClass]] = [
    (0x0E, B.AUTH),  # invalid password
    (0x0F, B.AUTH),  # invalid system_id
    (0x53, B.AUTH),  # invalid system_type
    (0x100, B.AUTH),  # v5.0 not authorised for service_type
    (0x101, B.AUTH),  # v5.0 prohibited
    (0x103, B.AUTH),  # v5.0 service_type denied
    (0x05, B.BUSY),  # already bound / bind limit
    (0x0D, B.BUSY),  # generic bind failed: also sent for "too many binds" (see classify.py)
    (0x14, B.BUSY),  # queue full
    (0x58, B.BUSY),  # throttled
    (0x03, B.PROTOCOL),  # bind type unsupported: fall back to TX + RX
    (0x08, B.PROTOCOL),
    (0x04, B.PROTOCOL),
    (0x450, B.PROTOCOL),  # unknown vendor code
]


@pytest.mark.parametrize(("status", "expected"), BIND_STATUS_ROWS)
def test_bind_status(status: int, expected: BindFailureClass) -> None:
    assert classify_bind_failure(status, None) is expected
    # The status decides even when an exception came along with it.
    assert classify_bind_failure(status, OSError("closed after the refusal")) is expected


@pytest.mark.parametrize(("status", "expected"), BIND_STATUS_ROWS)
def test_bind_status_taken_from_the_bind_error(status: int, expected: BindFailureClass) -> None:
    assert classify_bind_failure(None, BindError(status, "bind_transceiver")) is expected
    assert classify_bind_failure(None, CommandStatusError(status)) is expected


@pytest.mark.parametrize(
    "error",
    [
        OSError("no route"),
        ConnectionRefusedError(),
        ConnectionResetError(),
        BrokenPipeError(),
        TimeoutError(),
        EOFError(),
        ssl.SSLError("handshake failure"),
        ssl.SSLCertVerificationError("certificate verify failed"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_network_errors(error: BaseException) -> None:
    assert classify_bind_failure(None, error) is B.NETWORK


def test_transport_errors_are_network_when_the_pool_names_them() -> None:
    transport = (SessionClosedError, ResponseTimeoutError, anyio.EndOfStream)
    errors: list[BaseException] = [
        SessionClosedError("peer closed the connection"),
        ResponseTimeoutError("bind_transceiver", 1),
        anyio.EndOfStream(),
        anyio.BrokenResourceError(),
    ]
    for error in errors[:3]:
        # Without being told, the pure module cannot know these transport types.
        assert classify_bind_failure(None, error) is B.PROTOCOL
        assert classify_bind_failure(None, error, network_errors=transport) is B.NETWORK
    policy = BindFailurePolicy().with_network_errors(anyio.BrokenResourceError)
    assert classify_bind_failure(None, errors[3], policy=policy) is B.NETWORK


def test_unencodable_bind_is_a_configuration_error_that_stops() -> None:
    error = FieldError("bind_transceiver", "password", "9 characters, at most 8 allowed")
    assert classify_bind_failure(None, error) is B.AUTH


def test_anything_else_is_protocol() -> None:
    assert classify_bind_failure(None, RemoteProtocolError("garbage")) is B.PROTOCOL
    assert classify_bind_failure(None, EncodingError("?")) is B.PROTOCOL
    assert classify_bind_failure(None, RuntimeError()) is B.PROTOCOL
    assert classify_bind_failure(None, None) is B.PROTOCOL
    assert classify_bind_failure(0, None) is B.PROTOCOL


def test_status_zero_defers_to_the_error() -> None:
    assert classify_bind_failure(0, TimeoutError()) is B.NETWORK


def test_exception_groups_take_the_most_cautious_leaf() -> None:
    network = ExceptionGroup("g", [OSError(), TimeoutError()])
    assert classify_bind_failure(None, network) is B.NETWORK
    mixed = ExceptionGroup("g", [OSError(), ExceptionGroup("h", [RuntimeError()])])
    assert classify_bind_failure(None, mixed) is B.PROTOCOL
    busy = ExceptionGroup("g", [OSError(), BindError(0x05)])
    assert classify_bind_failure(None, busy) is B.BUSY
    auth = ExceptionGroup("g", [BindError(0x05), ExceptionGroup("h", [BindError(0x0E)])])
    assert classify_bind_failure(None, auth) is B.AUTH


def test_vendor_that_means_bad_credentials_by_rbindfail() -> None:
    policy = BindFailurePolicy(
        auth=BindFailurePolicy().auth | {0x0D}, busy=BindFailurePolicy().busy - {0x0D}
    )
    assert classify_bind_failure(0x0D, None, policy=policy) is B.AUTH
    assert classify_bind_failure(0x05, None, policy=policy) is B.BUSY


def test_bind_policy_validation() -> None:
    with pytest.raises(ValueError, match="0xD"):
        BindFailurePolicy(auth=frozenset({0x0D}))


# -- per-account overrides


def test_resolve_status_reads_numbers_and_names() -> None:
    assert resolve_status(0x45) == 0x45
    assert resolve_status("ESME_RSUBMITFAIL") == 0x45
    assert resolve_status(" esme_rthrottled ") == 0x58
    assert resolve_status("0x400") == 0x400
    assert resolve_status("88") == 88
    for bad in ("ESME_NOPE", -1, 2**32, True):
        with pytest.raises(ValueError):
            resolve_status(bad)


def test_overriding_moves_codes_between_classes() -> None:
    policy = StatusPolicy.overriding(
        transient=["ESME_RTHROTTLED", 0x400], permanent=[S.ESME_RSUBMITFAIL]
    )
    assert policy.classify(S.ESME_RTHROTTLED) is StatusClass.TRANSIENT
    assert policy.classify(0x400) is StatusClass.TRANSIENT
    assert policy.classify(S.ESME_RSUBMITFAIL) is StatusClass.PERMANENT
    assert policy.classify(S.ESME_RMSGQFUL) is StatusClass.BACKPRESSURE
    assert StatusPolicy.overriding() == DEFAULT_POLICY
    assert StatusPolicy.overriding(backpressure=[0x401]).classify(0x401) is (
        StatusClass.BACKPRESSURE
    )
    base = StatusPolicy.overriding(transient=[0x402])
    assert StatusPolicy.overriding(permanent=[0x45], base=base).classify(0x402) is (
        StatusClass.TRANSIENT
    )


def test_overriding_refuses_a_code_in_two_classes() -> None:
    with pytest.raises(ValueError, match="both transient and permanent: 0x45"):
        StatusPolicy.overriding(transient=[0x45], permanent=["ESME_RSUBMITFAIL"])
    with pytest.raises(ValueError, match="both permanent and backpressure"):
        StatusPolicy.overriding(permanent=[0x58], backpressure=[0x58])
    with pytest.raises(ValueError, match="ESME_ROK"):
        StatusPolicy.overriding(permanent=[0])
