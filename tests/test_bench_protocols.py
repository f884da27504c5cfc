"""`python -m bench protocols --quick` end to end (each protocol's limit and asynclog's backend
against a real receiver), and the pieces of bench/ it rests on: the limit's RFC 5424 messages
are byte for byte asynclog's, its RELP frame reader, the docs sections it rewrites."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from asynclog import LogEntry
from asynclog.backends._rfc5424 import Encoder
from bench.protocol_limits import LOGGER, RelpError, Rfc5424, parse_frames
from bench.protocol_run import CONTENDERS, PROTOCOLS
from bench.protocols import LABELS, rsyslogd_missing
from bench.report import TIMES, replace_section, sections

ROOT = Path(__file__).resolve().parent.parent


def expected_skips() -> dict[str, str]:
    """The protocols whose receiver cannot run here, and the reason the bench must give."""
    skips = {}
    if not os.environ.get("ASYNCLOG_TEST_PG_DSN"):
        skips["postgres"] = "ASYNCLOG_TEST_PG_DSN is not set"
    missing = rsyslogd_missing()
    if missing is not None:
        skips["tcp"] = skips["relp"] = missing
    return skips


@pytest.mark.slow
def test_bench_protocols_quick(tmp_path: Path) -> None:
    out = tmp_path / "runs.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "protocols", "--quick", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    skips = expected_skips()
    assert set(result["skipped"]) == set(skips), result["skipped"]
    for protocol, reason in skips.items():
        assert reason in result["skipped"][protocol]
        assert f"- {protocol}: skipped: " in done.stdout
    measured = [p for p in PROTOCOLS if p not in skips]
    runs = {(run["protocol"], run["contender"]): run for run in result["runs"]}
    assert set(runs) == {(p, c) for p in measured for c in CONTENDERS}
    for key, run in runs.items():
        assert run["ok"], (key, run.get("error"))
        assert run["entries"] == 5000, key
        assert run["entries_per_s"] > 0 and run["cpu_us_per_entry"] > 0, key
    for protocol in measured:
        for name in ("limit", "asynclog (async mode)"):
            row = re.search(
                rf"^\| {re.escape(LABELS[protocol])} \| {re.escape(name)} \| \*\*([\d,]+)\*\* \|"
                rf".*\| ([\d.,]+){TIMES} \| ([\d.]+) \|",
                done.stdout,
                re.M,
            )
            assert row is not None, (protocol, name, done.stdout)
        summary = re.search(
            rf"^- {protocol}: asynclog = ([\d.]+){TIMES} limit .*CPU ([\d.]+) µs/entry vs limit "
            r"([\d.]+) µs/entry$",
            done.stdout,
            re.M,
        )
        assert summary is not None, (protocol, done.stdout)
        ratio = float(summary[1])
        limit, ours = runs[(protocol, "limit")], runs[(protocol, "asynclog")]
        expected = ours["entries_per_s"] / limit["entries_per_s"]
        # As printed (bench.report.times): two decimals below 10x, whole numbers above.
        assert ratio == pytest.approx(expected, abs=0.01 if expected < 10 else 0.5)


def test_limit_encodes_rfc5424_as_asynclog_does() -> None:
    ours = Encoder(
        facility=1,
        hostname=os.uname().nodename,
        app_name=None,
        procid=str(os.getpid()),
        msgid="-",
        enterprise_id="32473",
        bom=True,
        exception_in="structured_data",
        max_size=None,
    )
    limit = Rfc5424()
    now = time.time()
    cases = [
        (now, "task 3 msg 7", {"task": 3, "seq": 7}),
        (1_700_000_000.9999996, "rounds up", {}),
        (now, 'quote " and ] and \\', {"k": 'v"]\\'}),
    ]
    for ts, message, fields in cases:
        entry = LogEntry(ts, 20, message, LOGGER, fields, None, None, None)
        assert limit.encode(ts, message, fields) == ours.encode(entry)


def test_relp_frames_are_cut_by_their_length() -> None:
    buffer = b"1 rsp 6 200 OK\n2 rsp 92 200 OK\nrelp"
    frames, rest = parse_frames(buffer)
    assert frames == [(1, b"rsp", b"200 OK")]
    assert rest == b"2 rsp 92 200 OK\nrelp"
    frames, rest = parse_frames(b"5 rsp 0\n0 serverclose 0\n3 rsp 1")
    assert frames == [(5, b"rsp", b""), (0, b"serverclose", b"")]
    assert rest == b"3 rsp 1"
    with pytest.raises(RelpError, match="malformed RELP frame"):
        parse_frames(b"1 rsp 2 OKX\n")


def test_docs_sections_are_replaced_in_place_and_kept() -> None:
    text = "# Benchmarks\n\nmicro tables\n"
    once = replace_section(text, "protocols 3.11", "first")
    assert once == (
        "# Benchmarks\n\nmicro tables\n\n"
        "<!-- bench protocols 3.11: start -->\nfirst\n<!-- bench protocols 3.11: end -->\n"
    )
    both = replace_section(once, "protocols 3.13", "other")
    again = replace_section(both, "protocols 3.11", "second")
    assert again.count("<!-- bench protocols 3.11: start -->") == 1
    assert "\nsecond\n" in again and "first" not in again and "\nother\n" in again
    assert again.index("second") < again.index("other")
    kept = sections(again)
    assert kept.startswith("\n<!-- bench protocols 3.11: start -->\nsecond\n")
    assert "micro tables" not in kept and kept.count("start -->") == 2
