"""Reading an entry's exception back from its text: `LogEntry.exception` is the formatted
traceback (and the `stack_info` stack after it), so the structured formats (the JSON shapes,
OTLP) take the type and the message from that text."""

from __future__ import annotations

import re
from typing import NamedTuple

from ._callsite import STACK_HEADER

CHAIN_SEPARATORS = (
    "During handling of the above exception, another exception occurred:",
    "The above exception was the direct cause of the following exception:",
)
_EXCEPTION_LINE = re.compile(r"([A-Za-z_<][\w.<>]*)(?:: (.*))?")


class ExceptionInfo(NamedTuple):
    """The type (as the traceback names it: `module.Type`, or `Type` for builtins) and the
    message of an exception; None where the text did not tell."""

    type: str | None
    message: str | None


def parse_exception(text: str) -> ExceptionInfo:
    """The type and message of the exception a formatted traceback ends with (the one that
    was raised last, for a chain; the group itself, for an exception group).

    Heuristic: in the last block of the chain, after the `Traceback (most recent call last):`
    header and the indented frame lines, the first line that is not indented reads
    `module.Type: message` (or just `Type`); the lines after it continue the message (notes
    added with `add_note` included). Text that does not look so gives `(None, None)`, and so
    does a `stack_info` stack alone; a stack that follows a traceback is not read."""
    lines = without_stack(text).split("\n")
    start = 0
    for index in range(len(lines) - 1, -1, -1):
        if lines[index] in CHAIN_SEPARATORS:
            start = index + 1
            break
    prefix = ""
    for index in range(start, len(lines)):
        line = lines[index]
        column = line.find("Exception Group Traceback (most recent call last):")
        if column < 0:
            column = line.find("Traceback (most recent call last):")
        if column >= 0:
            # An exception group's lines carry a margin: "  + " on the header, "  | " after.
            prefix = line[:column].replace("+", "|")
            start = index + 1
            break
        if line.strip():
            break  # no header: an exception formatted without a traceback
    found: list[str] = []
    for line in lines[start:]:
        if not line.startswith(prefix):
            if found:
                break  # the end of the group's margin: its sub-exceptions follow
            continue
        rest = line[len(prefix) :]
        if not found:
            if not rest.strip() or rest[0] in " \t":
                continue  # a frame line, or blank
            found.append(rest)
        else:
            found.append(rest)
    if not found:
        return ExceptionInfo(None, None)
    match = _EXCEPTION_LINE.fullmatch(found[0])
    if match is None:
        return ExceptionInfo(None, None)
    message = "\n".join([match.group(2) or "", *found[1:]]).rstrip()
    return ExceptionInfo(match.group(1), message or None)


def without_stack(text: str) -> str:
    """`text` without the `stack_info` stack that may follow a traceback (empty when the text
    is that stack alone)."""
    if text.startswith(STACK_HEADER):
        return ""
    end = text.find("\n" + STACK_HEADER + "\n")
    return text if end < 0 else text[:end]
