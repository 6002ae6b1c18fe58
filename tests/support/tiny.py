"""A tiny hand-made canonical data set (years 2016-2018) and helpers to write and corrupt it."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import yaml


def tiny_tables() -> dict[str, pd.DataFrame]:
    """Two counties, three villages, eight households, a road that industry needs."""
    regions = pd.DataFrame(
        [["P", "", "province", "Province", False, 0],
         ["C1", "P", "county", "County 1", True, 40],
         ["C2", "P", "county", "County 2", False, 30],
         ["T1", "C1", "township", "Township 1", False, 0],
         ["T2", "C2", "township", "Township 2", False, 0]],
        columns=["region_id", "parent_id", "level", "name", "western", "rural_population"])
    villages = pd.DataFrame(
        [["V1", "T1", "Village 1", 120, True, 25.1, 104.2],
         ["V2", "T1", "Village 2", 80, False, 25.2, 104.3],
         ["V3", "T2", "Village 3", 90, True, 26.0, 105.0]],
        columns=["village_id", "township_id", "name", "population", "poor_village", "latitude", "longitude"])
    households = pd.DataFrame(
        [["H1", "V1", 3, True, 0.05], ["H2", "V1", 4, True, 0.08], ["H3", "V1", 2, True, 0.02],
         ["H4", "V2", 5, True, 0.08], ["H5", "V2", 1, False, 0.10], ["H6", "V3", 3, True, 0.05],
         ["H7", "V3", 2, True, 0.02], ["H8", "V3", 4, True, 0.08]],
        columns=["household_id", "village_id", "size", "registered_poor", "baseline_exit_probability"])
    packages = pd.DataFrame(
        [["H1", "industry", "industry", 5000, 20, 0.7, 0, "road", "grant+coop"],
         ["H1", "welfare", "welfare", 2000, 5, 0.4, 0, "", "dibao top-up"],
         ["H2", "industry", "industry", 5000, 20, 0.75, 0, "road", "grant+coop"],
         ["H2", "job", "ability", 3000, 10, 0.6, 1, "", "job placement"],
         ["H3", "welfare", "welfare", 2500, 5, 0.5, 0, "", "dibao top-up"],
         ["H4", "housing", "housing", 8000, 30, 0.8, 1, "", "renovation"],
         ["H5", "job", "ability", 3000, 10, 0.6, 0, "", "job placement"],
         ["H6", "industry", "industry", 4000, 15, 0.65, 0, "", "grant"],
         ["H7", "welfare", "welfare", 1500, 5, 0.45, 0, "", "health"],
         ["H8", "job", "ability", 2500, 10, 0.7, 0, "", "job placement"]],
        columns=["household_id", "package_id", "category", "cost", "personnel_hours", "exit_probability",
                 "lag_years", "requires", "measures"])
    projects = pd.DataFrame(
        [["V1", "road", "infrastructure", 6000, 1, False],
         ["V2", "water", "infrastructure", 3000, 1, True],
         ["V3", "clinic", "welfare", 2000, 1, False]],
        columns=["village_id", "project_id", "category", "cost", "duration_years", "mandatory"])
    funds = pd.DataFrame(
        [["central", 2016, 10000, "*", "*", True], ["central", 2017, 8000, "*", "*", True],
         ["central", 2018, 6000, "*", "*", True],
         ["county1", 2017, 5000, "industry", "C1", False], ["county1", 2018, 5000, "industry", "C1", False]],
        columns=["source_id", "year", "amount", "categories", "regions", "carry_over"])
    personnel = pd.DataFrame([["T1", 2017, 30.0], ["C2", 2016, 100.0]], columns=["region_id", "year", "hours"])
    return {"regions": regions, "villages": villages, "households": households, "packages": packages,
            "projects": projects, "funds": funds, "personnel": personnel}


def write_folder(tables: dict[str, pd.DataFrame], folder: Path, *, policy: dict | None = None,
                 start_year: int = 2016, deadline_year: int = 2018, solver: dict | None = None) -> Path:
    """Write tables as CSV plus a scenario.yaml into ``folder``; returns the scenario path."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in tables.items():
        out = frame.copy()
        for column in out.columns:
            if out[column].dtype == bool:
                out[column] = out[column].map({True: "true", False: "false"})
        out.to_csv(folder / f"{name}.csv", index=False)
    scenario = {"name": "tiny", "start_year": start_year, "deadline_year": deadline_year, "data": ".",
                "policy": policy or {}, "solver": solver or {"method": "exact", "mip_gap": 0.0}}
    path = folder / "scenario.yaml"
    path.write_text(yaml.safe_dump(scenario, sort_keys=False))
    return path


def starved() -> dict:
    """The tiny tables with too little money and a small rural population: county C1 misses the
    deadline (the explain, extra-money and report tests' case)."""
    tables = tiny_tables()
    tables["funds"]["amount"] = [6000.0, 2000.0, 1000.0, 0.0, 0.0]
    tables["regions"].loc[tables["regions"]["level"] == "county", "rural_population"] = 100
    return tables


STARVED_POLICY = {"county_exit_threshold": {"default": 0.02, "western": 0.03}}


def starved_plan(folder: Path) -> Path:
    """The starved tables written to ``folder/data``, solved through the library and written to
    ``folder/plan`` (returned): C1 (County 1) misses its threshold, C2 (County 2) does not."""
    import allocator

    path = write_folder(starved(), folder / "data", policy=STARVED_POLICY)
    return allocator.solve(allocator.load_scenario(path)).write(folder / "plan")


def write_xlsx(tables: dict[str, pd.DataFrame], path: Path) -> Path:
    """Write ``tables`` as the sheets of one workbook at ``path`` (a sheet per table, named after
    it; booleans as Excel's TRUE/FALSE, numbers as numbers)."""
    from openpyxl import Workbook

    book = Workbook()
    book.remove(book.active)
    for name, frame in tables.items():
        sheet = book.create_sheet(name)
        sheet.append(list(frame.columns))
        for row in frame.astype(object).where(frame.notna(), None).itertuples(index=False):
            sheet.append([value.item() if hasattr(value, "item") else value for value in row])
    path.parent.mkdir(parents=True, exist_ok=True)
    book.save(path)
    return path
