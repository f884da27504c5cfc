"""`asynclog <command>` (also `python -m asynclog`): query, tail, stats and demo."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the command; returns the exit status."""
    from ._cli import run

    return run(argv)


if __name__ == "__main__":
    sys.exit(main())
