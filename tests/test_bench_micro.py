"""`python -m bench --quick` smoke runs: each scenario's output is verified line by line by the
bench itself (every entry once, in each task's order); a FAILED run is a broken contender."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_shared_file_scenarios_verify_every_line() -> None:
    command = [sys.executable, "-m", "bench", "--quick", "--no-write"]
    command += ["--only", "asynclog-async-file,asynclog-sync-file"]
    command += ["--scenarios", "shared_1proc,shared_4proc"]
    done = subprocess.run(
        command,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    output = done.stdout + done.stderr  # the per-run lines go to stderr
    runs = [line for line in output.splitlines() if line.startswith("[rep 1/1]")]
    assert len(runs) == 4, output[-3000:]
    assert [line for line in runs if "FAILED" in line or "entries/s" not in line] == []
