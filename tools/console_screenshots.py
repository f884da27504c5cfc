"""Make the console screenshots of docs/console.md: the same entries logged by asynclog's
pretty console (with rich, and in the plain form), structlog's ConsoleRenderer and loguru's
default sink, each run in a real pseudo-terminal; the bytes the terminal receives are
interpreted (text and SGR colours) and drawn with matplotlib.

    PYTHONPATH=. python tools/console_screenshots.py [output directory, default docs/img]

Needs structlog, loguru, rich and matplotlib (the `test` and `bench` extras).
"""

from __future__ import annotations

import fcntl
import os
import struct
import subprocess
import sys
import termios
from dataclasses import dataclass, replace
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.patches import Rectangle

ROOT = Path(__file__).resolve().parent.parent
COLUMNS = 100
WORKDIR = Path("/tmp/asynclog-screens")
"""The programs run from here (its name shows in the tracebacks)."""

COMMON = """
def load_user(users, user_id):
    return users[user_id]


def handle(user_id):
    users = {1: "ann"}
    return load_user(users, user_id)
"""

PROGRAMS = {
    "asynclog": COMMON
    + """
import asyncio
from asynclog import Config, ConsoleConfig, LogManager


async def main():
    async with LogManager(Config(backends=[ConsoleConfig()])) as lm:
        log = lm.get_logger("app.http")
        await log.debug("cache warm", entries=1200)
        await log.info("request done", method="GET", path="/users/1", status=200, ms=12.5)
        await log.warning("slow query", table="orders", ms=812)
        try:
            handle(42)
        except KeyError:
            await log.exception("lookup failed", user_id=42)
        await log.critical("disk full", free_mb=3)


asyncio.run(main())
""",
    "structlog": COMMON
    + """
import structlog

log = structlog.get_logger("app.http")
log.debug("cache warm", entries=1200)
log.info("request done", method="GET", path="/users/1", status=200, ms=12.5)
log.warning("slow query", table="orders", ms=812)
try:
    handle(42)
except KeyError:
    log.exception("lookup failed", user_id=42)
log.critical("disk full", free_mb=3)
""",
    "loguru": COMMON
    + """
from loguru import logger

log = logger.bind(name="app.http")
log.bind(entries=1200).debug("cache warm")
log.bind(method="GET", path="/users/1", status=200, ms=12.5).info("request done")
log.bind(table="orders", ms=812).warning("slow query")
try:
    handle(42)
except KeyError:
    log.bind(user_id=42).exception("lookup failed")
log.bind(free_mb=3).critical("disk full")
""",
}

SHOTS: tuple[tuple[str, str, str, dict[str, str]], ...] = (
    ("asynclog", "console-asynclog.png", 'asynclog: ConsoleConfig(format="pretty"), with rich', {}),
    (
        "asynclog",
        "console-asynclog-plain.png",
        'asynclog: ConsoleConfig(format="pretty"), without rich',
        {"ASYNCLOG_RICH_TRACEBACKS": "0"},
    ),
    (
        "structlog",
        "console-structlog.png",
        "structlog 26: default ConsoleRenderer (rich installed)",
        {},
    ),
    ("loguru", "console-loguru.png", "loguru 0.7: default sink", {}),
)

# The xterm palette of the 16 standard colours, and the terminal's own.
PALETTE = [
    "#000000", "#cd3131", "#0dbc79", "#e5e510", "#2472c8", "#bc3fbc", "#11a8cd", "#e5e5e5",
    "#666666", "#f14c4c", "#23d18b", "#f5f543", "#3b8eea", "#d670d6", "#29b8db", "#ffffff",
]  # fmt: skip
FOREGROUND = "#d4d4d4"
BACKGROUND = "#1e1e1e"


@dataclass(frozen=True)
class Style:
    fg: str | None = None
    bg: str | None = None
    bold: bool = False
    dim: bool = False
    italic: bool = False
    underline: bool = False


Cell = tuple[str, Style]


def run_in_pty(program: str, extra_env: dict[str, str]) -> bytes:
    """What the terminal receives from `program` (stdout and stderr), run in a pty of
    `COLUMNS` columns."""
    WORKDIR.mkdir(exist_ok=True)
    script = WORKDIR / "app.py"
    script.write_text(program)
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 60, COLUMNS, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR")}
    env.update(PYTHONPATH=str(ROOT), TERM="xterm-256color", COLUMNS=str(COLUMNS), **extra_env)
    child = subprocess.Popen(
        [sys.executable, "app.py"], stdin=slave, stdout=slave, stderr=slave, cwd=WORKDIR, env=env
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    child.wait(timeout=60)
    return b"".join(chunks)


def xterm_256(index: int) -> str:
    if index < 16:
        return PALETTE[index]
    if index < 232:
        index -= 16
        steps = [0, 95, 135, 175, 215, 255]
        r, g, b = steps[index // 36], steps[index // 6 % 6], steps[index % 6]
        return f"#{r:02x}{g:02x}{b:02x}"
    grey = 8 + 10 * (index - 232)
    return f"#{grey:02x}{grey:02x}{grey:02x}"


def apply_sgr(style: Style, params: list[int]) -> Style:
    """`style` after one SGR sequence (the parameters it carries)."""
    if not params:
        params = [0]
    i = 0
    while i < len(params):
        p = params[i]
        if p == 0:
            style = Style()
        elif p == 1:
            style = replace(style, bold=True)
        elif p == 2:
            style = replace(style, dim=True)
        elif p == 3:
            style = replace(style, italic=True)
        elif p == 4:
            style = replace(style, underline=True)
        elif p == 22:
            style = replace(style, bold=False, dim=False)
        elif p == 23:
            style = replace(style, italic=False)
        elif p == 24:
            style = replace(style, underline=False)
        elif 30 <= p <= 37:
            style = replace(style, fg=PALETTE[p - 30])
        elif 90 <= p <= 97:
            style = replace(style, fg=PALETTE[p - 90 + 8])
        elif p == 39:
            style = replace(style, fg=None)
        elif 40 <= p <= 47:
            style = replace(style, bg=PALETTE[p - 40])
        elif 100 <= p <= 107:
            style = replace(style, bg=PALETTE[p - 100 + 8])
        elif p == 49:
            style = replace(style, bg=None)
        elif p in (38, 48) and i + 1 < len(params):
            if params[i + 1] == 5 and i + 2 < len(params):
                color = xterm_256(params[i + 2])
                i += 2
            elif params[i + 1] == 2 and i + 4 < len(params):
                color = "#{:02x}{:02x}{:02x}".format(*params[i + 2 : i + 5])
                i += 4
            else:
                color = None
            style = replace(style, fg=color) if p == 38 else replace(style, bg=color)
        i += 1
    return style


def screen(data: bytes) -> list[list[Cell]]:
    """The lines the terminal shows: text with SGR styles; other sequences are ignored,
    lines longer than `COLUMNS` wrap."""
    text = data.decode("utf-8", "replace")
    lines: list[list[Cell]] = [[]]
    style = Style()
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\x1b" and i + 1 < len(text) and text[i + 1] == "[":
            end = i + 2
            while end < len(text) and not ("\x40" <= text[end] <= "\x7e"):
                end += 1
            if end < len(text) and text[end] == "m":
                body = text[i + 2 : end]
                params = [int(p) if p.isdigit() else 0 for p in body.split(";")] if body else []
                style = apply_sgr(style, params)
            i = end + 1
            continue
        if char == "\n":
            lines.append([])
        elif char == "\r":
            pass  # the pty's CR before each LF
        elif char >= " ":
            if len(lines[-1]) == COLUMNS:
                lines.append([])
            lines[-1].append((char, style))
        i += 1
    while lines and not lines[-1]:
        lines.pop()
    return lines


def draw(lines: list[list[Cell]], title: str, path: Path) -> None:
    font_size = 11
    char_w = 0.6 * font_size / 72  # DejaVu Sans Mono: an advance of 0.6 em
    line_h = 1.3 * font_size / 72
    rows = len(lines) + 2
    width = (COLUMNS + 2) * char_w
    fig = plt.figure(figsize=(width, rows * line_h), dpi=110)
    fig.patch.set_facecolor(BACKGROUND)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(-1, COLUMNS + 1)
    ax.set_ylim(rows - 0.5, -0.5)
    ax.axis("off")
    ax.text(0, 0, title, color="#9cdcfe", family="DejaVu Sans Mono", size=font_size,
            weight="bold", va="center")  # fmt: skip
    for index, cells in enumerate(lines):
        row = index + 1.5
        column = 0
        for text, style in runs(cells):
            draw_run(ax, column, row, text, style, font_size)
            column += len(text)
    fig.savefig(path, facecolor=BACKGROUND)
    plt.close(fig)


def runs(cells: list[Cell]) -> list[tuple[str, Style]]:
    out: list[tuple[str, Style]] = []
    for char, style in cells:
        if out and out[-1][1] == style:
            out[-1] = (out[-1][0] + char, style)
        else:
            out.append((char, style))
    return out


def draw_run(ax: Axes, column: int, row: float, text: str, style: Style, size: int) -> None:
    fg = style.fg or FOREGROUND
    if style.bg is not None:
        ax.add_patch(Rectangle((column, row - 0.5), len(text), 1, color=style.bg, linewidth=0))
    if not text.strip():
        return
    ax.text(
        column,
        row,
        text,
        color=fg,
        alpha=0.55 if style.dim else 1.0,
        family="DejaVu Sans Mono",
        size=size,
        weight="bold" if style.bold else "normal",
        style="italic" if style.italic else "normal",
        va="center",
        ha="left",
    )
    if style.underline:
        ax.plot([column, column + len(text)], [row + 0.45] * 2, color=fg, linewidth=0.8)


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "img"
    out.mkdir(parents=True, exist_ok=True)
    for program, name, title, env in SHOTS:
        lines = screen(run_in_pty(PROGRAMS[program], env))
        draw(lines, title, out / name)
        print(out / name, len(lines), "lines")


if __name__ == "__main__":
    main()
