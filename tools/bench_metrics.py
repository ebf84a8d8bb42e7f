#!/usr/bin/env python3
"""Metrics hot-path benchmark: what a counter increment, a ``labels(...)`` lookup and a
histogram observation cost, against a plain ``dict`` increment measured in the same run, and
how long a scrape (``render``) of a daemon-sized registry takes.

    .venv/bin/python tools/bench_metrics.py [--json] [--seconds 0.3]

Each op runs inside a small function (as at a real call site), so the figures include one
Python call; "empty call" shows what that alone costs.
"""

from __future__ import annotations

import argparse
import json

from _bench import best_ns_per_call

from smpp_bridge.bridge.metrics import Metrics


def build() -> Metrics:
    """A registry the size of a busy daemon: 8 accounts x 4 binds, 10 statuses."""
    metrics = Metrics()
    statuses = ["ESME_ROK", "ESME_RTHROTTLED", "ESME_RMSGQFUL", "ESME_RSYSERR"]
    events = ["sent", "delivered", "failed", "expired", "error", "buffered", "rejected"]
    for a in range(8):
        account = f"account-{a}"
        metrics.submits_total.labels(account).inc(12345)
        metrics.reconnects_total.labels(account).inc(3)
        for status in statuses:
            metrics.responses_total.labels(account, status).inc(77)
        for b in range(4):
            bind = f"{account}#{b}"
            metrics.window_occupancy.labels(bind).set(17)
            metrics.tps.labels(bind).set(50)
            metrics.set_bind_state(bind, "bound")
    for status in events:
        metrics.events_total.labels(status).inc(999)
        metrics.dlrs_total.labels(status).inc(555)
    for i in range(1000):
        metrics.latency_queue_to_resp_seconds.observe(i / 1000)
        metrics.latency_submit_to_dlr_seconds.observe(i)
    return metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--seconds", type=float, default=0.3, help="time budget per op")
    args = parser.parse_args()

    metrics = build()
    child = metrics.submits_total.labels("account-3")
    family = metrics.responses_total
    hist = metrics.latency_queue_to_resp_seconds
    hist_child = hist.labels()
    plain: dict[tuple[str, str], int] = {("account-3", "ESME_ROK"): 0}
    key = ("account-3", "ESME_ROK")

    def empty() -> None:
        pass

    def baseline() -> None:
        plain[key] += 1

    def kept_child() -> None:
        child.inc()

    def lookup_and_inc() -> None:
        family.labels("account-3", "ESME_ROK").inc()

    def unlabelled() -> None:
        metrics.invalid_requests_total.inc()

    def observe() -> None:
        hist.observe(0.042)

    def observe_child() -> None:
        hist_child.observe(0.042)

    ops = {
        "empty call": empty,
        "baseline dict[key] += 1": baseline,
        "kept child .inc()": kept_child,
        "labels(a, s).inc()": lookup_and_inc,
        "unlabelled counter .inc()": unlabelled,
        "histogram .observe()": observe,
        "histogram child .observe()": observe_child,
    }
    results = {name: best_ns_per_call(fn, args.seconds) for name, fn in ops.items()}
    render_us = best_ns_per_call(metrics.render, args.seconds) / 1000
    size = len(metrics.render())
    base = results["baseline dict[key] += 1"]
    if args.json:
        print(json.dumps({"ns": results, "render_us": render_us, "render_bytes": size}))
        return
    for name, ns in results.items():
        print(f"{name:30s} {ns:8.1f} ns   x{ns / base:4.2f} baseline")
    print(f"{'render (daemon-sized)':30s} {render_us:8.1f} µs   ({size} bytes)")


if __name__ == "__main__":
    main()
