"""Prometheus metrics without a dependency: counters, gauges and histograms with labels, and
the daemon's own families, rendered in the text exposition format 0.0.4.

The hot path is an increment on a labelled child, so a child is a slotted object holding a
number: ``labels(...)`` is one dict lookup keyed by the tuple of label values, and the child it
returns can be kept and incremented directly::

    submits = metrics.submits_total.labels("main")   # once per account
    submits.inc()                                      # per submit: an attribute add

Label strings are escaped once, when a child is created, so ``render`` only joins text.
Everything here runs on the event loop thread; nothing is locked.
"""

from __future__ import annotations

import itertools
import math
import re
from abc import ABC, abstractmethod
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Final, Generic, TypeVar

if TYPE_CHECKING:
    from ..pool import PoolStatus

__all__ = [
    "CONTENT_TYPE",
    "DLR_LATENCY_BUCKETS",
    "LATENCY_BUCKETS",
    "Counter",
    "CounterChild",
    "Gauge",
    "GaugeChild",
    "Histogram",
    "HistogramChild",
    "Metrics",
    "Registry",
]

#: The Content-Type of ``render()``'s output.
CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"

#: Seconds from taking a request off the queue to its submit_sm_resp.
LATENCY_BUCKETS: Final = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip
#: Seconds from submit to the final delivery receipt: handsets can be off for hours.
DLR_LATENCY_BUCKETS: Final = (
    0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 21600.0, 86400.0,
)  # fmt: skip

_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")


def _format_value(value: float) -> str:
    """A sample value as Prometheus writes it: integers without a fraction, ``+Inf``, ``NaN``."""
    if math.isnan(value):
        return "NaN"
    if value in (math.inf, -math.inf):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 2**53:
        return str(int(value))
    return repr(float(value))


def _format_bound(bound: float) -> str:
    return "+Inf" if bound == math.inf else repr(float(bound))


def _escape_label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _label_pairs(names: Sequence[str], values: Sequence[str]) -> str:
    """``a="x",b="y"``: the inside of the braces, escaped."""
    return ",".join(f'{n}="{_escape_label_value(v)}"' for n, v in zip(names, values, strict=True))


class CounterChild:
    """One labelled series of a counter: only goes up."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value: float = 0

    def inc(self, amount: float = 1) -> None:
        if amount < 0:
            raise ValueError(f"a counter only goes up; inc({amount!r})")
        self.value += amount


class GaugeChild:
    """One labelled series of a gauge: set, or moved up and down."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value: float = 0

    def set(self, value: float) -> None:
        self.value = value

    def inc(self, amount: float = 1) -> None:
        self.value += amount

    def dec(self, amount: float = 1) -> None:
        self.value -= amount


class HistogramChild:
    """One labelled series of a histogram. ``counts`` holds per-bucket (not cumulative)
    counts, the last one for observations above every bound; ``render`` accumulates them."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum: float = 0.0

    def observe(self, value: float) -> None:
        # bisect_left: a value equal to a bound belongs to that bound's bucket (le = "<=").
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    @property
    def count(self) -> int:
        """Observations so far (summed at read time: one update less per observation)."""
        return sum(self.counts)


C = TypeVar("C", CounterChild, GaugeChild, HistogramChild)


class _Family(ABC, Generic[C]):
    """A metric family: a name, help text, label names and one child per label-value tuple."""

    kind: str = ""

    def __init__(self, name: str, help: str, labelnames: Sequence[str] = ()) -> None:
        if not _NAME.match(name):
            raise ValueError(f"invalid metric name {name!r}")
        names = tuple(labelnames)
        for label in names:
            if not _LABEL.match(label) or label.startswith("__"):
                raise ValueError(f"invalid label name {label!r} for metric {name}")
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate label names {names} for metric {name}")
        self.name = name
        self.help = help
        self.labelnames = names
        self._children: dict[tuple[str, ...], C] = {}
        # Escaped ``a="x",b="y"`` per child, built once when the child is created.
        self._label_text: dict[tuple[str, ...], str] = {}
        # An unlabelled family has exactly one series, present (at 0) from the start.
        self._default: C | None = self.labels() if not names else None

    @abstractmethod
    def _new_child(self) -> C:
        """A fresh series of this family's kind."""

    def labels(self, *values: str) -> C:
        """The child for these label values (in ``labelnames`` order), created on first use.
        Keep it: incrementing a kept child skips even this lookup."""
        try:
            return self._children[values]
        except KeyError:
            pass
        if len(values) != len(self.labelnames):
            raise ValueError(
                f"metric {self.name} has labels {list(self.labelnames)}; got {len(values)} "
                f"value(s) {list(values)!r}"
            )
        for value in values:
            if not isinstance(value, str):
                raise TypeError(f"label values of {self.name} must be str, got {value!r}")
        child = self._new_child()
        self._label_text[values] = _label_pairs(self.labelnames, values)
        self._children[values] = child
        return child

    def remove(self, *values: str) -> None:
        """Forget one series (a bind that is gone). Unknown values are ignored."""
        self._children.pop(values, None)
        self._label_text.pop(values, None)

    def clear(self) -> None:
        """Forget every labelled series."""
        if self.labelnames:
            self._children.clear()
            self._label_text.clear()

    def children(self) -> dict[tuple[str, ...], C]:
        """The current series by label values (a copy)."""
        return dict(self._children)

    def _unlabelled(self) -> C:
        if self._default is None:
            raise ValueError(
                f"metric {self.name} has labels {list(self.labelnames)}: use .labels(...)"
            )
        return self._default

    @abstractmethod
    def _lines(self) -> Iterator[str]:
        """The exposition lines of every series."""

    def render_into(self, out: list[str]) -> None:
        out.append(f"# HELP {self.name} {_escape_help(self.help)}")
        out.append(f"# TYPE {self.name} {self.kind}")
        out.extend(self._lines())

    def _series(self) -> Iterator[tuple[str, C]]:
        """(``{labels}`` or "", child) in creation order."""
        text = self._label_text
        for values, child in self._children.items():
            inside = text[values]
            yield (f"{{{inside}}}" if inside else ""), child


V = TypeVar("V", CounterChild, GaugeChild)


class _ValueFamily(_Family[V]):
    """A family whose series are one value each (counters and gauges)."""

    def _lines(self) -> Iterator[str]:
        name = self.name
        for labels, child in self._series():
            yield f"{name}{labels} {_format_value(child.value)}"


class Counter(_ValueFamily[CounterChild]):
    """A monotonically increasing count. Name it ``..._total``."""

    kind = "counter"

    def _new_child(self) -> CounterChild:
        return CounterChild()

    def inc(self, amount: float = 1) -> None:
        """Increment an unlabelled counter."""
        child = self._default
        if child is None:
            child = self._unlabelled()
        if amount < 0:
            raise ValueError(f"a counter only goes up; inc({amount!r})")
        child.value += amount

    @property
    def value(self) -> float:
        """The value of an unlabelled counter."""
        return self._unlabelled().value


class Gauge(_ValueFamily[GaugeChild]):
    """A value that goes up and down."""

    kind = "gauge"

    def _new_child(self) -> GaugeChild:
        return GaugeChild()

    def set(self, value: float) -> None:
        self._unlabelled().set(value)

    def inc(self, amount: float = 1) -> None:
        self._unlabelled().inc(amount)

    def dec(self, amount: float = 1) -> None:
        self._unlabelled().dec(amount)

    @property
    def value(self) -> float:
        return self._unlabelled().value


class Histogram(_Family[HistogramChild]):
    """Observations counted into cumulative buckets (``le`` = less than or equal), with their
    sum and count. ``buckets`` are the finite upper bounds; ``+Inf`` is always added."""

    kind = "histogram"

    def __init__(
        self,
        name: str,
        help: str,
        labelnames: Sequence[str] = (),
        *,
        buckets: Iterable[float] = LATENCY_BUCKETS,
    ) -> None:
        bounds = tuple(float(b) for b in buckets)
        if bounds and bounds[-1] == math.inf:
            bounds = bounds[:-1]
        if not bounds:
            raise ValueError(f"histogram {name} needs at least one finite bucket")
        if any(not math.isfinite(b) for b in bounds):
            raise ValueError(f"histogram {name}: bucket bounds must be finite, got {bounds}")
        if any(a >= b for a, b in itertools.pairwise(bounds)):
            raise ValueError(f"histogram {name}: buckets must be strictly increasing: {bounds}")
        if "le" in labelnames:
            raise ValueError(f"histogram {name} cannot have a label named 'le'")
        self.bounds = bounds
        self._le = [f'le="{_format_bound(b)}"' for b in bounds] + ['le="+Inf"']
        super().__init__(name, help, labelnames)

    def _new_child(self) -> HistogramChild:
        return HistogramChild(self.bounds)

    def observe(self, value: float) -> None:
        child = self._default
        if child is None:
            child = self._unlabelled()
        child.observe(value)

    def _lines(self) -> Iterator[str]:
        name = self.name
        text = self._label_text
        for values, child in self._children.items():
            inside = text[values]
            prefix = inside + "," if inside else ""
            running = 0
            for le, count in zip(self._le, child.counts, strict=True):
                running += count
                yield f"{name}_bucket{{{prefix}{le}}} {running}"
            labels = f"{{{inside}}}" if inside else ""
            yield f"{name}_sum{labels} {_format_value(child.sum)}"
            yield f"{name}_count{labels} {running}"


Family = Counter | Gauge | Histogram


class Registry:
    """Families rendered together. ``on_collect`` callbacks run first at every render (to
    refresh gauges read from elsewhere, e.g. window occupancy)."""

    def __init__(self) -> None:
        self._families: dict[str, Family] = {}
        self._collectors: list[Callable[[], None]] = []

    def register(self, family: Family) -> None:
        if family.name in self._families:
            raise ValueError(f"metric {family.name} is already registered")
        self._families[family.name] = family

    def counter(self, name: str, help: str, labelnames: Sequence[str] = ()) -> Counter:
        family = Counter(name, help, labelnames)
        self.register(family)
        return family

    def gauge(self, name: str, help: str, labelnames: Sequence[str] = ()) -> Gauge:
        family = Gauge(name, help, labelnames)
        self.register(family)
        return family

    def histogram(
        self,
        name: str,
        help: str,
        labelnames: Sequence[str] = (),
        *,
        buckets: Iterable[float] = LATENCY_BUCKETS,
    ) -> Histogram:
        family = Histogram(name, help, labelnames, buckets=buckets)
        self.register(family)
        return family

    def get(self, name: str) -> Family:
        return self._families[name]

    def on_collect(self, callback: Callable[[], None]) -> None:
        self._collectors.append(callback)

    def render(self) -> bytes:
        """Every family in the text exposition format 0.0.4 (see ``CONTENT_TYPE``)."""
        for callback in self._collectors:
            callback()
        out: list[str] = []
        for family in self._families.values():
            family.render_into(out)
        out.append("")
        return "\n".join(out).encode()


class Metrics:
    """The daemon's metric families, named ``<namespace>_<name>`` (default namespace
    ``smpp_bridge``; ``""`` for bare names). Attributes carry the bare names."""

    def __init__(self, namespace: str = "smpp_bridge") -> None:
        self._reconnects_seen = 0  # the pool's reconnect count, as last observed
        self.registry = r = Registry()
        p = f"{namespace}_" if namespace else ""
        self.submits_total = r.counter(
            f"{p}submits_total", "submit_sm PDUs sent, per account.", ["account"]
        )
        self.responses_total = r.counter(
            f"{p}responses_total",
            "submit_sm_resp received, per account and command_status name.",
            ["account", "status"],
        )
        self.dlrs_total = r.counter(
            f"{p}dlrs_total", "Delivery receipts received, per event status.", ["status"]
        )
        self.unmatched_receipts_total = r.counter(
            f"{p}unmatched_receipts_total",
            "Delivery receipts no request claimed within unmatched_after, per account"
            " (published as unknown events).",
            ["account"],
        )
        self.inbound_total = r.counter(
            f"{p}inbound_total", "Inbound (MO) messages received, per event status.", ["status"]
        )
        self.events_total = r.counter(
            f"{p}events_total", "Events published, per status.", ["status"]
        )
        self.window_occupancy = r.gauge(
            f"{p}window_occupancy", "Outstanding requests in the bind's window.", ["bind"]
        )
        self.tps = r.gauge(f"{p}tps", "Current submit rate limit of the bind.", ["bind"])
        self.bind_state = r.gauge(
            f"{p}bind_state", "1 for the bind's current state, 0 for the others.", ["bind", "state"]
        )
        self.reconnects_total = r.counter(
            f"{p}reconnects_total", "Bind reconnect attempts, per account.", ["account"]
        )
        self.queue_depth = r.gauge(
            f"{p}queue_depth", "Entries in the queue not yet acknowledged.", ["queue"]
        )
        self.queue_lag_seconds = r.gauge(
            f"{p}queue_lag_seconds", "Age of the oldest unacknowledged queue entry.", ["queue"]
        )
        self.latency_queue_to_resp_seconds = r.histogram(
            f"{p}latency_queue_to_resp_seconds",
            "Seconds from enqueueing a send request to its submit_sm_resp.",
            buckets=LATENCY_BUCKETS,
        )
        self.latency_submit_to_dlr_seconds = r.histogram(
            f"{p}latency_submit_to_dlr_seconds",
            "Seconds from submit_sm to the final delivery receipt.",
            buckets=DLR_LATENCY_BUCKETS,
        )
        self.webhook_deliveries_total = r.counter(
            f"{p}webhook_deliveries_total",
            "Webhook POST outcomes: delivered, failed (to be retried), dead_lettered.",
            ["result"],
        )
        self.invalid_requests_total = r.counter(
            f"{p}invalid_requests_total", "Send requests rejected by validation."
        )

    def observe_pool(self, status: PoolStatus) -> None:
        """Set the gauges read off the pool's snapshot (binds, windows, TPS) and count the
        reconnects it reports beyond those counted before. Raises nothing."""
        # The pool counts reconnects over all its accounts.
        reconnects = status.stats["reconnects"]
        if reconnects > self._reconnects_seen:
            self.reconnects_total.labels("all").inc(reconnects - self._reconnects_seen)
            self._reconnects_seen = reconnects
        for bind in status.binds:
            self.set_bind_state(bind.name, bind.state)
            self.window_occupancy.labels(bind.name).set(bind.outstanding)
            self.tps.labels(bind.name).set(bind.tps)

    def set_bind_state(self, bind: str, state: str) -> None:
        """Set ``bind_state{bind,state}`` to 1 and the bind's other known states to 0."""
        family = self.bind_state
        for (b, s), child in family.children().items():
            if b == bind and s != state:
                child.set(0)
        family.labels(bind, state).set(1)

    def forget_bind(self, bind: str) -> None:
        """Drop every per-bind series of a bind that is gone."""
        for family in (self.window_occupancy, self.tps):
            family.remove(bind)
        for b, s in list(self.bind_state.children()):
            if b == bind:
                self.bind_state.remove(b, s)

    def render(self) -> bytes:
        return self.registry.render()
