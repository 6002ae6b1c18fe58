"""Charts of a plan, drawn from its tables: money by year and counties against the threshold.

Returned as matplotlib figures (for notebooks) and written as PNG beside the plan tables.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never opens a window
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from allocator.inputs.provenance import output_folder  # noqa: E402
from allocator.plan.plan import Plan  # noqa: E402

CHART_FILES = ("money_by_year.png", "counties.png")  # a plan folder's charts


def money_by_year(funding: pd.DataFrame, title: str = "", by: str = "category") -> plt.Figure:
    """Stacked bars: money spent per year, split by ``by`` (``category`` or ``source_id``)."""
    fig, ax = plt.subplots(figsize=(7, 4))
    table = funding.pivot_table(index="year", columns=by, values="amount", aggfunc="sum", fill_value=0.0)
    if table.empty:
        ax.text(0.5, 0.5, "no money spent", ha="center", va="center", transform=ax.transAxes)
    else:
        (table / 1e6).plot.bar(stacked=True, ax=ax, width=0.7, rot=0)
        ax.legend(fontsize=8, frameon=False)
    ax.set_ylabel("million yuan")
    ax.set_xlabel("year")
    ax.set_title(title or f"Money spent by year and {by.removesuffix('_id')}")
    fig.tight_layout()
    return fig


def counties_against_threshold(counties: pd.DataFrame, title: str = "") -> plt.Figure:
    """Expected remaining incidence per county at the deadline, against its exit threshold."""
    ordered = counties.sort_values("expected_incidence", ascending=False).reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(max(6, 0.18 * len(ordered) + 2), 4))
    colors = ["tab:green" if ok else "tab:red" for ok in ordered["on_schedule"]]
    ax.bar(range(len(ordered)), 100 * ordered["expected_incidence"], color=colors)
    ax.step(range(len(ordered)), 100 * ordered["threshold"], where="mid", color="black", linewidth=1,
            label="threshold")
    ax.set_xticks(range(len(ordered)), ordered["county_id"], rotation=90, fontsize=7)
    ax.set_ylabel("expected incidence at deadline (%)")
    ax.set_title(title or f"Counties on schedule: {int(ordered['on_schedule'].sum())} of {len(ordered)}")
    ax.legend(frameon=False)
    fig.tight_layout()
    return fig


def write_charts(funding: pd.DataFrame, counties: pd.DataFrame, folder: Path) -> list[Path]:
    """Write the plan's charts as PNG files into ``folder``."""
    paths = []
    for name, fig in zip(CHART_FILES, (money_by_year(funding), counties_against_threshold(counties)), strict=True):
        path = folder / name
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def poor_by_county(cards: pd.DataFrame, title: str = "") -> plt.Figure:
    """Stacked bars: identified poor households per county, by why they are poor (income only,
    a guarantee only, or both)."""
    poor = cards[cards["poor"]]
    has_income = poor["reasons"].str.contains("income", regex=False)
    kind = pd.Series("income only", index=poor.index)
    kind = kind.mask(has_income & (poor["reasons"] != "income"), "income and a guarantee")
    kind = kind.mask(~has_income, "a guarantee only")
    table = pd.crosstab(poor["county_id"], kind.to_numpy())
    fig, ax = plt.subplots(figsize=(max(6, 0.18 * len(table) + 2), 4))
    if table.empty:
        ax.text(0.5, 0.5, "no poor household", ha="center", va="center", transform=ax.transAxes)
    else:
        table.plot.bar(stacked=True, ax=ax, width=0.8, rot=90, fontsize=7)
        ax.legend(fontsize=8, frameon=False)
    ax.set_ylabel("poor households")
    ax.set_xlabel("county")
    ax.set_title(title or "Identified poor households by county and reason")
    fig.tight_layout()
    return fig


def poor_by_county_chart(cards: pd.DataFrame, path: Path) -> Path:
    """Write :func:`poor_by_county` as a PNG file."""
    fig = poor_by_county(cards)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_plan_charts(plan: Plan, folder: Path) -> list[Path]:
    """The plan folder's charts (none for a plan with no solution): for the writers that own
    the folder (the CLI's solve, the service's worker, a re-plan)."""
    return write_charts(plan.funding, plan.counties, Path(folder)) if len(plan.counties) else []


def write_plan_folder(plan: Plan, folder: str | Path) -> Path:
    """The plan folder as the command line and the service write it: the plan's tables and
    summary (:meth:`Plan.write`) and its charts, under one manifest."""
    folder = Path(folder)
    with output_folder(folder, "plan"):
        plan.write(folder)
        write_plan_charts(plan, folder)
    return folder
