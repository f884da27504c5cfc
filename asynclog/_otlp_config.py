"""`OTLPConfig`: the settings of the OTLP/HTTP backend."""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal
from urllib.parse import SplitResult, urlsplit

from . import _otlp_env
from ._errors import ConfigError
from ._levels import Level
from ._validate import (
    MAX_BACKOFF,
    MAX_CONCURRENCY,
    MAX_SECONDS,
    StrPath,
    int_at_least,
    number_at_least,
    optional_level,
    require_bool,
    require_choice,
    require_path,
    require_positive_number,
    shown,
)

DEFAULT_ENDPOINT = "http://127.0.0.1:4318/v1/logs"
DEFAULT_SERVICE_NAME = "asynclog"
DEFAULT_TIMEOUT = 10.0
COMPRESSIONS = ("none", "gzip")
HTTP_CLIENTS = ("auto", "builtin", "httpx")

RESERVED_HEADERS = frozenset(
    (
        "host",
        "content-type",
        "content-length",
        "content-encoding",
        "transfer-encoding",
        "connection",
    )
)
"""Headers the backend writes itself; `headers` may not set them."""

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
"""An HTTP header name (RFC 9110 `token`)."""

ResourceValue = str | bool | int | float | Sequence[str | bool | int | float]


def _owner_error(name: str, detail: str) -> ConfigError:
    return ConfigError(f"OTLPConfig.{name} {detail}", key=name)


def _frozen_mapping(name: str, value: object) -> Mapping[str, object]:
    if not isinstance(value, Mapping):
        raise _owner_error(name, f"must be a mapping, got {type(value).__name__}")
    return MappingProxyType(dict(value))


def _check_headers(headers: Mapping[str, object]) -> None:
    for key, value in headers.items():
        if not isinstance(key, str) or not _TOKEN.fullmatch(key):
            raise _owner_error("headers", f"has an invalid header name {shown(key)}")
        if key.lower() in RESERVED_HEADERS:
            raise _owner_error(
                "headers", f"may not set {shown(key)}: the backend writes that header itself"
            )
        # The value is never shown: headers usually carry credentials.
        if not isinstance(value, str):
            raise _owner_error(
                "headers", f"value of {shown(key)} must be a str, got {type(value).__name__}"
            )
        if any(char in value for char in "\r\n\x00") or not value.isascii():
            raise _owner_error(
                "headers", f"value of {shown(key)} must be ASCII without CR, LF or NUL"
            )


def _is_scalar(value: object) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return -(2**63) <= value < 2**63  # OTLP's int_value is an int64
    return isinstance(value, str | bool)


def _check_resource(resource: Mapping[str, object]) -> None:
    for key, value in resource.items():
        if not isinstance(key, str) or not key:
            raise _owner_error("resource", f"keys must be non-empty str, got {shown(key)}")
        ok = _is_scalar(value) or (
            isinstance(value, Sequence)
            and not isinstance(value, str | bytes)
            and all(_is_scalar(item) for item in value)
        )
        if not ok:
            raise _owner_error(
                "resource",
                f"value of {shown(key)} must be a str, bool, 64-bit int, finite float or a list "
                f"of them, got {shown(value)}",
            )


def _shown_url(url: str) -> str:
    """`url` for an error message: quoted, its credentials as `***`."""
    return shown(_otlp_env.hidden_password(url))


def split_endpoint(endpoint: object) -> SplitResult:
    """The parsed endpoint URL, or a `ConfigError` saying what is wrong with it."""
    shape = "a URL like 'http://127.0.0.1:4318/v1/logs'"
    if not isinstance(endpoint, str) or not endpoint:
        raise _owner_error("endpoint", f"must be {shape}, got {shown(endpoint)}")
    try:
        parts = urlsplit(endpoint)
        port = parts.port
    except ValueError as exc:
        raise _owner_error(
            "endpoint", f"is not a valid URL ({exc}): {_shown_url(endpoint)}"
        ) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _owner_error(
            "endpoint", f"must be {shape} (http or https), got {_shown_url(endpoint)}"
        )
    if parts.username is not None or parts.password is not None:
        raise _owner_error(
            "endpoint", "may not hold credentials: give them in headers (e.g. 'Authorization')"
        )
    if not endpoint.isascii():
        raise _owner_error(
            "endpoint",
            f"must be ASCII (punycode the host, percent-encode the path): {_shown_url(endpoint)}",
        )
    if parts.fragment or any(char in endpoint for char in " \r\n\t"):
        raise _owner_error(
            "endpoint", f"may not have a fragment or whitespace: {_shown_url(endpoint)}"
        )
    if port == 0:
        raise _owner_error("endpoint", f"has port 0: {_shown_url(endpoint)}")
    return parts


@dataclass(frozen=True, slots=True, repr=False)
class OTLPConfig:
    """Settings of the OTLP backend: log records sent as OTLP/HTTP protobuf
    (`ExportLogsServiceRequest`) to an OpenTelemetry collector. Needs the `otlp` extra:
    `pip install 'asynclog[otlp]'`. See docs/otlp.md."""

    endpoint: str | None = None
    """The full URL requests are POSTed to, `/v1/logs` included (a URL without any path gets
    `/v1/logs`). `https://` uses TLS. None: `OTEL_EXPORTER_OTLP_LOGS_ENDPOINT` (as it is),
    else `OTEL_EXPORTER_OTLP_ENDPOINT` + `/v1/logs`, else `http://127.0.0.1:4318/v1/logs`."""
    headers: Mapping[str, str] | None = None
    """Extra request headers, e.g. `{"Authorization": "Bearer ..."}`. Their values never
    appear in reprs or errors. None: `OTEL_EXPORTER_OTLP_LOGS_HEADERS`, else
    `OTEL_EXPORTER_OTLP_HEADERS` (`k=v,k2=v2`, percent-decoded), else none."""
    resource: Mapping[str, ResourceValue] = field(default_factory=lambda: MappingProxyType({}))
    """The resource attributes of every request, over those of `OTEL_RESOURCE_ATTRIBUTES`
    and `OTEL_SERVICE_NAME`; `service.name` is `"asynclog"` when none of them gives it."""
    compression: Literal["none", "gzip"] | None = None
    """`"gzip"`: compress request bodies (`Content-Encoding: gzip`). None: the
    `_COMPRESSION` variables, else `"none"`."""
    timeout: float | None = None
    """Seconds one HTTP request (connect, send, response) may take. None: the `_TIMEOUT`
    variables (milliseconds), else 10."""
    max_retry_time: float = 30.0
    """Seconds one batch may spend in retries of 429/502/503/504 responses and connection
    failures, across the manager's retries of it; 0: no retries inside the backend."""
    retry_backoff: float = 0.5
    """Seconds before the first retry (unless the response says `Retry-After`); doubled for
    each further one, at most 8 s, with jitter."""
    ca_file: StrPath | None = None
    """https: the CA bundle (PEM) to verify the collector with. None: the `_CERTIFICATE`
    variables, else the system's CAs."""
    cert_file: StrPath | None = None
    """https: a client certificate (PEM) for mutual TLS. None: the `_CLIENT_CERTIFICATE`
    variables, else none."""
    key_file: StrPath | None = None
    """https: the client certificate's private key, if not in `cert_file`. None: the
    `_CLIENT_KEY` variables, else none."""
    verify_tls: bool = True
    """https: verify the collector's certificate and host name. False only for tests."""
    concurrency: int = 1
    """Batches in flight at once (1 to 64), each request on its own kept-alive connection:
    more than 1 raises throughput when the round trip dominates, and gives up the order of
    the records across batches (docs/otlp.md)."""
    proxy: str | None = None
    """The HTTP proxy requests go through (`http://[user:password@]host:port`); `""`: none.
    None: by `HTTPS_PROXY` (https endpoint) or `HTTP_PROXY` (http), lower-case forms first,
    then `ALL_PROXY`, unless `NO_PROXY` names the endpoint's host. A proxy is spoken to by
    httpx (the `otlp` extra); without one the built-in client sends (docs/otlp.md)."""
    http_client: Literal["auto", "builtin", "httpx"] = "auto"
    """Which HTTP client sends: `"auto"` is httpx when a proxy applies, else the built-in one;
    `"builtin"` refuses a proxy; `"httpx"` always uses httpx."""
    level: Level | int | str | None = None
    """This backend's own minimum level (with several backends); None: the manager's level."""
    name: str | None = None
    """The backend's name in the stats; default `"otlp"`."""

    def __post_init__(self) -> None:
        sources = self._fill_from_environment(os.environ)
        try:
            self._check()
        except ConfigError as exc:
            variable = sources.get(exc.key or "")
            if variable is None:
                raise
            detail = f"{exc} (set by the environment variable {variable})"
            raise ConfigError(detail, exc.key) from None
        if self.proxy is None:
            object.__setattr__(self, "proxy", _otlp_env.proxy_for(str(self.endpoint), os.environ))
        self._check_proxy()

    def _check(self) -> None:
        owner = "OTLPConfig"
        split_endpoint(self.endpoint)
        headers = _frozen_mapping("headers", self.headers)
        _check_headers(headers)
        object.__setattr__(self, "headers", headers)
        resource = _frozen_mapping("resource", self.resource)
        _check_resource(resource)
        object.__setattr__(self, "resource", resource)
        require_choice(owner, "compression", self.compression, COMPRESSIONS)
        require_positive_number(owner, "timeout", self.timeout, MAX_SECONDS)
        require_choice(owner, "http_client", self.http_client, HTTP_CLIENTS)
        number_at_least(owner, "max_retry_time", self.max_retry_time, 0, MAX_SECONDS)
        number_at_least(owner, "retry_backoff", self.retry_backoff, 0, MAX_BACKOFF)
        for name in ("ca_file", "cert_file", "key_file"):
            value = getattr(self, name)
            if value is not None:
                require_path(owner, name, value)
        if self.key_file is not None and self.cert_file is None:
            raise _owner_error("key_file", "needs cert_file")
        require_bool(owner, "verify_tls", self.verify_tls)
        int_at_least(owner, "concurrency", self.concurrency, 1, MAX_CONCURRENCY)
        optional_level(owner, "level", self.level)
        if self.name is not None and (not isinstance(self.name, str) or not self.name):
            raise _owner_error("name", f"must be a non-empty str or None, got {shown(self.name)}")

    def _fill_from_environment(self, env: Mapping[str, str]) -> dict[str, str]:
        """Each field left None (and the resource) from the OTEL_* variables, else its
        default; the proxy from the proxy variables. Read here, once: the config says what
        the backend will do. Returns the variable each field was read from."""
        if self.endpoint is None:
            _otlp_env.protocol(env)
        readers: dict[str, tuple[str, Callable[[], object]]] = {
            "endpoint": ("ENDPOINT", lambda: _otlp_env.endpoint(env) or DEFAULT_ENDPOINT),
            "headers": ("HEADERS", lambda: _otlp_env.headers(env) or {}),
            "compression": ("COMPRESSION", lambda: _otlp_env.compression(env) or "none"),
            "timeout": ("TIMEOUT", lambda: _otlp_env.timeout(env) or DEFAULT_TIMEOUT),
            "ca_file": ("CERTIFICATE", lambda: _otlp_env.path(env, "CERTIFICATE")),
            "cert_file": ("CLIENT_CERTIFICATE", lambda: _otlp_env.path(env, "CLIENT_CERTIFICATE")),
            "key_file": ("CLIENT_KEY", lambda: _otlp_env.path(env, "CLIENT_KEY")),
        }
        sources: dict[str, str] = {}
        for name, (suffix, read) in readers.items():
            if getattr(self, name) is None:  # not given: the environment's, else the default
                object.__setattr__(self, name, read())
                found = _otlp_env.lookup(env, suffix)
                if found is not None:
                    sources[name] = found[0]
        resource = _frozen_mapping("resource", self.resource)
        merged = {"service.name": DEFAULT_SERVICE_NAME, **_otlp_env.resource(env), **resource}
        object.__setattr__(self, "resource", merged)
        return sources

    def _check_proxy(self) -> None:
        proxy = self.proxy
        if not isinstance(proxy, str):
            raise _owner_error("proxy", f"must be a URL, '' or None, got {shown(proxy)}")
        if not proxy:
            return
        try:
            parts = urlsplit(proxy)
            parts.port  # noqa: B018 - reading it checks it
        except ValueError as exc:
            raise _owner_error("proxy", f"is not a valid URL ({exc})") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            shown_proxy = shown(_otlp_env.hidden_password(proxy))
            raise _owner_error("proxy", f"must be an http:// or https:// URL, got {shown_proxy}")
        if self.http_client == "builtin":
            raise _owner_error(
                "http_client", "'builtin' cannot use a proxy: use 'auto' or 'httpx', or proxy=''"
            )

    @property
    def url(self) -> SplitResult:
        """The parsed endpoint."""
        return split_endpoint(self.endpoint)

    def __repr__(self) -> str:
        parts = []
        for item in dataclasses.fields(self):
            value = getattr(self, item.name)
            if item.name == "headers":
                text = "{" + ", ".join(f"{key!r}: '***'" for key in value) + "}"
            elif item.name == "proxy" and value:
                text = repr(_otlp_env.hidden_password(value))
            elif isinstance(value, MappingProxyType):
                text = repr(dict(value))
            else:
                text = repr(value)
            parts.append(f"{item.name}={text}")
        return f"OTLPConfig({', '.join(parts)})"
