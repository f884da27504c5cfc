"""aiohttp on top of asynclog: a request id on every entry of a request, aiohttp's own
access line included.

    from aiohttp import web
    import asynclog.aiohttp

    app = web.Application(middlewares=[asynclog.aiohttp.request_id_middleware()])
    web.run_app(app, access_log_class=asynclog.aiohttp.AccessLogger)

`request_id_middleware()` runs each request inside `asynclog.contextualize(request_id=...)`
(the id from the `X-Request-ID` header, or a new one) and keeps those fields on the request.
aiohttp writes its access line after the middleware has returned, outside that block:
`AccessLogger` writes it inside the request's fields again, so the `aiohttp.access` record
(routed into asynclog by `asynclog.stdlib.install`) carries the same `request_id` as the
app's entries. An exception that escapes the handlers is logged by the middleware, inside the
block, and answered with a 500 (aiohttp's own "Error handling request" record would have no
request id).

This module needs aiohttp (`pip install 'asynclog[aiohttp]'`); `import asynclog` does not
import it.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

try:
    from aiohttp import web
    from aiohttp.web_log import AccessLogger as _AiohttpAccessLogger
except ImportError as exc:  # pragma: no cover - the extra is installed in the test suite
    raise ImportError("asynclog.aiohttp needs aiohttp: pip install 'asynclog[aiohttp]'") from exc

from ._context import contextualize

__all__ = [
    "MAX_REQUEST_ID",
    "AccessLogger",
    "new_request_id",
    "request_fields",
    "request_id",
    "request_id_middleware",
    "valid_request_id",
]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Middleware = Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]

MAX_REQUEST_ID = 200
"""The longest request id taken from a header; a longer one is replaced by a new one."""

_VISIBLE_ASCII = re.compile(r"[\x21-\x7e]+")

_FIELDS_KEY: Any = (
    web.RequestKey("asynclog_fields", dict)
    if hasattr(web, "RequestKey")  # aiohttp 3.14+; a str key before (3.14 warns about those)
    else "asynclog.aiohttp.fields"
)


def new_request_id() -> str:
    """A fresh request id: 32 lowercase hex characters (a random UUID)."""
    return uuid.uuid4().hex


def valid_request_id(value: str | None) -> bool:
    """Whether a client's id is taken as it is: 1 to `MAX_REQUEST_ID` visible ASCII characters
    (no spaces, no control characters), so that a header cannot forge lines or bloat them."""
    return (
        value is not None
        and len(value) <= MAX_REQUEST_ID
        and _VISIBLE_ASCII.fullmatch(value) is not None
    )


def request_fields(request: web.BaseRequest) -> Mapping[str, Any]:
    """The fields `request_id_middleware` bound for `request` (empty if it did not run)."""
    fields: Mapping[str, Any] = request.get(_FIELDS_KEY, {})
    return fields


def request_id(request: web.BaseRequest, field: str = "request_id") -> str | None:
    """The request id `request_id_middleware` gave `request`, or None if it did not run."""
    value = request_fields(request).get(field)
    return value if isinstance(value, str) else None


def request_id_middleware(
    *,
    header: str = "X-Request-ID",
    field: str = "request_id",
    make_id: Callable[[], str] = new_request_id,
    echo: bool = True,
    error_logger: logging.Logger | None = None,
) -> Middleware:
    """An aiohttp middleware (put it first in `middlewares`): each request runs inside
    `asynclog.contextualize(<field>=<id>)`, the id from `header` when the client sent a valid
    one (`valid_request_id`), else `make_id()`.

    - `echo`: the response carries the id in `header` too (unless it was sent already: a
      streamed response).
    - An exception that escapes the handler (not an `HTTPException`, which is a response) is
      logged with its traceback on `error_logger` (default `aiohttp.server`, the logger aiohttp
      itself would use) inside the request's context, with the path as sent (percent-encoded,
      so that it cannot break the line), and answered with a plain 500. When
      the response had begun already (a stream), no other answer is possible: the exception
      goes on to aiohttp, which closes the connection and logs it too (without the id).
    """
    if not isinstance(header, str) or not header:
        raise ValueError(f"header must be a non-empty str, got {header!r}")
    if not isinstance(field, str) or not field:
        raise ValueError(f"field must be a non-empty str, got {field!r}")
    if not callable(make_id):
        raise TypeError(f"make_id must be callable, got {make_id!r}")
    errors = error_logger if error_logger is not None else logging.getLogger("aiohttp.server")

    @web.middleware
    async def bind_request_id(request: web.Request, handler: Handler) -> web.StreamResponse:
        given = request.headers.get(header)
        identifier = given if given is not None and valid_request_id(given) else make_id()
        with contextualize(**{field: identifier}) as fields:
            request[_FIELDS_KEY] = fields
            try:
                response = await handler(request)
            except web.HTTPException as response_exc:
                _echo(response_exc, header, identifier, echo)
                raise
            except Exception:
                errors.exception(
                    "Error handling request %s %s", request.method, request.rel_url.raw_path
                )
                if request.writer.output_size > 0:
                    raise  # the response has begun: aiohttp closes the connection (and logs)
                raise web.HTTPInternalServerError(
                    headers={header: identifier} if echo else None
                ) from None
        _echo(response, header, identifier, echo)
        return response

    return bind_request_id


def _echo(response: web.StreamResponse, header: str, identifier: str, echo: bool) -> None:
    if echo and not response.prepared:
        response.headers[header] = identifier


class AccessLogger(_AiohttpAccessLogger):
    """aiohttp's `AccessLogger` (same format, same `extra`), writing each line inside the
    fields `request_id_middleware` bound for its request: pass it as `access_log_class` to
    `web.run_app`, `web.AppRunner` or `Application.make_handler`."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        fields = request_fields(request)
        if not fields:  # the middleware never ran (a request aiohttp refused before the app)
            super().log(request, response, time)
            return
        with contextualize(**fields):
            super().log(request, response, time)
