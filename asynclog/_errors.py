"""The exception hierarchy. Every error asynclog raises derives from `LogError`."""

from __future__ import annotations


class LogError(Exception):
    """Base class of every error asynclog raises."""


class ConfigError(LogError, ValueError):
    """A configuration value is invalid; the message names the field and the value.

    `key` is the name of the offending field (or key path, from `Config.from_dict`), when known.
    """

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


class QueueFullError(LogError):
    """The async queue stayed full for the whole `put_timeout`; the entry was dropped."""


class ManagerClosedError(LogError):
    """The manager is not accepting entries: it was never started, or it is closing or closed."""


class BackendWriteError(LogError):
    """A backend failed to write (sync mode raises it to the caller; the entry is counted)."""


class UnsupportedLoopError(LogError):
    """A backend or feature whose client library is asyncio-only was started under another
    event loop (trio)."""
