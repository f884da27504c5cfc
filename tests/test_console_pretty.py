"""The pretty console as a person sees it: a child process writes to a real pseudo-terminal
(`os.openpty`) or to a pipe, and the bytes the terminal receives are checked exactly; one test
runs the child in tmux and reads the screen back. Then the renderer's own units."""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from asynclog import Config, ConfigError, ConsoleConfig, FileConfig, Level, Location, LogManager
from asynclog._entry import Entry
from asynclog._pretty import (
    RICH_VARIABLE,
    clock,
    color_wanted,
    is_terminal,
    level_color,
    pretty_line,
    rich_available,
    traceback_text,
)
from asynclog.backends.console import ConsoleBackend

from .conftest import skip_real

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import asyncio, os, sys
if os.environ.get("HIDE_RICH"):
    sys.modules["rich"] = None  # rich cannot be imported: the stdlib form
from asynclog import Config, ConsoleConfig, LogManager

def fail():
    raise RuntimeError("boom \x1b]0;pwned\x07 \x9b2J")

async def main():
    scenario, fmt = sys.argv[1], sys.argv[2]
    console = ConsoleConfig() if fmt == "default" else ConsoleConfig(format=fmt)
    async with LogManager(Config(backends=[console], name="app")) as lm:
        if scenario == "levels":
            await lm.debug("cache warm", entries=1200)
            await lm.info("request done", path="/users/42", status=200)
            await lm.warning("slow query", ms=812.5)
            await lm.error("payment declined", reason="card expired")
            await lm.critical("out of disk")
        elif scenario == "traceback":
            try:
                fail()
            except RuntimeError:
                await lm.error("job failed", exc_info=True, job=7)
        elif scenario == "inject":
            evil = lm.get_logger("evil\x1b[2Jname")
            await evil.warning(
                "clear \x1b[2J title \x1b]0;pwned\x07 csi \x9b31m bell \x07 end",
                **{"key\x1b[31m": "value\x1b[5m\x9b"},
            )
            try:
                fail()
            except RuntimeError:
                await lm.error("with traceback", exc_info=True)
    print("DONE", flush=True)

if os.environ.get("ASYNCLOG_TEST_LOOP") == "uvloop":
    import uvloop
    uvloop.run(main())
else:
    asyncio.run(main())
"""

T = "\x1b[2mTIME\x1b[0m"
"""The dimmed time of a coloured line, its digits replaced by TIME."""

SGR = re.compile(r"\x1b\[[0-9;]*m")
TRACEBACK = [
    r"Traceback \(most recent call last\):",
    r'  File "<string>", line \d+, in main',
    r'  File "<string>", line \d+, in fail',
    r"RuntimeError: boom \\x1b\]0;pwned\\x07 \\x9b2J",
]
"""The child's traceback, as the plain form shows it (the exception's controls escaped)."""


def child_env(**overrides: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("NO_COLOR", "FORCE_COLOR", RICH_VARIABLE, "TERM", "COLUMNS")
    }
    env.update(PYTHONPATH=str(ROOT), TERM="xterm-256color", TZ="UTC")
    env.update(overrides)
    return env


def run_in_pty(scenario: str, fmt: str = "default", **env: str) -> str:
    """What the terminal receives from the child's stderr (a pty), `\\r\\n` and all, with the
    times replaced by TIME."""
    master, slave = os.openpty()
    try:
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, scenario, fmt],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=slave,
            env=child_env(**env),
        )
    finally:
        os.close(slave)
    chunks = []
    try:
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(master)
        assert child.wait(timeout=60) == 0
    return _timeless(b"".join(chunks).decode("utf-8"))


def run_in_pipe(scenario: str, fmt: str = "default", **env: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, scenario, fmt],
        capture_output=True,
        env=child_env(**env),
        timeout=60,
        check=True,
    )
    return _timeless(done.stderr.decode("utf-8"))


def _timeless(text: str) -> str:
    text = re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", "ISO", text)
    return re.sub(r"\d\d:\d\d:\d\d\.\d{3}", "TIME", text)


COLOURED_LEVELS = (
    f"{T} \x1b[1;34mDEBUG   \x1b[0m \x1b[36mapp\x1b[0m cache warm \x1b[2mentries=1200\x1b[0m\r\n"
    f"{T} \x1b[1;32mINFO    \x1b[0m \x1b[36mapp\x1b[0m request done "
    "\x1b[2mpath=/users/42 status=200\x1b[0m\r\n"
    f"{T} \x1b[1;33mWARNING \x1b[0m \x1b[36mapp\x1b[0m slow query \x1b[2mms=812.5\x1b[0m\r\n"
    f"{T} \x1b[1;31mERROR   \x1b[0m \x1b[36mapp\x1b[0m payment declined "
    '\x1b[2mreason="card expired"\x1b[0m\r\n'
    f"{T} \x1b[1;37;41mCRITICAL\x1b[0m \x1b[36mapp\x1b[0m out of disk\r\n"
)

PLAIN_LEVELS = (
    "TIME DEBUG    app cache warm entries=1200\n"
    "TIME INFO     app request done path=/users/42 status=200\n"
    "TIME WARNING  app slow query ms=812.5\n"
    'TIME ERROR    app payment declined reason="card expired"\n'
    "TIME CRITICAL app out of disk\n"
)

TEXT_LEVELS = (
    "ISO DEBUG app cache warm entries=1200\n"
    "ISO INFO app request done path=/users/42 status=200\n"
    "ISO WARNING app slow query ms=812.5\n"
    'ISO ERROR app payment declined reason="card expired"\n'
    "ISO CRITICAL app out of disk\n"
)


def test_the_default_on_a_terminal_is_pretty_with_a_colour_per_level() -> None:
    assert run_in_pty("levels") == COLOURED_LEVELS


def test_the_default_on_a_pipe_stays_the_text_format() -> None:
    assert run_in_pipe("levels") == TEXT_LEVELS


def test_the_default_on_a_pipe_stays_text_even_with_force_color() -> None:
    assert run_in_pipe("levels", FORCE_COLOR="1") == TEXT_LEVELS


def test_pretty_on_a_pipe_has_no_colour() -> None:
    assert run_in_pipe("levels", "pretty") == PLAIN_LEVELS


def test_force_color_colours_pretty_on_a_pipe() -> None:
    assert run_in_pipe("levels", "pretty", FORCE_COLOR="1") == COLOURED_LEVELS.replace("\r\n", "\n")


@pytest.mark.parametrize("value", ["1", "true", "0"])
def test_no_color_turns_colour_off_on_a_terminal(value: str) -> None:
    assert run_in_pty("levels", NO_COLOR=value) == PLAIN_LEVELS.replace("\n", "\r\n")


def test_an_empty_no_color_is_not_set() -> None:
    assert run_in_pty("levels", NO_COLOR="") == COLOURED_LEVELS


def test_no_color_wins_over_force_color() -> None:
    assert run_in_pty("levels", NO_COLOR="1", FORCE_COLOR="1") == PLAIN_LEVELS.replace("\n", "\r\n")


def test_a_dumb_terminal_gets_no_colour() -> None:
    assert run_in_pty("levels", TERM="dumb") == PLAIN_LEVELS.replace("\n", "\r\n")


def test_text_chosen_explicitly_stays_text_on_a_terminal() -> None:
    assert run_in_pty("levels", "text") == TEXT_LEVELS.replace("\n", "\r\n")


def _traceback_lines(output: str) -> tuple[str, list[str]]:
    """The entry's first line, and its traceback's lines but the source lines (and their
    carets) that Python 3.13 shows for `-c` code and 3.11/3.12 do not."""
    lines = output.split("\r\n")
    assert lines[-1] == ""
    return lines[0], [line for line in lines[1:-1] if not SGR.sub("", line).startswith("    ")]


def test_a_traceback_in_the_plain_stdlib_form_when_rich_is_switched_off() -> None:
    head, lines = _traceback_lines(run_in_pty("traceback", **{RICH_VARIABLE: "0"}))
    assert (
        head == f"{T} \x1b[1;31mERROR   \x1b[0m \x1b[36mapp\x1b[0m job failed \x1b[2mjob=7\x1b[0m"
    )
    assert len(lines) == len(TRACEBACK)
    for line, pattern in zip(lines, TRACEBACK, strict=True):
        assert re.fullmatch(pattern, line), line


def test_a_traceback_in_the_plain_stdlib_form_when_rich_is_absent() -> None:
    head, lines = _traceback_lines(run_in_pty("traceback", HIDE_RICH="1"))
    assert head.endswith(" job failed \x1b[2mjob=7\x1b[0m")
    for line, pattern in zip(lines, TRACEBACK, strict=True):
        assert re.fullmatch(pattern, line), line


@pytest.mark.skipif(not rich_available(), reason="the pretty extra (rich) is not installed")
def test_a_traceback_highlighted_by_rich() -> None:
    head, lines = _traceback_lines(run_in_pty("traceback"))
    assert head.endswith(" job failed \x1b[2mjob=7\x1b[0m")
    assert len(lines) == len(TRACEBACK)
    for line, pattern in zip(lines, TRACEBACK, strict=True):
        assert re.fullmatch(pattern, SGR.sub("", line)), line
        assert "\x1b" in line  # highlighted
    assert re.search(r"\x1b\[[0-9;]*mRuntimeError\x1b\[0m", lines[-1])
    assert re.search(r'\x1b\[[0-9;]*m"<string>"\x1b\[0m', lines[1])


def _only_sgr(output: str) -> None:
    """Every escape in `output` is a colour (SGR); no other control but CR and LF."""
    bare = SGR.sub("", output)
    controls = {char for char in bare if ord(char) < 0x20 or 0x7F <= ord(char) < 0xA0}
    assert controls <= {"\r", "\n"}, controls


@pytest.mark.parametrize("hide_rich", ["", "1"])
def test_escape_sequences_in_an_entry_reach_the_terminal_escaped(hide_rich: str) -> None:
    output = run_in_pty("inject", HIDE_RICH=hide_rich)
    _only_sgr(output)
    lines = SGR.sub("", output).split("\r\n")
    assert lines[0] == (
        r"TIME WARNING  evil\x1b[2Jname clear \x1b[2J title \x1b]0;pwned\x07 csi \x9b31m "
        r"bell \x07 end key\x1b[31m=value\x1b[5m\x9b"
    )
    assert lines[1] == "TIME ERROR    app with traceback"
    assert lines[-2] == r"RuntimeError: boom \x1b]0;pwned\x07 \x9b2J"


@pytest.fixture
def tmux_server(request: pytest.FixtureRequest) -> Iterator[list[str]]:
    if shutil.which("tmux") is None:
        skip_real(
            request.config,
            "tmux (the console as a terminal shows it)",
            "the tmux command is missing",
            "apt-get install tmux",
        )
    command = ["tmux", "-L", f"asynclog-test-{uuid.uuid4().hex[:12]}", "-f", "/dev/null"]
    try:
        yield command
    finally:
        subprocess.run([*command, "kill-server"], capture_output=True, check=False)


def test_an_injection_leaves_the_screen_and_the_title_alone_in_tmux(
    tmux_server: list[str], tmp_path: Path
) -> None:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = child_env()
    exports = " ".join(f"{key}={_quoted(env[key])}" for key in ("PYTHONPATH", "TERM", "TZ"))
    shell = f"printf 'BEFORE\\n'; env -u NO_COLOR -u FORCE_COLOR {exports} "
    shell += f"{sys.executable} {script} inject default; sleep 60"
    subprocess.run(
        [*tmux_server, "new-session", "-d", "-x", "200", "-y", "40", shell],
        check=True,
        env=env,
    )
    screen = ""
    deadline = time.monotonic() + 30
    while "DONE" not in screen and time.monotonic() < deadline:
        time.sleep(0.1)
        screen = _capture(tmux_server, "-p")
    assert "DONE" in screen
    rows = [row.rstrip() for row in screen.splitlines() if row.strip()]
    assert rows[0] == "BEFORE"  # \x1b[2J would have cleared it
    assert re.fullmatch(
        r"\d\d:\d\d:\d\d\.\d{3} WARNING  evil\\x1b\[2Jname clear \\x1b\[2J title "
        r"\\x1b\]0;pwned\\x07 csi \\x9b31m bell \\x07 end key\\x1b\[31m=value\\x1b\[5m\\x9b",
        rows[1],
    )
    assert rows[-2] == r"RuntimeError: boom \x1b]0;pwned\x07 \x9b2J"
    title = subprocess.run(
        [*tmux_server, "display-message", "-p", "#{pane_title}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert "pwned" not in title
    coloured = _capture(tmux_server, "-p", "-e")
    assert "\x1b[1m\x1b[33mWARNING" in coloured or "\x1b[1;33mWARNING" in coloured


def _quoted(value: str) -> str:
    return "'" + value.replace("'", "'\\''") + "'"


def _capture(server: list[str], *flags: str) -> str:
    return subprocess.run(
        [*server, "capture-pane", *flags], capture_output=True, text=True, check=True
    ).stdout


# The renderer's units.


def entry(
    level: int = Level.INFO,
    message: str = "hello",
    fields: dict[str, Any] | None = None,
    exception: str | None = None,
    logger: str = "app",
    location: Location | None = None,
) -> Entry:
    return (
        1_800_000_000.25,
        level,
        message,
        logger,
        MappingProxyType(fields or {}),
        exception,
        None,
        location,
    )


@pytest.fixture
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_clock_is_the_local_time_of_day_with_milliseconds(utc: None) -> None:
    assert clock(1_800_000_000.25) == "08:00:00.250"
    assert clock(1_800_000_059.9999) == "08:00:59.999"


@pytest.mark.parametrize(
    ("level", "color"),
    [
        (5, "\x1b[1;34m"),
        (Level.DEBUG, "\x1b[1;34m"),
        (Level.INFO, "\x1b[1;32m"),
        (25, "\x1b[1;32m"),
        (Level.WARNING, "\x1b[1;33m"),
        (Level.ERROR, "\x1b[1;31m"),
        (Level.CRITICAL, "\x1b[1;37;41m"),
        (60, "\x1b[1;37;41m"),
    ],
)
def test_level_color_is_that_of_the_standard_level_at_or_below(level: int, color: str) -> None:
    assert level_color(level) == color


def test_a_coloured_line(utc: None) -> None:
    line = pretty_line(entry(fields={"user": "ann lee", "n": 3}), color=True)
    assert line == (
        "\x1b[2m08:00:00.250\x1b[0m \x1b[1;32mINFO    \x1b[0m \x1b[36mapp\x1b[0m hello "
        '\x1b[2muser="ann lee" n=3\x1b[0m'
    )


def test_a_plain_line_with_a_location_and_an_unnamed_level(utc: None) -> None:
    line = pretty_line(
        entry(level=25, location=Location("app.jobs", "run", 12), fields={"a": ""}),
        color=False,
    )
    assert line == '08:00:00.250 Level 25 app app.jobs:run:12 hello a=""'


def test_a_coloured_location_is_dimmed(utc: None) -> None:
    line = pretty_line(entry(location=Location("m", "f", 3)), color=True)
    assert line.endswith("\x1b[36mapp\x1b[0m \x1b[2mm:f:3 \x1b[0mhello")


def test_controls_everywhere_are_escaped_and_a_message_stays_one_line(utc: None) -> None:
    line = pretty_line(
        entry(
            message="a\nb\x1b[2J\x9b\u2028",
            logger="x\x1b]0;t\x07",
            fields={"k\x1b": "v\r\x00"},
        ),
        color=False,
    )
    assert line == (r"08:00:00.250 INFO     x\x1b]0;t\x07 a\nb\x1b[2J\x9b\u2028 k\x1b=v\r\x00")


TB = 'Traceback (most recent call last):\n  File "m.py", line 1, in f\nValueError: \x1b[2Jx\n'


def test_a_traceback_keeps_its_lines_and_escapes_each() -> None:
    text = traceback_text(TB, color=False)
    assert text == (
        'Traceback (most recent call last):\n  File "m.py", line 1, in f\nValueError: \\x1b[2Jx'
    )
    assert traceback_text(TB, color=True, rich_tracebacks=False) == text


def test_a_traceback_follows_its_entry_on_lines_of_its_own(utc: None) -> None:
    line = pretty_line(entry(level=Level.ERROR, exception=TB), color=False)
    assert line.split("\n") == [
        "08:00:00.250 ERROR    app hello",
        "Traceback (most recent call last):",
        '  File "m.py", line 1, in f',
        "ValueError: \\x1b[2Jx",
    ]


@pytest.mark.skipif(not rich_available(), reason="the pretty extra (rich) is not installed")
def test_rich_highlights_the_escaped_traceback_with_colours_only() -> None:
    text = traceback_text(TB, color=True, rich_tracebacks=True)
    assert text != traceback_text(TB, color=False)
    assert SGR.sub("", text) == traceback_text(TB, color=False)
    assert "\x1b" not in SGR.sub("", text)


def test_the_rich_variable_switches_rich_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(RICH_VARIABLE, "0")
    assert traceback_text(TB, color=True) == traceback_text(TB, color=False)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("env", "tty", "wanted"),
    [
        ({}, True, True),
        ({}, False, False),
        ({"NO_COLOR": "1"}, True, False),
        ({"NO_COLOR": ""}, True, True),
        ({"FORCE_COLOR": "1"}, False, True),
        ({"FORCE_COLOR": ""}, False, False),
        ({"NO_COLOR": "1", "FORCE_COLOR": "1"}, True, False),
        ({"TERM": "dumb"}, True, False),
        ({"TERM": "dumb", "FORCE_COLOR": "1"}, True, True),
    ],
)
def test_color_wanted(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], tty: bool, wanted: bool
) -> None:
    for key in ("NO_COLOR", "FORCE_COLOR"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("TERM", "xterm")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    stream = _Terminal() if tty else io.StringIO()
    assert color_wanted(stream) is wanted


def test_a_closed_stream_is_not_a_terminal() -> None:
    with open(os.devnull, "w") as stream:
        pass
    with pytest.raises(ValueError):
        stream.isatty()
    assert is_terminal(stream) is False


def test_console_formats() -> None:
    assert ConsoleConfig().format == "auto"
    assert ConsoleConfig(format="pretty").format == "pretty"
    with pytest.raises(ConfigError) as caught:
        ConsoleConfig(format="fancy")
    assert "pretty" in str(caught.value) and "auto" in str(caught.value)
    with pytest.raises(ConfigError):
        FileConfig(format="pretty")
    assert Config.from_dict({"backends": [{"type": "console", "format": "pretty"}]}).sinks[
        0
    ].target == ConsoleConfig(format="pretty")


@pytest.mark.parametrize("async_mode", [True, False])
async def test_the_backend_picks_pretty_when_the_stream_is_a_terminal(
    monkeypatch: pytest.MonkeyPatch, async_mode: bool, utc: None
) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    terminal, pipe = _Terminal(), io.StringIO()
    config = Config(backends=[ConsoleConfig(stream="stdout")], async_mode=async_mode, name="web")
    for stream, message in ((terminal, "on the terminal"), (pipe, "on a pipe")):
        monkeypatch.setattr(sys, "stdout", stream)
        async with LogManager(config) as lm:
            await lm.info(message, n=1)
    assert re.fullmatch(
        r"\x1b\[2m\d\d:\d\d:\d\d\.\d{3}\x1b\[0m \x1b\[1;32mINFO    \x1b\[0m \x1b\[36mweb\x1b\[0m "
        r"on the terminal \x1b\[2mn=1\x1b\[0m\n",
        terminal.getvalue(),
    )
    assert re.fullmatch(r"\S+Z INFO web on a pipe n=1\n", pipe.getvalue())


def test_the_exit_write_is_pretty_on_a_terminal_too(
    monkeypatch: pytest.MonkeyPatch, utc: None
) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    ConsoleBackend(pretty="tty").flush_at_exit([entry(fields={"n": 1})])
    assert terminal.getvalue() == "08:00:00.250 INFO     app hello n=1\n"
