"""The `asynclog` command line: `query`, `tail`, `stats` and `demo`, on an asynclog SQLite
database or a log file the file backend wrote (text or JSON lines, rotated and gzipped)."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sqlite3
import sys
import time
from collections.abc import Callable, Sequence
from typing import TextIO

from ._entry import LogEntry
from ._filelog_read import (
    DB_SUFFIXES,
    SQLITE_MAGIC,
    LogFiles,
    RecordSelector,
    kind_of,
    not_a_log,
)
from ._levels import LEVEL_NAMES, Level, level_name, parse_level
from ._read_filters import NO_FILTERS
from ._tail import DbFollower, FileFollower, follow
from ._version import __version__
from .formatters import BIDI_CONTROLS, json_format, text_format, utf8_safe
from .query import Filters, LogDB, QueryError, make_filters, parse_time

EXIT_ERROR = 2
"""Exit status for a bad command line, a missing file or a log that is not asynclog's."""

MINUTES = 20
"""How many minutes the per-minute histogram shows by default (`stats --minutes N`)."""

# --- colours ---------------------------------------------------------------------------------

_COLOURS = ((50, "1;31"), (40, "31"), (30, "33"), (20, "32"), (0, "2"))
_RESET = "\x1b[0m"


def level_colour(level: int) -> str:
    """The SGR code of a level: bold red, red, yellow, green, dim (from CRITICAL down)."""
    return next(code for floor, code in _COLOURS if level >= floor)


def paint(text: str, level: int) -> str:
    """`text` in the colour of `level`."""
    return f"\x1b[{level_colour(level)}m{text}{_RESET}"


def want_colour(mode: str, stream: TextIO) -> bool:
    """`--color`: always, never, or auto (a terminal, unless NO_COLOR is set or TERM=dumb)."""
    if mode != "auto":
        return mode == "always"
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


_BY_NAME = {name: number for number, name in LEVEL_NAMES.items()} | {"WARN": 30, "FATAL": 50}


def _level_of(name: str) -> int | None:
    upper = name.upper()
    if upper in _BY_NAME:
        return _BY_NAME[upper]
    custom = re.fullmatch(r"LEVEL[ _](\d+)", upper)
    return int(custom.group(1)) if custom else None


# Control characters a file may hold raw (asynclog escapes them; other writers may not): the
# ones that move a cursor, end a line or reorder the rest of it. Tab and newline stay.
_CONTROLS = {
    **{c: f"\\x{c:02x}" for c in (*range(0x09), *range(0x0B, 0x20), 0x7F, *range(0x80, 0xA0))},
    **{c: f"\\u{c:04x}" for c in (0x2028, 0x2029, *BIDI_CONTROLS)},
}
_TEXT_LEVEL = re.compile(r"(\S+ )(DEBUG|INFO|WARNING|ERROR|CRITICAL|Level \d+)(?= |$)")
_JSON_LEVEL = re.compile(r'("level": ")([A-Za-z0-9 ]+)(")')
_LOGFMT_LEVEL = re.compile(r"((?:^| )level=)(\w+)")


class Renderer:
    """Turns entries (and raw file records) into output text."""

    def __init__(self, *, colour: bool = False, as_json: bool = False) -> None:
        self.colour = colour
        self.as_json = as_json

    def entry(self, entry: LogEntry) -> str:
        """The text format (its level coloured), or the json format with `--json`."""
        if self.as_json:  # a lone surrogate (read from `\\ud800`) as its JSON escape
            return utf8_safe(json_format(entry))
        line = text_format(entry)
        if not self.colour:
            return line
        stamp, _, rest = line.partition(" ")
        name = level_name(entry.level)
        if not rest.startswith(name):
            return line
        return f"{stamp} {paint(name, entry.level)}{rest[len(name) :]}"

    def raw(self, record: str) -> str:
        """A record read from a log file: controls made visible, its level coloured."""
        record = record.translate(_CONTROLS)
        if not self.colour:
            return record
        for pattern in (_TEXT_LEVEL, _JSON_LEVEL, _LOGFMT_LEVEL):
            found = pattern.match(record) if pattern is _TEXT_LEVEL else pattern.search(record)
            if found is None:
                continue
            level = _level_of(found.group(2))
            if level is None:
                continue
            start, end = found.span(2)
            return record[:start] + paint(record[start:end], level) + record[end:]
        return record


# --- arguments -------------------------------------------------------------------------------


def _level_arg(text: str) -> int:
    try:
        return parse_level(int(text) if text.strip().isdigit() else text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _time_arg(text: str) -> float:
    try:
        return parse_time(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _field_arg(text: str) -> tuple[str, str]:
    key, equals, value = text.partition("=")
    if not equals or not key or '"' in key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a count (0 or more), got {text!r}")
    return value


def _minutes(text: str) -> int:
    value = _positive_int(text)
    if value > 24 * 60:
        raise argparse.ArgumentTypeError(f"expected at most 1440 minutes, got {text!r}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value < 3600:
        raise argparse.ArgumentTypeError(f"expected seconds (0 < s < 3600), got {text!r}")
    return value


_LOG_HELP = (
    "an asynclog SQLite database, or a log file of the file backend (text or JSON lines, "
    "gzipped too), told apart by their content"
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command."""
    parser = argparse.ArgumentParser(prog="asynclog", description="asyncio-native logging")
    parser.add_argument("--version", action="version", version=f"asynclog {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--table", default="logs", help="the table to read (default: logs)")
    common.add_argument(
        "--color",
        "--colour",
        dest="color",
        choices=("auto", "always", "never"),
        default="auto",
        help="colour by level: auto (a terminal, unless NO_COLOR is set), always, never",
    )
    when = argparse.ArgumentParser(add_help=False)
    when.add_argument(
        "--since",
        type=_time_arg,
        metavar="TIME",
        help="from this time on: 30s, 15m, 1h, 2d, 1w ago, or ISO (naive = UTC)",
    )
    when.add_argument("--until", type=_time_arg, metavar="TIME", help="before this time")
    when.add_argument("--logger", help="this logger and its dotted children")
    every = argparse.ArgumentParser(add_help=False)
    every.add_argument(
        "--all",
        dest="every",
        action="store_true",
        help="a log file: its rotated siblings too (LOG.N, LOG.N.gz ... LOG.1), oldest first",
    )
    select = argparse.ArgumentParser(add_help=False)
    select.add_argument(
        "--level", type=_level_arg, help="this level and above (debug ... critical)"
    )
    select.add_argument("--grep", metavar="TEXT", help="text in the message (FTS5 when indexed)")
    select.add_argument(
        "--field",
        type=_field_arg,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a field equal to VALUE (as text, or as a number); repeatable",
    )

    q = commands.add_parser(
        "query",
        parents=[common, when, every, select],
        help="print the entries of a log that match the filters",
        description="Print matching entries, oldest first.",
    )
    q.add_argument("db", metavar="LOG", help=_LOG_HELP)
    q.add_argument("--limit", type=_positive_int, metavar="N", help="the newest N matches only")
    q.add_argument("--json", action="store_true", help="one JSON object per line")

    t = commands.add_parser(
        "tail",
        parents=[common, when, select],
        help="print the last entries of a log file or database; -f follows new ones",
        description="Print the last entries; with -f, follow new ones (and file rotation).",
    )
    t.add_argument("path", help="a log file (text, json, logfmt) or an asynclog database")
    t.add_argument(
        "-n",
        "--lines",
        type=_count,
        default=10,
        metavar="N",
        help="how many entries to print first (default: 10)",
    )
    t.add_argument("-f", "--follow", action="store_true", help="keep printing new entries")
    t.add_argument(
        "--interval",
        type=_seconds,
        default=0.5,
        metavar="S",
        help="seconds between polls with -f (default: 0.5)",
    )
    t.add_argument(
        "--json", action="store_true", help="entries as JSON lines (a file's records are read)"
    )

    s = commands.add_parser(
        "stats",
        parents=[common, when, every],
        help="entry counts by level, per hour and per minute, as bar charts",
        description="Counts by level (all entries, or --since/--until), per hour (last 24 "
        "hours unless --since) and per minute by level (the last minutes with entries), "
        "drawn as bars.",
    )
    s.add_argument("db", metavar="LOG", help=_LOG_HELP)
    s.add_argument(
        "--minutes",
        type=_minutes,
        default=MINUTES,
        metavar="N",
        help=f"how many minutes the per-minute histogram shows (default: {MINUTES})",
    )

    commands.add_parser("demo", help="100 tasks x 1000 entries into logs/app.log and logs/app.db")
    return parser


# --- commands --------------------------------------------------------------------------------


def _write(out: TextIO, text: str) -> None:
    out.write(text + "\n")


def _filters(args: argparse.Namespace) -> Filters:
    return make_filters(
        level=args.level,
        since=args.since,
        until=args.until,
        text=args.grep,
        logger=args.logger,
        fields=args.field,
        limit=getattr(args, "limit", None),
    )


def cmd_query(args: argparse.Namespace, out: TextIO) -> int:
    """`asynclog query`."""
    filters = _filters(args)
    render = Renderer(colour=want_colour(args.color, out), as_json=args.json).entry
    with open_log(args.db, args.table, args.every) as log:
        for entry in log.entries(filters):
            _write(out, render(entry))
    return 0




def is_database(path: str) -> bool:
    """SQLite by its header; an empty or foreign `.db`/`.sqlite` file counts too (so that it is
    reported as not an asynclog database rather than printed as text)."""
    with open(path, "rb") as handle:
        head = handle.read(len(SQLITE_MAGIC))
    return head == SQLITE_MAGIC or path.lower().endswith(DB_SUFFIXES)


class FileLog:
    """`LogFiles` behind the interface of `LogDB` the commands use; on leaving, says on stderr
    what it skipped (malformed lines, unreadable siblings)."""

    def __init__(self, files: LogFiles) -> None:
        self.files = files

    def __enter__(self) -> LogFiles:
        return self.files

    def __exit__(self, *exc_info: object) -> None:
        for problem in self.files.problems():
            print(f"asynclog: note: {problem}", file=sys.stderr)


def open_log(path: str, table: str, every: bool) -> LogDB | FileLog:
    """The reader for `path`, by its content (`_filelog_read.kind_of`): a database or a log
    file. Anything else is an error naming the path (for a `.db`, `.sqlite` or `.sqlite3`
    name: "not an SQLite file"). `every` (`--all`) reads a log file's rotated siblings too."""
    try:
        kind = kind_of(path)
    except (OSError, EOFError) as exc:
        raise QueryError(
            _file_problem(path, exc) if isinstance(exc, OSError) else f"{path}: {exc}"
        ) from None
    if kind == "log":
        return FileLog(LogFiles(path, every))
    if kind == "other" and not path.lower().endswith(DB_SUFFIXES):
        raise QueryError(not_a_log(path))
    if every and kind == "sqlite":
        raise QueryError(f"{path}: --all reads rotated log files; this is a database")
    return LogDB(path, table)  # for "other": says why it is not an asynclog database


def _file_problem(path: str, exc: OSError) -> str:
    if isinstance(exc, FileNotFoundError):
        return f"{path}: no such file"
    if isinstance(exc, IsADirectoryError):
        return f"{path}: is a directory"
    if isinstance(exc, PermissionError):
        return f"{path}: permission denied"
    return f"{path}: {exc.strerror or exc}"


def _tail_source(
    args: argparse.Namespace, renderer: Renderer
) -> tuple[list[str], Callable[[], list[str]], Callable[[], None]]:
    """The first records (rendered), a poll for more, and a close, for a file or a database."""
    try:
        database = is_database(args.path)
    except OSError as exc:
        raise QueryError(_file_problem(args.path, exc)) from None
    filters = _filters(args)
    if database:
        db_follower = DbFollower(args.path, args.table, filters)
        first = [renderer.entry(entry) for entry in db_follower.start(args.lines)]
        return first, lambda: [renderer.entry(e) for e in db_follower.poll()], db_follower.close
    file_follower = FileFollower(args.path)
    reading = filters != NO_FILTERS or args.json
    try:
        # To find the last N records that match, every record has to be looked at.
        records = file_follower.start(
            sys.maxsize if filters != NO_FILTERS else args.lines, partial=not args.follow
        )
    except OSError as exc:
        raise QueryError(_file_problem(args.path, exc)) from None
    if not reading:
        first = [renderer.raw(record) for record in records]
        return first, lambda: [renderer.raw(r) for r in file_follower.poll()], file_follower.close
    selector = RecordSelector(filters)

    def render(records: list[str]) -> list[str]:
        return [
            renderer.entry(entry) if args.json else renderer.raw(record)
            for record, entry in selector.select(records)
        ]

    def close() -> None:
        file_follower.close()
        if selector.malformed:
            plural = "line" if selector.malformed == 1 else "lines"
            note = f"asynclog: note: skipped {selector.malformed} malformed {plural}"
            print(note, file=sys.stderr)

    first = render(records)
    first = first[len(first) - args.lines :] if args.lines else []
    return first, lambda: render(file_follower.poll()), close


def cmd_tail(args: argparse.Namespace, out: TextIO) -> int:
    """`asynclog tail`; with `-f`, runs until Ctrl-C (exit 0)."""
    renderer = Renderer(colour=want_colour(args.color, out), as_json=args.json)
    first, poll, close = _tail_source(args, renderer)

    def flush_then_poll() -> list[str]:
        out.flush()  # what the previous poll printed, before waiting for more
        return poll()

    try:
        for record in first:
            _write(out, record)
        out.flush()
        if args.follow:
            follow(flush_then_poll, lambda record: _write(out, record), interval=args.interval)
    except KeyboardInterrupt:
        out.flush()
    finally:
        close()
    return 0


# --- stats -----------------------------------------------------------------------------------

_EIGHTHS = ("", "▏", "▎", "▍", "▌", "▋", "▊", "▉")
_FULL = "█"


def bar(value: int, maximum: int, width: int, blocks: bool) -> str:
    """A bar of `value / maximum * width` cells; any non-zero value shows at least a sliver."""
    if value <= 0 or maximum <= 0:
        return ""
    if blocks:
        eighths = max(1, round(value / maximum * width * 8))
        return _FULL * (eighths // 8) + _EIGHTHS[eighths % 8]
    return "#" * max(1, round(value / maximum * width))


def can_draw_blocks(stream: TextIO) -> bool:
    """Block characters on a terminal whose encoding has them; `#` otherwise."""
    isatty = getattr(stream, "isatty", None)
    if not (isatty and isatty()):
        return False
    try:
        (_FULL + "".join(_EIGHTHS)).encode(getattr(stream, "encoding", None) or "ascii")
    except (UnicodeEncodeError, LookupError):
        return False
    return True


def _stamp(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


Row = tuple[str, int, int | None]
"""A chart row: label, count, and the level to colour it by (None: no colour)."""


def _chart(rows: list[Row], widths: tuple[int, int, int], blocks: bool, colour: bool) -> list[str]:
    """`  label  count  bar` lines; `widths` is (label, count, bar) widths."""
    if not rows:
        return ["  (none)"]
    label_width, count_width, room = widths
    biggest = max(count for _, count, _ in rows)
    lines = []
    for label, count, level in rows:
        drawn = bar(count, biggest, room, blocks)
        padded = label.ljust(label_width)
        if colour and level is not None:
            padded = paint(label, level) + " " * (label_width - len(label))
            drawn = paint(drawn, level) if drawn else ""
        lines.append(f"  {padded}  {count:>{count_width},}  {drawn}".rstrip())
    return lines


MAX_FILLED_HOURS = 7 * 24
"""Up to a week of hours is charted with its empty hours; a longer span only non-empty ones."""


def render_stats(
    total: int,
    span: tuple[float | None, float | None],
    levels: dict[int, int],
    hours: dict[int, int],
    *,
    since: float | None,
    until: float | None,
    width: int,
    blocks: bool = False,
    colour: bool = False,
    minutes: dict[int, dict[int, int]] | None = None,
    minute_count: int = MINUTES,
) -> list[str]:
    """The lines of `asynclog stats` (pure: the numbers come from `LogDB` or `LogFiles`);
    with `minutes` (counts by minute, then level), the per-minute histogram at the end."""
    scope = (f" since {_stamp(since)}" if since is not None else "") + (
        f" until {_stamp(until)}" if until is not None else ""
    )
    first, last = span
    head = f"Entries{scope}: {total:,}"
    if total and first is not None and last is not None:
        head += f" ({_stamp(first)} to {_stamp(last)})"
    shown = sorted({*(int(level) for level in Level), *levels})
    level_rows: list[Row] = [(level_name(level), levels.get(level, 0), level) for level in shown]
    if since is not None:
        hours_title = "Per hour (UTC):"
    elif until is not None:
        hours_title = f"Per hour (UTC), the 24 hours before {_stamp(until)}:"
    else:
        hours_title = "Per hour (UTC), last 24 hours:"
    keys = sorted(hours)
    if keys and (keys[-1] - keys[0]) // 3600 < MAX_FILLED_HOURS:
        keys = list(range(keys[0], keys[-1] + 1, 3600))
    hour_rows: list[Row] = [
        (time.strftime("%Y-%m-%d %H:00", time.gmtime(hour)), hours.get(hour, 0), None)
        for hour in keys
    ]
    window = minute_window(minutes or {}, minute_count)
    minute_rows: list[Row] = [
        (_minute_label(minute), sum((minutes or {}).get(minute, {}).values()), None)
        for minute in window
    ]
    # The charts share their columns, so that their bars start at the same place.
    every = level_rows + hour_rows + minute_rows
    label_width = max(len(label) for label, _, _ in every)
    count_width = max(len(f"{count:,}") for _, count, _ in every)
    room = max(10, width - (2 + label_width + 2 + count_width + 2) - 1)
    widths = (label_width, count_width, room)
    lines = [
        head,
        "",
        "By level:",
        *_chart(level_rows, widths, blocks, colour),
        "",
        hours_title,
        *_chart(hour_rows, widths, blocks, colour),
    ]
    if minutes is not None:
        lines += ["", *_minute_chart(minutes, window, widths, blocks, colour)]
    return lines


LEVEL_LETTERS = {10: "D", 20: "I", 30: "W", 40: "E", 50: "C"}
"""The letter a level's part of a per-minute bar is drawn with; other levels get `+`."""
OTHER_LETTER = "+"


def _minute_label(minute: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(minute))


def minute_window(minutes: dict[int, dict[int, int]], most: int = MINUTES) -> list[int]:
    """The minutes to chart: from the first minute with entries to the last, empty ones
    included, at most the last `most` of them."""
    if not minutes:
        return []
    last = max(minutes)
    first = max(min(minutes), last - (most - 1) * 60)
    return list(range(first, last + 60, 60))


def stacked_bar(counts: dict[int, int], biggest: int, room: int) -> list[tuple[int, int]]:
    """(level, cells) parts of one minute's bar, lowest level first: the whole bar is
    `total / biggest * room` cells, each level's part by the running total (rounded half up), and a
    level with entries gets at least one cell (taken from the biggest part, so that the bar
    keeps its length)."""
    parts: list[tuple[int, int]] = []
    running = drawn = 0
    for level in sorted(counts):
        if counts[level] <= 0:
            continue
        running += counts[level]
        cells = max(1, int(running / biggest * room + 0.5) - drawn)
        parts.append((level, cells))
        drawn += cells
    # The cells given to small levels must not push the bar past its length: the biggest
    # part gives them back.
    length = max(int(running / biggest * room + 0.5), len(parts))
    while drawn > length:
        index = max(range(len(parts)), key=lambda i: parts[i][1])
        level, cells = parts[index]
        parts[index] = (level, cells - 1)
        drawn -= 1
    return parts


def _minute_chart(
    minutes: dict[int, dict[int, int]],
    window: list[int],
    widths: tuple[int, int, int],
    blocks: bool,
    colour: bool,
) -> list[str]:
    label_width, count_width, room = widths
    present = sorted({level for minute in window for level in minutes.get(minute, {})})
    legend = " ".join(
        dict.fromkeys(
            f"{LEVEL_LETTERS[level]}={level_name(level)}"
            if level in LEVEL_LETTERS
            else f"{OTHER_LETTER}=other"
            for level in present
        )
    )
    title = "Per minute (UTC), by level" + (f" ({legend})" if legend else "") + ":"
    if window and min(minutes) < window[0]:
        title = title[:-1] + f", the {len(window)} minutes to {_minute_label(window[-1])}:"
    if not window:
        return [title, "  (none)"]
    biggest = max(sum(minutes.get(minute, {}).values()) for minute in window)
    lines = [title]
    for minute in window:
        counts = minutes.get(minute, {})
        drawn = ""
        for level, cells in stacked_bar(counts, biggest, room):
            letter = LEVEL_LETTERS.get(level, OTHER_LETTER)
            part = (_FULL if blocks and colour else letter) * cells
            drawn += paint(part, level) if colour else part
        label = _minute_label(minute).ljust(label_width)
        lines.append(f"  {label}  {sum(counts.values()):>{count_width},}  {drawn}".rstrip())
    return lines


def cmd_stats(args: argparse.Namespace, out: TextIO) -> int:
    """`asynclog stats`."""
    now = time.time()
    hour_since = args.since
    if hour_since is None:
        hour_since = (args.until if args.until is not None else now) - 24 * 3600
    with open_log(args.db, args.table, args.every) as db:
        scope = Filters(since=args.since, until=args.until, logger=args.logger)
        total, first, last = db.summary(scope)
        levels = db.count_by_level(scope)
        hours = db.count_by_hour(Filters(since=hour_since, until=args.until, logger=args.logger))
        minutes = db.count_by_minute(scope)
    lines = render_stats(
        total,
        (first, last),
        levels,
        hours,
        since=args.since,
        until=args.until,
        width=shutil.get_terminal_size().columns,
        blocks=can_draw_blocks(out),
        colour=want_colour(args.color, out),
        minutes=minutes,
        minute_count=args.minutes,
    )
    for line in lines:
        _write(out, line)
    return 0


# --- entry point -----------------------------------------------------------------------------


def _command(args: argparse.Namespace, out: TextIO) -> int:
    if args.command == "demo":
        from ._demo import demo

        demo()
        return 0
    commands = {"query": cmd_query, "tail": cmd_tail, "stats": cmd_stats}
    return commands[args.command](args, out)


def run(argv: Sequence[str] | None = None) -> int:
    """Parse `argv` and run the command; returns the exit status."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error (already printed)
        return exc.code if isinstance(exc.code, int) else EXIT_ERROR
    out = sys.stdout
    try:
        return _command(args, out)
    except (QueryError, ValueError) as exc:
        print(f"asynclog: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except sqlite3.Error as exc:
        print(f"asynclog: error: {getattr(args, 'db', '')}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `asynclog query ... | head`: the reader has gone
        _silence_stdout()
        return 0


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that the interpreter's final flush does not fail."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass
