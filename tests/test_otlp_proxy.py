"""The OTLP backend behind a real HTTP proxy (Debian's tinyproxy, started by the tests on a
free port), configured by HTTP_PROXY / HTTPS_PROXY / NO_PROXY; and the reading of those
variables."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

pytest.importorskip("opentelemetry.proto")
pytest.importorskip("httpx")

from asynclog import Config, ConfigError, LogManager, OTLPConfig
from asynclog.backends.otlp import ExportError, OTLPBackend

from .conftest import needs_real
from .test_otlp import Receiver, entry, make_certificate

TINYPROXY = shutil.which("tinyproxy")
needs_tinyproxy = needs_real(
    "tinyproxy (OTLP through a real HTTP proxy)",
    None if TINYPROXY else "the tinyproxy command is missing",
    "apt-get install tinyproxy",
)
needs_openssl = needs_real(
    "openssl (OTLP over HTTPS with a private CA)",
    None if shutil.which("openssl") else "the openssl command is missing",
    "apt-get install openssl",
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("OTEL_") or name.lower().endswith("_proxy"):
            monkeypatch.delenv(name)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@dataclass
class Tinyproxy:
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def requests(self) -> list[str]:
        """The request lines tinyproxy logged (`POST http://... HTTP/1.1`, `CONNECT ...`)."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return re.findall(r"Request \(file descriptor \d+\): (.+)", text)


def _wait_listening(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"tinyproxy exited: {log.read_text(errors='replace')[-500:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("tinyproxy did not listen within 10 s")


@pytest.fixture
def tinyproxy(tmp_path: Path) -> Iterator[Tinyproxy]:
    assert TINYPROXY is not None
    port = free_port()
    log = tmp_path / "tinyproxy.log"
    config = tmp_path / "tinyproxy.conf"
    config.write_text(
        f"Port {port}\nListen 127.0.0.1\nTimeout 30\nLogFile \"{log}\"\nLogLevel Info\n"
        "MaxClients 20\nAllow 127.0.0.1\n"  # no ConnectPort line: CONNECT to any port
    )
    process = subprocess.Popen(
        [TINYPROXY, "-d", "-c", str(config)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_listening(port, process, log)
        yield Tinyproxy(port, log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    server = Receiver()
    await server.start()
    yield server
    await server.stop()


def bodies(receiver: Receiver) -> list[str]:
    return [record.body.string_value for _, record in receiver.records]


# -- through tinyproxy ---------------------------------------------------------------------


@needs_tinyproxy
async def test_http_proxy_carries_the_requests(
    monkeypatch: pytest.MonkeyPatch, tinyproxy: Tinyproxy, receiver: Receiver
) -> None:
    monkeypatch.setenv("HTTP_PROXY", tinyproxy.url)
    config = OTLPConfig(endpoint=receiver.url, retry_backoff=0.01)
    assert config.proxy == tinyproxy.url
    lm = LogManager(Config(backend=OTLPBackend(config), async_mode=True, batch_size=2))
    async with lm:
        for number in range(5):
            await lm.info(f"proxied {number}")
    assert lm.get_stats().written == 5
    assert sorted(bodies(receiver)) == [f"proxied {number}" for number in range(5)]
    assert all("tinyproxy" in request.headers.get("via", "") for request in receiver.requests)
    lines = tinyproxy.requests()
    assert len(lines) == len(receiver.requests) >= 3  # batches of at most 2
    assert set(lines) == {f"POST http://127.0.0.1:{receiver.port}/v1/logs HTTP/1.1"}


@needs_tinyproxy
async def test_no_proxy_bypasses_the_proxy(
    monkeypatch: pytest.MonkeyPatch, tinyproxy: Tinyproxy, receiver: Receiver
) -> None:
    monkeypatch.setenv("http_proxy", tinyproxy.url)
    monkeypatch.setenv("no_proxy", "localhost,127.0.0.1")
    backend = OTLPBackend(OTLPConfig(endpoint=receiver.url))
    assert (backend.config.proxy, backend.http_client) == ("", "builtin")
    await backend.open()
    await backend.write_batch([entry("direct")])
    await backend.close()
    assert bodies(receiver) == ["direct"]
    assert "via" not in receiver.requests[0].headers
    assert tinyproxy.requests() == []


@needs_tinyproxy
@needs_openssl
async def test_https_proxy_tunnels_tls_with_connect(
    monkeypatch: pytest.MonkeyPatch, tinyproxy: Tinyproxy, tmp_path: Path
) -> None:
    cert, key = make_certificate(tmp_path)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    receiver = Receiver(ssl_context=server_context)
    await receiver.start()
    try:
        monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # for http only: not used
        monkeypatch.setenv("HTTPS_PROXY", tinyproxy.url)
        monkeypatch.setenv(
            "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", f"https://127.0.0.1:{receiver.port}/v1/logs"
        )
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_CERTIFICATE", str(cert))
        backend = OTLPBackend(OTLPConfig(retry_backoff=0.01))
        assert backend.http_client == "httpx"
        await backend.open()
        await backend.write_batch([entry("secret 1"), entry("secret 2")])
        await backend.write_batch([entry("secret 3")])
        await backend.close()
    finally:
        await receiver.stop()
    assert bodies(receiver) == ["secret 1", "secret 2", "secret 3"]
    lines = tinyproxy.requests()
    assert lines and set(lines) == {f"CONNECT 127.0.0.1:{receiver.port} HTTP/1.1"}
    assert "secret" not in tinyproxy.log.read_text(errors="replace")


@needs_tinyproxy
async def test_concurrency_lanes_through_the_proxy(
    monkeypatch: pytest.MonkeyPatch, tinyproxy: Tinyproxy, receiver: Receiver
) -> None:
    monkeypatch.setenv("HTTP_PROXY", tinyproxy.url)
    receiver.delay = 0.2
    config = OTLPConfig(endpoint=receiver.url, concurrency=3)
    lm = LogManager(Config(backend=OTLPBackend(config), async_mode=True, batch_size=10))
    async with lm:
        for number in range(60):
            await lm.info(f"lane {number}")
    assert lm.get_stats().written == 60
    assert sorted(bodies(receiver)) == sorted(f"lane {number}" for number in range(60))
    assert receiver.most_at_once == 3
    assert len(tinyproxy.requests()) == len(receiver.requests)


@needs_tinyproxy
async def test_the_exit_flush_goes_through_the_proxy(
    monkeypatch: pytest.MonkeyPatch, tinyproxy: Tinyproxy, receiver: Receiver
) -> None:
    monkeypatch.setenv("HTTP_PROXY", tinyproxy.url)
    backend = OTLPBackend(OTLPConfig(endpoint=receiver.url))
    await backend.open()
    await backend.write_batch([entry("before")])
    await asyncio.to_thread(backend.flush_at_exit, [entry("at exit")])  # a loop of its own
    await backend.close()
    assert bodies(receiver) == ["before", "at exit"]
    assert len(tinyproxy.requests()) == 2


async def test_a_proxy_that_is_down_is_a_retryable_failure(
    monkeypatch: pytest.MonkeyPatch, receiver: Receiver
) -> None:
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{free_port()}")
    backend = OTLPBackend(OTLPConfig(endpoint=receiver.url, max_retry_time=0))
    await backend.open()
    with pytest.raises(ExportError) as caught:
        await backend.write_batch([entry("lost")])
    await backend.close()
    assert caught.value.retryable and caught.value.status is None
    assert receiver.requests == []


# -- reading the proxy variables -----------------------------------------------------------


def proxy_of(endpoint: str) -> str | None:
    return OTLPConfig(endpoint=endpoint).proxy


def test_the_scheme_picks_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://plain:3128")
    monkeypatch.setenv("HTTPS_PROXY", "http://secure:3128")
    assert proxy_of("http://collector/v1/logs") == "http://plain:3128"
    assert proxy_of("https://collector/v1/logs") == "http://secure:3128"


def test_lower_case_wins_and_all_proxy_is_the_last_resort(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALL_PROXY", "http://all:3128")
    assert proxy_of("https://collector/v1/logs") == "http://all:3128"
    monkeypatch.setenv("HTTPS_PROXY", "http://upper:3128")
    monkeypatch.setenv("https_proxy", "http://lower:3128")
    assert proxy_of("https://collector/v1/logs") == "http://lower:3128"


def test_a_proxy_without_a_scheme_is_http(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "proxy.internal:3128")
    assert proxy_of("http://collector/v1/logs") == "http://proxy.internal:3128"


@pytest.mark.parametrize(
    ("no_proxy", "endpoint", "bypassed"),
    [
        ("*", "http://anything.example/v1/logs", True),
        ("example.com", "http://otel.example.com/v1/logs", True),
        ("example.com", "http://example.com/v1/logs", True),
        ("example.com", "http://notexample.com/v1/logs", False),
        (".example.com", "http://otel.example.com/v1/logs", True),
        ("other.org, otel.example.com", "http://otel.example.com/v1/logs", True),
        ("OTEL.Example.com", "http://otel.example.com/v1/logs", True),
        ("otel.example.com:4318", "http://otel.example.com:4318/v1/logs", True),
        ("otel.example.com:4318", "http://otel.example.com:9999/v1/logs", False),
        ("10.0.0.7", "http://10.0.0.7:4318/v1/logs", True),
        ("::1", "http://[::1]:4318/v1/logs", True),
        ("[::1]:4318", "http://[::1]:4318/v1/logs", True),
    ],
)
def test_no_proxy_entries(
    monkeypatch: pytest.MonkeyPatch, no_proxy: str, endpoint: str, bypassed: bool
) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://proxy:3128")
    monkeypatch.setenv("NO_PROXY", no_proxy)
    assert proxy_of(endpoint) == ("" if bypassed else "http://proxy:3128")


def test_an_explicit_proxy_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://env:3128")
    assert OTLPConfig(proxy="").proxy == ""
    assert OTLPConfig(proxy="http://given:8080").proxy == "http://given:8080"
    monkeypatch.setenv("NO_PROXY", "*")
    assert OTLPConfig(proxy="http://given:8080").proxy == "http://given:8080"


def test_proxy_passwords_stay_out_of_reprs_and_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    config = OTLPConfig(proxy="http://user:pa55word@proxy:3128")
    assert "pa55word" not in repr(config) and "user:***@proxy:3128" in repr(config)
    monkeypatch.setenv("HTTP_PROXY", "socks5://user:pa55word@proxy:1080")
    with pytest.raises(ConfigError) as caught:
        OTLPConfig()
    assert str(caught.value) == (
        "OTLPConfig: environment variable HTTP_PROXY='socks5://user:***@proxy:1080' must be an "
        "http:// or https:// proxy URL (SOCKS is not supported)"
    )


def test_bad_proxy_settings_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match=r"OTLPConfig.proxy must be a URL, '' or None, got 5"):
        OTLPConfig(proxy=5)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"OTLPConfig.proxy is not a valid URL"):
        OTLPConfig(proxy="http://proxy:99999")
    with pytest.raises(ConfigError) as caught:
        OTLPConfig(proxy="http://proxy:3128", http_client="builtin")
    assert str(caught.value) == (
        "OTLPConfig.http_client 'builtin' cannot use a proxy: use 'auto' or 'httpx', or proxy=''"
    )
    with pytest.raises(ConfigError, match=r"OTLPConfig.http_client must be one of"):
        OTLPConfig(http_client="curl")  # type: ignore[arg-type]


async def test_http_client_httpx_without_a_proxy(receiver: Receiver) -> None:
    config = OTLPConfig(
        endpoint=receiver.url, http_client="httpx", compression="gzip", headers={"x-tenant": "7"}
    )
    backend = OTLPBackend(config)
    assert backend.http_client == "httpx"
    await backend.open()
    await backend.write_batch([entry("one"), entry("two")])
    await backend.write_batch([entry("three")])
    await backend.close()
    assert bodies(receiver) == ["one", "two", "three"]
    assert backend.exported == 3 and backend.connections == 1 == receiver.connections
    headers = receiver.requests[0].headers
    assert (headers["content-encoding"], headers["x-tenant"]) == ("gzip", "7")
    assert headers["content-type"] == "application/x-protobuf"
    assert headers["user-agent"].startswith("asynclog/")


async def test_httpx_client_reads_refusals_and_retry_after(receiver: Receiver) -> None:
    receiver.plan = [
        (503, {"Retry-After": "0"}, b""),
        (400, {"Content-Type": "text/plain"}, b"bad batch"),
    ]
    backend = OTLPBackend(
        OTLPConfig(endpoint=receiver.url, http_client="httpx", retry_backoff=0.01)
    )
    await backend.open()
    with pytest.raises(ExportError) as caught:
        await backend.write_batch([entry("refused")])
    await backend.close()
    assert (caught.value.status, caught.value.retryable) == (400, False)
    assert str(caught.value).endswith("refused: 400 Status400: bad batch")
    assert backend.retries == 1 and backend.refused == 1
