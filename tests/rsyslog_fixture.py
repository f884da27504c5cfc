"""A real rsyslogd for the syslog backend's tests: a config with RELP, TCP, TLS and UDP inputs
on free 127.0.0.1 ports, writing every message as one JSON line to a file (`omfile`), run in
the foreground (`rsyslogd -n -f CONF -i PIDFILE`) and stopped (or SIGKILLed) by its pid.

`.ci/rsyslog.sh` installs rsyslog, rsyslog-relp and rsyslog-gnutls; without them the tests
that need the daemon skip and say so.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from .conftest import needs_real

RSYSLOGD = shutil.which("rsyslogd") or next(
    (path for path in ("/usr/sbin/rsyslogd", "/sbin/rsyslogd") if os.access(path, os.X_OK)), None
)
MODULE_DIRS = glob.glob("/usr/lib/*/rsyslog") + glob.glob("/usr/lib/rsyslog")
INSTALL = "bash .ci/rsyslog.sh"
"""Installs rsyslog, rsyslog-relp, rsyslog-gnutls and openssl (as root; `.ci/run` does it)."""


def _has_module(name: str) -> bool:
    return any(os.path.exists(os.path.join(folder, f"{name}.so")) for folder in MODULE_DIRS)


def _missing() -> str | None:
    if RSYSLOGD is None:
        return "rsyslogd is not installed"
    for module, package in (("imrelp", "rsyslog-relp"), ("lmnsd_gtls", "rsyslog-gnutls")):
        if not _has_module(module):
            return f"rsyslog's {module} module is missing (package {package})"
    if shutil.which("openssl") is None:
        return "the openssl command is missing (it makes the TLS test's certificate)"
    return None


MISSING = _missing()
requires_rsyslog = needs_real("rsyslogd (syslog over RELP, TCP, TLS, UDP)", MISSING, INSTALL)

# One JSON object per message and line; `:::json` escapes quotes, backslashes and control
# characters (with escapeControlCharactersOnReceive off, a newline arrives as itself and is
# written as \n), so a record is always exactly one line.
TEMPLATE = (
    '{"msg":"%msg:::json%","sd":"%structured-data:::json%","app":"%app-name:::json%",'
    '"pri":"%pri%","host":"%hostname:::json%","procid":"%procid:::json%",'
    '"msgid":"%msgid:::json%","ts":"%timereported:::date-rfc3339%",'
    '"input":"%inputname%"}\\n'
)

CONFIG = """\
global(
    workDirectory="{work}"
    maxMessageSize="256k"
    parser.escapeControlCharactersOnReceive="off"
    defaultNetstreamDriverCertFile="{cert}"
    defaultNetstreamDriverKeyFile="{key}"
)
module(load="imrelp")
module(load="imtcp" maxSessions="200")
module(load="imudp")
template(name="asynclog_json" type="string" string="{template}")

# Direct: an input's submission runs the action before the input returns, so what imrelp
# acknowledged is already in the file (the end-to-end setting docs/syslog.md describes).
ruleset(name="asynclog_out" queue.type="Direct") {{
    action(type="omfile" file="{output}" template="asynclog_json"
           flushOnTXEnd="on" asyncWriting="off")
}}

input(type="imrelp" address="127.0.0.1" port="{relp}" ruleset="asynclog_out")
input(type="imtcp" address="127.0.0.1" port="{tcp}" ruleset="asynclog_out")
input(type="imtcp" address="127.0.0.1" port="{tls}" ruleset="asynclog_out"
      streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="anon")
input(type="imudp" address="127.0.0.1" port="{udp}" ruleset="asynclog_out")
"""


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port nothing listens on now (bound to port 0 and released)."""
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def make_certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for `localhost` and 127.0.0.1, and its key (PEM files)."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-days", "2",
            "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


class Rsyslog:
    """One rsyslogd with RELP, TCP, TLS and UDP inputs on free ports of 127.0.0.1."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.work = folder / "work"
        self.work.mkdir(parents=True, exist_ok=True)
        self.output = folder / "out.jsonl"
        self.conf = folder / "rsyslog.conf"
        self.pidfile = folder / "rsyslogd.pid"
        self.log = folder / "rsyslogd.log"
        self.cert, self.key = make_certificate(folder)
        self.process: subprocess.Popen[bytes] | None = None
        self.ports: dict[str, int] = {}
        self.torn: list[tuple[int, int]] = []  # byte ranges: see _note_torn_line

    @property
    def relp_port(self) -> int:
        return self.ports["relp"]

    @property
    def tcp_port(self) -> int:
        return self.ports["tcp"]

    @property
    def tls_port(self) -> int:
        return self.ports["tls"]

    @property
    def udp_port(self) -> int:
        return self.ports["udp"]

    def _write_config(self) -> None:
        self.conf.write_text(
            CONFIG.format(
                work=self.work,
                cert=self.cert,
                key=self.key,
                template=TEMPLATE.replace('"', '\\"'),
                output=self.output,
                **self.ports,
            )
        )

    def start(self, attempts: int = 3) -> None:
        """Start on free ports (or, after `kill`, on the same ones) and wait until the TCP
        ports accept connections. A port taken meanwhile is retried on new ports."""
        keep_ports = bool(self.ports)  # a restart: the clients know these ports
        for _ in range(attempts):
            if not keep_ports:
                self.ports = {
                    "relp": free_port(),
                    "tcp": free_port(),
                    "tls": free_port(),
                    "udp": free_port(socket.SOCK_DGRAM),
                }
            self._write_config()
            self.pidfile.unlink(missing_ok=True)
            assert RSYSLOGD is not None
            with self.log.open("ab") as log:
                self.process = subprocess.Popen(
                    [RSYSLOGD, "-n", "-f", str(self.conf), "-i", str(self.pidfile)],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            if self._wait_until_listening(timeout=10.0):
                return
            self.stop()
            if keep_ports:
                time.sleep(0.5)  # the old daemon's sockets may linger for a moment
        raise RuntimeError(f"rsyslogd did not start listening; its output:\n{self.log_text()}")

    def _wait_until_listening(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        waiting = {self.relp_port, self.tcp_port, self.tls_port}
        while waiting and time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                return False
            for port in list(waiting):
                with (
                    contextlib.suppress(OSError),
                    socket.create_connection(("127.0.0.1", port), timeout=0.5),
                ):
                    waiting.discard(port)
            if waiting:
                time.sleep(0.05)
        return not waiting

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def kill(self) -> None:
        """SIGKILL, by pid: a crash, no chance to flush or answer."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
            self._note_torn_line()

    def _note_torn_line(self) -> None:
        """A daemon killed mid-write can leave half a line, which the next daemon's first line
        continues. Remember its byte range so that `records()` leaves it out."""
        if not self.output.exists():
            return
        data = self.output.read_bytes()
        if not data or data.endswith(b"\n"):
            return
        start = data.rfind(b"\n") + 1
        if self.torn and self.torn[-1][0] == start:  # this daemon died in the same line too
            self.torn.pop()
        self.torn.append((start, len(data)))

    def stop(self) -> None:
        """SIGTERM by pid and wait (SIGKILL after 10 s)."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=10)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def records(self) -> list[dict[str, Any]]:
        """Every complete line of the output, parsed (less the half lines of killed daemons)."""
        if not self.output.exists():
            return []
        data = self.output.read_bytes()
        for start, end in reversed(self.torn):
            data = data[:start] + data[end:]
        complete = data[: data.rfind(b"\n") + 1]  # a write may stop inside a character
        return [json.loads(line) for line in complete.decode("utf-8").split("\n")[:-1]]

    def wait_for_records(self, count: int, timeout: float = 20.0) -> list[dict[str, Any]]:
        """The records once at least `count` have arrived (or whatever there is at the end
        of `timeout`)."""
        deadline = time.monotonic() + timeout
        while True:
            records = self.records()
            if len(records) >= count or time.monotonic() >= deadline:
                return records
            time.sleep(0.05)


def parse_structured_data(sd: str) -> dict[str, dict[str, str]]:
    """`[id name="value" ...][...]` as `{id: {name: value}}`, values unescaped (RFC 5424:
    `\\"`, `\\\\` and `\\]` stand for the character; any other backslash is itself)."""
    elements: dict[str, dict[str, str]] = {}
    if sd == "-":
        return elements
    pos = 0
    while pos < len(sd):
        assert sd[pos] == "[", f"expected '[' at {pos} in {sd!r}"
        end_id = pos + 1
        while sd[end_id] not in " ]":
            end_id += 1
        params: dict[str, str] = {}
        elements[sd[pos + 1 : end_id]] = params
        pos = end_id
        while sd[pos] == " ":
            equals = sd.index("=", pos)
            name = sd[pos + 1 : equals]
            assert sd[equals + 1] == '"', sd
            value: list[str] = []
            pos = equals + 2
            while sd[pos] != '"':
                if sd[pos] == "\\" and sd[pos + 1] in '"\\]':
                    pos += 1
                value.append(sd[pos])
                pos += 1
            params[name] = "".join(value)
            pos += 1
        assert sd[pos] == "]", f"expected ']' at {pos} in {sd!r}"
        pos += 1
    return elements
