#!/usr/bin/env python3
"""Envelope benchmark: what the daemon spends per send request before the pool sees it.

Batches of 100 requests (short GSM 7-bit OTP texts by default) through ``parse_batch``,
``validate`` and ``to_outbound``; the baseline, measured in the same run, is a bare msgspec
decode of the same payload into ``list[SendRequest]``. Prints µs per request, requests per
second on one core, and the ratio to the baseline.

    .venv/bin/python tools/bench_envelope.py [--seconds 0.5] [--text long|ucs2|otp]
"""

from __future__ import annotations

import argparse

import msgspec
from _bench import best_us_per_item

from smpp_bridge.bridge.envelope import (
    Limits,
    SendRequest,
    Valid,
    parse_batch,
    to_outbound,
    validate,
)
from smpp_bridge.codec.text import SPEC_PROFILE

TEXTS = {
    "otp": "Your code is {i:06d}",
    "long": "Your order {i} has shipped and will arrive tomorrow between 9:00 and 13:00. " * 3,
    "ucs2": "Ваш код {i:06d} 👋",
}


def payload(kind: str, size: int = 100) -> bytes:
    text = TEXTS[kind]
    items = [
        {
            "from": "ACME",
            "to": f"+346{i:08d}",
            "text": text.format(i=i),
            "clientId": f"order-{i}",
        }
        for i in range(size)
    ]
    return msgspec.json.encode(items)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=0.5)
    parser.add_argument("--text", choices=sorted(TEXTS), default="otp")
    args = parser.parse_args()
    data = payload(args.text)
    limits = Limits()
    decoder = msgspec.json.Decoder(list[SendRequest])
    parsed = parse_batch(data)
    requests = [p.request for p in parsed if isinstance(p, Valid)]
    assert len(requests) == 100 and all(validate(r, SPEC_PROFILE, limits) is None for r in requests)

    def baseline() -> int:
        for _ in range(10):
            decoder.decode(data)
        return 1000

    def parse() -> int:
        for _ in range(10):
            parse_batch(data)
        return 1000

    def check() -> int:
        for _ in range(10):
            for req in requests:
                validate(req, SPEC_PROFILE, limits)
        return 1000

    def convert() -> int:
        for _ in range(10):
            for req in requests:
                to_outbound(req, "1-0:0")
        return 1000

    def everything() -> int:
        for _ in range(10):
            for item in parse_batch(data):
                if isinstance(item, Valid) and validate(item.request, SPEC_PROFILE, limits) is None:
                    to_outbound(item.request, "1-0:0")
        return 1000

    base = best_us_per_item(baseline, args.seconds)
    print(f"text: {args.text!r}, batches of 100")
    print(f"{'step':<36}{'µs/request':>12}{'requests/s':>14}{'× baseline':>12}")
    for name, run in (
        ("msgspec decode (baseline)", baseline),
        ("parse_batch", parse),
        ("validate", check),
        ("to_outbound", convert),
        ("parse_batch + validate + to_outbound", everything),
    ):
        us = base if run is baseline else best_us_per_item(run, args.seconds)
        print(f"{name:<36}{us:>12.2f}{1e6 / us:>14,.0f}{us / base:>12.1f}")


if __name__ == "__main__":
    main()
