"""asynclog.metrics.PrometheusCollector, checked by scraping the text exposition."""

from __future__ import annotations

import asyncio
import math
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator

import pytest

prometheus_client = pytest.importorskip("prometheus_client")

from prometheus_client import CollectorRegistry, generate_latest  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from asynclog import Config, LogEntry, LogManager, Sink  # noqa: E402
from asynclog.metrics import PrometheusCollector  # noqa: E402

from .conftest import FailingBackend, GateBackend, RecordingBackend, assert_settled  # noqa: E402

HISTOGRAMS = ("asynclog_batch_size", "asynclog_write_seconds", "asynclog_delivery_seconds")
Labels = frozenset[tuple[str, str]]


class Scrape:
    """One parsed exposition: every sample by (name, labels), histograms checked on the way."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.samples: dict[tuple[str, Labels], float] = {}
        self.types: dict[str, str] = {}
        for family in text_string_to_metric_families(text):
            self.types[family.name] = family.type
            for sample in family.samples:
                key = (sample.name, frozenset(sample.labels.items()))
                assert key not in self.samples, f"duplicate series {key}"
                self.samples[key] = sample.value
        for name in HISTOGRAMS:
            if name in self.types:
                self._check_histogram(name)

    def __call__(self, name: str, **labels: str) -> float:
        return self.samples[(name, frozenset(labels.items()))]

    def series(self, name: str) -> dict[Labels, float]:
        return {labels: value for (sample, labels), value in self.samples.items() if sample == name}

    def buckets(self, name: str, **labels: str) -> dict[str, float]:
        """le -> cumulative count, in exposition order."""
        found: dict[str, float] = {}
        for (sample, sample_labels), value in self.samples.items():
            rest = dict(sample_labels)
            le = rest.pop("le", None)
            if sample == f"{name}_bucket" and rest == labels and le is not None:
                found[le] = value
        return found

    def _check_histogram(self, name: str) -> None:
        assert self.types[name] == "histogram"
        for labels in self.series(f"{name}_count"):
            values = dict(labels)
            buckets = list(self.buckets(name, **values).items())
            assert buckets[-1][0] == "+Inf"
            counts = [count for _, count in buckets]
            assert counts == sorted(counts), f"{name} buckets not cumulative: {buckets}"
            bounds = [float(le) for le, _ in buckets]
            assert bounds == sorted(bounds) and bounds[-1] == math.inf
            assert counts[-1] == self(f"{name}_count", **values)
            assert self(f"{name}_sum", **values) >= 0


def scrape(registry: CollectorRegistry) -> Scrape:
    return Scrape(generate_latest(registry).decode())


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


def _memory(**options: object) -> tuple[Config, RecordingBackend]:
    backend = RecordingBackend()
    options.setdefault("name", "app")
    return Config(backends=[Sink(backend, name="mem")], **options), backend  # type: ignore[arg-type]


@pytest.mark.parametrize("async_mode", [True, False], ids=["async", "sync"])
async def test_after_n_entries_the_counters_are_n_with_the_labels(
    registry: CollectorRegistry, async_mode: bool
) -> None:
    config, backend = _memory(async_mode=async_mode, level="INFO")
    lm = LogManager(config)
    PrometheusCollector(lm, registry=registry)
    async with lm:
        for index in range(40):
            await lm.info(f"m{index}")
        for index in range(3):
            await lm.debug(f"filtered {index}")
    stats = lm.get_stats()
    assert_settled(stats)
    s = scrape(registry)
    mem = {"manager": "app", "backend": "mem"}
    assert s.types["asynclog_entries_accepted"] == "counter"
    assert s.types["asynclog_queue_depth"] == "gauge"
    assert s("asynclog_entries_accepted_total", **mem) == 40
    assert s("asynclog_entries_written_total", **mem) == 40
    assert s("asynclog_entries_dropped_total", **mem) == 0
    assert s("asynclog_entries_dead_lettered_total", **mem) == 0
    assert s("asynclog_write_errors_total", **mem) == 0
    assert s("asynclog_retries_total", **mem) == 0
    assert s("asynclog_queue_depth", **mem) == 0
    assert s("asynclog_pending", **mem) == 0
    assert s("asynclog_queue_capacity", **mem) == (1000 if async_mode else 0)
    assert s("asynclog_entries_filtered_total", manager="app") == 3
    assert s("asynclog_entries_filtered_by_cause_total", manager="app", cause="level") == 3
    assert s("asynclog_handler_errors_total", manager="app") == 0
    # The exact exposition line, as Prometheus reads it.
    line = 'asynclog_entries_written_total{backend="mem",manager="app"} 40.0'
    assert line in s.text.splitlines()
    # One batch observation per backend write; one delivery observation per entry.
    assert s("asynclog_batch_size_count", **mem) == len(backend.batches)
    assert s("asynclog_batch_size_sum", **mem) == 40
    assert s("asynclog_write_seconds_count", **mem) == len(backend.batches)
    assert s("asynclog_delivery_seconds_count", **mem) == 40
    if not async_mode:
        assert backend.batches == [1] * 40


async def test_histogram_buckets_count_each_batch_and_entry(registry: CollectorRegistry) -> None:
    config, backend = _memory(async_mode=True, batch_size=10)
    lm = LogManager(config)
    PrometheusCollector(lm, registry=registry)
    async with lm:
        for index in range(35):  # queued before the worker runs: batches of 10, 10, 10, 5
            await lm.info(f"m{index}")
    assert backend.batches == [10, 10, 10, 5]
    s = scrape(registry)  # Scrape checked: cumulative, +Inf == _count, _sum >= 0
    mem = {"manager": "app", "backend": "mem"}
    sizes = s.buckets("asynclog_batch_size", **mem)
    assert (sizes["2.0"], sizes["5.0"], sizes["10.0"], sizes["+Inf"]) == (0, 1, 4, 4)
    assert s("asynclog_batch_size_sum", **mem) == 35
    assert s("asynclog_write_seconds_count", **mem) == 4
    assert 0 <= s("asynclog_write_seconds_sum", **mem) < 5
    assert s("asynclog_delivery_seconds_count", **mem) == 35
    assert 0 <= s("asynclog_delivery_seconds_sum", **mem) < 35 * 5
    assert s.buckets("asynclog_delivery_seconds", **mem)["60.0"] == 35


async def test_delivery_latency_is_measured_from_the_write_log_call(
    registry: CollectorRegistry,
) -> None:
    backend = GateBackend()
    lm = LogManager(Config(backends=[Sink(backend, name="gate")], async_mode=True, name="app"))
    PrometheusCollector(lm, registry=registry)
    async with lm:
        await lm.info("waits")
        await backend.writing.wait()
        await asyncio.sleep(0.08)  # at least 0.06 s even with uvloop's millisecond timers
        backend.release()
    s = scrape(registry)
    gate = {"manager": "app", "backend": "gate"}
    buckets = s.buckets("asynclog_delivery_seconds", **gate)
    assert (buckets["0.05"], buckets["+Inf"]) == (0, 1)
    assert s("asynclog_delivery_seconds_sum", **gate) >= 0.06
    assert s("asynclog_write_seconds_sum", **gate) >= 0.05  # the write itself waited


async def test_a_backend_at_error_gets_only_its_entries(registry: CollectorRegistry) -> None:
    everything, errors = RecordingBackend(), RecordingBackend()
    config = Config(
        backends=[Sink(everything, name="all"), Sink(errors, level="ERROR", name="errors")],
        async_mode=True,
        name="app",
    )
    lm = LogManager(config)
    PrometheusCollector(lm, registry=registry)
    async with lm:
        for index in range(5):
            await lm.info(f"info {index}")
        for index in range(2):
            await lm.error(f"error {index}")
    assert (len(everything.entries), len(errors.entries)) == (7, 2)
    s = scrape(registry)
    for backend, count in (("all", 7), ("errors", 2)):
        labels = {"manager": "app", "backend": backend}
        assert s("asynclog_entries_accepted_total", **labels) == count
        assert s("asynclog_entries_written_total", **labels) == count
        assert s("asynclog_delivery_seconds_count", **labels) == count
    assert set(s.series("asynclog_entries_written_total")) == {
        frozenset({"manager": "app", "backend": b}.items()) for b in ("all", "errors")
    }
    assert s("asynclog_entries_filtered_total", manager="app") == 0


async def _stalled(
    registry: CollectorRegistry, **options: object
) -> tuple[LogManager, GateBackend]:
    backend = GateBackend()
    options.setdefault("queue_size", 10)
    config = Config(backends=[Sink(backend, name="gate")], async_mode=True, name="app", **options)  # type: ignore[arg-type]
    lm = LogManager(config)
    PrometheusCollector(lm, registry=registry)
    await lm.start()
    await lm.info("in flight")  # the worker takes it and stalls in write_batch
    await backend.writing.wait()
    return lm, backend


async def test_queue_depth_while_the_worker_is_stalled(registry: CollectorRegistry) -> None:
    lm, backend = await _stalled(registry)
    for index in range(7):
        await lm.info(f"m{index}")
    s = scrape(registry)
    gate = {"manager": "app", "backend": "gate"}
    assert s("asynclog_queue_depth", **gate) == 7
    assert s("asynclog_queue_capacity", **gate) == 10
    assert s("asynclog_pending", **gate) == 8  # 7 queued + 1 in the worker's hands
    assert s("asynclog_entries_accepted_total", **gate) == 8
    assert s("asynclog_entries_written_total", **gate) == 0
    assert s("asynclog_batch_size_count", **gate) == 0
    backend.release()
    await lm.close()
    s = scrape(registry)
    assert (s("asynclog_queue_depth", **gate), s("asynclog_pending", **gate)) == (0, 0)
    assert s("asynclog_entries_written_total", **gate) == 8
    assert s("asynclog_delivery_seconds_count", **gate) == 8


async def test_dropped_entries_are_counted(registry: CollectorRegistry) -> None:
    lm, backend = await _stalled(registry, overflow="drop_newest")
    for index in range(25):
        await lm.info(f"m{index}")  # 10 fit in the queue, 15 are dropped
    s = scrape(registry)
    gate = {"manager": "app", "backend": "gate"}
    assert s("asynclog_entries_dropped_total", **gate) == 15
    assert s("asynclog_queue_depth", **gate) == 10
    backend.release()
    await lm.close()
    stats = lm.get_stats()
    assert_settled(stats)
    s = scrape(registry)
    assert s("asynclog_entries_dropped_total", **gate) == 15
    # The in-band "asynclog dropped 15 entries" report is accepted and written too.
    assert s("asynclog_entries_accepted_total", **gate) == stats.accepted == 27
    assert s("asynclog_entries_written_total", **gate) == stats.written == 12


async def test_dead_lettered_entries_and_write_errors_are_counted(
    registry: CollectorRegistry,
) -> None:
    backend, fallback = FailingBackend(fail_on={0, 1}), RecordingBackend()
    config = Config(
        backend=backend,
        async_mode=True,
        batch_size=5,
        retry_attempts=1,
        retry_backoff=0.001,
        fallback=fallback,
    )
    lm = LogManager(config)
    PrometheusCollector(lm, registry=registry)
    async with lm:
        for index in range(6):  # batch m0-m4 fails, its retry fails: to the fallback; m5 works
            await lm.info(f"m{index}")
    assert (len(fallback.entries), backend.messages) == (5, ["m5"])
    s = scrape(registry)
    labels = {"manager": "asynclog", "backend": "FailingBackend"}
    assert s("asynclog_entries_dead_lettered_total", **labels) == 5
    assert s("asynclog_write_errors_total", **labels) == 2
    assert s("asynclog_retries_total", **labels) == 1
    assert s("asynclog_entries_written_total", **labels) == 1
    assert s("asynclog_entries_dropped_total", **labels) == 0
    # Only successful writes are observed.
    assert s("asynclog_batch_size_count", **labels) == 1
    assert s("asynclog_delivery_seconds_count", **labels) == 1


async def test_handler_errors_are_counted_per_manager(registry: CollectorRegistry) -> None:
    config, _ = _memory()

    def broken(entry: LogEntry) -> None:
        raise RuntimeError("broken handler")

    lm = LogManager(config)
    lm.register_handler(broken)
    PrometheusCollector(lm, registry=registry)
    async with lm:
        for index in range(3):
            await lm.info(f"m{index}")
    assert scrape(registry)("asynclog_handler_errors_total", manager="app") == 3


async def test_two_managers_in_one_collector(registry: CollectorRegistry) -> None:
    a_config, _ = _memory(name="a", async_mode=True)
    b_config, _ = _memory(name="b")
    lm_a, lm_b = LogManager(a_config), LogManager(b_config)
    collector = PrometheusCollector(lm_a, lm_b, registry=registry)
    assert collector.managers == (lm_a, lm_b)
    async with lm_a, lm_b:
        for index in range(4):
            await lm_a.info(f"a{index}")
        for index in range(6):
            await lm_b.info(f"b{index}")
    s = scrape(registry)
    assert s("asynclog_entries_written_total", manager="a", backend="mem") == 4
    assert s("asynclog_entries_written_total", manager="b", backend="mem") == 6
    assert s("asynclog_delivery_seconds_count", manager="a", backend="mem") == 4
    assert s("asynclog_delivery_seconds_count", manager="b", backend="mem") == 6
    assert s("asynclog_queue_capacity", manager="b", backend="mem") == 0
    assert len(s.series("asynclog_queue_depth")) == 2
    # One family per metric: a "# TYPE" line each, whatever the number of managers.
    assert s.text.count("# TYPE asynclog_entries_written_total counter") == 1


async def test_clashes_are_refused() -> None:
    registry = CollectorRegistry()
    one, two = LogManager(_memory()[0]), LogManager(_memory()[0])  # both named "app"
    with pytest.raises(ValueError, match="several managers named 'app'"):
        PrometheusCollector(one, two, registry=registry)
    with pytest.raises(ValueError, match="several managers named 'app'"):
        PrometheusCollector(one, one, registry=registry)
    PrometheusCollector(one, registry=registry)
    with pytest.raises(ValueError, match="Duplicated timeseries"):  # describe() names them
        PrometheusCollector(two, registry=registry)
    with pytest.raises(ValueError, match="namespace"):
        PrometheusCollector(two, registry=None, namespace="my-app")


async def test_namespace_and_no_registration() -> None:
    config, _ = _memory()
    lm = LogManager(config)
    collector = PrometheusCollector(lm, registry=None, namespace="myapp")
    async with lm:
        await lm.info("one")
    names = {family.name for family in collector.collect()}
    assert "myapp_queue_depth" in names and "myapp_entries_written" in names
    assert not any(name.startswith("asynclog") for name in names)
    registry = CollectorRegistry()
    assert "myapp" not in generate_latest(registry).decode()
    registry.register(collector)
    assert scrape(registry)("myapp_entries_written_total", manager="app", backend="mem") == 1
    bare = PrometheusCollector(lm, registry=None, namespace="")
    assert "queue_depth" in {family.name for family in bare.collect()}


async def test_histograms_count_the_writes_after_the_collector_was_made(
    registry: CollectorRegistry,
) -> None:
    config, _ = _memory(async_mode=False)
    async with LogManager(config) as lm:
        await lm.info("before")
        PrometheusCollector(lm, registry=registry)
        await lm.info("after")
    s = scrape(registry)
    mem = {"manager": "app", "backend": "mem"}
    assert s("asynclog_entries_written_total", **mem) == 2  # from get_stats(): everything
    assert s("asynclog_delivery_seconds_count", **mem) == 1  # observed: since the collector


async def test_scrapes_from_another_thread_see_whole_batches(registry: CollectorRegistry) -> None:
    config, _ = _memory(async_mode=True, batch_size=7)
    lm = LogManager(config)
    PrometheusCollector(lm, registry=registry)
    done = threading.Event()
    seen: list[float] = []

    def scrape_until_done() -> None:
        while not seen or not done.is_set():  # at least once
            s = scrape(registry)  # checks every histogram's consistency
            batched = s("asynclog_batch_size_sum", manager="app", backend="mem")
            delivered = s("asynclog_delivery_seconds_count", manager="app", backend="mem")
            assert batched == delivered  # observed under one lock: never half a batch
            seen.append(delivered)

    async with lm:
        scraper = asyncio.create_task(asyncio.to_thread(scrape_until_done))
        for index in range(3000):
            await lm.info(f"m{index}")
            if index % 50 == 0:
                await asyncio.sleep(0)
        await asyncio.sleep(0)
    done.set()
    await scraper
    assert seen and seen == sorted(seen)
    assert scrape(registry)("asynclog_delivery_seconds_count", manager="app", backend="mem") == 3000


async def test_served_over_http(registry: CollectorRegistry) -> None:
    config, _ = _memory(async_mode=False)  # written before write_log returns: nothing to wait for
    lm = LogManager(config)
    PrometheusCollector(lm, registry=registry)
    server, thread = prometheus_client.start_http_server(0, addr="127.0.0.1", registry=registry)
    try:
        async with lm:
            for index in range(12):
                await lm.info(f"m{index}")
            url = f"http://127.0.0.1:{server.server_port}/metrics"

            def fetch() -> tuple[str, str]:
                with urllib.request.urlopen(url, timeout=5) as response:
                    return response.headers["Content-Type"], response.read().decode()

            content_type, body = await asyncio.to_thread(fetch)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    assert content_type.startswith("text/plain")
    s = Scrape(body)
    assert s("asynclog_entries_written_total", manager="app", backend="mem") == 12
    assert s("asynclog_delivery_seconds_count", manager="app", backend="mem") == 12
    assert s("asynclog_queue_capacity", manager="app", backend="mem") == 0


def test_import_asynclog_never_imports_prometheus_client_and_metrics_says_how_to_get_it() -> None:
    code = (
        "import sys\n"
        "import asynclog\n"
        "assert 'prometheus_client' not in sys.modules, 'import asynclog imported it'\n"
        "sys.modules['prometheus_client'] = None  # as if not installed\n"
        "try:\n"
        "    import asynclog.metrics\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
        "else:\n"
        "    raise SystemExit('asynclog.metrics imported without prometheus_client')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "pip install 'asynclog[prometheus]'" in result.stdout


def _families(collector: PrometheusCollector) -> Iterator[str]:
    return (family.name for family in collector.describe())


def test_describe_names_every_family_without_samples() -> None:
    collector = PrometheusCollector(LogManager(_memory()[0]), registry=None)
    assert sorted(_families(collector)) == sorted(
        [
            "asynclog_queue_depth",
            "asynclog_queue_capacity",
            "asynclog_pending",
            "asynclog_entries_accepted",
            "asynclog_entries_written",
            "asynclog_entries_dropped",
            "asynclog_entries_dead_lettered",
            "asynclog_write_errors",
            "asynclog_retries",
            "asynclog_rotated_files_deleted",
            "asynclog_handler_errors",
            "asynclog_entries_filtered",
            "asynclog_entries_filtered_by_cause",
            "asynclog_batch_size",
            "asynclog_write_seconds",
            "asynclog_delivery_seconds",
        ]
    )
    assert all(not family.samples for family in collector.describe())
