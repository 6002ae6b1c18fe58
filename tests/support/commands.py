"""The ``allocator`` command run as a user runs it: a real subprocess."""

from __future__ import annotations

import subprocess
import sys


def run(*args, cwd=None, timeout: float = 600) -> subprocess.CompletedProcess:
    """``python -m allocator ARGS`` (each argument as text), its output captured."""
    return subprocess.run([sys.executable, "-m", "allocator", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout)
