"""Helpers of the pde app tests."""

from __future__ import annotations

from polydiff.cli import main


def cli(*argv: str) -> int:
    """``polydiff pde ...`` in this process: its exit status, argument errors included."""
    try:
        return main(["pde", *map(str, argv)])
    except SystemExit as stop:  # argparse's errors exit 2 before a command runs
        return int(stop.code or 0)
