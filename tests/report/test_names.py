"""Names beside ids in the report: counties in tables, sentences and chart labels as the
regions table names them; an id without a name stands alone (never nan or None)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from allocator.report.charts import counties_against_threshold, incidence_chart, pyplot
from allocator.report.html import build_report, with_names
from tests.support.tiny import starved_plan, tiny_tables


@pytest.fixture(scope="module")
def plan_dir(tmp_path_factory) -> Path:
    """The starved tiny plan: C1 (County 1) misses its threshold, C2 (County 2) does not."""
    return starved_plan(tmp_path_factory.mktemp("names"))


def test_the_report_names_a_county_beside_its_id(plan_dir):
    page = build_report(plan_dir, near_households=1)
    assert "County 1 (C1) is 0.4 households short" in page  # what stands in the way
    near = page.split("households of their threshold at the deadline", 1)[1].split("</table>", 1)[0]
    assert "<th>County name</th>" in near and "<td>C1</td><td>County 1</td>" in near


def test_a_missing_name_leaves_the_id_alone():
    tables = tiny_tables()
    tables["regions"].loc[tables["regions"]["region_id"] == "C2", "name"] = np.nan
    tables["villages"]["name"] = ""
    frame = pd.DataFrame({"county_id": ["C1", "C2"], "village_id": ["V1", "V3"]})
    named = with_names(frame, tables)
    assert list(named.columns) == ["county_id", "county_name", "village_id"], "no column without any name"
    assert named["county_name"].tolist() == ["County 1", ""]


def test_the_county_charts_label_counties_by_name_and_id():
    counties = pd.DataFrame({"county_id": ["C1", "C2"], "expected_incidence": [0.034, 0.01],
                             "threshold": [0.03, 0.02], "on_schedule": [False, True]})
    names = pd.Series({"C1": "County 1"})
    incidence = counties.assign(year=2018)
    for fig, axis in ((counties_against_threshold(counties, names=names), "x"),
                      (incidence_chart(incidence, names), "y")):
        try:
            ticks = getattr(fig.axes[0], f"get_{axis}ticklabels")()
            assert [t.get_text() for t in ticks] == ["County 1 (C1)", "C2"]
        finally:
            pyplot().close(fig)
