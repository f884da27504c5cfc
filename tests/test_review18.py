"""Review of DirectLogger, LogEntries, the fork fix and quick_fields: each test here failed
before its fix."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asynclog import Config, LogEntry, LogManager
from asynclog._sanitize import FIELD_SEPARATORS, quick_fields
from asynclog.stdlib import AsyncLogHandler, DirectLogger, install

from .conftest import RecordingBackend, assert_settled


@pytest.fixture
def detached_name() -> Iterator[str]:
    """A logger name under `review18.` whose logger is removed from logging afterwards."""
    name = "review18.logger"
    yield name
    logging.Logger.manager.loggerDict.pop(name, None)


class TenantLogger(DirectLogger):
    def makeRecord(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record = super().makeRecord(*args, **kwargs)
        record.tenant = "t1"
        return record


class RenamingLogger(DirectLogger):
    def callHandlers(self, record: logging.LogRecord) -> None:
        record.msg = "renamed " + str(record.msg)
        super().callHandlers(record)


@pytest.mark.parametrize(
    ("logger_class", "expected"),
    [(TenantLogger, ("hello", {"tenant": "t1"})), (RenamingLogger, ("renamed hello", {}))],
)
async def test_a_direct_logger_subclass_overriding_a_record_method_gets_its_records(
    logger_class: type[DirectLogger], expected: tuple[str, dict[str, str]], detached_name: str
) -> None:
    log = logger_class(detached_name)
    log.propagate = False
    backend = RecordingBackend()
    async with LogManager(Config(backend=backend, async_mode=True)) as lm:
        log.addHandler(AsyncLogHandler(lm))
        log.warning("hello")
    assert_settled(lm.get_stats())
    assert [(e.message, dict(e.fields)) for e in backend.entries] == [expected]


def _quick_fields_before(fields: dict[str, Any], max_bytes: int) -> Mapping[str, Any] | None:
    """quick_fields as it was at dcaf694: the oracle for its rewrite."""
    chars = 0
    extra = FIELD_SEPARATORS * len(fields)
    for key, value in fields.items():
        kind = type(value)
        if kind is str:
            chars += len(key) + len(value)
        elif kind in (int, float, bool, type(None)) and (
            kind is not int or -(1 << 64) < value < (1 << 64)
        ):
            chars += len(key)
            extra += 24
        else:
            return None
    keywords = {"exc_info", "stack_info", "stacklevel", "extra"}
    if chars * 4 + extra > max_bytes or not keywords.isdisjoint(fields):
        return None
    return fields


class Flag(int):
    pass


class Text(str):
    pass


_VALUES = st.one_of(
    st.text(max_size=40),
    st.integers(min_value=-(1 << 66), max_value=1 << 66),
    st.sampled_from([(1 << 64) - 1, 1 << 64, -(1 << 64) + 1, -(1 << 64)]),
    st.floats(allow_nan=True),
    st.booleans(),
    st.none(),
    st.builds(Flag, st.integers(-5, 5)),
    st.builds(Text, st.text(max_size=5)),
    st.binary(max_size=5),
    st.lists(st.integers(), max_size=2),
)
_KEYS = st.one_of(
    st.text(min_size=1, max_size=12), st.sampled_from(["exc_info", "stack_info", "extra"])
)


@settings(max_examples=3000, deadline=None)
@given(st.dictionaries(_KEYS, _VALUES, max_size=6), st.integers(min_value=0, max_value=1200))
def test_quick_fields_accepts_and_refuses_exactly_what_it_did_before(
    fields: dict[str, Any], max_bytes: int
) -> None:
    expected = _quick_fields_before(fields, max_bytes)
    got = quick_fields(fields, max_bytes)
    assert (got is None) == (expected is None)
    assert got is None or got is fields


@pytest.mark.parametrize("size", [0, 1, 2, 3])
def test_quick_fields_at_the_exact_byte_bound(size: int) -> None:
    fields: dict[str, Any] = {"k": "v" * size, "n": 1}
    room = (1 + size + 1) * 4 + 2 * FIELD_SEPARATORS + 24
    assert quick_fields(fields, room) is fields
    assert quick_fields(fields, room - 1) is None


class KeptHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        pass


@pytest.mark.parametrize("replace", [True, False])
@pytest.mark.parametrize("first_undone", ["a", "b"])
async def test_two_installs_on_one_logger_undo_in_any_order(
    replace: bool, first_undone: str
) -> None:
    log = logging.getLogger("review18.twice")
    own = KeptHandler()
    log.addHandler(own)
    log.setLevel(logging.ERROR)
    try:
        config = {"backend": RecordingBackend(), "async_mode": True}
        async with (
            LogManager(Config(name="r18a", **config)) as a,
            LogManager(Config(name="r18b", **{**config, "backend": RecordingBackend()})) as b,
        ):
            installed = {
                "a": install(a, level="INFO", loggers=[log.name], replace=replace),
                "b": install(b, level="DEBUG", loggers=[log.name], replace=replace),
            }
            second_undone = "b" if first_undone == "a" else "a"
            installed[first_undone].undo()
            assert type(log) is DirectLogger
            left = installed[second_undone].handler
            assert log.handlers == ([left] if replace else [own, left])
            installed[second_undone].undo()
            assert type(log) is logging.Logger
            assert log.handlers == [own]
            assert log.level == logging.ERROR
    finally:
        log.handlers.clear()
        log.setLevel(logging.NOTSET)
        log.__class__ = logging.Logger


async def test_a_patched_record_method_of_logging_gets_every_call_as_a_record(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # As ddtrace patches Logger.makeRecord (trace ids as record attributes) and Sentry patches
    # Logger.callHandlers (breadcrumbs): the direct way skipped both.
    make, call_handlers = logging.Logger.makeRecord, logging.Logger.callHandlers
    seen: list[str] = []

    def traced_record(self: logging.Logger, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make(self, *args, **kwargs)
        record.trace_tag = "dd-1"
        return record

    def breadcrumbs(self: logging.Logger, record: logging.LogRecord) -> None:
        seen.append(record.getMessage())
        call_handlers(self, record)

    monkeypatch.setattr(logging.Logger, "makeRecord", traced_record)
    monkeypatch.setattr(logging.Logger, "callHandlers", breadcrumbs)
    log = logging.getLogger("review18.patched")
    log.propagate = False  # the root has pytest's handlers
    backend = RecordingBackend()
    try:
        async with LogManager(Config(backend=backend, async_mode=True)) as lm:
            install(lm, loggers=[log.name], replace=True)
            assert type(log) is DirectLogger
            log.warning("paid %d", 3)
    finally:
        log.propagate = True
    assert_settled(lm.get_stats())
    assert seen == ["paid 3"]
    assert [(e.message, dict(e.fields)) for e in backend.entries] == [
        ("paid 3", {"trace_tag": "dd-1"})
    ]


class FailsOnce(RecordingBackend):
    def __init__(self) -> None:
        super().__init__()
        self.given: list[Sequence[LogEntry]] = []

    async def write_batch(self, entries: Sequence[LogEntry]) -> None:
        self.given.append(entries)
        if len(self.given) == 1:
            raise OSError("disk full")
        await super().write_batch(entries)


async def test_a_batch_is_one_sequence_of_log_entries_across_retries_and_observers() -> None:
    backend = FailsOnce()
    observed: list[Sequence[LogEntry]] = []
    config = Config(backend=backend, async_mode=True, retry_attempts=1, retry_backoff=0.001)
    async with LogManager(config) as lm:
        lm.observe_writes(lambda name, entries, seconds: observed.append(entries))
        await lm.info("a", n=1)
        await lm.warning("b")
    first, retried = backend.given
    assert first is retried is observed[0]
    batch = observed[0]
    assert len(batch) == 2
    assert [e.message for e in batch] == ["a", "b"]
    assert batch[-1] is batch[1] and batch[0] is batch[:1][0]
    assert batch == list(batch) == backend.entries
    assert list(reversed(batch)) == [batch[1], batch[0]]
    assert batch.index(batch[1]) == 1 and batch.count(batch[0]) == 1
    assert dict(batch[0].fields) == {"n": 1}
    with pytest.raises(TypeError):
        hash(batch)


class _ProxyWrapper:
    """As wrapt's FunctionWrapper (ddtrace patches logging with it): a callable descriptor
    that passes on the wrapped function's `__module__` and `__name__`."""

    def __init__(self, wrapped: Any, tag: str) -> None:
        self.__wrapped__ = wrapped
        self.__module__ = wrapped.__module__
        self.__name__ = wrapped.__name__
        self.tag = tag

    def __get__(self, instance: Any, owner: Any = None) -> Any:
        if instance is None:
            return self
        wrapped = self.__wrapped__
        tag = self.tag

        def bound(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record: logging.LogRecord = wrapped(instance, *args, **kwargs)
            record.trace_tag = tag
            return record

        return bound


async def test_a_wrapper_object_patched_on_logging_is_not_taken_for_logging_s_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    wrapper = _ProxyWrapper(logging.Logger.makeRecord, "dd-2")
    assert wrapper.__module__ == "logging"
    monkeypatch.setattr(logging.Logger, "makeRecord", wrapper)
    log = logging.getLogger("review18.wrapped")
    log.propagate = False  # the root has pytest's handlers
    backend = RecordingBackend()
    try:
        async with LogManager(Config(backend=backend, async_mode=True)) as lm:
            install(lm, loggers=[log.name], replace=True)
            assert type(log) is DirectLogger
            log.warning("paid %d", 4)
    finally:
        log.propagate = True
    assert [(e.message, dict(e.fields)) for e in backend.entries] == [
        ("paid 4", {"trace_tag": "dd-2"})
    ]
