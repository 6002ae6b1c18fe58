"""The service's OpenAPI document as a file: ``api/openapi.json`` at the top of the repository.

The document is built from :func:`allocator.api.create_app` without starting it (no data
folder, no store, no worker) and written deterministically: keys sorted, two-space indent,
a final newline, so the same app always gives the same bytes and a diff shows only what
changed. ``tests/api/test_api_contract.py`` fails when the file differs from what a running
server serves at ``/openapi.json``.

Regenerate after changing a route or a schema::

    python -m allocator.api.openapi > api/openapi.json
    python -m allocator.api.openapi --check api/openapi.json   # exit 1 when it is stale
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from allocator.api.app import create_app
from allocator.api.settings import Settings

REGENERATE = "python -m allocator.api.openapi > api/openapi.json"


def document() -> dict:
    """The OpenAPI document the app serves at ``/openapi.json``.

    The settings are the defaults, not the ``ALLOCATOR_*`` environment: the document does not
    depend on them, and an export should not fail on a setting meant for a server.
    """
    return create_app(Settings.model_construct()).openapi()


def render(schema: dict) -> str:
    """``schema`` as the bytes of ``api/openapi.json``: sorted keys, indent 2, final newline."""
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Print the document (or write it with ``--out``); with ``--check FILE`` exit 1 when FILE differs."""
    parser = argparse.ArgumentParser(prog="python -m allocator.api.openapi", description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--out", type=Path, help="write the document to this file instead of printing it")
    group.add_argument("--check", type=Path, metavar="FILE",
                       help="compare FILE with the document; exit 1 (saying how to regenerate) when they differ")
    args = parser.parse_args(argv)
    text = render(document())
    if args.check is not None:
        found = args.check.read_text(encoding="utf-8") if args.check.is_file() else None
        if found == text:
            return 0
        what = "does not exist" if found is None else "differs from the app's OpenAPI document"
        print(f"{args.check} {what}; regenerate it with: {REGENERATE}", file=sys.stderr)
        return 1
    if args.out is not None:
        args.out.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
