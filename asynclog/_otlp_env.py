"""The standard OpenTelemetry environment variables `OTLPConfig` reads for the fields it was
not given, and the proxy variables (`HTTPS_PROXY`, `HTTP_PROXY`, `NO_PROXY`).

Each function takes the environment as a mapping (`os.environ` at `OTLPConfig`
construction) and raises a `ConfigError` naming the variable and its value when the value
is malformed. An empty value counts as unset, as the OpenTelemetry spec says.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import unquote, urlsplit

from ._errors import ConfigError
from ._validate import shown

GENERIC = "OTEL_EXPORTER_OTLP_"
LOGS = "OTEL_EXPORTER_OTLP_LOGS_"
SUPPORTED_PROTOCOL = "http/protobuf"
KNOWN_PROTOCOLS = ("grpc", "http/protobuf", "http/json")
LOGS_PATH = "v1/logs"

_MILLISECONDS = re.compile(r"\s*\d{1,12}\s*")
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
"""An HTTP header name (RFC 9110 `token`)."""


def env_error(variable: str, value: str, detail: str, *, secret: bool = False) -> ConfigError:
    """`OTLPConfig: environment variable X=<value> <detail>`; a secret's value is not shown."""
    text = "(value hidden)" if secret else shown(value)
    return ConfigError(f"OTLPConfig: environment variable {variable}={text} {detail}")


def lookup(env: Mapping[str, str], suffix: str) -> tuple[str, str] | None:
    """`(variable, value)` of the logs-specific variable if set, else of the generic one."""
    for prefix in (LOGS, GENERIC):
        value = env.get(prefix + suffix, "").strip()
        if value:
            return prefix + suffix, value
    return None


def endpoint(env: Mapping[str, str]) -> str | None:
    """The logs URL: `OTEL_EXPORTER_OTLP_LOGS_ENDPOINT` as it is (a URL without a path gets
    `/`), or `OTEL_EXPORTER_OTLP_ENDPOINT` with `v1/logs` appended to its path."""
    found = lookup(env, "ENDPOINT")
    if found is None:
        return None
    variable, value = found
    try:
        parts = urlsplit(value)
    except ValueError as exc:
        raise env_error(variable, hidden_password(value), f"is not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise env_error(
            variable,
            hidden_password(value),
            "must be an http:// or https:// URL (OTLP/HTTP; gRPC is not supported)",
        )
    if variable.startswith(LOGS):
        path = parts.path or "/"
    else:
        path = parts.path if parts.path.endswith("/") else parts.path + "/"
        path += LOGS_PATH
    return parts._replace(path=path).geturl()


def protocol(env: Mapping[str, str]) -> None:
    """Refuse a `_PROTOCOL` other than `http/protobuf`, the one the backend speaks."""
    found = lookup(env, "PROTOCOL")
    if found is None:
        return
    variable, value = found
    if value == SUPPORTED_PROTOCOL:
        return
    if value in KNOWN_PROTOCOLS:
        detail = (
            f"is not supported: the OTLP backend speaks only {SUPPORTED_PROTOCOL} "
            "(every collector accepts it, on port 4318)"
        )
    else:
        detail = f"must be one of {', '.join(KNOWN_PROTOCOLS)} ({SUPPORTED_PROTOCOL} supported)"
    raise env_error(variable, value, detail)


def _pairs(variable: str, value: str, *, secret: bool) -> dict[str, str]:
    """`k=v,k2=v2` (W3C baggage without properties): keys and values percent-decoded and
    trimmed; a later duplicate key wins."""
    pairs: dict[str, str] = {}
    for item in value.split(","):
        if not item.strip():
            continue
        key, equals, raw = item.partition("=")
        try:
            key = unquote(key.strip(), errors="strict")
            pairs[key] = unquote(raw.strip(), errors="strict")
        except UnicodeDecodeError:
            raise env_error(
                variable, value, "has a percent-encoded part that is not UTF-8", secret=secret
            ) from None
        if not equals or not key:
            where = "" if secret else f" {shown(item.strip())}"
            raise env_error(
                variable, value, f"has an item{where} that is not key=value", secret=secret
            )
    return pairs


def headers(env: Mapping[str, str]) -> dict[str, str] | None:
    """The request headers: the logs-specific variable replaces the generic one entirely."""
    found = lookup(env, "HEADERS")
    if found is None:
        return None
    variable, value = found
    pairs = _pairs(variable, value, secret=True)
    # A bad name is not shown: a mangled item ("Authorization: Bearer ...=") holds the secret.
    if not all(_HEADER_NAME.fullmatch(name) for name in pairs):
        detail = "has an item whose name is not a valid header name (the form is name=value,...)"
        raise env_error(variable, value, detail, secret=True)
    return pairs


def timeout(env: Mapping[str, str]) -> float | None:
    """Seconds, from a whole number of milliseconds."""
    found = lookup(env, "TIMEOUT")
    if found is None:
        return None
    variable, value = found
    if not _MILLISECONDS.fullmatch(value) or int(value) == 0:
        raise env_error(variable, value, "must be a positive whole number of milliseconds")
    return int(value) / 1000


def compression(env: Mapping[str, str]) -> str | None:
    """`"gzip"` or `"none"`."""
    found = lookup(env, "COMPRESSION")
    if found is None:
        return None
    variable, value = found
    if value.lower() not in ("gzip", "none"):
        raise env_error(variable, value, "must be 'gzip' or 'none'")
    return value.lower()


def path(env: Mapping[str, str], suffix: str) -> str | None:
    """A file path (`CERTIFICATE`, `CLIENT_CERTIFICATE`, `CLIENT_KEY`), as given."""
    found = lookup(env, suffix)
    return None if found is None else found[1]


def resource(env: Mapping[str, str]) -> dict[str, str]:
    """`OTEL_RESOURCE_ATTRIBUTES`, then `OTEL_SERVICE_NAME` over its `service.name`."""
    attributes: dict[str, str] = {}
    value = env.get("OTEL_RESOURCE_ATTRIBUTES", "").strip()
    if value:
        attributes = _pairs("OTEL_RESOURCE_ATTRIBUTES", value, secret=False)
    service = env.get("OTEL_SERVICE_NAME", "").strip()
    if service:
        attributes["service.name"] = service
    return attributes


def proxy_for(url: str, env: Mapping[str, str]) -> str:
    """The proxy URL for requests to `url` by the proxy variables, or `""` for none.

    `https_proxy`/`HTTPS_PROXY` for an https URL, `http_proxy`/`HTTP_PROXY` for http (the
    lower-case form first, as curl and the standard library read them), `all_proxy` /
    `ALL_PROXY` for either; none when `no_proxy`/`NO_PROXY` names the host (a host name,
    a domain suffix, `.domain`, an IP address, or `*`)."""
    parts = urlsplit(url)
    proxies = _proxies(env)
    chosen = proxies.get(parts.scheme) or proxies.get("all")
    if chosen is None:
        return ""
    no_proxy = next(
        (env[name] for name in ("no_proxy", "NO_PROXY") if env.get(name, "").strip()), ""
    )
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if no_proxy and _bypassed(parts.hostname or "", port, no_proxy):
        return ""
    return _checked_proxy(*chosen)


def _proxies(env: Mapping[str, str]) -> dict[str, tuple[str, str]]:
    """By scheme (`https`, `http`, `all`): `(variable, value)`."""
    found: dict[str, tuple[str, str]] = {}
    # Under CGI a request's `Proxy:` header arrives as HTTP_PROXY (httpoxy): not trusted there.
    cgi = bool(env.get("REQUEST_METHOD"))
    for scheme in ("https", "http", "all"):
        for name in (f"{scheme}_proxy", f"{scheme.upper()}_PROXY"):
            if cgi and name == "HTTP_PROXY":
                continue
            value = env.get(name, "").strip()
            if value:
                found[scheme] = (name, value)
                break
    return found


def _bypassed(host: str, port: int, no_proxy: str) -> bool:
    host = host.lower().rstrip(".")
    for entry in no_proxy.split(","):
        entry = entry.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return True
        name, entry_port = entry, ""
        if entry.count(":") == 1 or (entry.startswith("[") and "]:" in entry):
            name, _, entry_port = entry.rpartition(":")
        if entry_port and entry_port != str(port):
            continue
        name = name.strip("[]").lstrip("*").rstrip(".")
        if name.startswith("."):
            if host.endswith(name) or host == name[1:]:
                return True
        elif host == name or host.endswith("." + name):
            return True
    return False


def _checked_proxy(variable: str, value: str) -> str:
    url = value if "://" in value else f"http://{value}"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - reading it checks it
    except ValueError as exc:
        raise env_error(variable, hidden_password(value), f"is not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise env_error(
            variable,
            hidden_password(value),
            "must be an http:// or https:// proxy URL (SOCKS is not supported)",
        )
    return url


def hidden_password(url: str) -> str:
    """`url` with the password of its user info as `***`, or the user name when it comes
    alone (a token, for some proxies): for reprs and errors."""
    try:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        user, password = parts.username, parts.password
    except ValueError:
        return _masked_user_info(url)
    if password is not None:
        return url.replace(f":{password}@", ":***@", 1)
    if user is not None:
        return url.replace(f"{user}@", "***@", 1)
    return url


def _masked_user_info(url: str) -> str:
    """An unparsable `url` with everything between `://` and its last `@` as `***`."""
    start = url.find("://") + 3 if "://" in url else 0
    at = url.rfind("@")
    return url if at < start else url[:start] + "***" + url[at:]
