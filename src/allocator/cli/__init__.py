"""The command line, one module per group of commands; :func:`main` is the ``allocator`` program."""

from __future__ import annotations

import sys

from allocator.cli import plans, export, data, assign, manage, whatif, service  # noqa: F401  isort: skip (the help's order)
from allocator.cli.common import app, err, out
from allocator.cli.whatif import parse_vary
from allocator.errors import AllocatorError


def main() -> None:
    """Entry point: run the app; any allocator error becomes a message, never a traceback."""
    try:
        app()
    except AllocatorError as error:
        err.print(f"[red]error:[/red] {error}")
        sys.exit(2)


__all__ = ["app", "err", "main", "out", "parse_vary"]
