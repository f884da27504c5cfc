"""The OTLP backend's HTTP client through httpx: used when a proxy applies (or
`OTLPConfig(http_client="httpx")`). Same contract as `otlp.HTTPClient`: one URL, one
kept-alive connection, `post()` raising `OSError`, `TimeoutError` or `HTTPProtocolError`.

httpx is imported here only, at `open()`: it comes with the `otlp` extra.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping
from typing import Any
from urllib.parse import SplitResult

import httpx

from ._otlp_http import CLOSE_TIMEOUT, MAX_RESPONSE_BYTES, HTTPProtocolError, HTTPResponse

_CONNECTED = "connection.connect_tcp.complete"


class HttpxClient:
    """POSTs to one URL through httpx (and its proxy, if any), one connection at a time.
    Not for concurrent use: the backend gives each request in flight a client of its own."""

    def __init__(
        self,
        url: SplitResult,
        headers: Mapping[str, str],
        *,
        timeout: float,
        ssl_context: ssl.SSLContext | None,
        proxy: str | None,
    ) -> None:
        self.url, self.headers = url, headers
        self.timeout = timeout
        self.ssl_context = ssl_context
        self.proxy = proxy or None
        self.target = url._replace(path=url.path or "/v1/logs", fragment="").geturl()
        self.connections = 0
        """Connections opened so far (to the proxy, when there is one)."""
        self._client: httpx.AsyncClient | None = None

    def copy(self, timeout: float) -> HttpxClient:
        """A client for the same URL and proxy, without a connection yet."""
        return HttpxClient(
            self.url,
            self.headers,
            timeout=timeout,
            ssl_context=self.ssl_context,
            proxy=self.proxy,
        )

    def _make_client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            headers=dict(self.headers),
            timeout=self.timeout,
            verify=self.ssl_context if self.ssl_context is not None else True,
            proxy=self.proxy,
            trust_env=False,  # OTLPConfig read the environment already
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
            follow_redirects=False,
        )

    async def _trace(self, event: str, info: Mapping[str, Any]) -> None:
        if event == _CONNECTED:
            self.connections += 1

    async def post(self, body: bytes) -> HTTPResponse:
        """Send `body`, return the response; raises `OSError`, `TimeoutError` (after
        `timeout` seconds in all) or `HTTPProtocolError`."""
        if self._client is None:
            self._client = self._make_client()
        try:
            async with asyncio.timeout(self.timeout):
                return await self._post(self._client, body)
        except httpx.TimeoutException as exc:
            raise TimeoutError(str(exc)) from exc
        except httpx.ProxyError as exc:
            raise ConnectionError(f"the proxy {self._proxy_shown()} refused: {exc}") from exc
        except httpx.TransportError as exc:
            raise ConnectionError(str(exc) or type(exc).__name__) from exc
        except httpx.HTTPError as exc:
            raise HTTPProtocolError(str(exc) or type(exc).__name__) from exc

    async def _post(self, client: httpx.AsyncClient, body: bytes) -> HTTPResponse:
        request = client.build_request(
            "POST", self.target, content=body, extensions={"trace": self._trace}
        )
        response = await client.send(request, stream=True)
        try:
            chunks: list[bytes] = []
            total = 0
            async for chunk in response.aiter_bytes():
                total += len(chunk)
                if total > MAX_RESPONSE_BYTES:
                    raise HTTPProtocolError(
                        f"the response body is over {MAX_RESPONSE_BYTES} bytes"
                    )
                chunks.append(chunk)
        finally:
            await response.aclose()
        headers = {
            name.lower(): ", ".join(response.headers.get_list(name))
            for name in response.headers.keys()  # noqa: SIM118 - a multi-dict's names
        }
        return HTTPResponse(response.status_code, response.reason_phrase, headers, b"".join(chunks))

    def _proxy_shown(self) -> str:
        from .._otlp_env import hidden_password

        return hidden_password(self.proxy or "")

    async def close(self) -> None:
        """Close the connection, waiting at most `CLOSE_TIMEOUT` for it."""
        client, self._client = self._client, None
        if client is None:
            return
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await client.aclose()
        except (OSError, TimeoutError, ssl.SSLError):
            pass
