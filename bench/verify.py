"""Read back what a contender wrote and check that every entry is there once, in order.

Messages are `task {t} msg {i}`. A run passes when there are exactly `tasks * per_task`
lines (rows), each message appears once, and within each task `i` only increases.
"""

from __future__ import annotations

import re
import sqlite3

from .contenders import Output

MESSAGE = re.compile(r"task (\d+) msg (\d+)")


def message(t: int, i: int) -> str:
    return f"task {t} msg {i}"


def read_messages(output: Output) -> list[str]:
    """The messages in the order they were written (file lines, or rows by id)."""
    if output.kind == "sqlite":
        with sqlite3.connect(output.path) as db:
            return [row[0] for row in db.execute("SELECT message FROM logs ORDER BY id")]
    cut = output.head_fields
    with output.path.open(encoding="utf-8", errors="replace", newline="\n") as handle:
        parts = [line.rstrip("\n").split(" ", cut) for line in handle]
    return [p[cut] if len(p) > cut else "<no message: " + " ".join(p) + ">" for p in parts]


def check_messages(messages: list[str], tasks: int, per_task: int) -> str | None:
    """None when `messages` are exactly the expected ones in per-task order; else why not."""
    expected = tasks * per_task
    last = [-1] * tasks
    seen = bytearray(expected)
    problems: list[str] = []
    bad = duplicates = disorder = 0
    for position, text in enumerate(messages):
        match = MESSAGE.fullmatch(text)
        t, i = (int(match[1]), int(match[2])) if match else (-1, -1)
        if not (0 <= t < tasks and 0 <= i < per_task):
            if not bad:
                problems.append(f"line {position + 1} unparseable: {text[:80]!r}")
            bad += 1
            continue
        key = t * per_task + i
        if seen[key]:
            duplicates += 1
        seen[key] = 1
        if i <= last[t]:
            if not disorder:
                problems.append(f"task {t}: msg {i} after msg {last[t]}")
            disorder += 1
        last[t] = max(last[t], i)
    missing = expected - sum(seen)
    if len(messages) != expected:
        problems.insert(0, f"{len(messages)} entries, expected {expected}")
    if missing:
        problems.append(f"{missing} missing")
    if duplicates:
        problems.append(f"{duplicates} duplicated")
    if bad > 1:
        problems.append(f"{bad} unparseable")
    if disorder > 1:
        problems.append(f"{disorder} out of order")
    return "; ".join(problems) or None


def verify(output: Output | None, tasks: int, per_task: int) -> str | None:
    """Check a contender's output; the no-op contender (no output) passes trivially."""
    if output is None:
        return None
    try:
        messages = read_messages(output)
    except (OSError, sqlite3.Error) as exc:
        return f"cannot read {output.path.name}: {exc}"
    return check_messages(messages, tasks, per_task)
