"""Service commands: serve, keys, regions."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from allocator.cli.common import (
    app,
    err,
    fail_input,
    keys_app,
    out,
    regions_app,
)
from allocator.errors import InputError


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8000,
    workers: Annotated[int | None, typer.Option(min=1, help="solve worker processes (ALLOCATOR_WORKERS)")] = None,
) -> None:
    """Run the HTTP service; settings come from ALLOCATOR_* variables (docs/service.md)."""
    import logging

    import uvicorn

    from allocator.api import create_app

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = _service_settings(**({"workers": workers} if workers is not None else {}))
    uvicorn.run(create_app(settings), host=host, port=port)


def _service_settings(**overrides):
    """The HTTP service's settings from the environment (exit 2 with the reason if invalid)."""
    from pydantic import ValidationError

    from allocator.api import Settings

    try:
        return Settings(**overrides)
    except ValidationError as error:
        err.print(f"[red]error:[/red] invalid ALLOCATOR_* setting: {error}", markup=False)
        raise typer.Exit(2) from None


def _key_store(create: bool = False):
    """The job store the service's settings name, said on stderr; a missing one is refused
    unless ``create`` (a key made in the wrong store would never work)."""
    from allocator.api.store import open_store

    url = _service_settings().database_url()
    err.print(f"job store: {url}", markup=False, highlight=False)
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file() and not create:
        err.print("[red]error:[/red] no job store there: set ALLOCATOR_DATA_DIR (or ALLOCATOR_DB_URL) as the "
                  "service has it, or pass --create to make a new store")
        raise typer.Exit(2)
    try:
        return open_store(url)
    except ValueError as error:
        err.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from None


@keys_app.command("create")
def keys_create(
    region: Annotated[str, typer.Option(help="region id whose subtree the key may see; '*' for all (admin)")],
    name: Annotated[str, typer.Option(help="who or what the key is for")] = "",
    create: Annotated[bool, typer.Option("--create", help="make the job store if there is none yet")] = False,
) -> None:
    """Make an API key; the key itself is printed once, on the last line, and only its hash is kept."""
    from allocator.api.auth import create_key

    try:
        record, key = create_key(_key_store(create), region, name)
    except ValueError as error:
        err.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from None
    err.print(f"key {record.key_id} for region {record.region}; keep it now, it cannot be shown again:")
    print(key)


@keys_app.command("list")
def keys_list() -> None:
    """The keys of the job store: id, region, name, created and revoked."""
    table = Table(title="API keys")
    for column in ("key id", "region", "name", "created", "revoked"):
        table.add_column(column)
    for key in _key_store().keys():
        table.add_row(key.key_id, key.region, key.name, key.created_at, key.revoked_at or "")
    out.print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="the key id shown by keys create or keys list")]) -> None:
    """Revoke a key: requests with it get 401 from then on."""
    if not _key_store().revoke_key(key_id):
        err.print(f"[red]error:[/red] no active key {key_id!r}")
        raise typer.Exit(2)
    out.print(f"key {key_id} revoked")


@regions_app.command("load")
def regions_load(
    file: Annotated[Path, typer.Argument(help="a regions table (CSV or Parquet: region_id, parent_id, level, name)")],
    create: Annotated[bool, typer.Option("--create", help="make the job store if there is none yet")] = False,
) -> None:
    """Register the region tree in the job store: new regions are added; a known region keeps its
    parent and level (a change is refused, naming the rows)."""
    from allocator.api.regions import read_region_file, register

    store = _key_store(create)
    try:
        added = store.add_regions(register(store.registry(), read_region_file(file)))
    except InputError as error:
        fail_input(error)
    out.print(f"{added:,} new region(s) registered; {len(store.registry()):,} in all")
