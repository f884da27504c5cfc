"""Prometheus metrics for `LogManager`s: `PrometheusCollector` (extra `asynclog[prometheus]`).

    from prometheus_client import start_http_server
    from asynclog.metrics import PrometheusCollector

    PrometheusCollector(lm)          # registers itself in prometheus_client.REGISTRY
    start_http_server(9464)

Gauges and counters are read from `LogManager.get_stats()` at scrape time, so they cover the
manager's whole life whenever the collector was made. The histograms (batch size, write
latency, delivery latency) are fed by `LogManager.observe_writes` and count only the writes
made after the collector was created: create it before `start()`. See docs/metrics.md.
"""

from __future__ import annotations

try:
    # The package first: `from prometheus_client.x import ...` could find a cached submodule
    # and hide that the package itself is missing (or was blocked).
    import prometheus_client
except ImportError as exc:  # pragma: no cover - exercised in a subprocess by the tests
    raise ImportError(
        "asynclog.metrics needs prometheus_client: pip install 'asynclog[prometheus]'"
    ) from exc

import re
import threading
from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence
from time import time
from typing import cast

from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.utils import floatToGoString

from ._entry import LogEntry
from ._manager import LogManager

__all__ = [
    "BATCH_SIZE_BUCKETS",
    "DELIVERY_SECONDS_BUCKETS",
    "WRITE_SECONDS_BUCKETS",
    "PrometheusCollector",
]

BATCH_SIZE_BUCKETS: tuple[float, ...] = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)
"""Upper bounds (`le`) of `asynclog_batch_size`, in entries; `+Inf` follows."""
WRITE_SECONDS_BUCKETS: tuple[float, ...] = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0,
)  # fmt: skip
"""Upper bounds of `asynclog_write_seconds`; `+Inf` follows."""
DELIVERY_SECONDS_BUCKETS: tuple[float, ...] = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    30.0, 60.0,
)  # fmt: skip
"""Upper bounds of `asynclog_delivery_seconds`; `+Inf` follows."""

_LABELS = ("manager", "backend")
_NAMESPACE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
# prometheus_client's own formatting of `le` (it has no annotations: a narrow cast).
_go_float = cast(Callable[[float], str], floatToGoString)


class _Histograms:
    """One backend's three histograms: per-bucket (not cumulative) counts, the last slot
    for `+Inf`, and the sums. Changed only by `_Observed.observe`, under its lock."""

    __slots__ = (
        "batch_counts",
        "batch_sum",
        "delivery_counts",
        "delivery_sum",
        "write_counts",
        "write_sum",
    )

    def __init__(self) -> None:
        self.batch_counts = [0] * (len(BATCH_SIZE_BUCKETS) + 1)
        self.batch_sum = 0.0
        self.write_counts = [0] * (len(WRITE_SECONDS_BUCKETS) + 1)
        self.write_sum = 0.0
        self.delivery_counts = [0] * (len(DELIVERY_SECONDS_BUCKETS) + 1)
        self.delivery_sum = 0.0

    def copy(self) -> _Histograms:
        other = _Histograms()
        other.batch_counts = self.batch_counts.copy()
        other.batch_sum = self.batch_sum
        other.write_counts = self.write_counts.copy()
        other.write_sum = self.write_sum
        other.delivery_counts = self.delivery_counts.copy()
        other.delivery_sum = self.delivery_sum
        return other


class _Observed:
    """One manager: its write observer and the histograms it feeds, by backend name."""

    __slots__ = ("_by_backend", "_lock", "manager")

    def __init__(self, manager: LogManager) -> None:
        self.manager = manager
        self._by_backend = {sink.name: _Histograms() for sink in manager.config.sinks}
        # The observer runs in the manager's worker (loop thread) once per batch; collect()
        # runs in the scraping thread. A plain lock, taken once per batch (~0.1 µs, never
        # contended but for a scrape's few list copies), makes every scrape see whole batches:
        # the buckets, _count and _sum of a histogram always describe the same writes, and the
        # three histograms of a backend agree. Lock-free copies would be just as cheap but
        # could show a batch's buckets without its sum (or on free-threaded builds, worse).
        self._lock = threading.Lock()
        manager.observe_writes(self.observe)

    def observe(self, backend: str, entries: Sequence[LogEntry], seconds: float) -> None:
        """After each successful batch write: one bisect for the batch's size, one for the
        write's latency, and one per entry for its age (now - the `write_log` call)."""
        now = time()
        size = len(entries)
        histograms = self._by_backend[backend]
        bounds = DELIVERY_SECONDS_BUCKETS
        lock = self._lock
        lock.acquire()  # not `with`: half the cost, and this runs for every batch
        try:
            histograms.batch_counts[bisect_left(BATCH_SIZE_BUCKETS, size)] += 1
            histograms.batch_sum += size
            histograms.write_counts[bisect_left(WRITE_SECONDS_BUCKETS, seconds)] += 1
            histograms.write_sum += seconds
            counts = histograms.delivery_counts
            total = 0.0
            for entry in entries:
                age = now - entry.timestamp
                counts[bisect_left(bounds, age)] += 1  # a negative age (clock step): 1st bucket
                total += age
            histograms.delivery_sum += total
        finally:
            lock.release()

    def snapshot(self) -> dict[str, _Histograms]:
        with self._lock:
            return {name: histograms.copy() for name, histograms in self._by_backend.items()}


class PrometheusCollector(Collector):
    """A Prometheus collector for one or several `LogManager`s (one collector for all of them:
    their series share each metric family, told apart by the `manager` and `backend` labels).

    `registry`: where to register (default prometheus_client's global `REGISTRY`; None: don't
    register, call `registry.register(collector)` yourself). `namespace` prefixes every
    metric name (`asynclog_queue_depth`); `""` for none. Raises `ValueError` if two managers
    share a name (`Config(name=...)`) or the namespace is not a valid metric name prefix.
    """

    def __init__(
        self,
        *managers: LogManager,
        registry: CollectorRegistry | None = prometheus_client.REGISTRY,
        namespace: str = "asynclog",
    ) -> None:
        if namespace and not _NAMESPACE.fullmatch(namespace):
            raise ValueError(f"namespace must match [a-zA-Z_][a-zA-Z0-9_]*, got {namespace!r}")
        names = [manager.name for manager in managers]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(
                f"several managers named {', '.join(map(repr, repeated))}: their series would "
                "clash; give each its own Config(name=...)"
            )
        self._prefix = f"{namespace}_" if namespace else ""
        self._observed = tuple(_Observed(manager) for manager in managers)
        if registry is not None:
            registry.register(self)

    @property
    def managers(self) -> tuple[LogManager, ...]:
        """The managers this collector reports on."""
        return tuple(observed.manager for observed in self._observed)

    def describe(self) -> Iterator[Metric]:
        """The metric families without samples: lets a registry refuse a clashing collector."""
        yield from _Families(self._prefix).all()

    def collect(self) -> Iterator[Metric]:
        """Every metric family, built now from `get_stats()` and the histograms."""
        f = _Families(self._prefix)
        for observed in self._observed:
            manager = observed.manager.name
            stats = observed.manager.get_stats()
            for backend, part in stats.backends.items():
                labels = [manager, backend]
                f.queue_depth.add_metric(labels, part.queue_size)
                f.queue_capacity.add_metric(labels, part.queue_capacity)
                f.pending.add_metric(labels, part.pending)
                f.accepted.add_metric(labels, part.accepted)
                f.written.add_metric(labels, part.written)
                f.dropped.add_metric(labels, part.dropped)
                f.dead_lettered.add_metric(labels, part.dead_lettered)
                f.write_errors.add_metric(labels, part.write_errors)
                f.retries.add_metric(labels, part.retries)
                f.rotated_files_deleted.add_metric(labels, part.rotated_files_deleted)
            # Handlers run once per entry for the whole manager; the filter is the manager's.
            f.handler_errors.add_metric([manager], stats.handler_errors)
            f.filtered.add_metric([manager], stats.filtered)
            for cause, count in stats.filtered_by.items():
                f.filtered_by.add_metric([manager, cause], count)
            for backend, h in observed.snapshot().items():
                labels = [manager, backend]
                f.batch_size.add_metric(
                    labels, _cumulative(BATCH_SIZE_BUCKETS, h.batch_counts), h.batch_sum
                )
                f.write_seconds.add_metric(
                    labels, _cumulative(WRITE_SECONDS_BUCKETS, h.write_counts), h.write_sum
                )
                f.delivery_seconds.add_metric(
                    labels, _cumulative(DELIVERY_SECONDS_BUCKETS, h.delivery_counts), h.delivery_sum
                )
        yield from f.all()


class _Families:
    """One scrape's metric families, empty until `collect` adds the samples."""

    def __init__(self, p: str) -> None:
        by_backend = _LABELS
        self.queue_depth = GaugeMetricFamily(
            f"{p}queue_depth", "Entries waiting in the backend's queue.", labels=by_backend
        )
        self.queue_capacity = GaugeMetricFamily(
            f"{p}queue_capacity",
            "The bound of the backend's queue (Config.queue_size; 0 in sync mode).",
            labels=by_backend,
        )
        self.pending = GaugeMetricFamily(
            f"{p}pending",
            "Entries accepted but not yet settled: queued, waiting for room, or being written.",
            labels=by_backend,
        )
        self.accepted = CounterMetricFamily(
            f"{p}entries_accepted",
            "Entries that reached write_log at or above the backend's level.",
            labels=by_backend,
        )
        self.written = CounterMetricFamily(
            f"{p}entries_written", "Entries written by the backend.", labels=by_backend
        )
        self.dropped = CounterMetricFamily(
            f"{p}entries_dropped",
            "Entries lost: full queue (overflow policy), refused or abandoned at close, or "
            "failed on both the backend and the fallback.",
            labels=by_backend,
        )
        self.dead_lettered = CounterMetricFamily(
            f"{p}entries_dead_lettered",
            "Entries written to the fallback after the backend kept failing.",
            labels=by_backend,
        )
        self.write_errors = CounterMetricFamily(
            f"{p}write_errors",
            "Backend write calls that raised (each retry counts).",
            labels=by_backend,
        )
        self.retries = CounterMetricFamily(
            f"{p}retries", "Batch writes retried after a failure.", labels=by_backend
        )
        self.rotated_files_deleted = CounterMetricFamily(
            f"{p}rotated_files_deleted",
            "Rotated log files the backend deleted (past max_backups, or by retention).",
            labels=by_backend,
        )
        self.handler_errors = CounterMetricFamily(
            f"{p}handler_errors", "Handler calls that raised.", labels=("manager",)
        )
        self.filtered = CounterMetricFamily(
            f"{p}entries_filtered",
            "Entries discarded at the call, never accepted: below the level or dropped by a "
            "processor.",
            labels=("manager",),
        )
        self.filtered_by = CounterMetricFamily(
            f"{p}entries_filtered_by_cause",
            "Entries discarded at the call, by cause: 'level' or a processor's name.",
            labels=("manager", "cause"),
        )
        self.batch_size = HistogramMetricFamily(
            f"{p}batch_size", "Entries per successful backend write.", labels=by_backend
        )
        self.write_seconds = HistogramMetricFamily(
            f"{p}write_seconds",
            "Duration of each successful backend write call, in seconds.",
            labels=by_backend,
        )
        self.delivery_seconds = HistogramMetricFamily(
            f"{p}delivery_seconds",
            "Per entry: seconds from the write_log call to the end of the backend write "
            "that stored it (wall clock).",
            labels=by_backend,
        )

    def all(self) -> list[Metric]:
        return [
            self.queue_depth,
            self.queue_capacity,
            self.pending,
            self.accepted,
            self.written,
            self.dropped,
            self.dead_lettered,
            self.write_errors,
            self.retries,
            self.rotated_files_deleted,
            self.handler_errors,
            self.filtered,
            self.filtered_by,
            self.batch_size,
            self.write_seconds,
            self.delivery_seconds,
        ]


def _cumulative(bounds: Sequence[float], counts: Sequence[int]) -> list[tuple[str, float]]:
    """(le, cumulative count) for every bound, then `+Inf` with the total."""
    buckets = []
    running = 0
    for bound, count in zip((*bounds, float("inf")), counts, strict=True):
        running += count
        buckets.append((_go_float(bound), float(running)))
    return buckets
