"""The Prometheus registry: exact exposition text for a small registry, every family of the
daemon's ``Metrics``, and a parser written here from the format's description that reads the
output back (label values with quotes, backslashes, newlines and any Unicode survive)."""

from __future__ import annotations

import math
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smpp_bridge.bridge.metrics import (
    CONTENT_TYPE,
    Counter,
    Gauge,
    Histogram,
    Metrics,
    Registry,
)

# --------------------------------------------------------------------------- a reader

Sample = tuple[str, tuple[tuple[str, str], ...]]
_SAMPLE = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)\Z")


def _unescape(text: str, escapes: dict[str, str]) -> str:
    out = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            nxt = text[i + 1]
            assert nxt in escapes, f"bad escape \\{nxt}"
            out.append(escapes[nxt])
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def _labels(text: str) -> tuple[tuple[str, str], ...]:
    """Parse ``{a="x",b="y"}`` honouring escapes inside the quoted values."""
    assert text[0] == "{" and text[-1] == "}"
    body = text[1:-1]
    pairs = []
    i = 0
    while i < len(body):
        eq = body.index("=", i)
        name = body[i:eq]
        assert body[eq + 1] == '"'
        j = eq + 2
        raw = []
        while body[j] != '"':
            if body[j] == "\\":
                raw.append(body[j : j + 2])
                j += 2
            else:
                raw.append(body[j])
                j += 1
        pairs.append((name, _unescape("".join(raw), {"\\": "\\", '"': '"', "n": "\n"})))
        i = j + 1
        if i < len(body):
            assert body[i] == ","
            i += 1
    return tuple(pairs)


def _number(text: str) -> float:
    return {"+Inf": math.inf, "-Inf": -math.inf, "NaN": math.nan}.get(text) or float(text)


def parse(exposition: bytes) -> tuple[dict[str, str], dict[str, str], dict[Sample, float]]:
    """(types by family, help by family, value by (sample name, labels))."""
    text = exposition.decode()
    assert text.endswith("\n")
    types: dict[str, str] = {}
    helps: dict[str, str] = {}
    samples: dict[Sample, float] = {}
    for line in text[:-1].split("\n"):
        if line.startswith("# HELP "):
            name, _, doc = line[7:].partition(" ")
            helps[name] = _unescape(doc, {"\\": "\\", "n": "\n"})
        elif line.startswith("# TYPE "):
            name, _, kind = line[7:].partition(" ")
            assert name not in types, f"two TYPE lines for {name}"
            types[name] = kind
        else:
            match = _SAMPLE.match(line)
            assert match, f"not a sample line: {line!r}"
            name, labels, value = match.groups()
            key = (name, _labels(labels) if labels else ())
            assert key not in samples, f"duplicate sample {key}"
            samples[key] = _number(value)
    return types, helps, samples


# --------------------------------------------------------------------------- golden text


def test_golden_exposition() -> None:
    registry = Registry()
    sent = registry.counter("sent_total", "Sent.\nTwo lines, a \\ too.", ["account", "status"])
    sent.labels("main", "ok").inc()
    sent.labels("main", "ok").inc(2)
    sent.labels('we"ird\\', "line\nbreak").inc(0.5)
    depth = registry.gauge("depth", "Queue depth.", ["queue"])
    depth.labels("requests").set(-3)
    plain = registry.gauge("ratio", "A ratio.")
    plain.set(0.25)
    latency = registry.histogram("latency_seconds", "Latency.", buckets=[0.1, 1, 10])
    for value in (0.05, 0.1, 0.5, 1.0, 20.0):
        latency.observe(value)
    labelled = registry.histogram("size", "Size.", ["kind"], buckets=[1.0])
    labelled.labels("a").observe(3)
    expected = (
        "# HELP sent_total Sent.\\nTwo lines, a \\\\ too.\n"
        "# TYPE sent_total counter\n"
        'sent_total{account="main",status="ok"} 3\n'
        'sent_total{account="we\\"ird\\\\",status="line\\nbreak"} 0.5\n'
        "# HELP depth Queue depth.\n"
        "# TYPE depth gauge\n"
        'depth{queue="requests"} -3\n'
        "# HELP ratio A ratio.\n"
        "# TYPE ratio gauge\n"
        "ratio 0.25\n"
        "# HELP latency_seconds Latency.\n"
        "# TYPE latency_seconds histogram\n"
        'latency_seconds_bucket{le="0.1"} 2\n'
        'latency_seconds_bucket{le="1.0"} 4\n'
        'latency_seconds_bucket{le="10.0"} 4\n'
        'latency_seconds_bucket{le="+Inf"} 5\n'
        "latency_seconds_sum 21.65\n"
        "latency_seconds_count 5\n"
        "# HELP size Size.\n"
        "# TYPE size histogram\n"
        'size_bucket{kind="a",le="1.0"} 0\n'
        'size_bucket{kind="a",le="+Inf"} 1\n'
        'size_sum{kind="a"} 3\n'
        'size_count{kind="a"} 1\n'
    )
    assert registry.render().decode() == expected


def test_special_values() -> None:
    registry = Registry()
    gauge = registry.gauge("g", "G.", ["k"])
    gauge.labels("inf").set(math.inf)
    gauge.labels("-inf").set(-math.inf)
    gauge.labels("nan").set(math.nan)
    gauge.labels("big").set(2.0**60)
    gauge.labels("small").set(1e-9)
    _, _, samples = parse(registry.render())
    assert samples[("g", (("k", "inf"),))] == math.inf
    assert samples[("g", (("k", "-inf"),))] == -math.inf
    assert math.isnan(samples[("g", (("k", "nan"),))])
    assert samples[("g", (("k", "big"),))] == 2.0**60
    assert samples[("g", (("k", "small"),))] == 1e-9
    assert b'g{k="inf"} +Inf\n' in registry.render()


def test_an_unlabelled_family_shows_zero_from_the_start() -> None:
    registry = Registry()
    registry.counter("c_total", "C.")
    registry.counter("l_total", "L.", ["x"])
    types, _, samples = parse(registry.render())
    assert samples == {("c_total", ()): 0}
    assert types == {"c_total": "counter", "l_total": "counter"}


# --------------------------------------------------------------------------- behaviour


def test_counter_gauge_histogram_operations() -> None:
    counter = Counter("c_total", "C.", ["a"])
    child = counter.labels("x")
    assert counter.labels("x") is child
    child.inc()
    child.inc(2.5)
    assert child.value == 3.5
    with pytest.raises(ValueError, match="only goes up"):
        child.inc(-1)
    gauge = Gauge("g", "G.")
    gauge.set(5)
    gauge.inc()
    gauge.dec(3)
    assert gauge.value == 3
    hist = Histogram("h", "H.", buckets=[1, 2])
    hist.observe(1)
    hist.observe(2)
    hist.observe(3)
    (only,) = hist.children().values()
    assert only.counts == [1, 1, 1] and only.count == 3 and only.sum == 6


def test_remove_and_clear() -> None:
    registry = Registry()
    gauge = registry.gauge("g", "G.", ["bind"])
    gauge.labels("a").set(1)
    gauge.labels("b").set(2)
    gauge.remove("a")
    gauge.remove("never-seen")
    assert list(gauge.children()) == [("b",)]
    gauge.clear()
    assert parse(registry.render())[2] == {}


def test_on_collect_refreshes_before_render() -> None:
    registry = Registry()
    gauge = registry.gauge("g", "G.")
    values = iter([1.0, 2.0])
    registry.on_collect(lambda: gauge.set(next(values)))
    assert b"g 1\n" in registry.render()
    assert b"g 2\n" in registry.render()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Counter("bad-name", "x"), "invalid metric name"),
        (lambda: Counter("9lives", "x"), "invalid metric name"),
        (lambda: Counter("ok", "x", ["bad-label"]), "invalid label name"),
        (lambda: Counter("ok", "x", ["__reserved"]), "invalid label name"),
        (lambda: Counter("ok", "x", ["a", "a"]), "duplicate label"),
        (lambda: Histogram("h", "x", ["le"]), "'le'"),
        (lambda: Histogram("h", "x", buckets=[2, 1]), "strictly increasing"),
        (lambda: Histogram("h", "x", buckets=[1, 1]), "strictly increasing"),
        (lambda: Histogram("h", "x", buckets=[]), "at least one"),
        (lambda: Histogram("h", "x", buckets=[math.nan]), "finite"),
    ],
)
def test_definition_errors(make: object, message: str) -> None:
    assert callable(make)
    with pytest.raises(ValueError, match=message):
        make()


def test_usage_errors_name_the_metric() -> None:
    counter = Counter("c_total", "C.", ["account", "status"])
    with pytest.raises(ValueError, match=r"c_total has labels \['account', 'status'\]"):
        counter.labels("only-one")
    with pytest.raises(ValueError, match=r"c_total has labels.*use \.labels"):
        counter.inc()
    with pytest.raises(TypeError, match="must be str"):
        counter.labels("a", 1)  # type: ignore[arg-type]
    registry = Registry()
    registry.register(Gauge("g", "G."))
    with pytest.raises(ValueError, match="already registered"):
        registry.gauge("g", "again")


def test_histogram_accepts_an_explicit_inf_bucket() -> None:
    hist = Histogram("h", "H.", buckets=[1.0, math.inf])
    assert hist.bounds == (1.0,)


# --------------------------------------------------------------------------- the daemon's families


FAMILIES = {
    "submits_total": ("counter", ("account",)),
    "responses_total": ("counter", ("account", "status")),
    "dlrs_total": ("counter", ("status",)),
    "unmatched_receipts_total": ("counter", ("account",)),
    "inbound_total": ("counter", ("status",)),
    "events_total": ("counter", ("status",)),
    "window_occupancy": ("gauge", ("bind",)),
    "tps": ("gauge", ("bind",)),
    "bind_state": ("gauge", ("bind", "state")),
    "reconnects_total": ("counter", ("account",)),
    "queue_depth": ("gauge", ("queue",)),
    "queue_lag_seconds": ("gauge", ("queue",)),
    "latency_queue_to_resp_seconds": ("histogram", ()),
    "latency_submit_to_dlr_seconds": ("histogram", ()),
    "webhook_deliveries_total": ("counter", ("result",)),
    "invalid_requests_total": ("counter", ()),
}


def test_metrics_has_every_family_with_help_and_type() -> None:
    metrics = Metrics()
    types, helps, _ = parse(metrics.render())
    assert types == {f"smpp_bridge_{name}": kind for name, (kind, _) in FAMILIES.items()}
    assert all(helps[name] for name in types)
    for name, (_, labels) in FAMILIES.items():
        assert getattr(metrics, name).labelnames == labels


def test_metrics_round_trip() -> None:
    metrics = Metrics(namespace="")
    metrics.submits_total.labels("main").inc(3)
    metrics.responses_total.labels("main", "ESME_RTHROTTLED").inc()
    metrics.invalid_requests_total.inc(2)
    metrics.unmatched_receipts_total.labels("main").inc()
    metrics.queue_lag_seconds.labels("requests").set(1.5)
    metrics.latency_queue_to_resp_seconds.observe(0.02)
    metrics.latency_submit_to_dlr_seconds.observe(7200)
    metrics.set_bind_state("main-0", "connecting")
    metrics.set_bind_state("main-0", "bound")
    metrics.set_bind_state("main-1", "bound")
    metrics.window_occupancy.labels("main-0").set(7)
    types, _, samples = parse(metrics.render())
    assert types["submits_total"] == "counter"
    assert samples[("submits_total", (("account", "main"),))] == 3
    key = ("responses_total", (("account", "main"), ("status", "ESME_RTHROTTLED")))
    assert samples[key] == 1
    assert samples[("invalid_requests_total", ())] == 2
    assert samples[("unmatched_receipts_total", (("account", "main"),))] == 1
    assert samples[("queue_lag_seconds", (("queue", "requests"),))] == 1.5
    assert samples[("bind_state", (("bind", "main-0"), ("state", "connecting")))] == 0
    assert samples[("bind_state", (("bind", "main-0"), ("state", "bound")))] == 1
    assert samples[("bind_state", (("bind", "main-1"), ("state", "bound")))] == 1
    assert samples[("latency_queue_to_resp_seconds_bucket", (("le", "0.025"),))] == 1
    assert samples[("latency_queue_to_resp_seconds_bucket", (("le", "0.01"),))] == 0
    assert samples[("latency_submit_to_dlr_seconds_bucket", (("le", "3600.0"),))] == 0
    assert samples[("latency_submit_to_dlr_seconds_bucket", (("le", "21600.0"),))] == 1
    assert samples[("latency_submit_to_dlr_seconds_count", ())] == 1
    metrics.forget_bind("main-0")
    _, _, samples = parse(metrics.render())
    assert not any(dict(labels).get("bind") == "main-0" for _, labels in samples)
    assert samples[("bind_state", (("bind", "main-1"), ("state", "bound")))] == 1
    assert CONTENT_TYPE == "text/plain; version=0.0.4; charset=utf-8"


@given(
    st.lists(
        st.tuples(st.text(max_size=20), st.text(max_size=20), st.integers(0, 10**6)),
        max_size=20,
        unique_by=lambda t: (t[0], t[1]),
    ),
    st.text(max_size=50),
)
def test_any_label_values_and_help_survive_rendering(
    series: list[tuple[str, str, int]], help_text: str
) -> None:
    registry = Registry()
    counter = registry.counter("c_total", help_text, ["a", "b"])
    for a, b, n in series:
        counter.labels(a, b).inc(n)
    _, helps, samples = parse(registry.render())
    assert helps["c_total"] == help_text
    assert samples == {("c_total", (("a", a), ("b", b))): n for a, b, n in series}


@given(st.lists(st.floats(min_value=0, max_value=1e4, allow_nan=False), max_size=50))
def test_histogram_buckets_are_cumulative(values: list[float]) -> None:
    registry = Registry()
    bounds = [0.5, 1.0, 5.0, 100.0]
    hist = registry.histogram("h", "H.", buckets=bounds)
    for v in values:
        hist.observe(v)
    _, _, samples = parse(registry.render())
    for bound in bounds:
        expected = sum(1 for v in values if v <= bound)
        assert samples[("h_bucket", (("le", repr(bound)),))] == expected
    assert samples[("h_bucket", (("le", "+Inf"),))] == len(values)
    assert samples[("h_count", ())] == len(values)
    assert samples[("h_sum", ())] == pytest.approx(math.fsum(values), rel=1e-9, abs=1e-9)
