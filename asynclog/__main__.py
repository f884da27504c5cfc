"""`python -m asynclog <command>`; today the one command is `demo`."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the command."""
    parser = argparse.ArgumentParser(prog="asynclog", description="asyncio-native logging")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("demo", help="100 tasks x 1000 entries into logs/app.log and logs/app.db")
    args = parser.parse_args(argv)
    if args.command == "demo":
        from ._demo import demo

        demo()
    return 0


if __name__ == "__main__":
    sys.exit(main())
