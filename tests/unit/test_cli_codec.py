"""The codec subcommands: ``pdu decode``, ``pdu encode``, ``text split``, and the entry point."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from smpp_bridge import __version__
from smpp_bridge.cli import write_json
from smpp_bridge.cli.main import main
from smpp_bridge.codec.pdus import DeliverSm, SubmitSm, encode
from smpp_bridge.codec.tlv import Tlv

FACTS_HEX = (
    "0000003b00000004000000000000000200010134343737303039303030303100010134343737303039"
    "303030303200000000000001000000024869"
)

SCRIPT = Path(sys.executable).parent / "smpp-bridge"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def json_error(err: str) -> dict[str, Any]:
    """The one-line JSON error on stderr."""
    assert err.endswith("\n")
    assert err.count("\n") == 1, err
    obj = json.loads(err)
    assert isinstance(obj, dict)
    assert isinstance(obj["error"], str)
    return obj


def set_stdin(monkeypatch: pytest.MonkeyPatch, data: str) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data.encode()), "utf-8"))


# --------------------------------------------------------------------------------------------
# pdu decode


def test_decode_facts_sheet_submit_sm(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(capsys, "pdu", "decode", FACTS_HEX)
    assert (status, err) == (0, "")
    d = json.loads(out)
    assert d["command"] == "submit_sm"
    assert d["command_id"] == 4
    assert d["sequence_number"] == 2
    assert d["source_addr"] == "447700900001"
    assert d["destination_addr"] == "447700900002"
    assert d["registered_delivery"] == 1
    assert d["short_message"] == "4869"
    assert d["text"] == "Hi"
    assert d["tlvs"] == []
    # Pretty by default: one key per line.
    assert out.count("\n") > 20


def test_decode_compact_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "pdu", "decode", "--compact", FACTS_HEX)
    assert status == 0
    assert out.count("\n") == 1
    assert json.loads(out)["text"] == "Hi"


@pytest.mark.parametrize(
    "spelled",
    [
        [FACTS_HEX.upper()],
        [" ".join(FACTS_HEX[i : i + 2] for i in range(0, len(FACTS_HEX), 2))],
        [":".join(FACTS_HEX[i : i + 2] for i in range(0, len(FACTS_HEX), 2))],
        ["0x" + FACTS_HEX],
        ["0x" + FACTS_HEX[i : i + 2] for i in range(0, len(FACTS_HEX), 2)],
        [FACTS_HEX[:32], FACTS_HEX[32:]],
        [f"\n {FACTS_HEX[:10]},{FACTS_HEX[10:]}\t\n"],
    ],
)
def test_decode_accepts_hex_spellings(
    capsys: pytest.CaptureFixture[str], spelled: list[str]
) -> None:
    status, out, _ = run(capsys, "pdu", "decode", "--compact", *spelled)
    assert status == 0
    assert json.loads(out)["sequence_number"] == 2


def test_decode_reads_stdin(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    set_stdin(monkeypatch, FACTS_HEX + "\n")
    status, out, _ = run(capsys, "pdu", "decode")
    assert status == 0
    assert json.loads(out)["destination_addr"] == "447700900002"


def test_decode_profile_changes_text(capsys: pytest.CaptureFixture[str]) -> None:
    pdu = SubmitSm(sequence_number=1, data_coding=3, short_message=b"\xa4")
    hexed = encode(pdu).hex()
    _, spec, _ = run(capsys, "pdu", "decode", "--profile", "spec", hexed)
    _, ref, _ = run(capsys, "pdu", "decode", "--profile", "reference", hexed)
    assert json.loads(spec)["text"] == "¤"
    assert json.loads(ref)["text"] == "€"


@pytest.mark.parametrize(
    ("hexed", "message"),
    [
        ("00000010zz", "not hex: '00000010zz'"),
        ("0x", "no hex digits"),
        ("", "no hex digits"),
        ("000", "odd number of hex digits (3)"),
    ],
)
def test_decode_bad_hex(capsys: pytest.CaptureFixture[str], hexed: str, message: str) -> None:
    status, out, err = run(capsys, "pdu", "decode", hexed)
    assert status == 2
    assert out == ""
    assert message in json_error(err)["error"]


@pytest.mark.parametrize(
    ("hexed", "expected"),
    [
        # Shorter than a header.
        ("0000001000000015", {"command_status": 2, "sequence_number": 0}),
        # command_length says 59, 40 octets arrived.
        (FACTS_HEX[:80], {"command_status": 2, "sequence_number": 2, "command_id": 4}),
        # Unknown command_id.
        (
            "00000010000000ff0000000000000009",
            {"command_status": 3, "command_status_name": "ESME_RINVCMDID", "sequence_number": 9},
        ),
        # submit_sm whose schedule_delivery_time is 3 characters.
        (
            "00000024000000040000000000000009"
            + "00"
            + "0000"
            + "00"
            + "0000"
            + "00"
            + "000000"  # up to priority_flag
            + "31323300"  # schedule_delivery_time "123"
            + "00" * 6,  # validity_period .. sm_length
            {"command_status": 0x61, "command_status_name": "ESME_RINVSCHED", "sequence_number": 9},
        ),
    ],
)
def test_decode_malformed_pdu(
    capsys: pytest.CaptureFixture[str], hexed: str, expected: dict[str, Any]
) -> None:
    status, out, err = run(capsys, "pdu", "decode", hexed)
    assert status == 2
    assert out == ""
    error = json_error(err)
    assert error.items() >= expected.items()


# --------------------------------------------------------------------------------------------
# pdu encode


def test_encode_round_trips_decode(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, decoded, _ = run(capsys, "pdu", "decode", FACTS_HEX)
    set_stdin(monkeypatch, decoded)
    status, out, err = run(capsys, "pdu", "encode")
    assert (status, out, err) == (0, FACTS_HEX + "\n", "")


def test_encode_from_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "pdu.json"
    path.write_text(
        json.dumps(
            {
                "command": "deliver_sm",
                "sequence_number": 3,
                "short_message": "",
                "tlvs": [{"tag": "message_payload", "value": "4869"}, {"tag": 0x1400, "hex": "01"}],
            }
        )
    )
    status, out, _ = run(capsys, "pdu", "encode", str(path))
    assert status == 0
    expected = DeliverSm(
        sequence_number=3, tlvs=(Tlv.make("message_payload", b"Hi"), Tlv(0x1400, b"\x01"))
    )
    assert out == encode(expected).hex() + "\n"
    assert out.endswith("042400024869" + "1400000101\n")


def test_encode_command_status_by_name(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    set_stdin(monkeypatch, '{"command": "submit_sm_resp", "command_status": "ESME_RTHROTTLED"}')
    status, out, _ = run(capsys, "pdu", "encode")
    assert status == 0
    assert out == "0000001180000004000000580000000000\n"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ("{", {"error": "invalid JSON"}),
        ("[]", {"field": "(root)"}),
        (
            '{"command": "submit_sm", "shortmessage": "00"}',
            {"field": "shortmessage", "command": "submit_sm"},
        ),
        ('{"command": "nope"}', {"field": "command"}),
        ('{"command": "submit_sm", "short_message": "xyz"}', {"field": "short_message"}),
        (
            '{"command": "submit_sm", "tlvs": [{"tag": "message_state", "value": 999}]}',
            {"field": "tlvs[0].value"},
        ),
        # Well-formed JSON, but the encoder refuses the value.
        (
            '{"command": "submit_sm", "esm_class": 300}',
            {"field": "esm_class", "command": "submit_sm"},
        ),
        ('{"command": "submit_sm", "source_addr": "' + "1" * 21 + '"}', {"field": "source_addr"}),
    ],
)
def test_encode_errors_name_the_field(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    data: str,
    expected: dict[str, Any],
) -> None:
    set_stdin(monkeypatch, data)
    status, out, err = run(capsys, "pdu", "encode")
    assert status == 2
    assert out == ""
    error = json_error(err)
    for key, value in expected.items():
        if key == "error":
            assert error["error"].startswith(value)
        else:
            assert error[key] == value


def test_encode_missing_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.json")
    status, _, err = run(capsys, "pdu", "encode", missing)
    assert status == 2
    error = json_error(err)
    assert error["file"] == missing
    assert "cannot read" in error["error"]


# --------------------------------------------------------------------------------------------
# text split


def test_split_short_gsm7(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "text", "split", "Hi")
    assert status == 0
    d = json.loads(out)
    assert d["encoding"] == "gsm7"
    assert d["data_coding"] == 0
    assert d["parts"] == 1
    assert d["units"] == [2]
    assert d["segments"] == [{"short_message": "4869", "esm_class": 0, "units": 2, "tlvs": []}]


def test_split_long_gsm7_udh8(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "text", "split", "--reference", "7", "a" * 200)
    assert status == 0
    d = json.loads(out)
    assert (d["encoding"], d["parts"], d["units"]) == ("gsm7", 2, [153, 47])
    first, second = d["segments"]
    assert first["udh"] == "050003070201"
    assert second["udh"] == "050003070202"
    assert first["esm_class"] == second["esm_class"] == 0x40
    assert first["short_message"] == "050003070201" + "61" * 153


def test_split_udh16(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(capsys, "text", "split", "--concat", "udh16", "--reference", "258", "a" * 200)
    d = json.loads(out)
    assert d["units"] == [152, 48]
    assert d["segments"][0]["udh"] == "06080401020201"


def test_split_sar(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(capsys, "text", "split", "--concat", "sar", "--reference", "5", "a" * 200)
    d = json.loads(out)
    assert d["parts"] == 2
    first = d["segments"][0]
    assert first["esm_class"] == 0
    assert "udh" not in first
    assert first["tlvs"] == [
        {"tag": "sar_msg_ref_num", "value": 5},
        {"tag": "sar_total_segments", "value": 2},
        {"tag": "sar_segment_seqnum", "value": 1},
    ]


def test_split_payload(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(capsys, "text", "split", "--concat", "payload", "a" * 200)
    d = json.loads(out)
    assert d["parts"] == 1
    (only,) = d["segments"]
    assert only["short_message"] == ""
    assert only["tlvs"] == [{"tag": "message_payload", "value": "61" * 200}]


def test_split_ucs2(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(capsys, "text", "split", "Привет 🙂")
    d = json.loads(out)
    assert (d["encoding"], d["data_coding"]) == ("ucs2", 8)
    assert d["segments"][0]["short_message"] == "Привет 🙂".encode("utf-16-be").hex()


def test_split_latin9_uses_the_reference_profile(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "text", "split", "--encoding", "latin9", "€5")
    assert status == 0
    d = json.loads(out)
    assert (d["profile"], d["encoding"], d["data_coding"]) == ("reference", "latin9", 3)
    assert d["segments"][0]["short_message"] == "a435"


def test_split_latin1_on_the_spec_profile(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(capsys, "text", "split", "--encoding", "latin1", "¤")
    d = json.loads(out)
    assert (d["profile"], d["encoding"], d["data_coding"]) == ("spec", "latin1", 3)


def test_split_reads_stdin(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    set_stdin(monkeypatch, "Hi\n")
    _, out, _ = run(capsys, "text", "split", "--compact")
    assert out.count("\n") == 1
    assert json.loads(out)["units"] == [2]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--encoding", "latin9", "--profile", "spec", "€"], "latin9"),
        (["--encoding", "gsm7", "🙂"], "not representable"),
        (["--max-parts", "1", "a" * 200], "1"),
    ],
)
def test_split_errors(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    status, out, err = run(capsys, "text", "split", *argv)
    assert status == 2
    assert out == ""
    assert message in json_error(err)["error"]


# --------------------------------------------------------------------------------------------
# The entry point


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "required: command"),
        (["pdu"], "required: pdu_command"),
        (["nope"], "invalid choice: 'nope'"),
        (["text", "split", "--encoding", "ebcdic", "x"], "invalid choice: 'ebcdic'"),
        (["text", "split", "--reference", "x", "y"], "invalid int value: 'x'"),
    ],
)
def test_usage_errors_are_json(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    status, out, err = run(capsys, *argv)
    assert status == 2
    assert out == ""
    error = json_error(err)
    assert message in error["error"]
    assert error["usage"].startswith("usage: smpp-bridge")


def test_write_json_escapes_what_the_stream_cannot_encode() -> None:
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="ascii")
    write_json({"text": "€ 🙂"}, stream)
    stream.flush()
    assert raw.getvalue() == b'{"text": "\\u20ac \\ud83d\\ude42"}\n'
    utf8 = io.StringIO()
    write_json({"text": "€"}, utf8, pretty=True)
    assert utf8.getvalue() == '{\n  "text": "€"\n}\n'


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "--version")
    assert (status, out) == (0, f"smpp-bridge {__version__}\n")


def test_help_lists_the_subcommands(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "--help")
    assert status == 0
    assert "pdu" in out
    assert "text" in out


def test_decode_help_documents_the_output(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "pdu", "decode", "--help")
    assert status == 0
    assert "--compact" in out
    assert "indented" in out


# --------------------------------------------------------------------------------------------
# The installed console script, end to end


def test_console_script_round_trip() -> None:
    assert SCRIPT.exists(), SCRIPT
    decoded = subprocess.run(
        [str(SCRIPT), "pdu", "decode", FACTS_HEX], capture_output=True, check=True, timeout=30
    )
    d = json.loads(decoded.stdout)
    assert d["command"] == "submit_sm"
    assert d["text"] == "Hi"
    encoded = subprocess.run(
        [str(SCRIPT), "pdu", "encode"],
        input=decoded.stdout,
        capture_output=True,
        check=True,
        timeout=30,
    )
    assert encoded.stdout.decode() == FACTS_HEX + "\n"


def test_console_script_reports_errors_as_json() -> None:
    result = subprocess.run(
        [str(SCRIPT), "pdu", "decode", "00000010000000ff0000000000000009"],
        check=False,
        capture_output=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert result.stdout == b""
    assert json.loads(result.stderr)["command_status_name"] == "ESME_RINVCMDID"


def test_console_script_quiet_when_the_reader_goes_away() -> None:
    with subprocess.Popen(
        [str(SCRIPT), "text", "split", "a" * 1000],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as proc:
        assert proc.stdout is not None
        assert proc.stderr is not None
        # Closed long before the interpreter has started, let alone written.
        proc.stdout.close()
        err = proc.stderr.read()
        assert proc.wait(timeout=30) == 1
    assert err == b""
