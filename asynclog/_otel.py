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

import importlib.machinery
import re
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
        fields = MappingProxyType(  # shared by the span's entries: read-only
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
        if _importable is None:  # once per process: it looks at the disk
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
    """Whether the module `name` (a submodule of a top-level package) could be imported,
    found without importing anything (not even the namespace package `opentelemetry`). A
    package blocked with `sys.modules[package] = None` counts as absent."""
    package, _, _ = name.partition(".")
    try:
        if package in sys.modules:
            module = sys.modules[package]
            locations = getattr(module, "__path__", None) if module is not None else None
        else:
            spec = importlib.machinery.PathFinder.find_spec(package)
            locations = None if spec is None else spec.submodule_search_locations
        if not locations:
            return False
        return importlib.machinery.PathFinder.find_spec(name, list(locations)) is not None
    except (ImportError, ValueError, OSError):
        return False


def _imported() -> None:
    with _lock:
        watchers = list(_watchers)
        _watchers.clear()
    for watcher in watchers:
        watcher.trace_imported()



# -- the trace fields in a backend's own places (columns, OTLP's record fields) --------------

_HEX = re.compile(r"[0-9a-fA-F]+")

TraceValues = tuple[str | None, str | None, int | None]
"""`trace_id` and `span_id` as lowercase hex, `trace_flags` as an int: None where absent or
not valid."""


def gives_trace(*sources: Mapping[str, Any] | None) -> bool:
    """Whether the user gives any trace key in these fields (or in their `extra=`): then the
    captured trace context is left out whole, so one entry never mixes two traces' ids."""
    for source in sources:
        if not source:
            continue
        extra = source.get("extra")
        for mapping in (source, extra if isinstance(extra, Mapping) else None):
            if mapping and any(key in mapping for key in TRACE_KEYS):
                return True
    return False


def has_trace(fields: Mapping[str, Any]) -> bool:
    """Whether `fields` holds any of the reserved trace keys."""
    return "trace_id" in fields or "span_id" in fields or "trace_flags" in fields


def id_hex(value: object, size: int) -> str | None:
    """A W3C trace id (`size` 16) or span id (8) as lowercase hex, from a hex str of
    `2 * size` digits (either case), an int or `size` bytes; None if it is not one, or all
    zero (invalid)."""
    text: str | None = None
    if isinstance(value, str):
        if len(value) == 2 * size and _HEX.fullmatch(value):
            text = value.lower()
    elif isinstance(value, bytes):
        text = value.hex() if len(value) == size else None
    elif isinstance(value, int) and not isinstance(value, bool) and 0 < value < 1 << (8 * size):
        text = format(value, f"0{2 * size}x")
    if text is None or text.count("0") == len(text):
        return None
    return text


def flags_of(value: object) -> int | None:
    """W3C trace flags (0..255) from an int or a hex str of two digits; None if neither."""
    if isinstance(value, int) and not isinstance(value, bool):
        return int(value) if 0 <= value <= 255 else None
    if isinstance(value, str) and len(value) == 2 and _HEX.fullmatch(value):
        return int(value, 16)
    return None


def split_trace(fields: Mapping[str, Any]) -> tuple[Mapping[str, Any], TraceValues]:
    """The valid trace fields of `fields` as `TraceValues`, and the other fields (an invalid
    one stays among them, as any field)."""
    trace_id = id_hex(fields.get("trace_id"), 16)
    span_id = id_hex(fields.get("span_id"), 8)
    flags = flags_of(fields.get("trace_flags"))
    taken = [
        key
        for key, value in zip(TRACE_KEYS, (trace_id, span_id, flags), strict=True)
        if value is not None
    ]
    if not taken:
        return fields, (None, None, None)
    rest = {key: value for key, value in fields.items() if key not in taken}
    return rest, (trace_id, span_id, flags)


def joined_trace(fields: Mapping[str, Any], values: TraceValues) -> Mapping[str, Any]:
    """`split_trace` undone: the trace values read back from their columns, in front of the
    other fields (where the capture puts them)."""
    trace = {key: value for key, value in zip(TRACE_KEYS, values, strict=True) if value is not None}
    if not trace:
        return fields
    return MappingProxyType({**trace, **fields})
