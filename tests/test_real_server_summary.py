"""The one line a test run ends with when tests that need a real server skipped.

`make test` without a PostgreSQL server or rsyslog installed passes with those tests skipped;
the line names each skipped group and the command that provides it (tests/conftest.py:
`needs_real`, `skip_real`, `pytest_terminal_summary`). Each check runs pytest in a subprocess,
as `make test` does, and reads its output.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from .conftest import SUMMARY_PREFIX

CHECKOUT = Path(__file__).resolve().parents[1]

TINY_TESTS = """
import pytest

from tests.conftest import needs_real, skip_real

needs_a = needs_real("Server A", "A_DSN is not set", "start-a --now")


@needs_a
def test_a_first() -> None:
    raise AssertionError("skipped before it runs")


@needs_a
def test_a_second() -> None:
    raise AssertionError("skipped before it runs")


@needs_real("Server A", "a second reason", "start-a --now")
def test_a_third() -> None:
    raise AssertionError("skipped before it runs")


@needs_real("Server B", None, "install-b")
def test_b_is_present_and_runs() -> None:
    pass


def test_c_finds_out_while_running(request: pytest.FixtureRequest) -> None:
    skip_real(request.config, "Disk C", "mounting failed", "run as root")


@pytest.mark.skip(reason="an ordinary skip, not a server")
def test_ordinary_skip() -> None:
    pass
"""


def run_pytest(*args: str, cwd: Path, env: dict[str, str] | None = None) -> tuple[int, str]:
    environment = {**os.environ, **(env or {}), "PYTHONPATH": str(CHECKOUT)}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return done.returncode, done.stdout


def summary_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith(SUMMARY_PREFIX)]


def test_one_line_names_each_skipped_group_with_its_command(tmp_path: Path) -> None:
    (tmp_path / "test_tiny.py").write_text(TINY_TESTS)
    code, output = run_pytest("-p", "tests.conftest", "test_tiny.py", cwd=tmp_path)
    assert code == 0, output
    assert "1 passed, 5 skipped" in output
    assert summary_lines(output) == [
        f"{SUMMARY_PREFIX} Server A, 3 tests (A_DSN is not set; a second reason) -> "
        "start-a --now | Disk C, 1 test (mounting failed) -> run as root"
    ]


def test_no_line_when_nothing_real_skipped(tmp_path: Path) -> None:
    (tmp_path / "test_tiny.py").write_text(TINY_TESTS)
    code, output = run_pytest(
        "-p", "tests.conftest", "test_tiny.py", "-k", "b_is_present or ordinary", cwd=tmp_path
    )
    assert code == 0, output
    assert "1 passed, 1 skipped" in output
    assert summary_lines(output) == []


def test_the_suites_own_groups_name_their_commands(tmp_path: Path) -> None:
    """Without ASYNCLOG_TEST_PG_DSN and with an empty PATH (no openssl command, which the
    rsyslog tests need too), the suite's real groups skip, each named with its command."""
    code, output = run_pytest(
        "tests/test_postgres.py::test_round_trip_of_every_column",
        "tests/test_syslog_rsyslog.py::test_relp_100k_entries_exactly_once_with_structured_data",
        "tests/test_otlp.py::test_https_with_a_private_ca",
        cwd=CHECKOUT,
        env={"ASYNCLOG_TEST_PG_DSN": "", "PATH": str(tmp_path)},
    )
    assert code == 0, output
    assert "3 skipped" in output
    [line] = summary_lines(output)
    postgres, rsyslog, openssl = line.removeprefix(f"{SUMMARY_PREFIX} ").split(" | ")
    assert postgres == (
        'PostgreSQL, 1 test (ASYNCLOG_TEST_PG_DSN is not set) -> eval "$(.ci/postgres.sh)"'
    )
    # (what rsyslog misses first depends on this machine: rsyslogd, a module, or openssl)
    assert rsyslog.startswith("rsyslogd (syslog over RELP, TCP, TLS, UDP), 1 test (")
    assert rsyslog.endswith(") -> bash .ci/rsyslog.sh")
    assert openssl == (
        "openssl (OTLP over HTTPS with a private CA), 1 test (the openssl command is missing) "
        "-> apt-get install openssl"
    )
