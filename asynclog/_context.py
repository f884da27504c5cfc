"""`contextualize`: fields that every entry logged in a block carries, through contextvars."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from types import MappingProxyType
from typing import Any

from ._freeze import frozen_mapping

CONTEXT: ContextVar[Mapping[str, Any] | None] = ContextVar("asynclog_context", default=None)
"""The fields of the innermost `contextualize` block, merged with the outer ones."""


@contextlib.contextmanager
def contextualize(**fields: Any) -> Iterator[Mapping[str, Any]]:
    """Within the block, every entry logged (also from tasks started inside it) carries
    `fields`. Blocks nest (inner values win); concurrent tasks never see each other's values,
    because each task runs in its own copy of the context.

    Precedence: fields given to the call win over context fields, which win over fields bound
    with `LogManager.bind`.
    """
    outer = CONTEXT.get()
    frozen = frozen_mapping(fields)
    merged = MappingProxyType({**outer, **frozen} if outer else frozen)
    token = CONTEXT.set(merged)
    try:
        yield merged
    finally:
        CONTEXT.reset(token)


def current_context() -> Mapping[str, Any]:
    """The context fields in effect here (empty outside any `contextualize` block)."""
    return CONTEXT.get() or MappingProxyType({})
