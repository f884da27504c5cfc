"""OTLPConfig and the OpenTelemetry environment variables: each variable, each level of
precedence (argument > OTEL_EXPORTER_OTLP_LOGS_* > OTEL_EXPORTER_OTLP_* > default), malformed
values, and an exporter configured by the environment alone."""

from __future__ import annotations

import os
from typing import Any

import pytest

pytest.importorskip("opentelemetry.proto")

from asynclog import Config, ConfigError, LogManager, OTLPConfig
from asynclog.backends.otlp import OTLPBackend

from .test_otlp import Receiver, attributes

GENERIC = "OTEL_EXPORTER_OTLP_"
LOGS = "OTEL_EXPORTER_OTLP_LOGS_"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No OTEL_* or proxy variable of the machine's leaks into these tests."""
    for name in list(os.environ):
        if name.startswith("OTEL_") or name.lower().endswith("_proxy"):
            monkeypatch.delenv(name)


# -- defaults ----------------------------------------------------------------------------


def test_defaults_without_any_variable() -> None:
    config = OTLPConfig()
    assert config.endpoint == "http://127.0.0.1:4318/v1/logs"
    assert dict(config.headers or {}) == {}
    assert config.compression == "none"
    assert config.timeout == 10.0
    assert (config.ca_file, config.cert_file, config.key_file) == (None, None, None)
    assert dict(config.resource) == {"service.name": "asynclog"}
    assert config.proxy == ""


# -- endpoint ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("http://collector:4318", "http://collector:4318/v1/logs"),
        ("http://collector:4318/", "http://collector:4318/v1/logs"),
        ("https://collector.example/otlp", "https://collector.example/otlp/v1/logs"),
        ("https://collector.example/otlp/", "https://collector.example/otlp/v1/logs"),
    ],
)
def test_generic_endpoint_gets_v1_logs(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: str
) -> None:
    monkeypatch.setenv(GENERIC + "ENDPOINT", value)
    assert OTLPConfig().endpoint == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("http://collector:4318/custom/path", "http://collector:4318/custom/path"),
        ("http://collector:4318/v1/logs", "http://collector:4318/v1/logs"),
        ("http://collector:4318", "http://collector:4318/"),  # no path: the root, as is
    ],
)
def test_logs_endpoint_is_used_as_is(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: str
) -> None:
    monkeypatch.setenv(LOGS + "ENDPOINT", value)
    monkeypatch.setenv(GENERIC + "ENDPOINT", "http://generic:4318")
    assert OTLPConfig().endpoint == expected


def test_endpoint_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(GENERIC + "ENDPOINT", "http://generic:4318")
    assert OTLPConfig().endpoint == "http://generic:4318/v1/logs"
    monkeypatch.setenv(LOGS + "ENDPOINT", "http://logs:4318/v1/logs")
    assert OTLPConfig().endpoint == "http://logs:4318/v1/logs"
    assert OTLPConfig(endpoint="http://given:1/v1/logs").endpoint == "http://given:1/v1/logs"


def test_an_empty_variable_counts_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(LOGS + "ENDPOINT", "")
    monkeypatch.setenv(GENERIC + "ENDPOINT", "http://generic:4318")
    monkeypatch.setenv(LOGS + "TIMEOUT", "  ")
    assert OTLPConfig().endpoint == "http://generic:4318/v1/logs"
    assert OTLPConfig().timeout == 10.0


# -- headers -----------------------------------------------------------------------------


def test_headers_are_parsed_and_percent_decoded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        GENERIC + "HEADERS", "Authorization=Bearer%20abc%3D%3D , x-tenant = a%2Cb,,x-empty="
    )
    assert dict(OTLPConfig().headers or {}) == {
        "Authorization": "Bearer abc==",
        "x-tenant": "a,b",
        "x-empty": "",
    }


def test_headers_precedence_replaces_not_merges(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(GENERIC + "HEADERS", "x-generic=1,x-both=generic")
    assert dict(OTLPConfig().headers or {}) == {"x-generic": "1", "x-both": "generic"}
    monkeypatch.setenv(LOGS + "HEADERS", "x-both=logs")
    assert dict(OTLPConfig().headers or {}) == {"x-both": "logs"}
    assert dict(OTLPConfig(headers={"x-given": "2"}).headers or {}) == {"x-given": "2"}
    assert dict(OTLPConfig(headers={}).headers or {}) == {}


def test_header_values_from_the_environment_stay_out_of_reprs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(GENERIC + "HEADERS", "Authorization=Bearer%20s3cret")
    assert "s3cret" not in repr(OTLPConfig())


# -- timeout, compression, certificates -----------------------------------------------------


def test_timeout_is_milliseconds_with_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(GENERIC + "TIMEOUT", "2500")
    assert OTLPConfig().timeout == 2.5
    monkeypatch.setenv(LOGS + "TIMEOUT", "750")
    assert OTLPConfig().timeout == 0.75
    assert OTLPConfig(timeout=3).timeout == 3


def test_compression_with_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(GENERIC + "COMPRESSION", "gzip")
    assert OTLPConfig().compression == "gzip"
    monkeypatch.setenv(LOGS + "COMPRESSION", "none")
    assert OTLPConfig().compression == "none"
    monkeypatch.setenv(LOGS + "COMPRESSION", "GZIP")
    assert OTLPConfig().compression == "gzip"
    assert OTLPConfig(compression="none").compression == "none"


@pytest.mark.parametrize(
    ("suffix", "field"),
    [("CERTIFICATE", "ca_file"), ("CLIENT_CERTIFICATE", "cert_file")],
)
def test_certificate_files_with_precedence(
    monkeypatch: pytest.MonkeyPatch, suffix: str, field: str
) -> None:
    monkeypatch.setenv(GENERIC + suffix, "/etc/generic.pem")
    assert getattr(OTLPConfig(), field) == "/etc/generic.pem"
    monkeypatch.setenv(LOGS + suffix, "/etc/logs.pem")
    assert getattr(OTLPConfig(), field) == "/etc/logs.pem"
    assert getattr(OTLPConfig(**{field: "/given.pem"}), field) == "/given.pem"


def test_client_key_with_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(GENERIC + "CLIENT_CERTIFICATE", "/etc/client.pem")
    monkeypatch.setenv(GENERIC + "CLIENT_KEY", "/etc/generic.key")
    assert OTLPConfig().key_file == "/etc/generic.key"
    monkeypatch.setenv(LOGS + "CLIENT_KEY", "/etc/logs.key")
    assert OTLPConfig().key_file == "/etc/logs.key"
    assert OTLPConfig(key_file="/given.key").key_file == "/given.key"


def test_a_client_key_without_a_certificate_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(LOGS + "CLIENT_KEY", "/etc/logs.key")
    with pytest.raises(ConfigError) as caught:
        OTLPConfig()
    assert str(caught.value) == (
        "OTLPConfig.key_file needs cert_file (set by the environment variable "
        "OTEL_EXPORTER_OTLP_LOGS_CLIENT_KEY)"
    )


# -- protocol ----------------------------------------------------------------------------


def test_protocol_http_protobuf_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(GENERIC + "PROTOCOL", "grpc")
    monkeypatch.setenv(LOGS + "PROTOCOL", "http/protobuf")  # the logs-specific one wins
    assert OTLPConfig().endpoint == "http://127.0.0.1:4318/v1/logs"


@pytest.mark.parametrize("value", ["grpc", "http/json"])
def test_other_protocols_are_refused_by_name(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(GENERIC + "PROTOCOL", value)
    with pytest.raises(ConfigError) as caught:
        OTLPConfig()
    assert str(caught.value) == (
        f"OTLPConfig: environment variable OTEL_EXPORTER_OTLP_PROTOCOL='{value}' is not "
        "supported: the OTLP backend speaks only http/protobuf (every collector accepts it, on "
        "port 4318)"
    )


def test_protocol_is_not_read_when_the_endpoint_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(GENERIC + "PROTOCOL", "grpc")  # another exporter's, in the same process
    assert OTLPConfig(endpoint="http://given:4318/v1/logs").endpoint == "http://given:4318/v1/logs"


# -- resource ----------------------------------------------------------------------------


def test_resource_attributes_and_service_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "OTEL_RESOURCE_ATTRIBUTES",
        "service.name=from-attributes, deployment.environment=prod,team=a%20b%2Cc",
    )
    assert dict(OTLPConfig().resource) == {
        "service.name": "from-attributes",
        "deployment.environment": "prod",
        "team": "a b,c",
    }
    monkeypatch.setenv("OTEL_SERVICE_NAME", "checkout")  # wins over the attribute
    assert OTLPConfig().resource["service.name"] == "checkout"
    given = OTLPConfig(resource={"service.name": "given", "team": "z"}).resource
    assert dict(given) == {"service.name": "given", "deployment.environment": "prod", "team": "z"}


def test_service_name_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "billing")
    assert dict(OTLPConfig().resource) == {"service.name": "billing"}
    assert dict(OTLPConfig(resource={"region": "eu"}).resource) == {
        "service.name": "billing",
        "region": "eu",
    }


# -- malformed values --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        (
            GENERIC + "ENDPOINT",
            "collector:4318",
            "OTLPConfig: environment variable OTEL_EXPORTER_OTLP_ENDPOINT='collector:4318' must "
            "be an http:// or https:// URL (OTLP/HTTP; gRPC is not supported)",
        ),
        (
            LOGS + "ENDPOINT",
            "http://[::1",
            "OTLPConfig: environment variable OTEL_EXPORTER_OTLP_LOGS_ENDPOINT='http://[::1' is "
            "not a valid URL (Invalid IPv6 URL)",
        ),
        (
            GENERIC + "TIMEOUT",
            "10s",
            "OTLPConfig: environment variable OTEL_EXPORTER_OTLP_TIMEOUT='10s' must be a "
            "positive whole number of milliseconds",
        ),
        (
            LOGS + "TIMEOUT",
            "0",
            "OTLPConfig: environment variable OTEL_EXPORTER_OTLP_LOGS_TIMEOUT='0' must be a "
            "positive whole number of milliseconds",
        ),
        (
            GENERIC + "COMPRESSION",
            "zstd",
            "OTLPConfig: environment variable OTEL_EXPORTER_OTLP_COMPRESSION='zstd' must be "
            "'gzip' or 'none'",
        ),
        (
            GENERIC + "PROTOCOL",
            "thrift",
            "OTLPConfig: environment variable OTEL_EXPORTER_OTLP_PROTOCOL='thrift' must be one "
            "of grpc, http/protobuf, http/json (http/protobuf supported)",
        ),
        (
            "OTEL_RESOURCE_ATTRIBUTES",
            "team=a,broken",
            "OTLPConfig: environment variable OTEL_RESOURCE_ATTRIBUTES='team=a,broken' has an "
            "item 'broken' that is not key=value",
        ),
        (
            "OTEL_RESOURCE_ATTRIBUTES",
            "team=%FF",
            "OTLPConfig: environment variable OTEL_RESOURCE_ATTRIBUTES='team=%FF' has a "
            "percent-encoded part that is not UTF-8",
        ),
        (
            GENERIC + "HEADERS",
            "Authorization",
            "OTLPConfig: environment variable OTEL_EXPORTER_OTLP_HEADERS=(value hidden) has an "
            "item that is not key=value",
        ),
    ],
)
def test_malformed_values_name_the_variable_and_the_value(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as caught:
        OTLPConfig()
    assert str(caught.value) == message


def test_values_the_config_refuses_name_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(LOGS + "HEADERS", "bad name=x")
    with pytest.raises(ConfigError) as caught:
        OTLPConfig()
    assert str(caught.value) == (  # the name is not shown: it may hold a mangled secret
        "OTLPConfig: environment variable OTEL_EXPORTER_OTLP_LOGS_HEADERS=(value hidden) has an "
        "item whose name is not a valid header name (the form is name=value,...)"
    )
    monkeypatch.setenv(LOGS + "HEADERS", "Content-Type=text/plain")
    with pytest.raises(ConfigError, match=r"may not set 'Content-Type'.*LOGS_HEADERS\)$"):
        OTLPConfig()
    monkeypatch.setenv(GENERIC + "ENDPOINT", "http://b\u00fccher.example")
    with pytest.raises(ConfigError) as caught:
        OTLPConfig(headers={})
    assert str(caught.value) == (
        "OTLPConfig.endpoint must be ASCII (punycode the host, percent-encode the path): "
        "'http://b\u00fccher.example/v1/logs' (set by the environment variable "
        "OTEL_EXPORTER_OTLP_ENDPOINT)"
    )


def test_an_argument_error_does_not_blame_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(GENERIC + "TIMEOUT", "1000")
    with pytest.raises(ConfigError) as caught:
        OTLPConfig(timeout=-1)
    assert "environment" not in str(caught.value)


def test_a_malformed_variable_is_not_read_when_the_field_is_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(GENERIC + "TIMEOUT", "soon")
    monkeypatch.setenv(GENERIC + "COMPRESSION", "brotli")
    monkeypatch.setenv(GENERIC + "HEADERS", "junk")
    config = OTLPConfig(timeout=1, compression="gzip", headers={})
    assert (config.timeout, config.compression, dict(config.headers or {})) == (1, "gzip", {})


def test_from_dict_reads_the_environment_for_missing_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(GENERIC + "ENDPOINT", "http://generic:4318")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "from-env")
    config = Config.from_dict({"backends": [{"type": "otlp", "compression": "gzip"}]})
    (otlp,) = config.backends
    assert isinstance(otlp, OTLPConfig)
    assert (otlp.endpoint, otlp.compression) == ("http://generic:4318/v1/logs", "gzip")
    assert otlp.resource["service.name"] == "from-env"


# -- end to end --------------------------------------------------------------------------


async def test_the_environment_alone_configures_a_working_exporter(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    receiver = Receiver()
    await receiver.start()
    try:
        monkeypatch.setenv(GENERIC + "ENDPOINT", f"http://127.0.0.1:{receiver.port}")
        monkeypatch.setenv(LOGS + "HEADERS", "x-tenant=blue,Authorization=Bearer%20t0ken")
        monkeypatch.setenv(GENERIC + "COMPRESSION", "gzip")
        monkeypatch.setenv(GENERIC + "TIMEOUT", "5000")
        monkeypatch.setenv(GENERIC + "PROTOCOL", "http/protobuf")
        monkeypatch.setenv("OTEL_SERVICE_NAME", "env-service")
        monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=staging")
        async with LogManager(Config(backend="otlp", async_mode=True)) as lm:
            for number in range(3):
                await lm.info("from the environment", number=number)
        assert lm.get_stats().written == 3
    finally:
        await receiver.stop()
    (request,) = receiver.requests
    assert request.path == "/v1/logs"
    assert request.headers["x-tenant"] == "blue"
    assert request.headers["authorization"] == "Bearer t0ken"
    assert request.headers["content-encoding"] == "gzip"
    assert receiver.resources == [
        {"service.name": "env-service", "deployment.environment": "staging"}
    ]
    assert [record.body.string_value for _, record in receiver.records] == [
        "from the environment"
    ] * 3
    assert [attributes(record.attributes)["number"] for _, record in receiver.records] == [0, 1, 2]


def test_the_backend_reads_its_settings_from_the_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(LOGS + "ENDPOINT", "http://logs.example:4318/v1/logs")
    backend = OTLPBackend()
    assert backend.endpoint == "http://logs.example:4318/v1/logs"
    options: dict[str, Any] = {"endpoint": "http://other:1/v1/logs"}
    assert OTLPBackend(OTLPConfig(**options)).endpoint == "http://other:1/v1/logs"
