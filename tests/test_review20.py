"""Review 20: the SQLite backend's partial level index (what reads it, how their plans change)
and the rsyslog fixture's handling of the half line a SIGKILLed daemon leaves."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .rsyslog_fixture import Rsyslog

# --- the rsyslog fixture's torn lines ---------------------------------------------------------


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Rsyslog]:
    """An `Rsyslog` whose daemon is never started: `killed` stands a `sleep` in for it."""
    rsyslog = Rsyslog(tmp_path)
    yield rsyslog
    rsyslog.stop()


def killed(server: Rsyslog, written: bytes) -> None:
    """A daemon appends `written` to the output and is SIGKILLed."""
    server.process = subprocess.Popen(["sleep", "60"])
    with server.output.open("ab") as output:
        output.write(written)
    server.kill()


def append(server: Rsyslog, written: bytes) -> None:
    with server.output.open("ab") as output:
        output.write(written)


def test_a_daemon_killed_in_the_line_a_killed_one_left_half_done_loses_no_later_line(
    server: Rsyslog,
) -> None:
    """The second daemon is killed before its first line, which continues the first daemon's
    half line, ends: the third daemon's lines all arrive."""
    killed(server, b'{"i":0}\n{"i":')
    killed(server, b'{"i":1,"m":"x')
    append(server, b'{"i":2}\n{"i":3}\n')
    assert server.records() == [{"i": 0}, {"i": 2}, {"i": 3}]


def test_killed_with_the_file_ending_in_a_newline_or_empty_cuts_nothing(server: Rsyslog) -> None:
    killed(server, b"")
    killed(server, b'{"i":0}\n')
    append(server, b'{"i":1}\n')
    assert server.records() == [{"i": 0}, {"i": 1}]


def test_a_half_line_cut_inside_a_utf8_character_is_not_read_yet(server: Rsyslog) -> None:
    """rsyslogd writes its buffer in pieces: a poll may find the last line cut in the middle
    of a character (every message starts with a BOM, three bytes)."""
    bom_message = '{"msg":"\ufeffentry 1"}'.encode()
    append(server, b'{"msg":"\xef\xbb\xbfentry 0"}\n' + bom_message[:10])
    assert server.records() == [{"msg": "\ufeffentry 0"}]
    append(server, bom_message[10:] + b"\n")
    assert server.records() == [{"msg": "\ufeffentry 0"}, {"msg": "\ufeffentry 1"}]
