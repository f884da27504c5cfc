"""Every ```python block of the user docs runs, so that the docs cannot rot.

Each block is a whole program. It runs in a subprocess of its own (its own logging setup, exit
hooks and stdout), in a fresh temporary directory, and must exit with status 0. A block that
defines pytest tests (`def test_`) is run by pytest instead.

Comment lines just above a block's opening fence change what happens to it:

- `<!-- no-run -->`: only compiled (a block that needs a server or a package we do not
  install).
- `<!-- requires: loguru aiologger -->`: skipped unless those modules can be imported
  (the "before" code of the migration guide; they come with the `bench` extra).

A ```text block with `<!-- expected-output -->` just above it is the exact stdout of the
python block before it, once timestamps and the temporary directory are normalised;
`<!-- expected-output: json -->` is its stdout when run with the argument `json`.

The blocks run in parallel, all at once, the first time any of these tests asks for a result.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [
    "getting-started.md",
    "backends-and-formats.md",
    "stdlib.md",
    "context-and-exceptions.md",
    "migrating.md",
    "faq.md",
    "testing.md",
    "metrics.md",
    "postgres.md",
    "otlp.md",
    "file-backend.md",
    "processors.md",
    "sync-programs.md",
    "recipes.md",
    "console.md",
    "trio.md",
]
TIMEOUT = 60
WORKDIR = "/srv/app"
"""What the temporary directory is called in the expected outputs of the docs."""

_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")
_FENCE = re.compile(r"^```(\w*)\s*$")
_DIRECTIVE = re.compile(r"^<!--\s*(.*?)\s*-->$")


@dataclass
class Block:
    doc: str
    line: int
    code: str
    directives: list[str] = field(default_factory=list)
    expected: dict[tuple[str, ...], str] = field(default_factory=dict)
    """stdout by command-line arguments"""

    @property
    def id(self) -> str:
        return f"{self.doc}:{self.line}"

    @property
    def runs(self) -> bool:
        return "no-run" not in self.directives

    @property
    def is_pytest(self) -> bool:
        return re.search(r"^(async )?def test_", self.code, re.MULTILINE) is not None

    @property
    def required(self) -> list[str]:
        modules: list[str] = []
        for directive in self.directives:
            if directive.startswith("requires:"):
                modules.extend(directive.removeprefix("requires:").split())
        return modules


def _parse(doc: str) -> list[Block]:
    lines = (ROOT / "docs" / doc).read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    directives: list[str] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        directive = _DIRECTIVE.match(line.strip())
        fence = _FENCE.match(line)
        if directive:
            directives.append(directive.group(1))
            index += 1
            continue
        if fence is None:
            if line.strip():
                directives = []
            index += 1
            continue
        language, start = fence.group(1), index + 1
        end = start
        while end < len(lines) and not lines[end].startswith("```"):
            end += 1
        body = "\n".join(lines[start:end]) + "\n"
        expected = [d for d in directives if d.split(":")[0].strip() == "expected-output"]
        if language == "python":
            blocks.append(Block(doc, start, body, directives))
        elif expected:
            assert blocks, f"{doc}:{start}: an expected output needs a python block before it"
            args = tuple(expected[0].partition(":")[2].split())
            assert args not in blocks[-1].expected, f"{doc}:{start}: two expected outputs"
            blocks[-1].expected[args] = body
        directives = []
        index = end + 1
    return blocks


BLOCKS = [block for doc in DOCS for block in _parse(doc)]


@dataclass
class Outcome:
    returncode: int
    stdout: str
    stderr: str
    workdir: str


Run = tuple[Block, tuple[str, ...]]
"""A block and the command-line arguments to run it with."""

# Starting Python and importing asynclog costs more than most blocks take to run. This server
# pays it once: it imports what the blocks use, then forks a child per block. Each child is a
# process of its own (its own logging setup, exit hooks, stdout) that runs the block as
# `python main.py ARGS` would, in its directory, and ends through a normal interpreter exit.
_FORK_SERVER = r"""
import json, os, runpy, signal, sys

import asyncio, logging, logging.config, sqlite3, threading
import aiosqlite
import asynclog, asynclog.formatters, asynclog.stdlib, asynclog.testing

limit, timeout = int(sys.argv[1]), int(sys.argv[2])
requests = [json.loads(line) for line in sys.stdin]
running = {}
while requests or running:
    if requests and len(running) < limit:
        key, workdir, args = requests.pop(0)
        pid = os.fork()
        if pid == 0:  # the child: become `python main.py ARGS` in workdir
            signal.alarm(timeout)
            os.chdir(workdir)
            for fd, name in ((1, "stdout"), (2, "stderr")):
                os.dup2(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), fd)
            sys.stdin = open(os.devnull)
            sys.argv = [os.path.join(workdir, "main.py"), *args]
            sys.path[0] = workdir
            runpy.run_path(sys.argv[0], run_name="__main__")
            sys.exit(0)  # unwinds out of this loop: the usual exit hooks and thread joins
        running[pid] = key
        continue
    pid, status = os.wait()
    print(json.dumps([running.pop(pid), os.waitstatus_to_exitcode(status)]), flush=True)
"""


def _environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASYNCLOG_")}
    env.pop("PYTEST_ADDOPTS", None)
    return env


def _run_programs(runs: list[Run], workdirs: list[str]) -> list[Outcome]:
    """Run plain programs through the fork server, several at once."""
    if not hasattr(os, "fork"):
        pytest.skip("the docs test forks a process per block")
    for (block, _), workdir in zip(runs, workdirs, strict=True):
        Path(workdir, "main.py").write_text(block.code, encoding="utf-8")
    requests = "".join(
        json.dumps([index, workdir, list(args)]) + "\n"
        for index, ((_, args), workdir) in enumerate(zip(runs, workdirs, strict=True))
    )
    limit = max(4, os.cpu_count() or 1)
    done = subprocess.run(
        [sys.executable, "-c", _FORK_SERVER, str(limit), str(TIMEOUT)],
        input=requests,
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT * 2,
        check=False,
    )
    assert done.returncode == 0, f"the fork server failed:\n{done.stderr}"
    codes = dict(json.loads(line) for line in done.stdout.splitlines())
    return [
        Outcome(
            codes[index],
            Path(workdir, "stdout").read_text(encoding="utf-8", errors="replace"),
            Path(workdir, "stderr").read_text(encoding="utf-8", errors="replace"),
            workdir,
        )
        for index, workdir in enumerate(workdirs)
    ]


def _run_pytest(block: Block, workdir: str) -> Outcome:
    """A block of pytest tests, run by pytest in a subprocess."""
    Path(workdir, "test_snippet.py").write_text(block.code, encoding="utf-8")
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    command += ["-o", "asyncio_default_fixture_loop_scope=function", "test_snippet.py"]
    done = subprocess.run(
        command,
        cwd=workdir,
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    return Outcome(done.returncode, done.stdout, done.stderr, workdir)


def _runnable(block: Block) -> bool:
    return block.runs and all(importlib.util.find_spec(name) for name in block.required)


Runs = dict[tuple[str, tuple[str, ...]], Outcome]


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    """Every runnable block, once plain and once per expected output's arguments."""
    runs: list[Run] = [
        (block, args)
        for block in BLOCKS
        if _runnable(block)
        for args in sorted({(), *block.expected})
    ]
    workdirs = [str(tmp_path_factory.mktemp("doc-block")) for _ in runs]
    programs = [i for i, (block, _) in enumerate(runs) if not block.is_pytest]
    results: dict[int, Outcome] = {}
    with ThreadPoolExecutor() as pool:
        tests = {
            i: pool.submit(_run_pytest, runs[i][0], workdirs[i])
            for i, (block, _) in enumerate(runs)
            if block.is_pytest
        }
        if programs:
            ran = _run_programs([runs[i] for i in programs], [workdirs[i] for i in programs])
            results.update(zip(programs, ran, strict=True))
        results.update({i: future.result() for i, future in tests.items()})
    return {(block.id, args): results[i] for i, (block, args) in enumerate(runs)}


_MARKERS = re.compile(r"\s*[~^]+\s*")
_ESCAPED_MARKERS = re.compile(r"\\n *[~^]+(?=\\n)")


def _normalise(text: str, workdir: str) -> str:
    text = text.replace(os.path.realpath(workdir), WORKDIR).replace(workdir, WORKDIR)
    text = _TIMESTAMP.sub("2026-11-27T21:52:00.123456Z", text)
    # Traceback position markers (`~~~^^^`) differ between Python versions: leave them out,
    # also where a traceback is escaped inside a JSON or logfmt value.
    text = _ESCAPED_MARKERS.sub("", text)
    return "\n".join(
        line.rstrip() for line in text.rstrip().splitlines() if not _MARKERS.fullmatch(line)
    )


def test_the_docs_have_python_blocks() -> None:
    for doc in DOCS:
        assert [block for block in BLOCKS if block.doc == doc], f"{doc} has no python block"


@pytest.mark.parametrize("block", BLOCKS, ids=[block.id for block in BLOCKS])
def test_doc_block_runs(block: Block, outcomes: Runs) -> None:
    if not block.runs:
        # Needs a server or a fixed port: not run here, but it must still be valid Python.
        compile(block.code, block.id, "exec")
        return
    missing = [name for name in block.required if importlib.util.find_spec(name) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)}")
    for args in sorted({(), *block.expected}):
        outcome = outcomes[block.id, args]
        name = " ".join([block.id, *args])
        assert outcome.returncode == 0, (
            f"{name} failed\n--- stdout\n{outcome.stdout}\n--- stderr\n{outcome.stderr}"
        )
        if block.is_pytest:
            summary = outcome.stdout.strip().splitlines()[-1]
            assert " passed" in summary and "skipped" not in summary, outcome.stdout
        if args in block.expected:
            assert _normalise(outcome.stdout, outcome.workdir) == _normalise(
                block.expected[args], WORKDIR
            ), f"{name}: the output differs from the doc\n--- stderr\n{outcome.stderr}"
