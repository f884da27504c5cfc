"""What the OTLP backend's two HTTP clients share: the response, the protocol error, the
limits, and the `PostClient` protocol both implement (`otlp.HTTPClient`, and
`_otlp_httpx.HttpxClient` through a proxy)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple, Protocol

MAX_RESPONSE_BYTES = 4 * 1024 * 1024
"""A response body longer than this is a protocol error (a collector answers a few bytes)."""
CLOSE_TIMEOUT = 1.0
"""Seconds `close()` waits for the connection (a TLS goodbye) to finish closing."""


class HTTPProtocolError(Exception):
    """The peer's answer is not HTTP as the client reads it, or goes over a limit."""


class HTTPResponse(NamedTuple):
    status: int
    reason: str
    headers: Mapping[str, str]
    """Lower-case names; repeated headers joined with `", "`."""
    body: bytes


class PostClient(Protocol):
    """What the backend needs of an HTTP client: `HTTPClient`, or `HttpxClient` (through a
    proxy)."""

    timeout: float
    connections: int

    def copy(self, timeout: float) -> PostClient: ...

    async def post(self, body: bytes) -> HTTPResponse: ...

    async def close(self) -> None: ...
