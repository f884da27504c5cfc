"""Built-in processors for `Config(processors=[...])` and `Sink(..., processors=[...])`.

A processor is any callable `LogEntry -> LogEntry | list[LogEntry] | None` (see
docs/processors.md): return the entry (changed with `entry._replace(...)` or not), None to
filter it out, or a list of entries to put in its place. An optional `flush()` method returns
the entries it still holds; `LogManager.close()` calls it before the drain.

Each built-in has a `name` (`"redact"`, `"sample"`, `"rate_limit"`, `"dedupe"`): the key of its
drops in `LogStats.filtered_by`. They run on the manager's loop only (entries from threads
reach them there too), so they need no locks; an instance keeps state (a sample's generator, a
rate limit's buckets, a dedupe's last entry), so give each manager its own.
"""

from __future__ import annotations

import math
import random
import re
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any

from ._entry import EXCEPTION, FIELDS, LOCATION, LOGGER, MESSAGE, TEMPLATE, LogEntry
from ._levels import Level
from ._processing import Processor
from ._validate import level_number

__all__ = [
    "Dedupe",
    "Processor",
    "RateLimit",
    "Redact",
    "Sample",
    "dedupe",
    "rate_limit",
    "redact",
    "sample",
]

Clock = Callable[[], float]

_SCALARS = frozenset({str, int, float, bool, type(None), bytes})
"""Field values that hold no keys: not looked into."""
_new_tuple = tuple.__new__


class Redact:
    """Masks the values of fields whose key matches (case-insensitive, in nested mappings and
    in lists of them) and regex matches in the message, the template and the exception text.
    Built by
    `redact()`."""

    name = "redact"

    def __init__(
        self, keys: Iterable[str], patterns: Iterable[str | re.Pattern[str]], replacement: str
    ) -> None:
        self._keys = frozenset(key.casefold() for key in _strings("redact", "keys", keys))
        self._pattern = _one_pattern(patterns)
        if not isinstance(replacement, str):
            raise TypeError(f"redact: replacement must be a str, got {type(replacement).__name__}")
        self._replacement = replacement

    def __call__(self, entry: LogEntry) -> LogEntry:
        fields = entry[FIELDS]
        message = entry[MESSAGE]
        exception = entry[EXCEPTION]
        template = entry[TEMPLATE]
        pattern = self._pattern
        changed = False
        if fields and self._keys:
            masked_fields = self._masked(fields)
            if masked_fields is not None:
                fields = MappingProxyType(masked_fields)
                changed = True
        if pattern is not None:
            masked = pattern.sub(self._replacement, message)
            if masked != message:
                message, changed = masked, True
            if exception is not None:
                masked = pattern.sub(self._replacement, exception)
                if masked != exception:
                    exception, changed = masked, True
            if template is not None:  # handlers and captures see it too
                masked = pattern.sub(self._replacement, template)
                if masked != template:
                    template, changed = masked, True
        if not changed:
            return entry
        return _new_tuple(
            LogEntry,
            (
                *entry[:MESSAGE],
                message,
                entry[LOGGER],
                fields,
                exception,
                template,
                entry[LOCATION],
            ),
        )

    def _masked(self, mapping: Mapping[Any, Any]) -> dict[Any, Any] | None:
        """A copy of `mapping` with the values of matching keys masked, at any depth; None
        when nothing matches (most entries)."""
        keys = self._keys
        masked: dict[Any, Any] | None = None
        for key, value in mapping.items():
            new: object
            if key.__class__ is str and key.casefold() in keys:
                new = self._replacement
            elif value.__class__ in _SCALARS:
                continue
            else:
                new = self._masked_value(value)
                if new is value:
                    continue
            if masked is None:
                masked = _copy(mapping)
            masked[key] = new
        return masked

    def _masked_value(self, value: object) -> object:
        """`value` with its nested mappings masked; itself when nothing in it matches."""
        if isinstance(value, Mapping):
            masked = self._masked(value)
            return value if masked is None else masked
        if isinstance(value, list | tuple):
            items = [self._masked_value(item) for item in value]
            if all(new is old for new, old in zip(items, value, strict=True)):
                return value
            return type(value)(items)
        return value


def redact(
    keys: Iterable[str] = (),
    patterns: Iterable[str | re.Pattern[str]] = (),
    replacement: str = "***",
) -> Redact:
    """A processor that replaces by `replacement` the value of every field whose key is one of
    `keys` (compared case-insensitively, at any depth of nested mappings and lists of them),
    and every match of the regular expressions `patterns` in the message, the template and the
    exception text. Compiled once, here: a bad pattern raises `ValueError` naming it."""
    return Redact(keys, patterns, replacement)


class Sample:
    """Keeps entries below a level with a probability; the rest always pass. Built by
    `sample()`."""

    name = "sample"

    def __init__(
        self, rate: float, below: Level | int | str, key: str | None, rng: Clock | None
    ) -> None:
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate <= 1:
            raise ValueError(f"sample: rate must be a number from 0 to 1, got {rate!r}")
        if key is not None and not isinstance(key, str):
            raise TypeError(f"sample: key must be a field name (str) or None, got {key!r}")
        self._rate = float(rate)
        try:
            self._below = level_number(below)
        except ValueError as exc:
            raise ValueError(f"sample: below: {exc}") from None
        self._key = key
        self._threshold = int(self._rate * 2**32)  # crc32 values below it are kept
        self._random = rng if rng is not None else random.random

    def __call__(self, entry: LogEntry) -> LogEntry | None:
        if entry.level >= self._below:
            return entry
        key = self._key
        if key is not None and key in entry.fields:
            digest = zlib.crc32(str(entry.fields[key]).encode("utf-8", "surrogatepass"))
            return entry if digest < self._threshold else None
        return entry if self._random() < self._rate else None


def sample(
    rate: float,
    below: Level | int | str = Level.WARNING,
    key: str | None = None,
    *,
    rng: Clock | None = None,
) -> Sample:
    """A processor that keeps each entry below `below` with probability `rate` (0 to 1);
    entries at or above `below` always pass. With `key`, entries whose field `key` has the same
    value get the same decision, in every process and run (the CRC-32 of the value's `str`);
    entries without that field are drawn at random. `rng`: the random source, `random.random`
    by default (for tests)."""
    return Sample(rate, below, key, rng)


class RateLimit:
    """A token bucket per key: `burst` entries at once, refilled at `per_second`. Built by
    `rate_limit()`."""

    name = "rate_limit"

    def __init__(
        self, per_second: float, burst: int, key: str, max_keys: int, clock: Clock | None
    ) -> None:
        if not _positive(per_second):
            raise ValueError(
                f"rate_limit: per_second must be a positive number, got {per_second!r}"
            )
        if isinstance(burst, bool) or not isinstance(burst, int) or burst < 1:
            raise ValueError(f"rate_limit: burst must be an int of at least 1, got {burst!r}")
        if not isinstance(key, str) or not key:
            raise TypeError(
                "rate_limit: key must be 'template', 'message', 'logger' or a field name, "
                f"got {key!r}"
            )
        if isinstance(max_keys, bool) or not isinstance(max_keys, int) or max_keys < 1:
            raise ValueError(f"rate_limit: max_keys must be an int of at least 1, got {max_keys!r}")
        self._rate = float(per_second)
        self._burst = float(burst)
        self._key_of = _key_reader(key)
        self._max_keys = max_keys
        self._clock = clock if clock is not None else time.monotonic
        self._buckets: OrderedDict[object, list[float]] = OrderedDict()  # key: [tokens, time]

    def __call__(self, entry: LogEntry) -> LogEntry | None:
        now = self._clock()
        key = self._key_of(entry)
        buckets = self._buckets
        bucket = buckets.get(key)
        if bucket is None:
            bucket = buckets[key] = [self._burst, now]
            if len(buckets) > self._max_keys:
                buckets.popitem(last=False)  # the key seen least recently
        else:
            buckets.move_to_end(key)
            bucket[0] = min(self._burst, bucket[0] + (now - bucket[1]) * self._rate)
            bucket[1] = now
        if bucket[0] < 1:
            return None
        bucket[0] -= 1
        return entry


def rate_limit(
    per_second: float,
    burst: int,
    key: str = "template",
    *,
    max_keys: int = 10_000,
    clock: Clock | None = None,
) -> RateLimit:
    """A processor that lets through at most `burst` entries at once and `per_second` on
    average, per key; the others are filtered out. `key`: `"template"` (the entry's `template`
    when the call had %-arguments, else its message), `"message"`, `"logger"`, or the name of a
    field (entries without it share one bucket). At most `max_keys` buckets are kept, the least
    recently seen forgotten first. `clock`: seconds, `time.monotonic` by default (for tests)."""
    return RateLimit(per_second, burst, key, max_keys, clock)


class Dedupe:
    """Collapses identical consecutive entries into the first plus one "repeated N times"
    entry. Built by `dedupe()`."""

    name = "dedupe"

    def __init__(self, window: float, clock: Clock | None) -> None:
        if not _positive(window):
            raise ValueError(f"dedupe: window must be a positive number of seconds, got {window!r}")
        self._window = float(window)
        self._clock = clock if clock is not None else time.monotonic
        self._last: LogEntry | None = None  # the entry shown, whose repeats are being counted
        self._since = 0.0  # when it was shown
        self._repeats = 0
        self._latest: LogEntry | None = None  # the last repeat swallowed

    def __call__(self, entry: LogEntry) -> LogEntry | list[LogEntry] | None:
        now = self._clock()
        last = self._last
        if last is not None and _same(last, entry) and now - self._since < self._window:
            self._repeats += 1
            self._latest = entry
            return None
        summary = self._summary()
        self._last, self._since, self._repeats, self._latest = entry, now, 0, None
        return entry if summary is None else [summary, entry]

    def flush(self) -> list[LogEntry]:
        """The "repeated N times" entry still held, if any (called by `LogManager.close()`)."""
        summary = self._summary()
        self._last, self._repeats, self._latest = None, 0, None
        return [] if summary is None else [summary]

    def _summary(self) -> LogEntry | None:
        last, latest, repeats = self._last, self._latest, self._repeats
        if last is None or latest is None or not repeats:
            return None
        return latest._replace(
            message=f"{last.message} (repeated {repeats} {'time' if repeats == 1 else 'times'})",
            fields=MappingProxyType({**last.fields, "repeated": repeats}),
            exception=None,
        )


def dedupe(window: float = 1.0, *, clock: Clock | None = None) -> Dedupe:
    """A processor that passes the first of identical consecutive entries (same level, logger,
    message and fields) and swallows the repeats that come within `window` seconds of it; the
    next different entry (or the next repeat after the window, or `close()`) is preceded by one
    entry saying how many: the message `"<message> (repeated N times)"`, the field
    `repeated=N`, the time and location of the last repeat. `clock`: seconds, `time.monotonic`
    by default (for tests)."""
    return Dedupe(window, clock)


def _copy(mapping: Mapping[Any, Any]) -> dict[Any, Any]:
    if mapping.__class__ is MappingProxyType or mapping.__class__ is dict:
        return mapping.copy()  # 2.5x faster than dict(proxy)
    return dict(mapping)


def _same(first: LogEntry, second: LogEntry) -> bool:
    return (
        first.message == second.message
        and first.level == second.level
        and first.logger == second.logger
        and first.fields == second.fields
    )


def _key_reader(key: str) -> Callable[[LogEntry], object]:
    if key == "template":
        return lambda entry: entry.message if entry.template is None else entry.template
    if key == "message":
        return lambda entry: entry.message
    if key == "logger":
        return lambda entry: entry.logger
    return lambda entry: _hashable(entry.fields.get(key))


def _hashable(value: object) -> object:
    try:
        hash(value)
    except TypeError:
        return repr(value)
    return value


def _strings(owner: str, what: str, values: object) -> list[str]:
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        raise TypeError(
            f"{owner}: {what} must be a list of str, got {type(values).__name__} {values!r}"
            + (f" (write {what}=[{values!r}])" if isinstance(values, str) else "")
        )
    items = list(values)
    for item in items:
        if not isinstance(item, str):
            raise TypeError(f"{owner}: {what} must hold str, got {type(item).__name__} {item!r}")
    return items


def _one_pattern(patterns: object) -> re.Pattern[str] | None:
    """The patterns as one alternation, compiled once (None when there are none)."""
    if isinstance(patterns, str | bytes | re.Pattern) or not isinstance(patterns, Iterable):
        raise TypeError(
            f"redact: patterns must be a list of regular expressions, got "
            f"{type(patterns).__name__} {patterns!r}"
        )
    sources: list[str] = []
    for pattern in patterns:
        if isinstance(pattern, re.Pattern):
            if not isinstance(pattern.pattern, str):
                raise TypeError(f"redact: patterns must be str patterns, got {pattern!r}")
            source = pattern.pattern
            if pattern.flags & ~re.UNICODE:
                source = f"(?{_inline_flags(pattern.flags)}:{source})"
        elif isinstance(pattern, str):
            source = pattern
        else:
            raise TypeError(f"redact: a pattern must be a str or re.Pattern, got {pattern!r}")
        try:
            compiled = re.compile(source)
        except re.error as exc:
            raise ValueError(f"redact: invalid pattern {source!r}: {exc}") from None
        if compiled.match("") is not None:
            raise ValueError(
                f"redact: pattern {source!r} matches the empty string: it would put the "
                "replacement between every two characters"
            )
        sources.append(f"(?:{source})")
    return re.compile("|".join(sources)) if sources else None


def _inline_flags(flags: int) -> str:
    letters = {re.IGNORECASE: "i", re.MULTILINE: "m", re.DOTALL: "s", re.VERBOSE: "x"}
    return "".join(letter for flag, letter in letters.items() if flags & flag)


def _positive(value: object) -> bool:
    return (
        not isinstance(value, bool)
        and isinstance(value, int | float)
        and math.isfinite(value)
        and value > 0
    )
