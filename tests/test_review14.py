"""Issue 14 review: hostile input to `%`-args, freezing and processors, each a defect found."""

from __future__ import annotations

import asyncio
import logging
import re
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import MappingProxyType

import pytest

from asynclog import Config, ConfigError, FileConfig, Level, LogEntry, LogManager, Processor, Sink
from asynclog.processors import dedupe, rate_limit, redact
from asynclog.stdlib import AsyncLogHandler
from asynclog.testing import capture_logs

from .conftest import GateBackend, RecordingBackend, assert_settled, read_lines


class LenRaises(Mapping[str, object]):
    """A mapping whose `__len__` (so its truth value) raises."""

    def __getitem__(self, key: str) -> object:
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        raise RuntimeError("len boom")

    def __repr__(self) -> str:
        return "<LenRaises>"


async def test_a_mapping_argument_whose_len_raises_is_a_format_error_not_a_raise() -> None:
    backend = RecordingBackend()
    async with LogManager(Config(backend=backend)) as lm:
        assert await lm.info("got %s", LenRaises()) is True
        assert lm.nowait.info("now %s", LenRaises()) is True
    assert [entry.message for entry in backend.entries] == [
        "got %s <asynclog: format error: RuntimeError: len boom> args: (<LenRaises>)",
        "now %s <asynclog: format error: RuntimeError: len boom> args: (<LenRaises>)",
    ]
    assert_settled(lm.get_stats())


class Counted(int):
    """An int whose `str()` reads state that changes after the call."""

    state = "at the call"

    def __str__(self) -> str:
        return f"{int(self)} {self.state}"

    __repr__ = __str__


class Tagged(str):
    state = "at the call"

    def __str__(self) -> str:
        return f"tagged {self.state}"

    __repr__ = __str__


@pytest.mark.parametrize("fmt", ["text", "logfmt", "json"])
async def test_a_str_or_int_subclass_is_frozen_as_its_plain_value(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / "app.log"
    handled: list[LogEntry] = []
    number, text = Counted(5), Tagged("abc")
    async with LogManager(
        Config(backends=[FileConfig(file_path=path, format=fmt)], async_mode=True)
    ) as lm:
        lm.register_handler(handled.append)
        await lm.info("m", n=number, t=text, items=[number, text])
        number.state = text.state = "after"  # type: ignore[misc]
    (line,) = read_lines(path)
    assert "after" not in line and "at the call" not in line and "tagged" not in line
    fields = dict(handled[0].fields)
    assert fields == {"n": 5, "t": "abc", "items": [5, "abc"]}
    assert [type(value) for value in (fields["n"], fields["t"], *fields["items"])] == [
        int,
        str,
        int,
        str,
    ]


def _level_as_text(entry: LogEntry) -> LogEntry:
    return entry._replace(level="WARNING")


def _message_as_int(entry: LogEntry) -> LogEntry:
    return entry._replace(message=12345)


def _fields_as_list(entry: LogEntry) -> list[LogEntry]:
    return [entry._replace(fields=[("a", 1)])]


@pytest.mark.parametrize(
    ("processor", "what"),
    [
        (_level_as_text, "level is of type str"),
        (_message_as_int, "message is of type int"),
        (_fields_as_list, "fields is of type list"),
    ],
)
@pytest.mark.parametrize("async_mode", [False, True])
async def test_an_entry_of_the_wrong_shape_from_a_processor_goes_on_unprocessed(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    processor: object,
    what: str,
    async_mode: bool,
) -> None:
    path = tmp_path / "app.log"
    config = Config(
        backends=[FileConfig(file_path=path, format="json")],
        processors=[processor],
        async_mode=async_mode,
    )
    async with LogManager(config) as lm:
        assert await lm.info("kept", user="ann") is True
    assert [line.count('"message": "kept"') for line in read_lines(path)] == [1]
    stats = lm.get_stats()
    assert (stats.accepted, stats.written, stats.dropped, stats.write_errors) == (1, 1, 0, 0)
    assert_settled(stats)
    name = getattr(processor, "__name__", "")
    assert f"processor {name!r} failed: it returned an entry whose {what}" in (
        capsys.readouterr().err
    )


async def test_an_entry_a_processor_makes_is_held_to_max_entry_bytes() -> None:
    def inflate(entry: LogEntry) -> LogEntry:
        return entry._replace(
            message="m" * 100_000, exception="e" * 100_000, fields={"big": "b" * 100_000}
        )

    backend = RecordingBackend()
    async with LogManager(
        Config(backend=backend, processors=[inflate], max_entry_bytes=1000)
    ) as lm:
        await lm.info("small")
    (entry,) = backend.entries
    assert len(entry.message) <= 1000 and entry.message.endswith("bytes]")
    assert entry.exception is not None and len(entry.exception) <= 1000
    assert len(str(entry.fields["big"])) <= 1000
    assert type(entry.fields) is MappingProxyType
    assert_settled(lm.get_stats())


async def test_a_processor_s_fields_dict_changed_later_does_not_change_the_entry() -> None:
    kept: dict[str, object] = {"user": "ann"}

    def with_kept(entry: LogEntry) -> LogEntry:
        return entry._replace(fields=kept)

    backend = RecordingBackend()
    async with LogManager(Config(backend=backend, processors=[with_kept], async_mode=True)) as lm:
        await lm.info("m")
        kept["user"] = "eve"
    assert [dict(entry.fields) for entry in backend.entries] == [{"user": "ann"}]


@pytest.mark.parametrize("pattern", ["", r"\d*", "a|", re.compile("x?")])
def test_redact_refuses_a_pattern_that_matches_the_empty_string(pattern: object) -> None:
    with pytest.raises(ValueError, match="matches the empty string"):
        redact(patterns=[pattern])  # type: ignore[list-item]


class Changing:
    """A message object whose `str()` reads state that changes after the call."""

    def __init__(self, name: str) -> None:
        self.name, self.state = name, "at the call"

    def __str__(self) -> str:
        return f"{self.name} {self.state}"


async def test_a_message_object_from_a_thread_is_rendered_in_that_thread() -> None:
    backend = RecordingBackend()
    messages = [Changing("nowait"), Changing("threadsafe"), Changing("named"), Changing("args %s")]

    def from_a_thread() -> None:
        lm.nowait.info(messages[0])
        lm.write_log_threadsafe("INFO", messages[1])
        lm.get_logger("app.db").nowait.info(messages[2])
        lm.nowait.info(messages[3], 1)
        for message in messages:
            message.state = "after"

    async with LogManager(Config(backend=backend, async_mode=True)) as lm:
        await asyncio.to_thread(from_a_thread)
    assert backend.messages == [
        "nowait at the call",
        "threadsafe at the call",
        "named at the call",
        "args 1 at the call",
    ]
    assert [entry.template for entry in backend.entries] == [
        None,
        None,
        None,
        "args %s at the call",
    ]
    assert_settled(lm.get_stats())


async def test_views_made_in_threads_while_set_level_runs_get_the_new_level() -> None:
    """A view's gate made in a thread while `set_level` runs must not keep the old level."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible
    stale: list[str] = []
    try:
        async with LogManager(Config(backend=RecordingBackend(), levels={"app": "INFO"})) as lm:
            for round_ in range(30):
                names = [f"app.r{round_}.n{index}" for index in range(300)]

                def make(chunk: list[str]) -> None:
                    for name in chunk:
                        lm.get_logger(name)

                threads = [threading.Thread(target=make, args=(names[k::4],)) for k in range(4)]
                for thread in threads:
                    thread.start()
                wanted = Level.ERROR if round_ % 2 else Level.DEBUG
                lm.set_level("app", wanted)
                for thread in threads:
                    thread.join()
                stale.extend(name for name in names if lm.get_logger(name).level != wanted)
    finally:
        sys.setswitchinterval(interval)
    assert stale == []


async def test_a_record_held_before_its_manager_starts_keeps_its_args_as_they_were() -> None:
    handler = AsyncLogHandler("review14-held")
    log = logging.getLogger("review14.held")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    items = ["a"]
    user = Changing("user")
    try:
        log.info("items %s, %s", items, user)  # no manager of that name yet: held
        log.info("%(n)d left", {"n": 3})
        items.append("b")
        user.state = "after"
        backend = RecordingBackend()
        async with LogManager(Config(backend=backend, name="review14-held")) as lm:
            pass
    finally:
        log.removeHandler(handler)
    assert [(entry.message, entry.template, dict(entry.fields)) for entry in backend.entries] == [
        ("items ['a'], user at the call", "items %s, %s", {}),
        ("3 left", "%(n)d left", {}),
    ]
    assert_settled(lm.get_stats())


async def test_nowait_with_a_backend_s_own_processors_settles_every_entry_of_the_call() -> None:
    """With a backend that has processors and one that has none, a call's entry may wait for
    both: each is settled (queued or dropped) by `nowait`, none left owed after close."""

    def keep(entry: LogEntry) -> LogEntry:
        return entry

    stalled, quick = GateBackend(), RecordingBackend()
    config = Config(
        backends=[Sink(stalled, name="stalled", processors=[keep]), Sink(quick, name="quick")],
        async_mode=True,
        queue_size=2,
    )
    async with LogManager(config) as lm:
        await lm.info("in flight")
        await stalled.writing.wait()
        results = [lm.nowait.info("n %d", index) for index in range(10)]
        stalled.release()
    stats = lm.get_stats()
    assert_settled(stats)
    for name in ("stalled", "quick"):
        assert_settled(stats.backends[name])
    assert stats.backends["stalled"].dropped > 0
    assert False in results


async def test_redact_masks_a_pattern_in_the_template_too() -> None:
    backend = RecordingBackend()
    handled: list[LogEntry] = []
    config = Config(backend=backend, processors=[redact(patterns=[r"sk_live_\w+"])])
    with capture_logs() as captured:
        async with LogManager(config) as lm:
            lm.register_handler(handled.append)
            await lm.info("key sk_live_abc123 used by %s", "ann")
    for entries in (backend.entries, handled, captured):
        assert [(entry.message, entry.template) for entry in entries] == [
            ("key *** used by ann", "key *** used by %s")
        ]


@pytest.mark.parametrize("make", [lambda: dedupe(), lambda: rate_limit(10, 5)])
def test_one_stateful_processor_in_two_places_of_a_config_is_a_config_error(
    make: Callable[[], Processor],
) -> None:
    shared = make()
    name = shared.name  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match=f"one {name}\\(\\) processor is used twice") as two_sinks:
        Config(
            backends=[
                Sink(RecordingBackend(), name="a", processors=[shared]),
                Sink(RecordingBackend(), name="b", processors=[shared]),
            ]
        )
    assert "in the processors of backend 'a' and in the processors of backend 'b'" in str(
        two_sinks.value
    )
    with pytest.raises(ConfigError, match=r"in Config\.processors and in Config\.processors"):
        Config(backend=RecordingBackend(), processors=[shared, shared])
    Config(backend=RecordingBackend(), processors=[shared])  # once is fine


async def test_a_dedupe_per_backend_keeps_each_backend_s_entries() -> None:
    first, second = RecordingBackend(), RecordingBackend()
    config = Config(
        backends=[
            Sink(first, name="a", processors=[dedupe(60)]),
            Sink(second, name="b", processors=[dedupe(60)]),
        ]
    )
    async with LogManager(config) as lm:
        for message in ("x", "x", "y"):
            await lm.info(message)
    assert first.messages == second.messages == ["x", "x (repeated 1 time)", "y"]


MAX_ITEMS = 10_000
"""Containers with more items (not all scalars) are rendered at the call (see
docs/context-and-exceptions.md)."""


class IterRaises(tuple[object, ...]):
    """A tuple subclass whose own `__iter__` and `__len__` raise."""

    def __iter__(self) -> Iterator[object]:
        raise RuntimeError("iter boom")

    def __len__(self) -> int:
        raise RuntimeError("len boom")


async def test_a_tuple_subclass_whose_iter_raises_is_frozen_without_raising() -> None:
    backend = RecordingBackend()
    inner = [1]
    async with LogManager(Config(backend=backend)) as lm:
        assert await lm.info("m", t=IterRaises((inner, 2)), nested=[IterRaises((3,))]) is True
        inner.append(99)
    (entry,) = backend.entries
    assert entry.fields["t"] == "([1], 2)"
    assert entry.fields["nested"] == [(3,)]


async def test_a_huge_container_of_containers_is_rendered_at_the_call() -> None:
    """Past `MAX_ITEMS` items (not all scalars), a container is not copied item by item: it
    is its `str()` at the call, which is what `max_entry_bytes` would cut it to anyway."""
    rows = [{"id": index} for index in range(MAX_ITEMS + 1)]
    numbers = list(range(MAX_ITEMS + 1))
    expected = str(rows)
    backend = RecordingBackend()
    async with LogManager(Config(backend=backend, max_entry_bytes=len(expected) * 2)) as lm:
        await lm.info("m", rows=rows, numbers=numbers, inside={"rows": rows})
        rows[0]["id"] = -1
        numbers[0] = -1
    (entry,) = backend.entries
    assert entry.fields["rows"] == expected and type(entry.fields["rows"]) is str
    assert entry.fields["numbers"] == list(range(MAX_ITEMS + 1))  # scalars: copied as a list
    assert str(entry.fields["inside"]) == "{'rows': " + expected + "}"


async def test_a_record_whose_extra_names_a_logging_keyword_is_written() -> None:
    backend = RecordingBackend()
    handler = AsyncLogHandler("review14-extra")
    log = logging.getLogger("review14.extra")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    try:
        async with LogManager(Config(backend=backend, name="review14-extra")) as lm:
            log.info("a", extra={"stacklevel": "x", "user": "ann"})
            log.info("b", extra={"extra": "not a mapping"})
    finally:
        log.removeHandler(handler)
    assert [(entry.message, dict(entry.fields)) for entry in backend.entries] == [
        ("a", {"user": "ann"}),
        ("b", {}),
    ]
    assert_settled(lm.get_stats())


@pytest.mark.parametrize("backends", [1, 2])
async def test_with_processors_a_named_logger_below_the_manager_s_level_is_kept(
    backends: int,
) -> None:
    def keep(entry: LogEntry) -> LogEntry:
        return entry

    recorders = [RecordingBackend() for _ in range(backends)]
    config = Config(
        backends=[Sink(backend, name=f"b{index}") for index, backend in enumerate(recorders)],
        level="WARNING",
        levels={"app.db": "DEBUG"},
        processors=[keep],
    )
    async with LogManager(config) as lm:
        db = lm.get_logger("app.db")
        assert await db.debug("db debug") is True
        assert db.nowait.info("db info") is True
        assert await lm.info("own info") is False  # the manager's own name: WARNING
    for backend in recorders:
        assert backend.messages == ["db debug", "db info"]
    stats = lm.get_stats()
    assert dict(stats.filtered_by) == {"level": 1, "keep": 0}
    assert_settled(stats)


async def test_nowait_queues_a_later_entry_of_the_call_where_there_is_room() -> None:
    """A processor makes two entries; one backend is full, the other has room: `nowait` drops
    them on the full one only."""

    def twice(entry: LogEntry) -> list[LogEntry]:
        return [entry, entry._replace(message=f"{entry.message} copy")]

    stalled, quick = GateBackend(), RecordingBackend()
    config = Config(
        backends=[Sink(stalled, name="stalled"), Sink(quick, name="quick")],
        async_mode=True,
        queue_size=2,
        processors=[twice],
    )
    async with LogManager(config) as lm:
        await lm.info("first")
        await stalled.writing.wait()
        assert lm.nowait.info("fill") is True  # the stalled backend's queue is full now
        while "fill copy" not in quick.messages:  # noqa: ASYNC110 (its worker writes them)
            await asyncio.sleep(0)
        assert lm.nowait.info("x") is False  # dropped by the stalled backend
        stalled.release()
    assert quick.messages == ["first", "first copy", "fill", "fill copy", "x", "x copy"]
    stats = lm.get_stats()
    assert stats.backends["quick"].dropped == 0
    assert stats.backends["stalled"].dropped == 2
    assert_settled(stats)


REENTERED = """
    import linecache, sys
    import asynclog
    from asynclog import Config, FileConfig

    logs = asynclog.run_in_thread(Config(backends=[FileConfig(file_path=sys.argv[1])]))
    fired = []

    def tracer(frame, event, arg):
        # Logs as a signal handler would, at the worst moment: in the middle of a hand-in.
        code = frame.f_code
        if event == "line" and not fired and code.co_filename.endswith("_handoff.py"):
            if "loop.is_closed()" in linecache.getline(code.co_filename, frame.f_lineno):
                fired.append(True)
                logs.nowait.info("from the handler")
        return tracer

    sys.settrace(tracer)
    logs.nowait.info("interrupted")
    sys.settrace(None)
    print(fired, logs.close())
"""


def test_a_signal_handler_logging_in_the_middle_of_a_hand_in_does_not_hang(
    tmp_path: Path,
) -> None:
    path = tmp_path / "app.log"
    try:
        done = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(REENTERED), str(path)],
            capture_output=True,
            text=True,
            timeout=30,
            cwd=Path(__file__).parent.parent,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("the nested log call hung")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("[True] CloseReport(written=2,"), done.stdout
    assert [line.split(" INFO asynclog ")[1] for line in read_lines(path)] == [
        "from the handler",
        "interrupted",
    ]


CLOSED_IN_CLOSE = """
    import sys
    import asynclog
    from asynclog import Config, FileConfig

    logs = asynclog.run_in_thread(Config(backends=[FileConfig(file_path=sys.argv[1])]))
    logs.nowait.info("before")
    inner = []

    def tracer(frame, event, arg):
        # A SIGTERM handler that closes, run while the main thread is closing already.
        if event == "call" and frame.f_code.co_name == "_close_now" and not inner:
            inner.append(logs.close())
        return None

    sys.settrace(tracer)
    outer = logs.close()
    sys.settrace(None)
    print(inner == [outer], outer)
"""


def test_close_called_again_while_close_runs_in_the_same_thread_does_not_hang(
    tmp_path: Path,
) -> None:
    path = tmp_path / "app.log"
    try:
        done = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(CLOSED_IN_CLOSE), str(path)],
            capture_output=True,
            text=True,
            timeout=30,
            cwd=Path(__file__).parent.parent,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("the nested close() hung")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("True CloseReport(written=1,"), done.stdout
    assert len(read_lines(path)) == 1
