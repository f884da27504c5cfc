"""asynclog: asyncio-native logging that never stalls the loop and never loses what it accepted."""

from . import processors
from ._bound import BoundLogger, Logger, NoWait
from ._config import (
    Config,
    ConsoleConfig,
    FileConfig,
    OTLPConfig,
    PostgresConfig,
    Sink,
    SQLiteConfig,
    SyslogConfig,
)
from ._context import contextualize, current_context
from ._entry import Location, LogEntry
from ._errors import (
    BackendWriteError,
    ConfigError,
    LogError,
    ManagerClosedError,
    QueueFullError,
    UnsupportedLoopError,
)
from ._handlers import Handler
from ._json_shapes import json_formatter
from ._levels import Level
from ._loading import load_config
from ._manager import LogManager, get_logger
from ._processing import Processor
from ._signals import cancel_on_signals
from ._stats import CloseReport, LogStats
from ._threaded import ThreadedManager, run_in_thread
from ._version import __version__
from .backends import (
    Backend,
    ConsoleBackend,
    FileBackend,
    OTLPBackend,
    PostgresBackend,
    SQLiteBackend,
    SyslogBackend,
)
from .query import QueryError, query

__all__ = [
    "Backend",
    "BackendWriteError",
    "BoundLogger",
    "CloseReport",
    "Config",
    "ConfigError",
    "ConsoleBackend",
    "ConsoleConfig",
    "FileBackend",
    "FileConfig",
    "Handler",
    "Level",
    "Location",
    "LogEntry",
    "LogError",
    "LogManager",
    "LogStats",
    "Logger",
    "ManagerClosedError",
    "NoWait",
    "OTLPBackend",
    "OTLPConfig",
    "PostgresBackend",
    "PostgresConfig",
    "Processor",
    "QueryError",
    "QueueFullError",
    "SQLiteBackend",
    "SQLiteConfig",
    "Sink",
    "SyslogBackend",
    "SyslogConfig",
    "ThreadedManager",
    "UnsupportedLoopError",
    "__version__",
    "cancel_on_signals",
    "contextualize",
    "current_context",
    "get_logger",
    "json_formatter",
    "load_config",
    "processors",
    "query",
    "run_in_thread",
]

