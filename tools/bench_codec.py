#!/usr/bin/env python3
"""Codec benchmark: smpp-bridge vs smpplib vs a hand-written ``struct`` baseline, in one run.

Ops: encode submit_sm from its typed object including GSM7 text encoding; decode submit_sm,
submit_sm_resp and deliver_sm (a receipt); GSM7 text encode alone. Prints µs per op and the
ratios (smpplib / ours = speed-up; ours / baseline = distance from hand-written code).

    .venv/bin/python tools/bench_codec.py [--json] [--seconds 0.3]
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
from collections.abc import Callable
from typing import Any

import smpplib.command
import smpplib.gsm
import smpplib.smpp
from _bench import best_us_per_call, print_head

from smpp_bridge.codec import DeliverSm, SubmitSm, SubmitSmResp, Tlv, decode, encode
from smpp_bridge.codec.gsm7 import encode_gsm7

TEXT = "Your verification code is 482913. It expires in 10 minutes."
RECEIPT = (
    "id:1234567890 sub:001 dlvrd:001 submit date:2405011230 done date:2405011231 "
    "stat:DELIVRD err:000 text:Your verification c"
)


class _SeqClient:
    """What smpplib's PDUs ask of a client: a sequence number."""

    sequence = 1

    def next_sequence(self) -> int:
        self.sequence += 1
        return self.sequence


# ---------------------------------------------------------------- hand-written baseline

_HDR = struct.Struct(">IIII")
_GSM_BASIC = str.maketrans({"@": "\x00", "$": "\x02", "_": "\x11"})


def baseline_gsm7(text: str) -> bytes:
    # Only what the benchmark text needs: ASCII letters, digits and punctuation are identical.
    return text.translate(_GSM_BASIC).encode("ascii")


def baseline_encode_submit(src: str, dst: str, text: str, seq: int) -> bytes:
    sm = baseline_gsm7(text)
    body = b"".join(
        (
            b"\x00\x05\x00",
            src.encode("ascii"),
            b"\x00\x01\x01",
            dst.encode("ascii"),
            b"\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00",
            bytes((len(sm),)),
            sm,
        )
    )
    return _HDR.pack(16 + len(body), 4, 0, seq) + body


def _cstr(data: bytes, pos: int) -> tuple[str, int]:
    end = data.index(0, pos)
    return data[pos:end].decode("ascii"), end + 1


def baseline_decode_sm(data: bytes) -> tuple[Any, ...]:
    _, cid, status, seq = _HDR.unpack_from(data)
    service_type, pos = _cstr(data, 16)
    ston, snpi = data[pos], data[pos + 1]
    src, pos = _cstr(data, pos + 2)
    dton, dnpi = data[pos], data[pos + 1]
    dst, pos = _cstr(data, pos + 2)
    esm, pid, prio = data[pos : pos + 3]
    sched, pos = _cstr(data, pos + 3)
    valid, pos = _cstr(data, pos)
    rd, rep, dcs, dflt, n = data[pos : pos + 5]
    sm = data[pos + 5 : pos + 5 + n]
    return (cid, status, seq, service_type, ston, snpi, src, dton, dnpi, dst, esm, pid, prio,
            sched, valid, rd, rep, dcs, dflt, sm)  # fmt: skip


def baseline_decode_resp(data: bytes) -> tuple[int, int, int, str]:
    _, cid, status, seq = _HDR.unpack_from(data)
    return cid, status, seq, data[16 : data.index(0, 16)].decode("ascii")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--seconds", type=float, default=0.2, help="time per measurement run")
    args = parser.parse_args(argv)

    client = _SeqClient()
    src, dst = "ACME", "34600000001"
    typed = SubmitSm(
        source_addr_ton=5,
        source_addr=src,
        dest_addr_ton=1,
        dest_addr_npi=1,
        destination_addr=dst,
        registered_delivery=1,
    )
    submit_bytes = encode(
        SubmitSm(
            source_addr_ton=5,
            source_addr=src,
            dest_addr_ton=1,
            dest_addr_npi=1,
            destination_addr=dst,
            registered_delivery=1,
            short_message=encode_gsm7(TEXT),
        ),
        2,
    )
    resp_bytes = encode(SubmitSmResp(message_id="1234567890"), 2)
    deliver_bytes = encode(
        DeliverSm(
            source_addr_ton=1,
            source_addr_npi=1,
            source_addr=dst,
            destination_addr=src,
            esm_class=0x04,
            short_message=RECEIPT.encode("ascii"),
            tlvs=(Tlv.make("receipted_message_id", "499602d2"), Tlv.make("message_state", 2)),
        ),
        3,
    )
    assert baseline_encode_submit(src, dst, TEXT, 2) == submit_bytes

    def ours_encode() -> bytes:
        return encode(SubmitSm(
            source_addr_ton=5, source_addr=src, dest_addr_ton=1, dest_addr_npi=1,
            destination_addr=dst, registered_delivery=1, short_message=encode_gsm7(TEXT),
        ), 2)  # fmt: skip

    def smpplib_encode() -> bytes:
        pdu = smpplib.smpp.make_pdu(
            "submit_sm", client=client, source_addr_ton=5, source_addr=src, dest_addr_ton=1,
            dest_addr_npi=1, destination_addr=dst, registered_delivery=1,
            short_message=smpplib.gsm.gsm_encode(TEXT),
        )  # fmt: skip
        out: bytes = pdu.generate()
        return out

    assert typed.destination_addr == dst
    ops: list[tuple[str, Callable[[], object], Callable[[], object], Callable[[], object]]] = [
        (
            "encode submit_sm (+GSM7)",
            ours_encode,
            smpplib_encode,
            lambda: baseline_encode_submit(src, dst, TEXT, 2),
        ),
        (
            "decode submit_sm",
            lambda: decode(submit_bytes),
            lambda: smpplib.smpp.parse_pdu(submit_bytes, client=client),
            lambda: baseline_decode_sm(submit_bytes),
        ),
        (
            "decode submit_sm_resp",
            lambda: decode(resp_bytes),
            lambda: smpplib.smpp.parse_pdu(resp_bytes, client=client),
            lambda: baseline_decode_resp(resp_bytes),
        ),
        (
            "decode deliver_sm (receipt)",
            lambda: decode(deliver_bytes),
            lambda: smpplib.smpp.parse_pdu(deliver_bytes, client=client),
            lambda: baseline_decode_sm(deliver_bytes),
        ),
        (
            "GSM7 text encode",
            lambda: encode_gsm7(TEXT),
            lambda: smpplib.gsm.gsm_encode(TEXT),
            lambda: baseline_gsm7(TEXT),
        ),
    ]
    rows = []
    for name, ours, theirs, base in ops:
        t_ours = best_us_per_call(ours, args.seconds)
        t_smpplib = best_us_per_call(theirs, args.seconds)
        t_base = best_us_per_call(base, args.seconds)
        rows.append(
            {
                "op": name,
                "ours_us": round(t_ours, 3),
                "smpplib_us": round(t_smpplib, 3),
                "baseline_us": round(t_base, 3),
                "speedup_vs_smpplib": round(t_smpplib / t_ours, 1),
                "ours_over_baseline": round(t_ours / t_base, 2),
            }
        )
    if args.json:
        print(json.dumps({"codec": rows}))
        return 0
    header = (
        f"{'op':30} {'ours µs':>9} {'smpplib µs':>11} {'base µs':>8} {'×smpplib':>9} {'/base':>6}"
    )
    print_head(header)
    for r in rows:
        print(
            f"{r['op']:30} {r['ours_us']:9.3f} {r['smpplib_us']:11.3f} {r['baseline_us']:8.3f} "
            f"{r['speedup_vs_smpplib']:9.1f} {r['ours_over_baseline']:6.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
