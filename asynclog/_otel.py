"""OpenTelemetry trace context at the call (`Config(otel_context=True)`, the default).

When a span is current where an entry is logged, the entry carries its ids as the fields
`trace_id` (32 lowercase hex digits), `span_id` (16) and `trace_flags` (an int). asynclog never
imports OpenTelemetry itself: a manager captures only once the application has imported
`opentelemetry.trace` (no span can be current before that), so where OTel is absent, or
installed and unused, a call costs what it did without this module.

An import after a manager was made is noticed by an import hook (`_ImportWatch`, on
`sys.meta_path`, installed only when `opentelemetry.trace` can be imported but was not yet):
it tells every watching `Intake` the moment the import begins, so the first span's entries
already carry the ids. A check from the worker (or at the next refresh) would miss the entries
logged between the import and that check, and sync mode has no worker.
"""

from __future__ import annotations

import importlib.util
import sys
import threading
import weakref
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, Protocol

TRACE_MODULE = "opentelemetry.trace"
"""The module whose import means a span may be current."""
TRACE_KEYS = ("trace_id", "span_id", "trace_flags")
"""The reserved field names of the trace context (every formatter and backend reads these)."""

_last: tuple[object, Mapping[str, Any]] = (object(), MappingProxyType({}))
"""The last span context read and its fields: the hex text is made once per span, not per
call (a tuple, replaced whole: threads read it without a lock)."""


def trace_imported() -> bool:
    """Whether the application has imported (or is importing) `opentelemetry.trace`."""
    return TRACE_MODULE in sys.modules


def current_trace_fields() -> Mapping[str, Any] | None:
    """The fields of the span current in this context; None when no span is current, its
    context is invalid, or OpenTelemetry is not (yet fully) imported. Never raises: a log call
    must not fail because of a tracer."""
    global _last
    module = sys.modules.get(TRACE_MODULE)
    if module is None:
        return None
    try:
        span_context = module.get_current_span().get_span_context()
        last = _last
        if last[0] is span_context:
            return last[1]
        if not span_context.is_valid:
            return None
        fields = MappingProxyType(
            {
                "trace_id": format(span_context.trace_id, "032x"),
                "span_id": format(span_context.span_id, "016x"),
                "trace_flags": int(span_context.trace_flags),
            }
        )
    except Exception:  # a module half imported, a tracer of an unexpected shape
        return None
    _last = (span_context, fields)
    return fields


class Watcher(Protocol):
    """What `watch` tells of the import: `Intake` implements it."""

    def trace_imported(self) -> None: ...


_watchers: weakref.WeakSet[Any] = weakref.WeakSet()
_lock = threading.Lock()
_hook: _ImportWatch | None = None
_importable: bool | None = None


class _ImportWatch:
    """A finder that finds nothing: it only notices that `opentelemetry.trace` is being
    imported, and tells the watchers. It stays on `sys.meta_path` once installed (taking it
    out while the import system walks the list would skip the next finder); after the import
    it costs one comparison per module imported for the first time."""

    def __init__(self, notify: Callable[[], None]) -> None:
        self._notify = notify

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> None:
        if fullname == TRACE_MODULE:
            self._notify()

    def __repr__(self) -> str:
        return "<asynclog: notices the import of opentelemetry.trace>"


def watch(watcher: Watcher) -> None:
    """Call `watcher.trace_imported()` when `opentelemetry.trace` gets imported (the caller
    checked `trace_imported()` first). Nothing is installed when OpenTelemetry's API is not
    installed. Weak: a watcher that is gone is forgotten."""
    global _hook, _importable
    with _lock:
        if _importable is None:
            _importable = _findable(TRACE_MODULE)
        if not _importable:
            return
        _watchers.add(watcher)
        if _hook is None:
            _hook = _ImportWatch(_imported)
            sys.meta_path.insert(0, _hook)
    if trace_imported():  # it came in meanwhile
        _imported()


def _findable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _imported() -> None:
    with _lock:
        watchers = list(_watchers)
        _watchers.clear()
    for watcher in watchers:
        watcher.trace_imported()

