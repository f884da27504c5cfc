"""Review of issue 15's OTEL_*/proxy settings and the aiohttp integration: each test here
failed before the fix it names."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from aiohttp import web

import asynclog.aiohttp
from asynclog import Config, ConfigError, LogManager, OTLPConfig

from .conftest import heartbeat

ROOT = Path(__file__).resolve().parent.parent


def test_the_suite_ignores_the_machines_proxy_and_otel_variables(tmp_path: Path) -> None:
    """A CI machine with a proxy and OTEL_* settings in its environment runs the OTLP tests
    as a bare one does (tests/conftest.py clears those variables for every test)."""
    polluted = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "HTTP_PROXY": "http://127.0.0.1:9",
        "https_proxy": "http://127.0.0.1:9",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://10.255.255.1:4318",
        "OTEL_EXPORTER_OTLP_HEADERS": "x-machine=1",
        "OTEL_SERVICE_NAME": "ci",
    }
    tests = [
        "tests/test_otlp.py::test_config_defaults_and_repr_hides_header_values",
        "tests/test_otlp.py::test_http_response_framing",
    ]
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests],
        cwd=ROOT,
        env=polluted,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert "2 passed" in result.stdout


@pytest.mark.parametrize(
    "value", ["Authorization: Bearer s3cr3t-t0ken==", "api-key s3cr3t-t0ken=1"]
)
def test_a_mangled_header_from_the_environment_does_not_show_the_secret(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", value)
    with pytest.raises(ConfigError) as caught:
        OTLPConfig()
    assert "s3cr3t" not in str(caught.value)
    assert str(caught.value) == (
        "OTLPConfig: environment variable OTEL_EXPORTER_OTLP_HEADERS=(value hidden) has an item "
        "whose name is not a valid header name (the form is name=value,...)"
    )


@pytest.mark.parametrize(
    ("endpoint", "no_proxy", "proxied"),
    [
        ("https://collector/v1/logs", "collector:443", False),
        ("http://collector/v1/logs", "collector:80", False),
        ("https://collector/v1/logs", "collector:4318", True),
        ("https://collector:4318/v1/logs", "collector:4318", False),
    ],
)
def test_no_proxy_with_a_port_matches_the_schemes_default_port(
    monkeypatch: pytest.MonkeyPatch, endpoint: str, no_proxy: str, proxied: bool
) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://proxy:3128")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy:3128")
    monkeypatch.setenv("NO_PROXY", no_proxy)
    expected = "http://proxy:3128" if proxied else ""
    assert OTLPConfig(endpoint=endpoint).proxy == expected


def test_upper_case_http_proxy_is_ignored_under_cgi(monkeypatch: pytest.MonkeyPatch) -> None:
    """httpoxy: a CGI server turns a request's `Proxy:` header into HTTP_PROXY; with
    REQUEST_METHOD set it is not trusted (as Python's urllib and curl do), the other
    variables still are."""
    monkeypatch.setenv("REQUEST_METHOD", "GET")
    monkeypatch.setenv("HTTP_PROXY", "http://attacker:3128")
    assert OTLPConfig(endpoint="http://collector:4318/v1/logs").proxy == ""
    monkeypatch.setenv("http_proxy", "http://proxy:3128")
    assert OTLPConfig(endpoint="http://collector:4318/v1/logs").proxy == "http://proxy:3128"
    monkeypatch.delenv("REQUEST_METHOD")
    monkeypatch.delenv("http_proxy")
    assert OTLPConfig(endpoint="http://collector:4318/v1/logs").proxy == "http://attacker:3128"


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


async def test_the_error_line_of_a_failing_request_shows_the_raw_path() -> None:
    """The path of the "Error handling request" message is the one on the request line, not
    percent-decoded: a `%0d%0a` in it cannot forge lines in the stdlib handlers of
    `error_logger`."""
    errors = logging.getLogger("test_review15a.errors")
    errors.propagate = False
    records = _Records()
    errors.addHandler(records)

    async def boom(request: web.Request) -> web.Response:
        raise RuntimeError("boom")

    app = web.Application(middlewares=[asynclog.aiohttp.request_id_middleware(error_logger=errors)])
    app.router.add_get(r"/{tail:[\s\S]*}", boom)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        port = runner.addresses[0][1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"GET /a%0d%0aFORGED%1b[31m HTTP/1.1\r\nHost: x\r\nX-Request-ID: r-1\r\n"
            b"Connection: close\r\n\r\n"
        )
        answer = await reader.read()
        writer.close()
    finally:
        await runner.cleanup()
        errors.removeHandler(records)
    assert answer.startswith(b"HTTP/1.1 500 ")
    assert [record.getMessage() for record in records.records] == [
        "Error handling request GET /a%0d%0aFORGED%1b[31m"
    ]


async def test_the_gunicorn_example_takes_only_a_short_visible_request_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """examples/gunicorn_asgi.py is copied as it is: a client's X-Request-ID of any length
    (or with spaces) went into every entry of its request; it takes one as
    `asynclog.aiohttp.valid_request_id` does, else makes a new id."""
    import importlib.util
    import json
    import re

    import httpx

    monkeypatch.setenv("APP_LOG_FILE", str(tmp_path / "app.log"))
    spec = importlib.util.spec_from_file_location(
        "gunicorn_asgi_review", ROOT / "examples" / "gunicorn_asgi.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sent = ["abc-123", "x" * 201, "two words", ""]
    async with module.lifespan(module.app):
        transport = httpx.ASGITransport(app=module.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            answers = [
                (await client.get("/hello", headers={"X-Request-ID": value})).json()["request_id"]
                for value in sent
            ]
    assert answers[0] == "abc-123"
    assert all(re.fullmatch(r"[0-9a-f]{32}", answer) for answer in answers[1:]), answers
    logged = [json.loads(line)["fields"]["request_id"] for line in (tmp_path / "app.log").open()]
    assert logged == answers


def test_a_proxy_token_given_as_the_user_name_stays_out_of_reprs_and_errors(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Some proxies take a token as the user name alone (`http://TOKEN@proxy:3128`)."""
    config = OTLPConfig(proxy="http://t0ken-abc@proxy:3128")
    assert config.proxy == "http://t0ken-abc@proxy:3128"
    assert "t0ken" not in repr(config) and "proxy='http://***@proxy:3128'" in repr(config)
    monkeypatch.setenv("HTTP_PROXY", "socks5://t0ken-abc@proxy:1080")
    with pytest.raises(ConfigError) as caught:
        OTLPConfig()
    assert str(caught.value) == (
        "OTLPConfig: environment variable HTTP_PROXY='socks5://***@proxy:1080' must be an "
        "http:// or https:// proxy URL (SOCKS is not supported)"
    )


@pytest.mark.parametrize(
    ("endpoint", "message"),
    [
        (
            "ftp://user:s3cret@collector/",
            "OTLPConfig.endpoint must be a URL like 'http://127.0.0.1:4318/v1/logs' (http or "
            "https), got 'ftp://user:***@collector/'",
        ),
        (
            "http://user:s3cret@collector:99999/",
            "OTLPConfig.endpoint is not a valid URL (Port out of range 0-65535): "
            "'http://user:***@collector:99999/'",
        ),
        (
            "http://user:s3cret@[::1/v1/logs",
            "OTLPConfig.endpoint is not a valid URL (Invalid IPv6 URL): 'http://***@[::1/v1/logs'",
        ),
    ],
)
def test_credentials_in_a_bad_endpoint_stay_out_of_the_error(endpoint: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        OTLPConfig(endpoint=endpoint)
    assert str(caught.value) == message


def test_credentials_in_a_bad_endpoint_variable_stay_out_of_the_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "grpcs://user:s3cret@collector:4317")
    with pytest.raises(ConfigError) as caught:
        OTLPConfig()
    assert str(caught.value) == (
        "OTLPConfig: environment variable OTEL_EXPORTER_OTLP_ENDPOINT="
        "'grpcs://user:***@collector:4317' must be an http:// or https:// URL (OTLP/HTTP; gRPC "
        "is not supported)"
    )


@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_a_proxy_that_never_answers_does_not_hold_up_close_or_the_loop(scheme: str) -> None:
    """Guard (passed before the review): a proxy that accepts the connection and then says
    nothing (no response, no CONNECT answer) costs `close(timeout=1)` its deadline, no more,
    and the loop keeps running meanwhile; the entry is counted as abandoned."""
    held: list[asyncio.StreamWriter] = []
    connected = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        connected.set()

    proxy = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = proxy.sockets[0].getsockname()[1]
    config = OTLPConfig(
        endpoint=f"{scheme}://127.0.0.1:1/v1/logs", proxy=f"http://127.0.0.1:{port}", timeout=60
    )
    manager = LogManager(Config(async_mode=True, backend_config=config))
    await manager.start()
    await manager.info("into the void")
    await connected.wait()
    loop = asyncio.get_running_loop()
    async with heartbeat(0.05) as beats:
        started = loop.time()
        report = await manager.close(timeout=1)
        took = loop.time() - started
    for writer in held:
        writer.close()
    proxy.close()
    assert (report.written, report.abandoned, report.dropped) == (0, 1, 1)
    assert took < 30  # the request's own timeout is 60 s
    assert beats[0] >= 5
