"""`python -m bench app --quick` end to end: bench/app.py under uvicorn in a subprocess, driven
by wrk, in every logging config. wrk is a requirement of this test (CI installs it in .ci/run):
without it the test fails with the install hint instead of skipping."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench.app import CONFIGS, burner
from bench.app_bench import ASYNCLOG_CONFIGS, INSTALL_HINT, doc_paths, parse_args

ROOT = Path(__file__).resolve().parent.parent


def run_bench(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """`python -m bench ARGS` from the project's root, its output captured."""
    return subprocess.run(
        [sys.executable, "-m", "bench", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.slow
def test_bench_app_quick(tmp_path: Path) -> None:
    if shutil.which("wrk") is None:
        pytest.fail(INSTALL_HINT)
    out = tmp_path / "runs.json"
    done = run_bench("app", "--quick", "--no-write", "--json", str(out), timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "## Targets" in done.stdout and "| asynclog-file |" in done.stdout
    runs = json.loads(out.read_text())["runs"]
    assert set(runs) == set(CONFIGS)
    for config, (run,) in runs.items():
        assert run["ok"], (config, run.get("error"))
        assert run["rps"] > 0, config
        server = run["server"]
        # The server served at least what wrk counted (wrk drops the requests in flight at
        # its deadline), and spent CPU on them.
        assert server["served"] >= run["requests"] > 0, config
        assert run["cpu_us_per_request"] > 0, config
        if config == "none":
            continue
        # Two entries per request (the app's and uvicorn's access line, which uvicorn skips
        # for the few requests wrk abandons at its deadline), each written or dropped;
        # asynclog adds one in-band WARNING entry (logger "asynclog") per burst of drops.
        served, access, reports = (
            server["served"],
            server["access_lines"],
            server["output"].get("asynclog", 0),
        )
        assert served - run["connections"] <= access <= served, config
        assert server["written"] == served + access - server["dropped"] + reports, config
        assert sum(server["output"].values()) == server["written"], config
    for config in ASYNCLOG_CONFIGS:
        (run,) = runs[config]
        assert run["non_2xx"] == 0, config  # the default config never fails a request
        assert run["server"]["refused"] <= run["server"]["dropped"], config
    batches = runs["asynclog-sqlite"][0]["server"]["batches"]
    assert batches["count"] > 0 and batches["p99_ms"] is not None


def test_bench_request_cost_runs_every_config_and_checks_for_drops() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.request_cost", "--requests", "500", "--reps", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert [line.split()[0] for line in lines[:5]] == [
        "stdlib-null",
        "stdlib",
        "asynclog",
        "asynclog-loop",
        "limit",
    ]
    assert all("µs CPU per request" in line for line in lines[:5])
    assert lines[5].startswith("asynclog ÷ stdlib: ")
    assert lines[6].startswith("asynclog ÷ limit: ")


def test_the_limit_writes_the_lines_asynclog_writes(tmp_path: Path) -> None:
    """bench/app.py's `FloorLog` (the `limit` config) writes once a loop turn, and its lines
    are the bytes asynclog writes for the same calls (but the time): the comparison is fair."""
    import asyncio
    import logging
    import re

    from asynclog import Config, FileConfig, LogManager
    from bench.app import FloorLog

    access = ('%s - "%s %s HTTP/%s" %d', ("127.0.0.1:5000", "GET", "/hello", "1.1", 200))

    async def floor_lines() -> tuple[int, list[str]]:
        floor = FloorLog(tmp_path / "limit.log")
        floor.add(1_700_000_000.25, logging.INFO, "app", "hello", (), {"user": "ada", "request": 1})
        floor.add(1_700_000_000.5, logging.INFO, "uvicorn.access", *access, {})
        before = (tmp_path / "limit.log").read_text()
        await asyncio.sleep(0)  # the turn that writes them
        assert before == ""
        written = floor.written
        floor.close()
        return written, (tmp_path / "limit.log").read_text().splitlines()

    written, lines = asyncio.run(floor_lines())
    assert written == 2
    assert lines == [
        '{"timestamp": "2023-11-14T22:13:20.250000Z", "level": "INFO", "logger": "app", '
        '"message": "hello", "fields": {"user": "ada", "request": 1}, "exception": null}',
        '{"timestamp": "2023-11-14T22:13:20.500000Z", "level": "INFO", '
        '"logger": "uvicorn.access", "message": "127.0.0.1:5000 - \\"GET /hello HTTP/1.1\\" 200", '
        '"fields": {}, "exception": null}',
    ]

    async def asynclog_lines() -> list[str]:
        path = tmp_path / "asynclog.log"
        config = Config(name="app", backends=[FileConfig(file_path=path, format="json")])
        async with LogManager(config) as log:
            await log.info("hello", user="ada", request=1)
            await log.get_logger("uvicorn.access").info(access[0], *access[1])
        return path.read_text().splitlines()

    def timeless(line: str) -> str:
        return re.sub(r'^\{"timestamp": "[^"]+"', '{"timestamp": "T"', line)

    assert [timeless(line) for line in asyncio.run(asynclog_lines())] == [
        timeless(line) for line in lines
    ]


def test_the_chart_shows_every_measured_config(tmp_path: Path) -> None:
    """`chart` (written with docs/bench-app.md): a PNG with a row per config that has a
    measured run; a config whose every run failed has none, and does not break it."""
    import matplotlib.image

    from bench.app_bench import chart

    def run(rep: int, rps: float, cpu: float) -> dict[str, object]:
        return {"rep": rep, "ok": True, "rps": rps, "cpu_us_per_request": cpu}

    by_config = {
        "none": [run(1, 25_000, 40.0), run(2, 24_000, 41.0)],
        "stdlib": [run(1, 11_000, 90.0), run(2, 10_500, 92.0)],
        "asynclog-file": [run(1, 15_000, 66.0), run(2, 14_000, 70.0)],
        "asynclog-sqlite": [{"rep": 1, "ok": False, "rps": None, "error": "wrk failed"}],
    }
    path = tmp_path / "img" / "bench-app.png"
    chart(by_config, path, "a title")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    height, width, _ = matplotlib.image.imread(path).shape
    # figsize (12, 0.55 * rows + 2.2) inches at 100 dpi: three rows, the failed config left out
    assert (width, height) == (1200, round((0.55 * 3 + 2.2) * 100))


def test_each_python_but_the_baseline_writes_a_report_of_its_own() -> None:
    assert doc_paths((3, 11)) == (
        ROOT / "docs" / "bench-app.md",
        ROOT / "docs" / "img" / "bench-app.png",
        "![req/s and server CPU per request, per config](img/bench-app.png)",
    )
    assert doc_paths((3, 13)) == (
        ROOT / "docs" / "bench-app-3.13.md",
        ROOT / "docs" / "img" / "bench-app-3.13.png",
        "![req/s and server CPU per request, per config](img/bench-app-3.13.png)",
    )


def test_burn_is_off_by_default_and_refused_below_zero() -> None:
    assert burner(0) is None
    burn = burner(5)
    assert burn is not None and burn() is None
    args = parse_args(["--quick"])
    assert (args.burn_us, args.write) == (0.0, False)
    assert parse_args([]).write is True
    burnt = parse_args(["--burn-us", "2"])
    assert (burnt.burn_us, burnt.write) == (2.0, False), "a burn run leaves the docs alone"
    assert parse_args(["--burn-us", "2", "--write"]).write is True
    done = run_bench("app", "--burn-us", "-1", timeout=60)
    assert done.returncode == 2
    assert "--burn-us must be 0 or more, got -1" in done.stderr


@pytest.mark.slow
def test_a_burn_run_says_so_and_every_request_still_logs_its_two_entries(tmp_path: Path) -> None:
    if shutil.which("wrk") is None:
        pytest.fail(INSTALL_HINT)
    out = tmp_path / "runs.json"
    command = ["app", "--quick", "--configs", "limit", "--burn-us", "20", "--json", str(out)]
    done = run_bench(*command, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "; 20 µs of CPU burnt in each request" in done.stdout
    report = json.loads(out.read_text())
    assert report["env"]["load"].endswith("; 1 reps; 20 µs of CPU burnt in each request")
    ((run,),) = report["runs"].values()
    server = run["server"]
    assert run["ok"] and server["served"] >= run["requests"] > 0
    assert server["written"] == server["served"] + server["access_lines"]
