"""`json_format` encodes each part once with encoders built at import; its bytes must be those
of the plain `json.dumps` form it replaced, for any entry."""

from __future__ import annotations

import json
from types import MappingProxyType
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from asynclog import LogEntry
from asynclog._exception_text import parse_exception
from asynclog.formatters import _JSON_UNSAFE, iso_utc, json_format, level_name, safe_repr


def reference(entry: LogEntry) -> str:
    """The encoding before: json.dumps for the head, the fields and the traceback."""
    head = json.dumps(
        {
            "timestamp": iso_utc(entry.timestamp),
            "level": level_name(entry.level),
            "logger": entry.logger,
            "message": entry.message,
        },
        ensure_ascii=False,
    )
    try:
        fields = json.dumps(
            dict(entry.fields), ensure_ascii=False, allow_nan=False, default=safe_repr
        )
    except ValueError:
        return json_format(entry)  # out-of-range floats take the fallback both ways
    exception = entry.exception
    if exception is not None:  # the exception's own object: its type, message and stack
        kind, text = parse_exception(exception)
        exception = {"type": kind, "message": text, "stack": exception}  # type: ignore[assignment]
    tail = json.dumps(exception, ensure_ascii=False)
    line = f'{head[:-1]}, "fields": {fields}, "exception": {tail}}}'
    return line if line.isascii() and "\x7f" not in line else line.translate(_JSON_UNSAFE)


scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text())
values: st.SearchStrategy[Any] = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=400, deadline=None)
@given(
    ts=st.floats(min_value=0, max_value=4e9),
    level=st.integers(min_value=1, max_value=100),
    message=st.text(),
    logger=st.text(),
    fields=st.dictionaries(st.text(), values, max_size=4),
    exception=st.none() | st.text(),
)
def test_json_format_writes_the_bytes_json_dumps_wrote(
    ts: float,
    level: int,
    message: str,
    logger: str,
    fields: dict[str, Any],
    exception: str | None,
) -> None:
    entry = LogEntry(ts, level, message, logger, MappingProxyType(fields), exception)
    assert json_format(entry) == reference(entry)
    assert json.loads(json_format(entry))["message"] == message


def test_an_object_json_cannot_hold_is_written_as_its_repr() -> None:
    class Thing:
        def __repr__(self) -> str:
            return "<thing>"

    entry = LogEntry(0.0, 20, "m", "app", MappingProxyType({"t": Thing(), "n": 1}))
    assert json.loads(json_format(entry))["fields"] == {"t": "<thing>", "n": 1}
    assert json_format(entry) == reference(entry)
