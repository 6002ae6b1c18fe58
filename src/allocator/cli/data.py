"""Data commands: generate (canonical, province, national), identify, candidates."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
import yaml
from rich.table import Table

from allocator.cli.common import (
    ProgressPrinter,
    app,
    err,
    fail_input,
    generate_app,
    out,
    raw_scenario,
)
from allocator.errors import InputError
from allocator.inputs.provenance import check_output_folder, output_folder

GENERATED = "generated data"  # the kind of folder the generate commands write


@generate_app.command("canonical")
def generate_canonical(
    out_dir: Annotated[Path, typer.Argument(help="folder to write the tables and scenario.yaml into")],
    households: Annotated[int, typer.Option(min=1, help="registered poor households (about)")] = 3000,
    years: Annotated[str, typer.Option(help="START:DEADLINE, e.g. 2016:2020")] = "2016:2020",
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
    money_scale: Annotated[float, typer.Option("--money-scale", min=0.0, help="multiplies every fund")] = 1.0,
    fmt: Annotated[str, typer.Option("--format", help="csv | parquet")] = "csv",
) -> None:
    """Write a seeded synthetic canonical data set and a scenario that solves it."""
    from allocator.synth import generate_canonical as generate

    start, deadline = _years(years)
    if fmt not in ("csv", "parquet"):
        err.print(f"[red]error:[/red] --format must be csv or parquet (got {fmt!r})")
        raise typer.Exit(2)
    tables = generate(households, start_year=start, deadline_year=deadline, seed=seed, money_scale=money_scale)
    scenario = {"name": out_dir.name or "generated", "start_year": start, "deadline_year": deadline, "data": ".",
                "policy": {"county_exit_threshold": {"default": 0.02, "western": 0.03}, "deadline": "soft"},
                "solver": {"backend": "highs", "method": "auto", "mip_gap": 0.001}}
    _write_generated(tables, out_dir, fmt, scenario)
    out.print(f"wrote {', '.join(f'{k} {len(v):,}' for k, v in tables.items())} rows and "
              f"{out_dir / 'scenario.yaml'}")


def _write_generated(tables: dict, out_dir: Path, fmt: str, scenario: dict) -> None:
    """Write generated tables and their scenario.yaml into a new or empty folder (exit 2 otherwise)."""
    from allocator.synth import write_tables

    try:
        with output_folder(out_dir, GENERATED):
            write_tables(tables, out_dir, fmt=fmt)
            (out_dir / "scenario.yaml").write_text(yaml.safe_dump(scenario, sort_keys=False))
    except InputError as error:
        fail_input(error)
    except FileExistsError as error:
        err.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from None


@app.command()
def identify(
    scenario: Annotated[Path, typer.Argument(help="scenario YAML with raw registry data")],
    out_dir: Annotated[Path, typer.Option("--out", help="folder for the household cards and village file")],
    quiet: Annotated[bool, typer.Option("--quiet", help="no progress output")] = False,
) -> None:
    """Identify the poor (income or a failing guarantee), their reasons, edge households and poor villages."""
    import json

    from allocator.inputs.tables import write_table
    from allocator.report.charts import poor_by_county_chart
    from allocator.targeting import identify_scenario, raw_tables

    progress = ProgressPrinter(quiet)
    try:
        sc = raw_scenario(scenario)
        check_output_folder(out_dir, "identification")
        progress("read raw tables")
        raw = raw_tables(sc)
        progress("identify", households=len(raw["households_raw"]), villages=len(raw["villages_raw"]))
        ident = identify_scenario(sc, raw)
    except InputError as error:
        fail_input(error)
    with output_folder(out_dir, "identification"):
        write_table(ident.cards, out_dir / "household_cards.csv")
        write_table(ident.villages, out_dir / "villages.csv")
        (out_dir / "identification.json").write_text(json.dumps(ident.summary, indent=2, ensure_ascii=False))
        poor_by_county_chart(ident.cards, out_dir / "poor_by_county.png")
    _print_identification(ident.summary, out_dir)


def _print_identification(summary: dict, folder: Path) -> None:
    table = Table(title=f"identification → {folder}", show_header=False)
    table.add_row("households", f"{summary['households']:,}")
    table.add_row("poor (rule)", f"{summary['poor_households']:,} households, {summary['poor_people']:,} people")
    for reason, count in summary["households_by_reason"].items():
        table.add_row(f"  reason {reason}", f"{count:,}")
    table.add_row("edge households", f"{summary['edge_households']:,}")
    table.add_row("poor villages", f"{summary['poor_villages']:,} of {summary['villages']:,}")
    registry = summary.get("registry")
    if registry:
        table.add_row("registry inclusion error", f"{registry['inclusion_error']:.2%}"
                      if registry["inclusion_error"] is not None else "n/a")
        table.add_row("registry exclusion error", f"{registry['exclusion_error']:.2%}"
                      if registry["exclusion_error"] is not None else "n/a")
    out.print(table)


@app.command()
def candidates(
    scenario: Annotated[Path, typer.Argument(help="scenario YAML with raw registry data")],
    out_dir: Annotated[Path, typer.Option("--out", help="folder for the canonical tables and scenario.yaml")],
    fmt: Annotated[str, typer.Option("--format", help="csv | parquet")] = "csv",
    quiet: Annotated[bool, typer.Option("--quiet", help="no progress output")] = False,
) -> None:
    """Write the canonical tables (packages per poor household, village projects) and a scenario that solves them."""
    import json

    from allocator.inputs.checks import check_tables
    from allocator.inputs.provenance import input_fingerprint
    from allocator.synth import write_tables
    from allocator.targeting import prepare, raw_tables
    from allocator.targeting.pipeline import canonical_scenario

    if fmt not in ("csv", "parquet"):
        err.print(f"[red]error:[/red] --format must be csv or parquet (got {fmt!r})")
        raise typer.Exit(2)
    progress = ProgressPrinter(quiet)
    try:
        sc = raw_scenario(scenario)
        check_output_folder(out_dir, "candidate tables")
        progress("read raw tables")
        raw = raw_tables(sc)
        progress("identify and build candidates", households=len(raw["households_raw"]))
        result = prepare(sc, raw)
        check_tables(result.tables, sc.years)
    except InputError as error:
        fail_input(error)
    summary = {"identification": result.identification.summary, "candidates": result.candidates.summary}
    with output_folder(out_dir, "candidate tables", made_from=input_fingerprint(sc)):
        write_tables(result.tables, out_dir, fmt=fmt, overwrite=True)
        (out_dir / "scenario.yaml").write_text(yaml.safe_dump(canonical_scenario(sc), sort_keys=False))
        (out_dir / "candidates.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False, default=str))
    s = result.candidates.summary
    out.print(f"wrote {s['packages']:,} packages for {s['households_with_packages']:,} of "
              f"{s['planned_households']:,} poor households, {s['projects']:,} projects "
              f"({s['mandatory_projects']:,} mandatory) and {out_dir / 'scenario.yaml'}")
    if s["households_without_packages"]:
        out.print(f"{s['households_without_packages']:,} poor households have no useful package "
                  "(no eligible measure fixes their guarantees); they keep their baseline exit")


@generate_app.command("national")
def generate_national(
    out_dir: Annotated[Path, typer.Argument(help="new folder: one raw data folder per province")],
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
    scale: Annotated[float, typer.Option(min=0.0, help="multiplies every county's households (1: 29.48 m)")]
    = 1.0,
    provinces: Annotated[str | None, typer.Option(help="only these province codes, e.g. GZ,YN")] = None,
    years: Annotated[str, typer.Option(help="START:DEADLINE, e.g. 2016:2020")] = "2016:2020",
    money_scale: Annotated[float, typer.Option("--money-scale", min=0.0, help="multiplies every fund")] = 1.0,
    quiet: Annotated[bool, typer.Option("--quiet", help="no progress output")] = False,
) -> None:
    """Stream the national preset (31 provinces' counties at 2014 proportions) to disk, county by county."""
    from allocator.synth.national import national_summary, write_national

    start, deadline = _years(years)
    codes = [c.strip() for c in provinces.split(",")] if provinces else None
    try:
        check_output_folder(out_dir, GENERATED)
    except InputError as error:
        fail_input(error)
    try:
        with output_folder(out_dir, GENERATED):
            counties = write_national(out_dir, seed, scale=scale, provinces=codes, start_year=start,
                                      deadline_year=deadline, money_scale=money_scale,
                                      progress=ProgressPrinter(quiet))
    except (FileExistsError, ValueError) as error:
        err.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from None
    summary = national_summary(counties)
    out.print(f"wrote {summary['provinces']} provinces, {summary['counties']:,} counties "
              f"({summary['national_poor_counties']} national poor), {summary['households']:,} registered "
              f"households to {out_dir} (provinces.csv, counties.csv, one folder per province)")


@generate_app.command("province")
def generate_province(
    out_dir: Annotated[Path, typer.Argument(help="folder to write the raw tables and scenario.yaml into")],
    preset: Annotated[str, typer.Option(help="county | province-small | province | province-dispersed")] = "county",
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
    years: Annotated[str, typer.Option(help="START:DEADLINE, e.g. 2016:2020")] = "2016:2020",
    money_scale: Annotated[float, typer.Option("--money-scale", min=0.0, help="multiplies every fund")] = 1.0,
    central: Annotated[bool, typer.Option("--central", help="a central province (2 % threshold), not western")]
    = False,
    fmt: Annotated[str, typer.Option("--format", help="csv | parquet")] = "csv",
    asset_share: Annotated[float, typer.Option("--asset-share", min=0.0, max=1.0,
                                               help="share of villages holding hydropower, mining or PV assets "
                                                    "(asset-income support; default none)")] = 0.0,
) -> None:
    """Write a seeded synthetic province as raw registry data, plus a scenario that plans it."""
    from allocator.synth.province import PROVINCE_PRESETS, generate_province_preset

    start, deadline = _years(years)
    if preset not in PROVINCE_PRESETS or fmt not in ("csv", "parquet"):
        err.print(f"[red]error:[/red] --preset must be one of {', '.join(PROVINCE_PRESETS)} and --format csv or "
                  f"parquet (got {preset!r}, {fmt!r})")
        raise typer.Exit(2)
    err.print(f"generating {preset} (seed {seed})")
    tables = generate_province_preset(preset, seed=seed, start_year=start, deadline_year=deadline,
                                      money_scale=money_scale, western=not central, asset_share=asset_share)
    scenario = {"name": out_dir.name or preset, "start_year": start, "deadline_year": deadline, "data": ".",
                "policy": {"county_exit_threshold": {"default": 0.02, "western": 0.03}, "deadline": "soft"},
                "targeting": {"basis": "rule"},
                "solver": {"backend": "highs", "method": "auto", "mip_gap": 0.001}}
    _write_generated(tables, out_dir, fmt, scenario)
    out.print(f"wrote {', '.join(f'{k} {len(v):,}' for k, v in tables.items())} rows and "
              f"{out_dir / 'scenario.yaml'}")


def _years(years: str) -> tuple[int, int]:
    try:
        start, deadline = (int(part) for part in years.split(":"))
    except ValueError:
        err.print(f"[red]error:[/red] --years must be START:DEADLINE like 2016:2020 (got {years!r})")
        raise typer.Exit(2) from None
    return start, deadline
