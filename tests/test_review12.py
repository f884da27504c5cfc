"""Review of the issue-12 fast paths: each one must write what the slow path writes."""

from __future__ import annotations

import json

from asynclog import formatters


def _reference(fields: dict[str, object]) -> str:
    """The slow path: the standard encoder, with what it cannot hold as its repr."""
    previous = formatters.fast_json_used()
    formatters.use_fast_json(False)
    try:
        padded = dict(fields)
        for i in range(formatters.SCALAR_FIELDS_LIMIT + 1 - len(fields)):
            padded[f"pad{i}"] = i  # past the small-fields limit: the encoder writes them
        text = formatters.fields_to_json(padded)
    finally:
        formatters.use_fast_json(previous)
    decoded = json.loads(text)
    return json.dumps({k: decoded[k] for k in fields}, ensure_ascii=False)


def test_small_fields_with_an_int_too_long_for_str_are_written_as_the_slow_path_writes() -> None:
    fields = {"user": "ann", "big": 10**5000}
    text = formatters.fields_to_json(fields)
    assert text == _reference(fields)
    assert json.loads(text) == {"user": "ann", "big": "<unrepresentable int: ValueError>"}
