"""Identification: who is poor, why, who is at the edge, and which villages are poor.

A household is poor when its income per capita is below the year's poverty line (food and
clothing are judged through income) OR one of the guarantees fails: safe housing
(``dangerous_house``), safe water (``unsafe_water``), schooling (a child out of compulsory
school), basic medical care (an uninsured member). Each failing rule is a reason code. A
household that is not poor is at the *edge* when its income is below ``edge_factor`` × the
line or it had a recent shock: it is flagged for monitoring, not planned for.

A village is poor by the "one high, one low, one none" rule: poverty incidence (poor people ÷
population) above twice the provincial rate, income per capita below 60 % of the provincial
average, and no collective income.

Each household also gets ``poverty_probability``, the chance it is truly poor given that its
income is measured with error: a household failing a guarantee (observed directly) has 1; the
others have the logistic 1 / (1 + exp(-(line - income) / (INCOME_ERROR_SCALE x line))) of
the margin to the line, so an income at the line gives 0.5, 10 % below it 0.73, 30 % below
0.95, far below ~1, and 30 % above 0.05 (rounded to 4 decimals); a household neither poor
nor at the edge (income at least ``edge_factor`` x the line, no shock) has 0. The scale, 0.1 of the line,
is the logistic matching a relative measurement error of about 18 % of the line in the
surveyed income (a logistic of scale s has standard deviation s x pi / sqrt(3)).

When the registry's own flag is given, the registry is compared with the rule: the
*inclusion error* is the share of registered households the rule does not call poor, the
*exclusion error* the share of rule-poor households the registry missed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from allocator.inputs.tables import take_text

REASONS = ("income", "housing", "water", "schooling", "medical")
HIGH_INCIDENCE_FACTOR = 2.0
LOW_INCOME_SHARE = 0.6
EDGE_FACTOR = 1.5
INCOME_ERROR_SCALE = 0.1  # logistic scale of the income margin, as a share of the poverty line


def poverty_probability(income: np.ndarray, line: float, guarantee_fails: np.ndarray) -> np.ndarray:
    """The chance each household is truly poor (module docstring): 1 when a guarantee fails,
    else the logistic of the income margin to the line in units of INCOME_ERROR_SCALE x line."""
    margin = (line - np.asarray(income, dtype=float)) / (INCOME_ERROR_SCALE * line)
    q = 0.5 * (1.0 + np.tanh(0.5 * np.clip(margin, -60.0, 60.0)))  # the logistic, overflow-free
    return np.round(np.where(guarantee_fails, 1.0, q), 4)


@dataclass
class Identification:
    """The household cards, the village file and the summary of one identification run."""

    cards: pd.DataFrame
    villages: pd.DataFrame
    summary: dict = field(default_factory=dict)

    @property
    def poor(self) -> np.ndarray:
        return self.cards["poor"].to_numpy()


def _flag_text(flags: np.ndarray, names: tuple[str, ...]) -> pd.api.extensions.ExtensionArray:
    """';'-joined names of the set bits of each row of ``flags`` (rows × len(names) booleans)."""
    codes = (flags.astype(np.int64) << np.arange(len(names))).sum(axis=1)
    vocab = [";".join(n for b, n in enumerate(names) if code >> b & 1) for code in range(1 << len(names))]
    return take_text(vocab, codes)


def county_of_townships(regions: pd.DataFrame) -> pd.Series:
    """The county id of each township (parent of a township)."""
    townships = regions[regions["level"] == "township"]
    return pd.Series(townships["parent_id"].to_numpy(), index=townships["region_id"].to_numpy())


def identify(regions: pd.DataFrame, villages_raw: pd.DataFrame, households_raw: pd.DataFrame, *,
             poverty_line: float, edge_factor: float = EDGE_FACTOR, registry_given: bool | None = None
             ) -> Identification:
    """Apply the identification rules to every household and village (vectorised)."""
    hh = households_raw
    if registry_given is None:
        registry_given = bool(hh.attrs.get("registry_given", "registered_poor" in hh.columns))
    income = hh["income_per_capita"].to_numpy(dtype=float)
    flags = np.column_stack([
        income < poverty_line,
        hh["dangerous_house"].to_numpy(),
        hh["unsafe_water"].to_numpy(),
        hh["children_out_of_school"].to_numpy() > 0,
        hh["uninsured_members"].to_numpy() > 0,
    ])
    poor = flags.any(axis=1)
    shock = hh["recent_shock"].astype(str).to_numpy()
    near = ~poor & (income < edge_factor * poverty_line)
    shocked = ~poor & (shock != "")
    edge = near | shocked
    edge_reason = np.where(near & shocked, "near_line;shock", np.where(near, "near_line",
                                                                       np.where(shocked, "shock", "")))

    township_county = county_of_townships(regions)
    village_index = pd.Index(villages_raw["village_id"])
    v_of_h = village_index.get_indexer(hh["village_id"])
    v_township = villages_raw["township_id"].to_numpy()
    cards = pd.DataFrame({
        "household_id": hh["household_id"].to_numpy(),
        "village_id": hh["village_id"].to_numpy(),
        "township_id": v_township[v_of_h],
        "county_id": township_county.reindex(v_township[v_of_h]).to_numpy(),
        "size": hh["size"].to_numpy(),
        "labourers": hh["labourers"].to_numpy(),
        "household_type": hh["household_type"].to_numpy(),
        "main_cause": hh["main_cause"].to_numpy(),
        "income_per_capita": income,
        "income_ratio": np.round(income / poverty_line, 4),
        "poor": poor,
        "reasons": _flag_text(flags, REASONS),
        "edge": edge,
        "edge_reasons": edge_reason,
        # the chance to be truly poor: for the poor and the edge households; 0 beyond the edge
        "poverty_probability": np.where(poor | edge, poverty_probability(income, poverty_line,
                                                                         flags[:, 1:].any(axis=1)), 0.0),
    })
    if registry_given:
        registered = hh["registered_poor"].to_numpy()
        cards["registered_poor"] = registered
        cards["registry_agrees"] = registered == poor

    villages = _village_file(villages_raw, cards, township_county)
    summary = _summary(cards, villages, poverty_line, edge_factor, registry_given)
    return Identification(cards=cards, villages=villages, summary=summary)


def _village_file(villages_raw: pd.DataFrame, cards: pd.DataFrame, township_county: pd.Series) -> pd.DataFrame:
    """Per village: identified poor, incidence and the three tests of the poor-village rule."""
    n = len(villages_raw)
    v_of_h = pd.Index(villages_raw["village_id"]).get_indexer(cards["village_id"])
    poor = cards["poor"].to_numpy()
    poor_households = np.bincount(v_of_h[poor], minlength=n)
    poor_people = np.bincount(v_of_h[poor], weights=cards["size"].to_numpy()[poor], minlength=n)
    population = villages_raw["population"].to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        incidence = np.where(population > 0, poor_people / population, 0.0)
    province_rate = poor_people.sum() / population.sum() if population.sum() > 0 else 0.0
    income = villages_raw["income_per_capita"].to_numpy(dtype=float)
    known = ~np.isnan(income)
    weight = population * known
    average = float((income[known] * population[known]).sum() / weight.sum()) if weight.sum() > 0 else np.nan
    high = incidence > HIGH_INCIDENCE_FACTOR * province_rate
    low = known & (income < LOW_INCOME_SHARE * average)
    none = villages_raw["collective_income"].to_numpy() == 0
    frame = villages_raw.copy()
    frame.insert(2, "county_id", township_county.reindex(villages_raw["township_id"]).to_numpy())
    frame["poor_households"] = poor_households
    frame["poor_people"] = poor_people.astype(np.int64)
    frame["incidence"] = np.round(incidence, 5)
    frame["high_incidence"] = high
    frame["low_income"] = low
    frame["income_known"] = known
    frame["no_collective_income"] = none
    frame["poor_village"] = high & low & none
    frame.attrs.update(province_incidence=province_rate, province_income=average)
    return frame


def _rate(numerator: int, denominator: int) -> float | None:
    return round(numerator / denominator, 6) if denominator else None


def _summary(cards: pd.DataFrame, villages: pd.DataFrame, line: float, edge_factor: float,
             registry_given: bool) -> dict:
    poor = cards["poor"].to_numpy()
    reasons = {r: int(cards["reasons"].str.contains(r, regex=False).sum()) for r in REASONS}
    summary = {
        "poverty_line": line, "edge_factor": edge_factor,
        "households": len(cards), "poor_households": int(poor.sum()),
        "poor_people": int(cards["size"].to_numpy()[poor].sum()),
        "edge_households": int(cards["edge"].sum()),
        "households_by_reason": reasons,
        "income_only": int((cards["reasons"] == "income").sum()),
        "guarantee_only": int((poor & ~cards["reasons"].str.contains("income", regex=False)).sum()),
        "villages": len(villages), "poor_villages": int(villages["poor_village"].sum()),
        "villages_with_unknown_income": int((~villages["income_known"]).sum()),
        "province_incidence": round(float(villages.attrs["province_incidence"]), 6),
        "province_income_per_capita": None if np.isnan(villages.attrs["province_income"])
        else round(float(villages.attrs["province_income"]), 2),
        "registry_given": registry_given,
    }
    if registry_given:
        registered = cards["registered_poor"].to_numpy()
        summary["registry"] = {
            "registered": int(registered.sum()),
            "registered_not_poor": int((registered & ~poor).sum()),
            "poor_not_registered": int((poor & ~registered).sum()),
            "inclusion_error": _rate(int((registered & ~poor).sum()), int(registered.sum())),
            "exclusion_error": _rate(int((poor & ~registered).sum()), int(poor.sum())),
        }
        by_county = cards.assign(reg_not_poor=registered & ~poor, poor_not_reg=poor & ~registered) \
            .groupby("county_id", sort=True)[["registered_poor", "poor", "reg_not_poor", "poor_not_reg"]].sum()
        summary["registry"]["by_county"] = {
            county: {"inclusion_error": _rate(int(r.reg_not_poor), int(r.registered_poor)),
                     "exclusion_error": _rate(int(r.poor_not_reg), int(r.poor))}
            for county, r in by_county.iterrows()}
    return summary


__all__ = ["EDGE_FACTOR", "INCOME_ERROR_SCALE", "REASONS", "Identification", "county_of_townships", "identify",
           "poverty_probability"]
