"""The JSON format with and without orjson (the `fastjson` extra): CPU µs per entry.

    python -m bench.json_encoder [--entries 100000] [--runs 5] [--write]

Every run is a fresh process with `ASYNCLOG_FAST_JSON` set to 1 (orjson) or 0 (the standard
library); the runs interleave, and each figure is the median of `--runs`.

- format: `lines_of(json_format)` over the entries in batches of 1000, as the file backend
  calls it; process CPU time. Fields: flat (message + 4 scalars), nested (+ a list and a dict),
  colon (flat, one value a URL: a string holding `:` or `,` sends orjson's output back to the
  standard path). The two modes must write the same text (checked by a digest of the output).
- e2e: 100 tasks x entries/100 `await lm.info(msg, **flat fields)` to a file with
  `FileConfig(format="json")`, async mode, from the first call until `close()` returns; process
  CPU time (the writer's thread included).

`--write` puts the table into docs/benchmarks.md, between the markers of its own section.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
KINDS = ("flat", "nested", "colon", "e2e")
MODES = {"stdlib": "0", "orjson": "1"}
BEGIN = "<!-- json-encoder: begin (python -m bench.json_encoder --write) -->"
END = "<!-- json-encoder: end -->"


def fields_of(kind: str, i: int) -> dict[str, Any]:
    fields: dict[str, Any] = {"user": "alice", "request_id": i, "ms": 12.5 + i % 7, "ok": True}
    if kind == "nested":
        fields["tags"] = ["api", "v2", i % 3]
        fields["client"] = {"ip": "10.0.0.7", "port": 51000 + i % 100}
    elif kind == "colon":
        fields["url"] = f"https://example.com:8443/items/{i}"
    return fields


def format_run(kind: str, entries: int) -> tuple[float, str]:
    from asynclog.formatters import json_format, lines_of

    lines = lines_of(json_format)
    batch = [
        (
            1764738000.0 + i * 1e-5,
            20,
            f"request {i} handled",
            "app",
            fields_of(kind, i),
            None,
            None,
            None,
        )
        for i in range(entries)
    ]
    digest = hashlib.sha256()
    started = time.process_time()
    for at in range(0, entries, 1000):
        for line in lines(batch[at : at + 1000]):
            digest.update(line.encode("utf-8", "surrogatepass"))
    return (time.process_time() - started) / entries * 1e6, digest.hexdigest()[:16]


async def e2e_run(entries: int) -> tuple[float, str]:
    from asynclog import Config, FileConfig, LogManager

    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "asynclog.jsonl"
        config = Config(
            backend="file",
            backend_config=FileConfig(
                file_path=path, max_file_size_mb=1000, max_backups=0, format="json"
            ),
            async_mode=True,
            queue_size=1000,
            put_timeout=0.1,
        )
        lm = LogManager(config)
        await lm.start()
        per_task = entries // 100

        async def produce(t: int) -> None:
            for i in range(per_task):
                await lm.info("request handled", **fields_of("flat", t * per_task + i))

        started = time.process_time()
        await asyncio.gather(*(produce(t) for t in range(100)))
        await lm.close()
        cpu = time.process_time() - started
        with open(path, encoding="utf-8") as written:
            count = sum(1 for _ in written)
        if count != per_task * 100:
            raise SystemExit(f"wrote {count} lines, expected {per_task * 100}")
    return cpu / (per_task * 100) * 1e6, f"{count} lines"


def child(kind: str, entries: int) -> None:
    from asynclog.formatters import fast_json_used

    if kind == "e2e":
        us, check = asyncio.run(e2e_run(entries))
    else:
        us, check = format_run(kind, entries)
    print(json.dumps({"us": us, "check": check, "orjson": fast_json_used()}))


def measure(kind: str, mode: str, entries: int) -> dict[str, Any]:
    env = dict(os.environ, ASYNCLOG_FAST_JSON=MODES[mode])
    command = [sys.executable, "-m", "bench.json_encoder", "--child", kind]
    command += ["--entries", str(entries)]
    out = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, check=True)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    if result["orjson"] != (mode == "orjson"):
        raise SystemExit(f"{mode}: orjson used = {result['orjson']} (is it installed?)")
    return result


def table(medians: dict[tuple[str, str], float], entries: int, runs: int) -> str:
    rows = [
        f"CPU µs per entry, median of {runs} runs of {entries:,} entries "
        f"(Python {sys.version.split()[0]}, nproc {os.cpu_count()}):",
        "",
        "| measure | stdlib | orjson | saved |",
        "|---|---|---|---|",
    ]
    for kind in KINDS:
        std, fast = medians[kind, "stdlib"], medians[kind, "orjson"]
        rows.append(f"| {kind} | {std:.2f} | {fast:.2f} | {(std - fast) / std:+.0%} |")
    return "\n".join(rows)


def write_section(text: str) -> None:
    docs = ROOT / "docs" / "benchmarks.md"
    current = docs.read_text(encoding="utf-8")
    section = f"{BEGIN}\n{text}\n{END}"
    if BEGIN in current and END in current:
        head, rest = current.split(BEGIN, 1)
        current = head + section + rest.split(END, 1)[1]
    else:
        current = current.rstrip("\n") + "\n\n" + section + "\n"
    docs.write_text(current, encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.json_encoder")
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    parser.add_argument("--child", choices=KINDS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.entries)
        return
    samples: dict[tuple[str, str], list[float]] = {}
    checks: dict[tuple[str, str], set[str]] = {}
    for _ in range(args.runs):
        for kind in KINDS:
            for mode in MODES:
                result = measure(kind, mode, args.entries)
                samples.setdefault((kind, mode), []).append(result["us"])
                checks.setdefault((kind, mode), set()).add(result["check"])
    for kind in KINDS:
        if checks[kind, "stdlib"] != checks[kind, "orjson"] or len(checks[kind, "stdlib"]) != 1:
            raise SystemExit(f"{kind}: the two modes wrote different output: {checks}")
    medians = {key: statistics.median(values) for key, values in samples.items()}
    text = table(medians, args.entries, args.runs)
    print(text)
    if args.write:
        write_section(text)


if __name__ == "__main__":
    main()
