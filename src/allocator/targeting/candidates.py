"""Candidates: "one household, one plan" — the packages each poor household may take, with an
honest estimate of what each achieves, and the village projects its village lacks.

A package is a set of catalogue measures: one way to fix every failing guarantee of the
household (the cheapest single fixer per guarantee, or a broad fixer such as relocation that
covers several) plus one income option (nothing, a measure, or a bundle of measures taken
together). Its exit probability follows the effect model of docs/effect-model.md::

    P(exit) = P(income at the deadline >= line) x [every guarantee fixed] x (1 - return risk)

and its sustained probability (exit by the deadline AND still out ``sustain_years`` later)::

    P(sustained) = P(exit) x P(income at D + S >= line(D + S) | income at D >= line(D))
                   x prod over s = 1..S of (1 - return hazard of year s)

where earned gains go on (with a yearly failure) and transfers stop after the deadline unless
they continue for the household (the safety net of those who cannot work).

A catalogue measure with role ``safety_net`` (the dibao net extended in the last years to
households still short) backs every package of a household it may cover: it lifts the income
of those the package leaves below the line, and its expected cost is booked with the package.

Income at the deadline is the household's income grown at the catalogue's rate, with a
volatility, plus each measure's gain if it succeeds. Two gains with the largest failure risk
are enumerated exactly (success or failure); others enter as their mean and variance.
Per household only the packages on the cost-exit frontier (per lag) are kept, at most
``max_packages_per_household``, always the cheapest and the best, plus the household's
standard package of practice (the catalogue's ``practice`` rules for its causes and failing
guarantees, flagged ``practice``: the ``practice`` baseline gives it) when it beats the baseline.

Everything runs on arrays over all households at once (packages over slices of
``CHUNK_HOUSEHOLDS``, to bound memory); the Python loops run per measure, option or project.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import ndtr

from allocator.errors import Issue, ScenarioError
from allocator.inputs.tables import CATEGORIES, LIST_SEPARATOR, SPECS, conform, empty_table, take_text
from allocator.targeting.catalog import GUARANTEES, Catalog, evaluate
from allocator.targeting.identify import Identification

GUARANTEE_COLUMNS = {"housing": "dangerous_house", "water": "unsafe_water",
                     "schooling": "children_out_of_school", "medical": "uninsured_members"}
RELOCATION_REMOTENESS = 0.85
EXACT_GAINS = 2  # gains whose success or failure is enumerated exactly per package
USEFUL_GAIN = 1e-4  # a package must raise the exit probability by more than this
CHUNK_HOUSEHOLDS = 100_000  # packages are enumerated and priced for this many households at a time


@dataclass
class Candidates:
    """The canonical tables produced from raw data, and a summary of what was offered."""

    tables: dict[str, pd.DataFrame]
    summary: dict


def household_frame(cards: pd.DataFrame, households_raw: pd.DataFrame, villages: pd.DataFrame,
                    catalog: Catalog, *, data_year: int, deadline_year: int, horizon: int,
                    line_deadline: float) -> pd.DataFrame:
    """The household card with the derived columns catalogue expressions may use."""
    p = catalog.parameters
    frame = households_raw.drop(columns=[c for c in ("registered_poor", "recent_shock") if c in households_raw])
    frame.attrs = {}  # pandas eval deep-copies attrs on every expression
    v = pd.Index(villages["village_id"]).get_indexer(frame["village_id"])
    labour = frame["labourers"].to_numpy()
    growth = np.where(labour > 0, p.income_growth_with_labour, p.income_growth_without_labour)
    projected = frame["income_per_capita"].to_numpy(dtype=float) * (1 + growth) ** (deadline_year - data_year)
    frame = frame.assign(
        workers=np.minimum(labour, 2),
        students=np.maximum(frame["children_out_of_school"].to_numpy(), 1),
        horizon=horizon,
        contract_years=min(p.contract_years, horizon),
        projected_income=projected,
        dibao_gap=np.maximum(catalog.line("dibao_line", deadline_year) - projected, 0.0),
        poverty_line=line_deadline,
        poor=cards["poor"].to_numpy(),
    )
    for column in ("has_road", "has_tap_water", "has_power", "has_broadband", "has_clinic", "forest",
                   "tourism_potential", "remoteness", "hazard_zone", "collective_income", "poor_village"):
        frame["village_" + column] = villages[column].to_numpy()[v]
    frame["village_relocation_zone"] = (frame["village_remoteness"] > RELOCATION_REMOTENESS) | frame[
        "village_hazard_zone"]
    for column in asset_columns(catalog, villages):  # asset-income support: the village's assets
        frame["village_" + column] = villages[column].to_numpy()[v]
    return frame


def asset_columns(catalog: Catalog, villages: pd.DataFrame) -> list[str]:
    """The village columns the catalogue's asset measures name (``village_assets``), in order.

    Raises ScenarioError naming the village file, the catalogue key and the column when one is
    absent from the village file."""
    issues, columns = [], []
    for key, measure in catalog.measures.items():
        column = measure.village_assets
        if column is None:
            continue
        if column not in villages.columns:
            issues.append(Issue("villages_raw", f"column '{column}' named by asset measure '{key}' is absent",
                                column=column, key=f"measures.{key}.village_assets",
                                expected="a column of villages_raw saying which villages hold the assets "
                                         "(e.g. asset_income_assets: none, hydropower, mining or pv)"))
        elif column not in columns:
            columns.append(column)
    if issues:
        raise ScenarioError(issues)
    return columns


def holds_assets(values) -> np.ndarray:
    """True where a village asset column says the village holds assets: a true boolean, or a
    kind other than empty, 'none', 'false', 'no' or '0'."""
    values = pd.Series(np.asarray(values, dtype=object))
    if values.map(lambda x: isinstance(x, (bool, np.bool_))).all():
        return values.astype(bool).to_numpy()
    text = values.fillna("").astype(str).str.strip().str.lower()
    return (~text.isin(["", "none", "false", "no", "0", "nan", "<na>"])).to_numpy()


def _above(mean: np.ndarray, var: np.ndarray, line: float) -> np.ndarray:
    """P(N(mean, var) >= line), a point mass where the variance is 0."""
    sd = np.sqrt(var)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(sd > 0, (mean - line) / np.where(sd > 0, sd, 1), np.where(mean >= line, np.inf, -np.inf))
    return ndtr(z)


@dataclass
class Later:
    """The consolidation years D + 1 .. D + ``years`` of each package: the household's yearly
    income growth (of its base income and its earned gains), which priced gains are earned, the
    chance ``keep`` that a gain paid at D is still paid through the last year, and the line."""

    growth: np.ndarray  # per package
    earned: np.ndarray  # per priced gain
    keep: np.ndarray  # per package and priced gain
    line: float  # at the deadline
    line_growth: float
    years: int


def _income_probabilities(base: np.ndarray, base_var: np.ndarray, means: np.ndarray, sds: np.ndarray,
                          fails: np.ndarray, line: float, later: Later) -> tuple[np.ndarray, ...]:
    """Per package: P(income >= line at D), P(>= the line at every year-end D + 1 .. D + S) and
    P(both: at D and through D + S).

    base ~ N(base, base_var); gain i is 0 with probability fails[:, i], else N(means[:, i],
    sds[:, i]^2); a gain that succeeded is paid through D + S with later.keep[:, i], else
    (pessimistically) it stops right after D. The EXACT_GAINS riskiest gains (by fails x
    mean) are enumerated (success or failure, and for a success: lasting or not); the rest are
    moment-matched into the normal part of each year. The normal parts of all years are
    comonotone (one standard normal draw: a household richer than expected stays so), so for
    each pattern P(every year) = min over the years of P(that year)."""
    n, k = means.shape
    order = np.argsort(np.where(means > 0, -fails * means - 1.0, 0.0), axis=1, kind="stable")  # no gain last
    order = order[:, :int((means > 0).sum(axis=1).max(initial=0))]  # a package holds few of the gains
    rows = np.arange(n)[:, None]
    means, sds, fails, keep = means[rows, order], sds[rows, order], fails[rows, order], later.keep[rows, order]
    earned = np.broadcast_to(later.earned, (n, k))[rows, order]
    exact = min(EXACT_GAINS, order.shape[1])
    on = 1 - fails[:, exact:]
    last = on * keep[:, exact:]
    mean_d0 = base + (on * means[:, exact:]).sum(axis=1)
    var_d0 = base_var + (on * (sds[:, exact:] ** 2 + fails[:, exact:] * means[:, exact:] ** 2)).sum(axis=1)
    later_mean = last * means[:, exact:]
    later_var = last * (sds[:, exact:] ** 2 + (1 - last) * means[:, exact:] ** 2)
    rest_e = earned[:, exact:]
    e_mean0, e_var0 = (later_mean * rest_e).sum(axis=1), (later_var * rest_e).sum(axis=1)
    t_mean0, t_var0 = (later_mean * ~rest_e).sum(axis=1), (later_var * ~rest_e).sum(axis=1)
    years = [((1 + later.growth) ** year, line * (1 + later.line_growth) ** year) for year in range(1, later.years + 1)]
    p_d, p_later, p_both = np.zeros(n), np.zeros(n), np.zeros(n)
    for subset in range(1 << exact):  # which of the exact gains succeeded by D
        won = [i for i in range(exact) if subset >> i & 1]
        weight = np.ones(n)
        mean_d, var_d = mean_d0, var_d0
        for i in range(exact):
            if i in won:
                weight = weight * (1 - fails[:, i])
                mean_d, var_d = mean_d + means[:, i], var_d + sds[:, i] ** 2
            else:
                weight = weight * fails[:, i]
        at_d = _above(mean_d, var_d, line)
        p_d += weight * at_d
        if not years:
            p_later += weight
            p_both += weight * at_d
            continue
        for lasting in range(1 << len(won)):  # which of them are still paid after D
            split = weight.copy()
            e_mean, e_var, t_mean, t_var = e_mean0, e_var0, t_mean0, t_var0
            for j, i in enumerate(won):
                if lasting >> j & 1:
                    split = split * keep[:, i]
                    e = earned[:, i]
                    e_mean, e_var = e_mean + e * means[:, i], e_var + e * sds[:, i] ** 2
                    t_mean, t_var = t_mean + ~e * means[:, i], t_var + ~e * sds[:, i] ** 2
                else:
                    split = split * (1 - keep[:, i])
            if not split.any():  # e.g. a transfer that never lasts
                continue
            through = np.ones(n)
            for grown, line_then in years:  # earned income and the base grow, transfers do not
                through = np.minimum(through, _above((base + e_mean) * grown + t_mean,
                                                     (base_var + e_var) * grown ** 2 + t_var, line_then))
            p_later += split * through
            p_both += split * np.minimum(at_d, through)
    return tuple(np.clip(p, 0.0, 1.0) for p in (p_d, p_later, p_both))


def _codes_text(codes: np.ndarray, names: list[str], separator: str) -> pd.api.extensions.ExtensionArray:
    """Text for bitmask codes: the names of the set bits joined by ``separator``."""
    unique, inverse = np.unique(codes, return_inverse=True)
    vocab = [separator.join(n for b, n in enumerate(names) if int(code) >> b & 1) for code in unique]
    return take_text(vocab, inverse)


@dataclass
class MeasureArrays:
    """Per planned household (rows) and measure (columns): what the catalogue says."""

    eligible: np.ndarray
    cost: np.ndarray
    hours: np.ndarray
    gain_mean: np.ndarray  # yuan per person per year at the deadline, if the measure succeeds
    requires: np.ndarray  # bitmask over the catalogue's projects, only those the village lacks
    continues: np.ndarray  # a transfer keeps paying this household through the consolidation horizon
    gap: np.ndarray  # villages x projects: the village lacks it
    village_frame: pd.DataFrame  # the village file with the columns project expressions use


def _measure_arrays(sub: pd.DataFrame, hv: np.ndarray, villages: pd.DataFrame, catalog: Catalog) -> MeasureArrays:
    """Evaluate every catalogue rule for every planned household and village."""
    keys, projects = list(catalog.measures), list(catalog.projects)
    shape = (len(sub), len(keys))
    eligible = np.column_stack([evaluate(sub, catalog.measures[k].eligible, f"measures.{k}.eligible", bool)
                                for k in keys]) if keys else np.zeros(shape, dtype=bool)
    for m, key in enumerate(keys):  # an asset measure only where the household's village holds the assets
        column = catalog.measures[key].village_assets
        if column is not None:
            eligible[:, m] &= holds_assets(sub["village_" + column].to_numpy())
    v_frame = villages.assign(road_scale=np.clip(np.sqrt(villages["population"].to_numpy() / 2000.0), 0.25, 1.5))
    v_frame.attrs = {}
    # people per village eligible for a measure needing each project (e.g. relocation_site_people)
    for project in projects:
        needs = eligible[:, [m for m, k in enumerate(keys) if project in catalog.measures[k].requires]].any(axis=1)
        v_frame[f"{project}_people"] = np.bincount(hv[needs], weights=sub["size"].to_numpy()[needs],
                                                   minlength=len(villages)).astype(np.int64)
    gap = np.column_stack([evaluate(v_frame, catalog.projects[k].gap, f"projects.{k}.gap", bool)
                           for k in projects]) if projects else np.zeros((len(villages), 0), dtype=bool)
    cost, hours, gain_mean = np.zeros(shape), np.zeros(shape), np.zeros(shape)
    continues = np.zeros(shape, dtype=bool)
    requires = np.zeros(shape, dtype=np.int64)
    projected = sub["projected_income"].to_numpy()
    for m, key in enumerate(keys):
        measure = catalog.measures[key]
        cost[:, m] = evaluate(sub, measure.cost, f"measures.{key}.cost")
        hours[:, m] = evaluate(sub, measure.hours, f"measures.{key}.hours")
        bad = (cost[:, m] < 0) | (hours[:, m] < 0)
        if bad.any():
            raise ScenarioError([Issue("catalogue", "cost or hours below zero", key=f"measures.{key}",
                                       found=f"household {sub['household_id'].iloc[int(np.argmax(bad))]}")])
        if measure.gain is not None:
            if measure.gain.mean is not None:
                gain_mean[:, m] = evaluate(sub, measure.gain.mean, f"measures.{key}.gain.mean")
            gain_mean[:, m] += measure.gain.relative * projected
            if measure.gain.kind == "transfer":
                continues[:, m] = evaluate(sub, measure.gain.continues, f"measures.{key}.gain.continues", bool)
        for project in measure.requires:  # a requirement holds only where the project is missing
            j = projects.index(project)
            requires[:, m] |= np.where(gap[hv, j], 1 << j, 0)
    return MeasureArrays(eligible, cost, hours, gain_mean, requires, continues, gap, v_frame)


def _fix_alternatives(gaps: np.ndarray, fixes: np.ndarray, arrays: MeasureArrays) -> list[tuple[np.ndarray, ...]]:
    """Ways to fix every failing guarantee: (households x measures membership, valid households).

    The first takes the cheapest eligible single fixer per guarantee; one more per broad
    measure (fixing several guarantees, e.g. relocation) takes it, then the cheapest single
    fixers for what it leaves."""
    h_count, m_count = arrays.eligible.shape
    broad = [m for m in range(m_count) if fixes[m].sum() >= 2]
    single_cost = np.where(arrays.eligible, arrays.cost, np.inf)
    alternatives = []
    for base in [None] + broad:
        member = np.zeros((h_count, m_count), dtype=bool)
        valid = np.ones(h_count, dtype=bool)
        covered = np.zeros_like(gaps)
        if base is not None:
            valid = arrays.eligible[:, base] & (gaps & fixes[base]).any(axis=1)
            member[:, base] = True
            covered[:] = fixes[base]
        for g in range(gaps.shape[1]):
            need = gaps[:, g] & ~covered[:, g]
            fixers = [m for m in range(m_count) if fixes[m, g] and m not in broad]
            if not fixers:
                valid &= ~need
                continue
            costs = single_cost[:, fixers]
            best = np.argmin(costs, axis=1)
            possible = np.isfinite(costs[np.arange(h_count), best])
            valid &= ~need | possible
            rows = np.flatnonzero(need & possible)
            member[rows, np.asarray(fixers)[best[rows]]] = True
        alternatives.append((member, valid))
    return alternatives


def _income_options(catalog: Catalog) -> list[tuple[tuple[int, ...], dict[int, float]]]:
    """Income options: nothing, each income measure, each bundle (members, failure overrides)."""
    keys = list(catalog.measures)
    options = [((), {})] + [((m,), {}) for m, k in enumerate(keys) if catalog.measures[k].role in ("income", "both")]
    options += [(tuple(keys.index(k) for k in b.measures), {keys.index(k): f for k, f in b.failure.items()})
                for b in catalog.bundles]
    return options


def _enumerate(alternatives, options, eligible: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every package: its household row, measure membership and income option index."""
    parts = []
    for a, (member, valid) in enumerate(alternatives):
        for o, (option, _) in enumerate(options):
            ok = valid & eligible[:, list(option)].all(axis=1) if option else valid.copy()
            if not option and a == 0:
                ok &= member.any(axis=1)  # an empty package is no package
            rows = np.flatnonzero(ok)
            mem = member[rows]
            mem[:, list(option)] = True
            parts.append((rows, mem, np.full(len(rows), o)))
    return tuple(np.concatenate(part) for part in zip(*parts, strict=True))


def practice_members(sub: pd.DataFrame, gaps: np.ndarray, eligible: np.ndarray, catalog: Catalog) -> np.ndarray:
    """Per planned household (rows) and measure (columns): its standard package in practice,
    the measures of every ``practice`` rule of its causes (main and other), its failing
    guarantees and the conditions it meets, each rule's first entry it is eligible for."""
    keys = list(catalog.measures)
    main = sub["main_cause"].astype(str).to_numpy()
    other = ";" + sub["other_causes"].astype(str).str.replace(" ", "", regex=False) + ";"
    members = np.zeros(eligible.shape, dtype=bool)
    for row, rule in enumerate(catalog.practice, start=1):
        if rule.cause is not None:
            left = (main == rule.cause) | other.str.contains(f";{rule.cause};", regex=False).to_numpy()
        elif rule.guarantee is not None:
            left = gaps[:, GUARANTEES.index(rule.guarantee)].copy()
        else:
            left = evaluate(sub, rule.condition, f"practice.condition (rule {row})", bool).copy()
        for option in rule.options():
            columns = [keys.index(k) for k in option]
            rows = np.flatnonzero(left & eligible[:, columns].all(axis=1))
            members[rows[:, None], columns] = True
            left[rows] = False
    return members


def _practice_packages(members: np.ndarray, options) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The standard packages as enumerated packages (household row, membership, income option):
    the option is the largest one the package contains, so a bundle's failures apply."""
    rows = np.flatnonzero(members.any(axis=1))
    mem = members[rows]
    opt = np.zeros(len(rows), dtype=np.int64)
    for o in sorted(range(len(options)), key=lambda o: len(options[o][0])):
        if options[o][0]:
            opt[mem[:, list(options[o][0])].all(axis=1)] = o
    return rows, mem, opt


def _exit_probability(rows: np.ndarray, mem: np.ndarray, opt: np.ndarray, options, sub: pd.DataFrame,
                      arrays: MeasureArrays, gaps: np.ndarray, fixes: np.ndarray, catalog: Catalog, *,
                      line: float, deadline_year: int, sustain_years: int) -> tuple[np.ndarray, ...]:
    """Per package: P(exit) = P(income at the deadline >= line) x [every guarantee fixed] x
    (1 - return risk); P(sustained) (exit and still out ``sustain_years`` after the deadline);
    the earned share of its expected income gain; the chance the safety net pays; and the
    safety net's share of P(income >= line)."""
    p = catalog.parameters
    measures = list(catalog.measures.values())
    base = sub["projected_income"].to_numpy()[rows]
    gain_mean = arrays.gain_mean[rows]
    priced = [m for m, measure in enumerate(measures) if measure.gain is not None and measure.gain.to_line is None]
    means = np.where(mem[:, priced], gain_mean[:, priced], 0.0)
    sds = means * np.array([measures[m].gain.sd for m in priced])
    fails = np.tile(np.array([measures[m].gain.failure for m in priced], dtype=float), (len(rows), 1))
    for o, (_, override) in enumerate(options):  # bundles lower their members' failure
        for m, failure in override.items():
            if m in priced:
                fails[opt == o, priced.index(m)] = failure
    fails = np.where(mem[:, priced], fails, 0.0)
    base_var = (p.income_volatility * np.maximum(base, 0)) ** 2
    later = _later(rows, sub, arrays, catalog, line=line, sustain_years=sustain_years)
    p_income, p_later, p_both = _income_probabilities(base, base_var, means, sds, fails, line, later)
    weights = np.where(mem, (1 - _failures(measures)) * np.maximum(gain_mean, 0), 0.0)
    for m, measure in enumerate(measures):
        if measure.gain is not None and measure.gain.to_line is not None and measure.role != "safety_net":
            # a top-up to a line (dibao)
            if catalog.line(measure.gain.to_line, deadline_year) >= line:
                f = measure.gain.failure
                later_line = line * (1 + p.line_growth) ** sustain_years
                lasts = arrays.continues[rows, m] & (
                    catalog.line(measure.gain.to_line, deadline_year + sustain_years) >= later_line)
                then = np.where(lasts, 1.0, p_later)  # still paid through D + S, or the household's own income
                p_income, p_later, p_both = (np.where(mem[:, m], (1 - f) + f * p_income, p_income),
                                             np.where(mem[:, m], (1 - f) * then + f * p_later, p_later),
                                             np.where(mem[:, m], (1 - f) * then + f * p_both, p_both))
            weights[:, m] = np.where(mem[:, m], np.maximum(sub["dibao_gap"].to_numpy()[rows], 1.0), 0.0)
    p_income, p_both, rescued, net_return_risk = _safety_net(rows, p_income, p_both, sub, arrays, catalog,
                                                             line=line, deadline_year=deadline_year,
                                                             sustain_years=sustain_years)
    total = weights.sum(axis=1)
    risks = np.array([m.return_risk for m in measures])
    return_risk = np.where(total > 0, (weights * risks).sum(axis=1) / np.where(total > 0, total, 1.0),
                           p.baseline_return_risk)
    protects = np.array([m.protects_illness for m in measures])
    ill = sub["chronic_illness_members"].to_numpy()[rows] > 0
    illness = np.where(ill & ~(mem & protects).any(axis=1), p.illness_return_risk, 0.0)
    net_risk = (net_return_risk + illness) * rescued  # a household the net lifts has the net's return risk
    fixed = ((mem[:, :, None] & fixes[None, :, :]).any(axis=1) | ~gaps[rows]).all(axis=1)
    exit_p = np.clip((p_income - (p_income - rescued) * (return_risk + illness) - net_risk) * fixed, 0.0, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        stays = np.where(p_income > 0, np.clip(p_both / np.where(p_income > 0, p_income, 1.0), 0.0, 1.0), 0.0)
    sustained = np.round(np.minimum(exit_p * stays * _staying(p.return_hazard, sustain_years), exit_p), 4)
    earned = np.array([m.gain is not None and m.gain.kind == "earned" for m in measures])
    earned_share = np.where(total > 0, (weights * earned).sum(axis=1) / np.where(total > 0, total, 1.0), 0.0)
    net_share = np.where(p_income > 0, rescued / np.where(p_income > 0, p_income, 1.0), 0.0)
    exit_p = np.round(exit_p, 4)
    return exit_p, np.minimum(sustained, exit_p), np.round(earned_share, 4), rescued, np.round(net_share, 4)


def _cost_by_category(mem: np.ndarray, costs: np.ndarray, net_cost: np.ndarray, measures) -> np.ndarray:
    """Per package, its cost split by the categories of its measures (the safety net's expected
    cost in the net's), as text ``category:yuan;...`` in CATEGORIES order: how the programme's
    statistics count spend, where the plan pays a package from the funds of its costliest measure."""
    parts = []
    for category in CATEGORIES:
        amount = (mem * costs)[:, [m.category == category for m in measures]].sum(axis=1)
        amount = amount + sum((net_cost for m in measures if m.role == "safety_net" and m.category == category),
                              np.zeros(len(mem)))
        yuan = np.round(amount).astype(np.int64)
        parts.append(pd.Series(np.where(yuan > 0, category + ":" + yuan.astype(str).astype(object), "")))
    if not parts or not len(mem):
        return np.zeros(len(mem), dtype=object)
    text = parts[0].str.cat(parts[1:], sep=LIST_SEPARATOR)
    return text.str.replace(f"{LIST_SEPARATOR}+", LIST_SEPARATOR, regex=True).str.strip(LIST_SEPARATOR).to_numpy(
        dtype=object)


def _safety_net(rows: np.ndarray, p_income: np.ndarray, p_both: np.ndarray, sub: pd.DataFrame,
                arrays: MeasureArrays, catalog: Catalog, *, line: float, deadline_year: int,
                sustain_years: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """The safety net behind every package of a household it may cover (docs/effect-model.md
    §3b): if the rest of the package leaves income below the line, the net tops it up to its
    line with probability 1 - failure. Returns P(income >= line at D), P(that and still out
    through D + S) with the net, and ``rescued``, the chance the net is what lifts the household
    (it pays, and its expected cost is the measure's cost times this), and the net's return
    risk. A household the net lifts stays out through D + S only where the transfer continues
    for it."""
    measures = list(catalog.measures.values())
    net = next((m for m, measure in enumerate(measures) if measure.role == "safety_net"), None)
    if net is None or catalog.line(measures[net].gain.to_line, deadline_year) < line:
        return p_income, p_both, np.zeros(len(rows)), 0.0
    gain = measures[net].gain
    later_line = line * (1 + catalog.parameters.line_growth) ** sustain_years
    lasts = (arrays.continues[rows, net] & (catalog.line(gain.to_line, deadline_year + sustain_years) >= later_line)
             | (sustain_years == 0))
    rescued = np.where(arrays.eligible[rows, net], (1 - p_income) * (1 - gain.failure), 0.0)
    return p_income + rescued, p_both + rescued * lasts, rescued, measures[net].return_risk


def _later(rows: np.ndarray, sub: pd.DataFrame, arrays: MeasureArrays, catalog: Catalog, *, line: float,
           sustain_years: int) -> Later:
    """The consolidation years of each package (docs/effect-model.md §3a): an earned gain is
    still there with (1 - yearly failure) per year (the failure x ``unsupported_failure_factor``
    after the transition years); a transfer only where it continues for the household."""
    p = catalog.parameters
    measures = list(catalog.measures.values())
    priced = [m for m, measure in enumerate(measures) if measure.gain is not None and measure.gain.to_line is None]
    earned = np.array([measures[m].gain.kind == "earned" for m in priced], dtype=bool)
    hazard = np.array([measures[m].gain.yearly_failure for m in priced], dtype=float)
    supported = min(sustain_years, p.transition_years)
    unsupported = sustain_years - supported
    survival = (1 - hazard) ** supported * (1 - np.minimum(hazard * p.unsupported_failure_factor, 1.0)) ** unsupported
    keep = np.where(earned, survival, arrays.continues[rows][:, priced] | (sustain_years == 0))
    growth = np.where(sub["labourers"].to_numpy()[rows] > 0, p.income_growth_with_labour,
                      p.income_growth_without_labour)
    return Later(growth=growth, earned=earned, keep=keep.astype(float), line=line, line_growth=p.line_growth,
                 years=sustain_years)


def _staying(hazards: list[float], years: int) -> float:
    """The chance an exited household does not return in ``years`` years: prod (1 - hazard of year s),
    the last hazard repeating."""
    return float(np.prod([1 - hazards[min(s, len(hazards)) - 1] for s in range(1, years + 1)]))


def _baseline(frame: pd.DataFrame, catalog: Catalog, line: float) -> np.ndarray:
    """Exit probability without a package: the income test on the projected income alone,
    x [no failing guarantee] x (1 - return risk)."""
    p = catalog.parameters
    projected = frame["projected_income"].to_numpy()
    gaps = np.column_stack([frame[GUARANTEE_COLUMNS[g]].to_numpy().astype(bool) for g in GUARANTEES])
    income = ndtr(np.where(projected > 0, (projected - line) / np.maximum(p.income_volatility * projected, 1e-9),
                           -np.inf))
    risk = p.baseline_return_risk + np.where(frame["chronic_illness_members"].to_numpy() > 0,
                                             p.illness_return_risk, 0.0)
    return np.round(np.clip(income * ~gaps.any(axis=1) * (1 - risk), 0.0, 1.0), 4)


def _poverty_probability(cards: pd.DataFrame, frame: pd.DataFrame) -> np.ndarray:
    """identify's ``poverty_probability`` of each household of ``frame`` (empty when absent)."""
    if "poverty_probability" not in cards.columns:
        return np.full(len(frame), np.nan)
    q = pd.Series(cards["poverty_probability"].to_numpy(dtype=float), index=cards["household_id"].to_numpy())
    return q.reindex(frame["household_id"].to_numpy()).to_numpy(dtype=float)


def build_candidates(ident: Identification, households_raw: pd.DataFrame, regions: pd.DataFrame,
                     funds: pd.DataFrame, personnel: pd.DataFrame, catalog: Catalog, *, basis: str,
                     data_year: int, start_year: int, deadline_year: int, line_deadline: float,
                     sustain_years: int = 3, targets: pd.DataFrame | None = None) -> Candidates:
    """The canonical tables (regions, villages, households, packages, projects, funds, personnel,
    targets); packages carry their sustained probability through ``sustain_years`` after the
    deadline. Regions, funds, personnel and targets pass through with their contract columns."""
    villages = ident.villages
    planned = ident.cards["registered_poor"].to_numpy() if basis == "registry" else ident.poor
    frame = household_frame(ident.cards, households_raw, villages, catalog, data_year=data_year,
                            deadline_year=deadline_year, horizon=deadline_year - start_year + 1,
                            line_deadline=line_deadline)
    measures = list(catalog.measures.values())
    sub = frame[planned].reset_index(drop=True)
    hv = pd.Index(villages["village_id"]).get_indexer(sub["village_id"])
    arrays = _measure_arrays(sub, hv, villages, catalog)

    gaps = np.column_stack([sub[GUARANTEE_COLUMNS[g]].to_numpy().astype(bool) for g in GUARANTEES])
    fixes = np.array([[g in m.fixes for g in GUARANTEES] for m in measures], dtype=bool).reshape(-1, len(GUARANTEES))
    options = _income_options(catalog)
    alternatives = _fix_alternatives(gaps, fixes, arrays)
    baseline = _baseline(frame, catalog, line_deadline)
    planned_baseline = baseline[planned]
    lags = np.array([m.lag for m in measures])
    net_cost = sum((arrays.cost[:, m] for m, measure in enumerate(measures) if measure.role == "safety_net"),
                   np.zeros(len(sub)))
    standard = practice_members(sub, gaps, arrays.eligible, catalog)
    kept = []
    for first in range(0, len(sub), CHUNK_HOUSEHOLDS):  # bounded memory: packages of a slice of households
        chunk = slice(first, first + CHUNK_HOUSEHOLDS)
        parts = (_enumerate([(member[chunk], valid[chunk]) for member, valid in alternatives], options,
                            arrays.eligible[chunk]), _practice_packages(standard[chunk], options))
        rows, mem, opt = (np.concatenate(part) for part in zip(*parts, strict=True))
        practice = np.arange(len(rows)) >= len(parts[0][0])
        rows += first
        exit_p, sustained, earned, rescued, net_share = _exit_probability(
            rows, mem, opt, options, sub, arrays, gaps, fixes, catalog, line=line_deadline,
            deadline_year=deadline_year, sustain_years=sustain_years)
        cost = (mem * arrays.cost[rows]).sum(axis=1) + rescued * net_cost[rows]
        split = _cost_by_category(mem, arrays.cost[rows], rescued * net_cost[rows], measures)
        lag = np.where(mem, lags, 0).max(axis=1, initial=0)
        useful = exit_p > planned_baseline[rows] + USEFUL_GAIN
        keep = _frontier(rows, lag, cost, exit_p, sustained, useful & ~practice,
                         catalog.parameters.max_packages_per_household)
        keep, practice = _keep_practice(rows, mem, keep, np.flatnonzero(practice & useful))
        kept.append((rows[keep], mem[keep], cost[keep], lag[keep], exit_p[keep], sustained[keep], earned[keep],
                     net_share[keep], split[keep], practice))
    rows, mem, cost, lag, exit_p, sustained, earned, net_share, split, practice = (
        (np.concatenate(part) for part in zip(*kept, strict=True)) if kept else
        (np.zeros(0, np.int64), np.zeros((0, len(measures)), bool), np.zeros(0), np.zeros(0, np.int64), np.zeros(0),
         np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0, dtype=object), np.zeros(0, bool)))
    requires = np.bitwise_or.reduce(np.where(mem, arrays.requires[rows], 0), axis=1, initial=0)
    costliest = np.argmax(np.where(mem, arrays.cost[rows] + 1e-9 * (len(measures) - np.arange(len(measures))), -1.0),
                          axis=1)
    members = (mem.astype(np.int64) << np.arange(len(measures))).sum(axis=1)
    packages = pd.DataFrame({
        "household_id": sub["household_id"].to_numpy()[rows],
        "package_id": _codes_text(members, list(catalog.measures), "+"),
        "category": take_text([m.category for m in measures], costliest),
        "cost": np.round(cost, 2),
        "personnel_hours": np.round((mem * arrays.hours[rows]).sum(axis=1), 2),
        "exit_probability": exit_p,
        "lag_years": lag.astype(np.int64),
        "requires": _codes_text(requires, list(catalog.projects), LIST_SEPARATOR),
        "measures": _codes_text(members, [m.name for m in measures], "; "),
        "sustained_probability": sustained,
        "earned_share": earned,
        "safety_net_share": net_share,
        "cost_by_category": split,
        "practice": practice,
    })
    required = np.zeros_like(arrays.gap)
    for j in range(arrays.gap.shape[1]):
        required[hv[rows[(requires >> j) & 1 == 1]], j] = True
    projects = _projects(arrays.village_frame, arrays.gap, required, catalog)

    households = pd.DataFrame({"household_id": frame["household_id"].to_numpy(),
                               "village_id": frame["village_id"].to_numpy(), "size": frame["size"].to_numpy(),
                               "registered_poor": planned, "baseline_exit_probability": baseline,
                               "poverty_probability": _poverty_probability(ident.cards, frame)})
    tables = {"regions": regions, "villages": villages, "households": households, "packages": packages,
              "projects": projects, "funds": funds, "personnel": personnel,
              "targets": targets if targets is not None else empty_table(SPECS["targets"])}
    tables = {name: conform(t, SPECS[name]).reset_index(drop=True) for name, t in tables.items()}
    served = np.unique(rows)
    summary = {
        "planned_households": len(sub), "basis": basis,
        "packages": len(packages), "households_with_packages": len(served),
        "households_without_packages": len(sub) - len(served),
        "packages_per_household": round(len(packages) / max(len(served), 1), 3),
        "projects": len(projects), "mandatory_projects": int(projects["mandatory"].sum()),
        "mean_baseline_exit": round(float(baseline[planned].mean()) if len(sub) else 0.0, 4),
        "mean_best_exit": round(float(pd.Series(exit_p).groupby(rows).max().mean()) if len(rows) else 0.0, 4),
        "mean_best_sustained": round(float(pd.Series(sustained).groupby(rows).max().mean()) if len(rows) else 0.0,
                                     4),
        "sustain_years": sustain_years,
        "line_at_deadline": line_deadline,
        "practice_packages": int(practice.sum()),
    }
    return Candidates(tables=tables, summary=summary)


def _keep_practice(rows: np.ndarray, mem: np.ndarray, keep: np.ndarray,
                   standard: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The kept packages plus each household's useful standard package (``standard``: its
    positions) unless a kept package has the same measures, which then carries the flag;
    returns the positions and, per position, whether it is the standard package."""
    key = (rows.astype(np.int64) << mem.shape[1]) | (mem.astype(np.int64) << np.arange(mem.shape[1])).sum(axis=1)
    order = np.argsort(key[keep], kind="stable")
    at = np.minimum(np.searchsorted(key[keep], key[standard], sorter=order), max(len(keep) - 1, 0))
    found = (key[keep][order[at]] == key[standard]) if len(keep) else np.zeros(len(standard), dtype=bool)
    flag = np.zeros(len(keep), dtype=bool)
    flag[order[at[found]]] = True
    added = standard[~found]
    order = np.argsort(np.concatenate([keep, added]), kind="stable")
    return np.concatenate([keep, added])[order], np.concatenate([flag, np.ones(len(added), dtype=bool)])[order]


def _failures(measures) -> np.ndarray:
    return np.array([m.gain.failure if m.gain is not None else 0.0 for m in measures])


def _frontier(rows: np.ndarray, lag: np.ndarray, cost: np.ndarray, prob: np.ndarray, sustained: np.ndarray,
              useful: np.ndarray, cap: int) -> np.ndarray:
    """Indices of the packages to keep: per (household, lag), those no cheaper package beats in
    exit or in sustained probability; then at most ``cap`` per household, spread evenly from
    the cheapest to the best, plus the household's best sustained package if the spread missed it."""
    idx = np.flatnonzero(useful)
    order = np.lexsort((-sustained[idx], -prob[idx], cost[idx], lag[idx], rows[idx]))
    idx = idx[order]
    group = pd.Series(rows[idx].astype(np.int64) * 64 + lag[idx])
    same = group.eq(group.shift(1)).to_numpy()
    frontier = ~same
    for value in (prob, sustained):
        best_before = pd.Series(value[idx]).groupby(group.to_numpy()).cummax().shift(1)
        frontier |= value[idx] > best_before.to_numpy()
    idx = idx[frontier]
    # cap per household: evenly spaced ranks by cost (cheapest and best always kept)
    order = np.lexsort((-sustained[idx], -prob[idx], cost[idx], rows[idx]))
    idx = idx[order]
    h = rows[idx]
    starts = np.r_[0, np.flatnonzero(np.diff(h)) + 1]
    counts = np.diff(np.r_[starts, len(h)])
    rank = np.arange(len(h)) - np.repeat(starts, counts)
    n = np.repeat(counts, counts)
    wanted = np.round(np.arange(cap)[None, :] * (np.maximum(n, 1)[:, None] - 1) / max(cap - 1, 1))
    is_best = sustained[idx] == pd.Series(sustained[idx]).groupby(h).transform("max").to_numpy()
    first_best = is_best & (pd.Series(is_best).groupby(h).cumsum().to_numpy() == 1)
    keep = (n <= cap) | (wanted == rank[:, None]).any(axis=1)
    missed = ~pd.Series(keep & is_best).groupby(h).transform("any").to_numpy()
    keep |= first_best & missed
    return np.sort(idx[keep])


def _projects(v_frame: pd.DataFrame, gap: np.ndarray, required: np.ndarray, catalog: Catalog) -> pd.DataFrame:
    """One row per village and project it lacks that is mandatory there or needed by a package."""
    parts = []
    for j, key in enumerate(catalog.projects):
        project = catalog.projects[key]
        mandatory = gap[:, j] & evaluate(v_frame, project.mandatory, f"projects.{key}.mandatory", bool)
        keep = gap[:, j] & (mandatory | required[:, j])
        if not keep.any():
            continue
        cost = evaluate(v_frame, project.cost, f"projects.{key}.cost")
        parts.append(pd.DataFrame({
            "village_id": v_frame["village_id"].to_numpy()[keep], "project_id": key, "category": project.category,
            "cost": np.round(cost[keep], 2), "duration_years": project.duration, "mandatory": mandatory[keep]}))
    if not parts:
        return pd.DataFrame({c.name: pd.Series([], dtype={"str": str, "float": float, "int": np.int64,
                                                          "bool": bool}[c.kind if c.kind != "list" else "str"])
                             for c in SPECS["projects"].columns})
    projects = pd.concat(parts, ignore_index=True)
    projects["duration_years"] = projects["duration_years"].astype(np.int64)
    order = np.lexsort((projects["project_id"].to_numpy(), projects["village_id"].to_numpy()))
    return projects.iloc[order].reset_index(drop=True)


__all__ = ["Candidates", "asset_columns", "build_candidates", "holds_assets", "household_frame"]
