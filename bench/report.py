"""Turn the runs into markdown tables, the ratios, and the chart."""

from __future__ import annotations

import re
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .contenders import CONTENDERS, Contender
from .scenarios import SCENARIOS, Scenario

MAIN_PYTHON = (3, 11)
"""The project's main Python (its oldest supported): its runs own docs/benchmarks.md,
docs/bench-app.md and their charts; a run under another Python writes pages or sections of
its own."""
CALLER_TARGET_US = 1.0  # asynclog's target for one awaited call in async mode
THROUGHPUT = ("e2e100k", "e2e100k_yield")
TIMES, DASH = "\u00d7", "\u2013"  # the multiplication sign and the en dash, for the tables


@dataclass
class Cell:
    """One contender x scenario over all its repetitions."""

    contender: Contender
    scenario: Scenario
    values: list[float] = field(default_factory=list)
    rss: list[float] = field(default_factory=list)
    extras: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def add(self, run: dict[str, Any]) -> None:
        if run.get("peak_rss_mib") is not None:
            self.rss.append(run["peak_rss_mib"])
        if run.get("ok"):
            self.values.append(run["value"])
            self.extras.append(run.get("extra") or {})
        else:
            self.errors.append(f"rep {run['rep']}: {run.get('error') or 'no result'}")

    @property
    def ok(self) -> bool:
        return bool(self.values) and not self.errors

    @property
    def median(self) -> float | None:
        return statistics.median(self.values) if self.ok else None

    def extra(self, key: str) -> float | None:
        found = [e[key] for e in self.extras if key in e]
        return statistics.median(found) if self.ok and found else None


Cells = dict[tuple[str, str], Cell]


def collect(runs: Iterable[dict[str, Any]]) -> Cells:
    cells: Cells = {}
    for run in runs:
        key = (run["contender"], run["scenario"])
        if key not in cells:
            cells[key] = Cell(CONTENDERS[run["contender"]], SCENARIOS[run["scenario"]])
        cells[key].add(run)
    return cells


# ---- formatting ------------------------------------------------------------------------------


def num(value: float | None, unit: str = "") -> str:
    if value is None:
        return "—"
    if unit == "entries/s":
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}" if abs(value) >= 1 else f"{value:.3f}"


def times(ratio: float | None) -> str:
    if ratio is None:
        return "—"
    if ratio < 0.1:
        return f"{ratio:.3f}{TIMES}"
    return f"{ratio:.2f}{TIMES}" if ratio < 10 else f"{ratio:,.0f}{TIMES}"


def _cut(text: str, limit: int = 140) -> str:
    text = text.replace("|", "/").replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _verified(cell: Cell) -> str:
    if cell.errors:
        return "**FAILED** " + _cut("; ".join(cell.errors))
    return "n/a (writes nothing)" if cell.contender.group == "floor" else "✓"


def _ratio(cells: Cells, cell: Cell) -> float | None:
    limit = cells.get((cell.contender.limit, cell.scenario.name))
    if cell.median is None or limit is None or not limit.median:
        return None
    return cell.median / limit.median


def cpu_heading(scenario: Scenario) -> str:
    """Process CPU (all threads) per unit of work: per call for caller1k, else per entry."""
    return "CPU µs/call" if scenario.unit == "µs/call" else "CPU µs/entry"


def scenario_table(cells: Cells, scenario: Scenario) -> list[str]:
    rows = [c for c in cells.values() if c.scenario is scenario]
    rows.sort(key=lambda c: list(CONTENDERS).index(c.contender.name))
    if scenario.name == "stalled":
        head = [
            "contender",
            "RSS growth MiB",
            "min-max",
            "accepted",
            "dropped",
            "µs/attempt",
            "CPU µs/attempt",
            "peak RSS MiB",
            "verified",
        ]
    else:
        head = ["contender", scenario.unit, "min-max", "ratio to limit", cpu_heading(scenario)]
        if scenario.name == "e2e100k_yield":
            head += ["lag p99 ms", "lag max ms"]
        head += ["peak RSS MiB", "verified"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for cell in rows:
        unit = scenario.unit
        if cell.ok:
            median = f"**{num(cell.median, unit)}**"
            spread = f"{num(min(cell.values), unit)} {DASH} {num(max(cell.values), unit)}"
        else:
            median, spread = "**FAILED**", "—"
        row = [cell.contender.label, median, spread]
        if scenario.name == "stalled":
            row += [
                num(cell.extra("accepted"), "entries/s"),
                num(cell.extra("dropped"), "entries/s"),
                num(cell.extra("us_per_attempt")),
                num(cell.extra("cpu_us")),
            ]
        else:
            ratio = _ratio(cells, cell)
            row.append("—" if ratio is None else f"{times(ratio)} {cell.contender.limit}")
            row.append(num(cell.extra("cpu_us")))
            if scenario.name == "e2e100k_yield":
                row += [num(cell.extra("lag_p99_ms")), num(cell.extra("lag_max_ms"))]
        row += [num(max(cell.rss)) if cell.rss else "—", _verified(cell)]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def ratio_lines(cells: Cells) -> list[str]:
    """The headline comparisons, one bullet each."""
    out: list[str] = []
    ours = [c for c in CONTENDERS.values() if c.group == "asynclog"]

    def cell(name: str, scenario: str) -> Cell | None:
        return cells.get((name, scenario))

    caller_floor = cell("noop", "caller1k")
    for contender in ours:
        got = cell(contender.name, "caller1k")
        if got is None:
            continue
        if not got.ok:
            out.append(f"caller1k {contender.label} = FAILED")
            continue
        text = f"caller1k {contender.label} = {num(got.median)} µs/call"
        text += f" (CPU {num(got.extra('cpu_us'))} µs)"
        if contender.name.startswith("asynclog-async"):
            met = "met" if got.median is not None and got.median <= CALLER_TARGET_US else "MISSED"
            text += f" (target ≤ {CALLER_TARGET_US} µs: {met})"
        limit = cell(contender.limit, "caller1k")
        if limit is not None and limit.ok:
            text += f"; {contender.limit} = {num(limit.median)} µs"
        if caller_floor is not None and caller_floor.ok:
            text += f"; no-op floor = {num(caller_floor.median)} µs"
        out.append(text)
    for scenario in THROUGHPUT:
        peers = [
            c
            for c in cells.values()
            if c.scenario.name == scenario and c.contender.group == "peer" and c.ok
        ]
        peers.sort(key=lambda c: c.median or 0.0, reverse=True)
        for contender in ours:
            got = cell(contender.name, scenario)
            if got is None:
                continue
            if not got.ok or got.median is None:
                out.append(f"{contender.label} {scenario} = FAILED")
                continue
            parts = [f"{times(_ratio(cells, got))} {contender.limit}"]
            indexed = cell("limit-sqlite-indexed", scenario)
            if contender.limit == "limit-sqlite" and indexed is not None and indexed.median:
                parts.append(
                    f"{times(got.median / indexed.median)} limit-sqlite-indexed "
                    "(the same two indexes as asynclog's table)"
                )
            if peers:
                best, worst = peers[0], peers[-1]
                parts.append(
                    f"{times(got.median / (best.median or 1))} fastest peer "
                    f"({best.contender.label})"
                )
                if worst is not best:
                    parts.append(
                        f"{times(got.median / (worst.median or 1))} slowest peer "
                        f"({worst.contender.label})"
                    )
            text = f"{contender.label} {scenario} = " + ", ".join(parts)
            limit_cell = cell(contender.limit, scenario)
            text += f"; CPU {num(got.extra('cpu_us'))} µs/entry"
            if limit_cell is not None and limit_cell.ok:
                text += f" ({contender.limit}: {num(limit_cell.extra('cpu_us'))})"
            if scenario == "e2e100k_yield":
                text += (
                    f"; loop lag p99 {num(got.extra('lag_p99_ms'))} ms, "
                    f"max {num(got.extra('lag_max_ms'))} ms"
                )
                limit = cell(contender.limit, scenario)
                if limit is not None and limit.ok:
                    text += (
                        f" ({contender.limit}: {num(limit.extra('lag_p99_ms'))} / "
                        f"{num(limit.extra('lag_max_ms'))} ms)"
                    )
            out.append(text)
    for contender in ours:
        one, four = cell(contender.name, "shared_1proc"), cell(contender.name, "shared_4proc")
        if one is None or four is None:
            continue
        if not (one.ok and four.ok) or not one.median:
            out.append(f"shared file {contender.label}: FAILED")
            continue
        out.append(
            f"shared file {contender.label}: 4 processes = {num(four.median, 'entries/s')} "
            f"entries/s together = {times((four.median or 0) / one.median)} one process "
            f"({num(one.median, 'entries/s')}); CPU {num(four.extra('cpu_us'))} vs "
            f"{num(one.extra('cpu_us'))} µs/entry"
        )
    for contender in CONTENDERS.values():
        got = cell(contender.name, "stalled")
        if got is None:
            continue
        if not got.ok:
            out.append(f"stalled {contender.label} = FAILED: {_cut('; '.join(got.errors))}")
            continue
        out.append(
            f"stalled {contender.label}: accepted {num(got.extra('accepted'), 'entries/s')} + "
            f"dropped {num(got.extra('dropped'), 'entries/s')} = attempted "
            f"{num(got.extra('attempted'), 'entries/s')}; peak RSS growth "
            f"{num(got.median)} MiB"
        )
    return ["- " + line for line in out]


# ---- sections of docs/benchmarks.md written by other commands ------------------------------

_SECTION = re.compile(r"<!-- bench (.+?): start -->.*?<!-- bench \1: end -->", re.S)


def replace_section(text: str, key: str, body: str) -> str:
    """`text` with its `<!-- bench KEY: start/end -->` section replaced by `body` (or that
    section appended)."""
    start, end = f"<!-- bench {key}: start -->", f"<!-- bench {key}: end -->"
    block = f"{start}\n{body}\n{end}"
    if start in text and end in text:
        before, rest = text.split(start, 1)
        return before + block + rest.split(end, 1)[1]
    return text.rstrip("\n") + "\n\n" + block + "\n"


def sections(text: str) -> str:
    """Every marked section of `text`, in order (to keep them when the file is rewritten)."""
    return "".join("\n" + found.group(0) + "\n" for found in _SECTION.finditer(text))


# ---- the chart -------------------------------------------------------------------------------


def chart(cells: Cells, path: Path, title: str, e2e_title: str) -> None:
    """Grouped horizontal bars: e2e entries/s (both scenarios) and caller µs, log scales."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n in CONTENDERS if any(key[0] == n for key in cells)]
    fig, (left, right) = plt.subplots(
        1, 2, figsize=(14, 0.55 * len(names) + 2.4), sharey=True,
        gridspec_kw={"width_ratios": [3, 2]},
    )  # fmt: skip
    bar = 0.38
    series = [
        (left, "e2e100k", "#1f77b4", -bar / 2, bar),
        (left, "e2e100k_yield", "#ff7f0e", bar / 2, bar),
        (right, "caller1k", "#2ca02c", 0.0, 0.6),
    ]
    legends = {"e2e100k": "e2e100k", "e2e100k_yield": "e2e100k_yield (sleep(0) after each call)"}
    for axis, scenario, colour, offset, height in series:
        label: str | None = legends.get(scenario)
        for row, name in enumerate(names):
            c = cells.get((name, scenario))
            if c is None:
                continue
            y = row + offset
            if not c.ok or c.median is None:
                axis.text(0.01, y, f"{scenario}: FAILED", va="center", color="#c00000",
                          fontsize=8, transform=axis.get_yaxis_transform())  # fmt: skip
                continue
            low, high = min(c.values), max(c.values)
            axis.barh(y, c.median, height=height, color=colour, label=label,
                      xerr=[[c.median - low], [high - c.median]],
                      error_kw={"elinewidth": 0.8, "capsize": 2})  # fmt: skip
            label = None
            axis.text(high * 1.1, y, num(c.median, c.scenario.unit), va="center", fontsize=7.5)
    for axis in (left, right):
        axis.set_xscale("log")
        axis.grid(axis="x", which="major", alpha=0.3)
        axis.margins(x=0.2)
    left.set_xlabel("entries/s, log scale (higher is better)")
    right.set_xlabel("µs per awaited call, log scale (lower is better)")
    left.set_title(e2e_title, fontsize=10)
    right.set_title("caller cost: one awaited log call", fontsize=10)
    left.legend(loc="best", fontsize=8)
    left.set_yticks(range(len(names)), [CONTENDERS[n].label for n in names])
    left.invert_yaxis()
    for tick, name in zip(left.get_yticklabels(), names, strict=True):
        group = CONTENDERS[name].group
        if group == "asynclog":
            tick.set_fontweight("bold")
        elif group in ("limit", "floor"):
            tick.set_color("#555555")
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
