"""Every chart allocator draws, in one place with one palette: a plan folder's charts (money
by year, counties against the threshold), the report's (poor by year against the path,
counties by year, the village map, the baselines), monitoring's counties at risk, a sweep's
frontier and identification's poor by county.

Returned as matplotlib figures (for notebooks) and written as PNG by the writers that own the
folders. matplotlib is loaded when the first chart is drawn (:func:`pyplot`): importing allocator,
its service's workers and their capped checking processes do not carry it.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from allocator.inputs.names import named, region_names
from allocator.inputs.provenance import output_folder
from allocator.inputs.tables import CATEGORIES
from allocator.plan.plan import Plan
from allocator.report.i18n import chart_tr as tr

if TYPE_CHECKING:
    from matplotlib.figure import Figure

NOTHING = "nothing planned"  # a village the plan spends nothing in
# the palette: one colour per category in every chart, and the same meaning for the rest
CATEGORY_COLORS = dict(zip(CATEGORIES, ("tab:brown", "tab:orange", "tab:blue", "tab:purple", "tab:olive", "tab:pink"),
                           strict=True)) | {NOTHING: "lightgrey"}
GOOD, BAD, REFERENCE, OURS, OTHERS = "tab:green", "tab:red", "black", "tab:blue", "tab:grey"
CHART_FILES = ("money_by_year.png", "counties.png")  # a plan folder's charts


def pyplot():
    """matplotlib's pyplot on the Agg backend (files only; never a window), loaded on first use."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


# fonts that show Chinese, best first (families as matplotlib names them); the start of a name is enough
CJK_FONTS = ("Noto Sans CJK SC", "Noto Sans CJK", "Source Han Sans SC", "Source Han Sans", "WenQuanYi Zen Hei",
             "WenQuanYi Micro Hei", "Noto Serif CJK SC", "Noto Serif CJK", "Microsoft YaHei", "SimHei", "PingFang SC")


@cache
def cjk_font() -> str | None:
    """The family of a font on this machine that shows Chinese (:data:`CJK_FONTS`), or None.
    Looks in matplotlib's font list, then asks fontconfig (``fc-match``) for a font installed
    after matplotlib built its cache, and adds it."""
    from matplotlib import font_manager

    def best(names) -> str | None:
        names = sorted(set(names))
        return next((n for wanted in CJK_FONTS for n in names if n.startswith(wanted)), None)

    found = best(f.name for f in font_manager.fontManager.ttflist)
    if found:
        return found
    try:
        file = subprocess.run(["fc-match", "-f", "%{file}", "sans:lang=zh-cn"], capture_output=True, text=True,
                              timeout=20, check=False).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    if not file or not Path(file).is_file():
        return None
    try:
        font_manager.fontManager.addfont(file)
        return best([font_manager.FontProperties(fname=file).get_name()])
    except (OSError, RuntimeError, ValueError):
        return None


def chart_font(family: str | None):
    """Draw with ``family`` first (the others after it) for the block; no change for None."""
    if family is None:
        return nullcontext()
    return _font_context(family)


@contextmanager
def _font_context(family: str) -> Iterator[None]:
    import matplotlib

    pyplot()
    with matplotlib.rc_context({"font.family": "sans-serif",
                                "font.sans-serif": [family, *matplotlib.rcParams["font.sans-serif"]],
                                "axes.unicode_minus": False}):
        yield


def save_figure(fig: Figure, target, **options) -> None:
    """Write ``fig`` (to a path or a binary buffer; ``options`` as ``savefig`` takes them) and free it."""
    fig.savefig(target, **options)
    pyplot().close(fig)


def source_colors(count: int) -> list:
    """Colours for fund sources, from a scale (cividis) that none of the category colours is on,
    so a source is never read as a category."""
    cmap = pyplot().get_cmap("cividis")
    return [cmap(x) for x in np.linspace(0.1, 0.9, count)] if count > 1 else [cmap(0.3)] * count


def money_unit(largest: float) -> tuple[float, str]:
    """The unit a chart's money axis reads best in, for values up to ``largest`` yuan."""
    return (1e6, tr("million yuan")) if largest >= 1e6 else (1e3, tr("thousand yuan")) if largest >= 1e4 else (
        1.0, tr("yuan"))


def money_by_year(funding: pd.DataFrame, title: str = "", by: str = "category") -> Figure:
    """Stacked bars: money spent per year, split by ``by`` (``category`` or ``source_id``)."""
    fig, ax = pyplot().subplots(figsize=(7, 4))
    table = funding.pivot_table(index="year", columns=by, values="amount", aggfunc="sum", fill_value=0.0)
    scale, unit = money_unit(float(table.sum(axis=1).max()) if len(table) else 0.0)
    if table.empty:
        ax.text(0.5, 0.5, tr("no money spent"), ha="center", va="center", transform=ax.transAxes)
    else:
        colors = ([CATEGORY_COLORS.get(c) for c in table.columns] if by == "category"
                  else source_colors(len(table.columns)))
        (table / scale).rename(columns=lambda c: tr(str(c))).plot.bar(stacked=True, ax=ax, width=0.7, rot=0,
                                                                      color=colors)
        ax.legend(fontsize=8, frameon=False)
    ax.set_ylabel(unit)
    ax.set_xlabel(tr("year"))
    ax.set_title(title or tr(f"Money spent by year and {by.removesuffix('_id')}"))
    fig.tight_layout()
    return fig


def counties_against_threshold(counties: pd.DataFrame, title: str = "", names: pd.Series | None = None) -> Figure:
    """Expected remaining incidence per county at the deadline, against its exit threshold; each
    county labelled ``Name (ID)`` by ``names`` (by county id), else by its id."""
    ordered = counties.sort_values("expected_incidence", ascending=False).reset_index(drop=True)
    fig, ax = pyplot().subplots(figsize=(max(6, 0.18 * len(ordered) + 2), 4))
    colors = [GOOD if ok else BAD for ok in ordered["on_schedule"]]
    x = np.arange(len(ordered))
    ax.bar(x, 100 * ordered["expected_incidence"], color=colors, width=0.7)
    # one segment per bar: drawn for any number of counties, one included, each at its own threshold
    ax.hlines(100 * ordered["threshold"], x - 0.45, x + 0.45, color=REFERENCE, linewidth=1.5, label=tr("threshold"))
    if len(ordered) == 1:
        ax.set_xlim(-1, 1)
    top = float(np.nanmax(100 * np.r_[ordered["expected_incidence"], ordered["threshold"], 0.0]))
    ax.set_ylim(0, 1.25 * top if top > 0 else 1.0)  # room above the threshold for the legend
    labels = [named(c, names if names is not None else pd.Series(dtype=object)) for c in ordered["county_id"]]
    turn = 90 if len(ordered) > 8 else 30 if max(map(len, labels), default=0) > 12 else 0  # names need room
    ax.set_xticks(x, labels, rotation=turn, ha="right" if turn == 30 else "center", fontsize=7)
    ax.set_ylabel(tr("expected incidence at deadline (%)"))
    ax.set_title(title or tr("Counties on schedule: {part} of {whole}").format(part=int(ordered["on_schedule"].sum()),
                                                                               whole=len(ordered)))
    ax.legend(frameon=False)
    fig.tight_layout()
    return fig


def write_charts(funding: pd.DataFrame, counties: pd.DataFrame, folder: Path,
                 names: pd.Series | None = None) -> list[Path]:
    """Write the plan's charts as PNG files into ``folder`` (counties named by ``names``, by id)."""
    paths = []
    for name, fig in zip(CHART_FILES, (money_by_year(funding), counties_against_threshold(counties, names=names)),
                         strict=True):
        path = folder / name
        save_figure(fig, path, dpi=110)
        paths.append(path)
    return paths


def poor_by_county(cards: pd.DataFrame, title: str = "") -> Figure:
    """Stacked bars: identified poor households per county, by why they are poor (income only,
    a guarantee only, or both)."""
    poor = cards[cards["poor"]]
    has_income = poor["reasons"].str.contains("income", regex=False)
    kind = pd.Series("income only", index=poor.index)
    kind = kind.mask(has_income & (poor["reasons"] != "income"), "income and a guarantee")
    kind = kind.mask(~has_income, "a guarantee only")
    table = pd.crosstab(poor["county_id"], kind.to_numpy())
    fig, ax = pyplot().subplots(figsize=(max(6, 0.18 * len(table) + 2), 4))
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
    save_figure(fig, path, dpi=110)
    return path


def write_plan_charts(plan: Plan, folder: Path) -> list[Path]:
    """The plan folder's charts (none for a plan with no solution): for the writers that own
    the folder (the CLI's solve, the service's worker, a re-plan); counties named when the plan
    holds the problem it solved."""
    if not len(plan.counties):
        return []
    names = region_names(plan.problem.tables) if plan.problem is not None else None
    return write_charts(plan.funding, plan.counties, Path(folder), names)


def write_plan_folder(plan: Plan, folder: str | Path) -> Path:
    """The plan folder as the command line and the service write it: the plan's tables and
    summary (:meth:`Plan.write`) and its charts, under one manifest."""
    folder = Path(folder)
    with output_folder(folder, "plan"):
        plan.write(folder)
        write_plan_charts(plan, folder)
    return folder


def poor_by_year_chart(table: pd.DataFrame) -> Figure:
    """Lines: expected poor at year end against the annual targets, the national path, and
    what the thresholds allow."""
    fig, ax = pyplot().subplots(figsize=(7, 4))
    ax.plot(table["year"], table["expected_poor"], marker="o", label=tr("this plan (expected)"))
    if table["target_poor"].notna().any():
        ax.plot(table["year"], table["target_poor"], marker="v", linestyle="", color=BAD, markersize=9,
                label=tr("annual target (most still poor)"))
    if table["national_path"].notna().any():
        ax.plot(table["year"], table["national_path"], marker="s", linestyle="--",
                label=tr("national path (NBS, rescaled)"))
    ax.axhline(table["allowed_by_thresholds"].iloc[0], color=REFERENCE, linewidth=1,
               label=tr("allowed by the thresholds"))
    ax.set_xticks(table["year"])
    ax.set_ylabel(tr("poor households at year end"))
    ax.set_ylim(bottom=0)
    ax.set_title(tr("Expected poor by year against the path"))
    ax.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    return fig


def incidence_chart(incidence: pd.DataFrame, names: pd.Series | None = None) -> Figure:
    """Grid of counties × years: incidence relative to the threshold, green when below it; each
    county labelled ``Name (ID)`` by ``names`` (by county id), else by its id."""
    ratio = (incidence["expected_incidence"] / incidence["threshold"].where(incidence["threshold"] > 0)).to_numpy()
    grid = pd.DataFrame({"county_id": incidence["county_id"], "year": incidence["year"], "ratio": ratio}).pivot(
        index="county_id", columns="year", values="ratio")
    fig, ax = pyplot().subplots(figsize=(7, max(2.5, 0.16 * len(grid) + 1.5)))
    image = ax.imshow(np.clip(grid.to_numpy(dtype=float), 0, 3), cmap="RdYlGn_r", vmin=0, vmax=2, aspect="auto")
    ax.set_xticks(range(grid.shape[1]), grid.columns)
    known = names if names is not None else pd.Series(dtype=object)
    ax.set_yticks(range(len(grid)), [named(c, known) for c in grid.index], fontsize=6 if len(grid) > 20 else 8)
    below = grid.to_numpy(dtype=float) <= 1 + 1e-9
    rows, cols = np.nonzero(below)
    ax.scatter(cols, rows, marker="s", s=10, color=REFERENCE, label=tr("below the threshold"))
    fig.colorbar(image, ax=ax, label=tr("incidence / threshold"))
    ax.set_title(tr("Counties against their threshold by year"))
    ax.legend(frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(0, -0.12))
    fig.tight_layout()
    return fig


def village_map(table: pd.DataFrame) -> Figure:
    """Longitude/latitude scatter of villages, coloured by the category taking most of their
    money, sized by poor households."""
    fig, ax = pyplot().subplots(figsize=(7, 6))
    located = table.dropna(subset=["latitude", "longitude"])
    if located.empty:
        ax.text(0.5, 0.5, tr("the villages have no coordinates"), ha="center", va="center", transform=ax.transAxes)
    for name, group in located.groupby("main_category"):
        ax.scatter(group["longitude"], group["latitude"], s=12 + 3 * np.sqrt(group["poor_households"]), alpha=0.7,
                   label=tr(name), color=CATEGORY_COLORS.get(name), edgecolors="none")
    ax.set_xlabel(tr("longitude"))
    ax.set_ylabel(tr("latitude"))
    ax.set_title(tr("Villages by what the plan spends most on"))
    if not located.empty:
        ax.legend(frameon=False, fontsize=8, markerscale=2)
    fig.tight_layout()
    return fig


def baselines_chart(rows: list[dict], exits: float) -> Figure:
    """Bars: expected exits of the optimised plan and of each usual rule."""
    rows = [row for row in rows if row["status"] != "not applicable"]
    names = [tr("optimised")] + [tr(row["baseline"]) for row in rows]
    values = [exits] + [row["expected_exits"] or 0.0 for row in rows]
    fig, ax = pyplot().subplots(figsize=(6, 3))
    ax.barh(names[::-1], values[::-1], color=[OTHERS] * len(rows) + [OURS])
    ax.set_xlabel(tr("expected exits"))
    ax.set_title(tr("The optimised plan against the usual rules"))
    fig.tight_layout()
    return fig


def counties_at_risk(counties: pd.DataFrame, year: int):
    """Bars: each county's outlook incidence (red when at risk), the plan's as a marker, the threshold as a line."""
    ordered = counties.sort_values("incidence_outlook", ascending=False).reset_index(drop=True)
    fig, ax = pyplot().subplots(figsize=(max(6, 0.18 * len(ordered) + 2), 4))
    colors = [BAD if risk else GOOD for risk in ordered["at_risk"]]
    x = np.arange(len(ordered))
    ax.bar(x, 100 * ordered["incidence_outlook"], color=colors, width=0.7, label="outlook")
    ax.plot(x, 100 * ordered["incidence_plan"], "kD", markersize=5, label="approved plan")
    ax.hlines(100 * ordered["threshold"], x - 0.45, x + 0.45, color=REFERENCE, linestyles="dashed", linewidth=1,
              label="threshold")
    ax.set_xticks(x, ordered["county_id"], rotation=90, fontsize=7)
    ax.set_ylabel("expected incidence at deadline (%)")
    ax.set_title(f"Counties at risk, mid-{year}: {int(ordered['at_risk'].sum())} of {len(ordered)}")
    ax.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    return fig


def frontier_chart(planned: pd.DataFrame, others: Sequence[str], path: str | Path) -> Path:
    """Expected exits and counties on schedule against the money available (million yuan) of a
    sweep's planned variants, one line per combination of ``others`` (the varied keys that do
    not change the money), written as PNG."""
    fig, (top, bottom) = pyplot().subplots(2, 1, figsize=(7, 6), sharex=True)
    if planned.empty:
        top.text(0.5, 0.5, "no variant has a plan", ha="center", va="center", transform=top.transAxes)
    groups = planned.groupby(others, dropna=False, sort=False) if others else [((), planned)]
    for label, group in groups:
        ordered = group.sort_values("money_available", kind="stable")
        values = label if isinstance(label, tuple) else (label,)
        name = ", ".join(f"{k}={v}" for k, v in zip(others, values, strict=True)) if others else None
        money = ordered["money_available"] / 1e6
        top.plot(money, ordered["expected_exits"], marker="o", label=name)
        bottom.step(money, ordered["counties_on_schedule"], where="post", marker="o", label=name)
    top.set_ylabel("expected exits")
    bottom.set_ylabel("counties on schedule")
    from matplotlib.ticker import MaxNLocator

    bottom.yaxis.set_major_locator(MaxNLocator(integer=True))
    bottom.set_xlabel("money available (million yuan)")
    top.set_title("What-if frontier: outcomes against money")
    if others and not planned.empty:
        top.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
    return Path(path)
