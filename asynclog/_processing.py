"""`Chain`: the processors of a manager or of one sink, run at the call (see docs/processors.md).

A processor is a callable `LogEntry -> LogEntry | Sequence[LogEntry] | None`. `None` (or an
empty sequence) filters the entry out, counted by the processor's name; a sequence replaces
the entry by those entries, in order, each going on through the processors after it. A
processor that raises or returns anything else is reported once per burst on stderr, and the
entry goes on as it came in.

A processor may have a `flush()` method returning the entries it still holds (a sequence or
None); `LogManager.close()` calls it before the drain, and those entries go through the
processors after it too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType

from ._entry import Location, LogEntry
from ._errors import ConfigError
from ._report import BurstReporter
from ._sanitize import bound_fields, truncate

Processor = Callable[[LogEntry], LogEntry | Sequence[LogEntry] | None]
"""A processor: takes an entry, returns it (changed or not), several entries, or None."""


def processor_name(processor: object) -> str:
    """The name a processor's drops are counted under in `LogStats.filtered_by`: its `name`
    attribute when that is a str, else its `__name__`, else its class's name."""
    name = getattr(processor, "name", None)
    if isinstance(name, str) and name:
        return name
    name = getattr(processor, "__name__", None)
    if isinstance(name, str) and name:
        return name
    return type(processor).__name__


def check_processors(owner: str, processors: object) -> tuple[Processor, ...]:
    """`processors` as a tuple of callables; a `ConfigError` naming `owner` and the item if
    not."""
    if isinstance(processors, str | bytes) or not isinstance(processors, Sequence):
        raise ConfigError(
            f"{owner}.processors must be a list of callables, got {type(processors).__name__}",
            "processors",
        )
    for index, processor in enumerate(processors):
        if not callable(processor):
            raise ConfigError(
                f"{owner}.processors[{index}] must be callable (LogEntry -> LogEntry | None), "
                f"got {type(processor).__name__}",
                f"processors[{index}]",
            )
    return tuple(processors)


class Chain:
    """Processors run in order over each entry, with the drops counted by processor name."""

    def __init__(
        self,
        processors: Sequence[Processor],
        reporter: BurstReporter,
        where: str,
        max_entry_bytes: int = 1 << 20,
    ):
        self.steps = tuple((processor, processor_name(processor)) for processor in processors)
        self.filtered = 0
        """Entries a processor dropped (returned None or nothing)."""
        self.filtered_by: dict[str, int] = {name: 0 for _, name in self.steps}
        self._reporter = reporter
        self._where = where  # "" for the manager's, " of sink 'x'" for a sink's
        self._failing: set[str] = set()  # names in a burst of failures, for the "recovered" line
        self._max_bytes = max_entry_bytes

    def run(self, entry: LogEntry) -> list[LogEntry]:
        """What becomes of `entry`: no entries (filtered), itself, or what the processors made."""
        index = 0
        for processor, name in self.steps:  # the common case: one entry in, one out
            index += 1
            try:
                result = processor(entry)
            except Exception as exc:
                self._failed(name, f"it raised {exc!r}")
                continue
            if result.__class__ is LogEntry:
                if result is not entry:
                    try:
                        result = self._fitted(result)
                    except TypeError as wrong:
                        self._failed(name, str(wrong))
                        continue
                if self._failing and name in self._failing:
                    self._recovered(name)
                entry = result
            else:
                return self._from(index, self._outputs(name, entry, result))
        return [entry]

    def flush(self) -> list[LogEntry]:
        """The entries the processors still hold (their `flush()`), each through the
        processors after the one that held it."""
        flushed: list[LogEntry] = []
        for index, (processor, name) in enumerate(self.steps):
            flush = getattr(processor, "flush", None)
            if not callable(flush):
                continue
            try:
                held = flush()
                entries = [] if held is None else self._entries(held)
            except Exception as exc:  # a TypeError from _entries included
                self._failed(name, f"its flush() failed: {exc}")
                continue
            flushed.extend(self._from(index + 1, entries))
        return flushed

    def _from(self, start: int, entries: list[LogEntry]) -> list[LogEntry]:
        for processor, name in self.steps[start:]:
            if not entries:
                break
            if len(entries) == 1:
                entries = self._apply(processor, name, entries[0])
            else:
                entries = [out for entry in entries for out in self._apply(processor, name, entry)]
        return entries

    def _apply(self, processor: Processor, name: str, entry: LogEntry) -> list[LogEntry]:
        try:
            result = processor(entry)
        except Exception as exc:
            self._failed(name, f"it raised {exc!r}")
            return [entry]
        return self._outputs(name, entry, result)

    def _outputs(self, name: str, entry: LogEntry, result: object) -> list[LogEntry]:
        """What a processor's `result` for `entry` puts in its place (a wrong result: the
        entry itself, reported); an empty result counts as filtered."""
        try:
            outputs = [] if result is None else self._entries(result)
        except TypeError as wrong:
            self._failed(name, str(wrong))
            return [entry]
        if self._failing and name in self._failing:
            self._recovered(name)
        if not outputs:
            self.filtered += 1
            self.filtered_by[name] += 1
        return outputs

    def _entries(self, result: object) -> list[LogEntry]:
        """A processor's result as a list of entries; a `TypeError` saying what was wrong."""
        if isinstance(result, LogEntry):
            return [self._fitted(result)]
        if isinstance(result, list | tuple):
            bad = [item for item in result if not isinstance(item, LogEntry)]
            if not bad:
                return [self._fitted(item) for item in result]
            raise TypeError(f"it returned a sequence holding a {type(bad[0]).__name__}")
        raise TypeError(
            f"it returned a {type(result).__name__}, not a LogEntry, a list of them or None"
        )

    def _fitted(self, entry: LogEntry) -> LogEntry:
        """An entry a processor made, as the call would have made it: a `TypeError` naming a
        field of the wrong type; texts and fields cut to `max_entry_bytes`; fields read-only."""
        timestamp, level, message, logger, fields, exception, template, location = entry
        for what, value, kinds in (
            ("timestamp", timestamp, (int, float)),
            ("level", level, int),
            ("message", message, str),
            ("logger", logger, str),
            ("fields", fields, Mapping),
            ("exception", exception, (str, type(None))),
            ("template", template, (str, type(None))),
            ("location", location, (Location, type(None))),
        ):
            if not isinstance(value, kinds) or value.__class__ is bool:
                raise TypeError(
                    f"it returned an entry whose {what} is of type {type(value).__name__}"
                )
        limit = self._max_bytes
        message = _bounded_text(message, limit)
        if exception is not None:
            exception = _bounded_text(exception, limit)
        if template is not None:
            template = _bounded_text(template, limit)
        bounded = bound_fields(fields, limit)
        if bounded is not None or fields.__class__ is not MappingProxyType:
            fields = MappingProxyType(dict(fields if bounded is None else bounded))
        return LogEntry(timestamp, level, message, logger, fields, exception, template, location)

    def _recovered(self, name: str) -> None:
        self._failing.discard(name)
        self._reporter.success(self._kind(name))

    def _failed(self, name: str, detail: str) -> None:
        self._failing.add(name)
        self._reporter.failure(self._kind(name), f"{detail}; the entry went on unprocessed")

    def _kind(self, name: str) -> str:
        return f"processor {name!r}{self._where}"


def _bounded_text(text: str, max_bytes: int) -> str:
    """`text` as an exact `str` of at most about `max_bytes` UTF-8 bytes."""
    text = text if text.__class__ is str else str.__str__(text)
    return text if len(text) <= max_bytes // 4 else truncate(text, max_bytes)


def chain_of(
    processors: Sequence[Processor], reporter: BurstReporter, where: str, max_entry_bytes: int
) -> Chain | None:
    """A `Chain` of `processors`, or None when there are none (nothing to run at the call)."""
    return Chain(processors, reporter, where, max_entry_bytes) if processors else None


def merged_counts(*counts: Mapping[str, int]) -> dict[str, int]:
    """Drop counts by name, summed over several chains (and the level filter)."""
    total: dict[str, int] = {}
    for part in counts:
        for name, count in part.items():
            total[name] = total.get(name, 0) + count
    return total
