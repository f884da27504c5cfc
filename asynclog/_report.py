"""Failure reports on stderr: the first failure of a burst in full, the rest summed up."""

from __future__ import annotations

import sys


class BurstReporter:
    """Prints the first failure of each kind, then stays quiet until that kind succeeds again."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._suppressed: dict[str, int] = {}

    def failure(self, kind: str, detail: str) -> None:
        """Report a failure; only the first one of a burst is printed in full."""
        if kind in self._suppressed:
            self._suppressed[kind] += 1
            return
        self._suppressed[kind] = 0
        _print(f"asynclog[{self._name}]: {kind} failed: {detail}")

    def success(self, kind: str) -> None:
        """End the burst of `kind`, printing how many failures were not shown."""
        if self._suppressed:
            hidden = self._suppressed.pop(kind, None)
            if hidden:
                _print(
                    f"asynclog[{self._name}]: {kind} recovered; {hidden} more failures not shown"
                )

    def flush(self) -> None:
        """Close every open burst (at shutdown), saying how many failures were not shown."""
        for kind, hidden in list(self._suppressed.items()):
            if hidden:
                _print(f"asynclog[{self._name}]: {hidden} more {kind} failures not shown")
        self._suppressed.clear()


def warn(detail: str, backend: str) -> None:
    """`detail` on stderr, as `asynclog[backend]: detail` (nothing if stderr is gone)."""
    _print(f"asynclog[{backend}]: {detail}")


def _print(line: str) -> None:
    try:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
    except (OSError, ValueError, AttributeError):
        pass  # stderr closed, or None (pythonw, some daemons): nowhere left to report
