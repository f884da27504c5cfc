"""The pytest plugin asynclog registers: the `asynclog_capture` fixture."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ._entry import LogEntry
from .testing import capture_logs


@pytest.fixture
def asynclog_capture() -> Iterator[list[LogEntry]]:
    """Every entry any `LogManager` accepts during the test, in call order."""
    with capture_logs() as entries:
        yield entries
