"""Review of DirectLogger, LogEntries, the fork fix and quick_fields: each test here failed
before its fix."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

from asynclog import Config, LogManager
from asynclog.stdlib import AsyncLogHandler, DirectLogger

from .conftest import RecordingBackend, assert_settled


@pytest.fixture
def detached_name() -> Iterator[str]:
    """A logger name under `review18.` whose logger is removed from logging afterwards."""
    name = "review18.logger"
    yield name
    logging.Logger.manager.loggerDict.pop(name, None)


class TenantLogger(DirectLogger):
    def makeRecord(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record = super().makeRecord(*args, **kwargs)
        record.tenant = "t1"
        return record


class RenamingLogger(DirectLogger):
    def callHandlers(self, record: logging.LogRecord) -> None:
        record.msg = "renamed " + str(record.msg)
        super().callHandlers(record)


@pytest.mark.parametrize(
    ("logger_class", "expected"),
    [(TenantLogger, ("hello", {"tenant": "t1"})), (RenamingLogger, ("renamed hello", {}))],
)
async def test_a_direct_logger_subclass_overriding_a_record_method_gets_its_records(
    logger_class: type[DirectLogger], expected: tuple[str, dict[str, str]], detached_name: str
) -> None:
    log = logger_class(detached_name)
    log.propagate = False
    backend = RecordingBackend()
    async with LogManager(Config(backend=backend, async_mode=True)) as lm:
        log.addHandler(AsyncLogHandler(lm))
        log.warning("hello")
    assert_settled(lm.get_stats())
    assert [(e.message, dict(e.fields)) for e in backend.entries] == [expected]
