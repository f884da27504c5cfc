"""Review of issue 15 (second pass): the console, the CLI on file logs and the packaging,
attacked as a user and an attacker would."""

from __future__ import annotations

import json
from pathlib import Path

from .test_cli_filelog import cli

def test_query_json_prints_a_lone_surrogate_as_its_json_escape(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_text("2026-11-27T10:00:00.000000Z INFO app a\\ud800b k=\\udcff\n")
    code, out, err = cli("query", log, "--json")
    assert (code, err) == (0, "")
    record = json.loads(out)
    assert (record["message"], record["fields"]) == ("a\ud800b", {"k": "\udcff"})
