"""Seeded synthetic canonical problem: a western province planning 2016–2020.

:func:`generate_canonical` returns the seven contract tables of :mod:`allocator.inputs.tables`
(regions, villages, households, packages, projects, funds, personnel) with exactly the
columns of ``tables.SPECS``, in that order: ids and lists as ``str``, booleans as
``bool``, integers as ``int64``, numbers as ``float64``. Lists are ``;``-joined ('' for
none, '*' for any). Everything is drawn from ``numpy.random.default_rng(seed)`` (one child
generator per stage), in a fixed order, with no dependence on set or hash order: the
same arguments give byte-identical tables. Everything is vectorised; the only Python
loops run per county, per category or per year.

``households`` is the number of **registered poor** households; about 7 % more rows are
added as non-registered (marginal) households (``registered_poor`` false), so the
registered-poor filter matters.

Assumptions (S = sourced, D = derived, A = assumption; see /work/shared/DOMAIN.md):

=========================  ==================================================================  ===
quantity                   value                                                               Q
=========================  ==================================================================  ===
region tree                1 province > prefectures (~7.5 counties each) > counties            A
                           (~11,000 registered households each; 60 for 655k) > townships
                           (~15 villages each)
western                    the whole province is western (county threshold 3 %);               S
                           ``western=False`` gives a central province (2 %)
national poor counties     58 % of counties; they get 1.25x the caseload and a higher         A
                           incidence, and are the regions of the integrated fund
poor villages              55 % of registered households live in poor villages of ~220          D/A
                           registered households (≈ 670 poor people); the rest in
                           non-poor villages of ~30 registered households
incidence                  registered / rural households: poor villages U(0.27, 0.45),          A
                           others U(0.035, 0.09), x1.12 in national poor counties, x0.88
                           elsewhere → county incidence 8–13 %, 11 % overall (DOMAIN 12.5 %)
rural_population           county = number of rural HOUSEHOLDS (incidence is a household      A
                           ratio); village population = people (≈ 3.3 per household)
coordinates                24–29 N, 103–109 E (a Guizhou/Yunnan-like box)                      A
remoteness                 Beta(3,2) in poor villages, Beta(2,3) elsewhere; > 0.75 means        A
                           relocation-eligible (≈ 7 % of registered people get a
                           relocation candidate; DOMAIN: 9.6 m of 98 m were moved)
household size             1..6+: 0.15, 0.25, 0.22, 0.20, 0.11, 0.07 (6+: 6 + Poisson(0.6))   A
main cause                 illness .40, disability .10, funds .15, skills .10, labour .08,     S/A
                           schooling .05, motivation .03, disaster .03, transport .02,
                           land .02, water .01, other .01
labourers                  0: 30 % overall (85 % if cause = lack of labour, 38 % if illness    A
                           or disability, 10 % otherwise); else 1/2/3 as .40/.25/.05
safety net                 dibao 18 %, tekun 4 % (tied to zero labour)                         A
income ratio               lognormal, median 0.85, sigma 0.40, clipped to [0.2, 1.6]           A
unsafe housing             0.30 + 0.30 x remoteness (≈ 45 %)                                   D
baseline exit              0.08 with labour, 0.02 without, x clip(income ratio / 0.85,         A
                           0.5, 1.5)
village gaps (poor /       road .30/.08, tap water .35/.15, broadband .60/.30, clinic         S/A
other), x(0.4+1.2 r)       .15/.05, industry base .50/.08, forest .25+.30 r
=========================  ==================================================================  ===

Packages (one row per household and candidate; 1–4 per registered household, drawn
with the household's needs forced in: unsafe housing → housing or relocation, no labour →
dibao, illness → health, schooling → education; about 30 % of non-registered households
get one):

============  ==============  ==========================================  ==========  ===
package_id    category        cost (yuan)                                 lag         hours
============  ==============  ==========================================  ==========  ===
industry      industry        5,000 x LN(0, .25) x (.85 + .05 size)        0 or 1      30
microcredit   industry        12,000 x U(.7, 1): 3 yr interest + risk fund 1           20
job           ability         (2,000 + U(500, 1,500)) per labourer (<= 2)  0           25
training      ability         U(1,000, 2,000) per labourer (<= 2)          1           20
education     ability         3,000/yr x 3 yr per student (1 or 2)          2           15
housing       housing         repair U(8k, 12k) 35 % / rebuild U(25k, 45k)  0           40
                              x (.8 + .07 size)
relocation    housing         50,000 per person (+ site project: 12,500     1 or 2      60
                              per candidate person → 62,500 all-in)
health        welfare         200/person/yr x years + medical assistance   0           15
dibao         welfare         U(800, 2,500)/person/yr x min(3, years)      0           10
ranger        ecology         10,000/yr x min(3, years)                    0           15
water         infrastructure  1,500/person + U(1,000, 3,000) cistern       0           15
============  ==============  ==========================================  ==========  ===

Exit probability = b + (1 - b) e, clipped to [b + 0.005, 0.95], b the household's baseline
and e the package's effect: a base (industry .82, microcredit .72, job .78, training .55,
education .70, housing .90, relocation .92, health .45, dibao .92, ranger .90, water .50),
plus a bonus where it fits the main cause (illness → health +.45; funds → microcredit
+.18; skills → training +.22; schooling → education +.28; ...), labour adjustments (no
labour: industry -.25, housing -.12; with labour: dibao -.22), x LN(0, .12) noise, x (1 +
.35 (income ratio - .85)), and x .35 for any non-housing package of a household without
safe housing (the housing guarantee is part of exit). Hours: the base above x U(.7, 1.3),
clipped to [10, 60].

Requirements: industry and microcredit packages in a village without a road require its
``road`` project; ``industry`` also requires the village's ``industry_base`` where there is
one; ``relocation`` requires the village's ``relocation_site``; ``health`` requires the
village ``clinic`` where the village lacks one. Every required project exists in the
household's own village.

Projects: ``road`` (infrastructure, 2 yr, 1–3 m yuan, mandatory in poor villages),
``tap_water`` (infrastructure, 1 yr, 1,500 yuan per person x U(.5, 1) served, mandatory in
poor villages), ``broadband`` (infrastructure, 1 yr, 150–450 k), ``clinic`` (welfare, 1 yr,
300–800 k), ``industry_base`` (industry, 1 yr, 0.5–2 m), ``relocation_site`` (housing, 2
yr, 0.5 m + 12,500 per candidate person). Road, broadband, clinic and industry base are
for a village of ~600 rural households and scale with sqrt(size / 600) in [0.25, 1.5]
(the toy villages of tiny instances get cheaper works). Durations are capped at the
number of years, so every mandatory project can finish by the deadline.

Funds (money is the binding constraint): the total over all sources and years is
``money_scale x C / 2.2`` where C = cost of every registered household's candidate
packages plus every project, so the candidates cost 2.2x the money at ``money_scale=1``.
Shares follow DOMAIN §7.3: ``central`` 40 % (all categories, '*', carry-over, growing
21.5 %/yr like 1.9 → 4.2 bn), ``provincial`` 24 % (0.6 x central each year, no carry-over),
``integrated`` 13 % (infrastructure;industry, the national poor counties, no carry-over),
``east_west`` 5 % (industry;ability, half the prefectures, from start_year + 1, rising),
``relocation_loan`` 18 % (housing, '*', carry-over, 25/35/25/10/5 % by year). A source with
no year in the horizon gives its share to the others. Floor: the mandatory projects that
must start by any year take at most 60 % of the central + provincial money available up
to that year (this only binds for toy instances, where a road dwarfs the packages), so at
``money_scale=1`` every mandatory project is affordable in time. The levels are calibrated to the
generated costs, not copied from DOMAIN: a 655k-household province gets 17 bn yuan in all
(central 0.9 → 1.95 bn/yr, ≈ 0.45x the real figures, whose programme also paid for much
that is not modelled here).

Calibration (HiGHS LP relaxation of allocator's own formulation: soft deadline, 3 %
threshold, bisection on ``money_scale`` to ±0.016): demo size (3,000 households, 3
counties), seeds 0–7: at ``money_scale=1`` every county meets the threshold, ~99 % of
registered households get a package, all money is spent and it buys only 1/2.2 of the
candidates' cost. The smallest ``money_scale`` keeping every county on schedule is ≈ 0.52
for seed 0 (in (0.513, 0.528]), 0.42–0.59 over seeds 0–7 (median ≈ 0.52); a one-county
province (25k households, seed 0) is on schedule at 0.55 and short at 0.50. ``tight`` uses
0.55: for seed 0 allocator's MIP (lp-fix) keeps 3/3 counties on schedule with remaining
incidence 2.8–2.95 % against the 3 % threshold. Other seeds of ``tight`` may be slightly
short (seed 6 needs 0.59) or have up to ~25 % slack.

Personnel: one row per township and year with hours = U(1.2, 1.9) x (sum over its
registered households of their mean candidate hours) / years — binding in the townships
drawn low, in the busiest years; and one row per county and year at U(0.9, 1.1) x the sum
of its townships.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from allocator.inputs.tables import ANY, LIST_SEPARATOR, SPECS, take_text, write_table
from allocator.synth.common import numbered_ids, place_names, round_to, text_array

TABLE_NAMES = ("regions", "villages", "households", "packages", "projects", "funds", "personnel")

# --- geography --------------------------------------------------------------------------
HOUSEHOLDS_PER_COUNTY = 11_000
COUNTIES_PER_PREFECTURE = 7.5
VILLAGES_PER_TOWNSHIP = 15
POOR_PER_POOR_VILLAGE = 220
POOR_PER_OTHER_VILLAGE = 30
SHARE_IN_POOR_VILLAGES = 0.55
NATIONAL_POOR_COUNTY_SHARE = 0.58
NON_REGISTERED_PER_REGISTERED = 0.075
LAT_BOX = (24.0, 29.0)
LON_BOX = (103.0, 109.0)
RELOCATION_REMOTENESS = 0.75

# --- households -------------------------------------------------------------------------
SIZE_P = np.array([0.15, 0.25, 0.22, 0.20, 0.11, 0.07])
CAUSES = ("illness", "disability", "lack_of_funds", "lack_of_skills", "lack_of_labour", "schooling",
          "lack_of_motivation", "disaster", "transport", "lack_of_land", "lack_of_water", "other")
CAUSE_P = np.array([0.40, 0.10, 0.15, 0.10, 0.08, 0.05, 0.03, 0.03, 0.02, 0.02, 0.01, 0.01])
(ILL, DISABLED, FUNDS, SKILLS, LABOUR, SCHOOL, MOTIVATION, DISASTER, TRANSPORT, LAND, WATER, OTHER) = range(12)
ORDINARY, DIBAO, TEKUN = 0, 1, 2

# --- packages ---------------------------------------------------------------------------
PACKAGE_IDS = ("industry", "microcredit", "job", "training", "education", "housing", "relocation",
               "health", "dibao", "ranger", "water")
PACKAGE_CATEGORY = ("industry", "industry", "ability", "ability", "ability", "housing", "housing",
                    "welfare", "welfare", "ecology", "infrastructure")
(P_INDUSTRY, P_MICRO, P_JOB, P_TRAINING, P_EDUCATION, P_HOUSING, P_RELOCATION, P_HEALTH, P_DIBAO,
 P_RANGER, P_WATER) = range(11)
K = len(PACKAGE_IDS)
BASE_EFFECT = np.array([0.82, 0.72, 0.78, 0.55, 0.70, 0.90, 0.92, 0.45, 0.92, 0.90, 0.50])
BASE_HOURS = np.array([30, 20, 25, 20, 15, 40, 60, 15, 10, 15, 15], dtype=float)
PICK_WEIGHT = np.array([4.0, 1.5, 3.0, 1.5, 1.0, 2.0, 2.0, 1.5, 1.5, 2.0, 1.0])
CANDIDATES_P = np.array([0.15, 0.35, 0.30, 0.20])  # 1, 2, 3, 4 candidates per registered household
NON_REGISTERED_WITH_PACKAGE = 0.30
UNSAFE_HOUSING_FACTOR = 0.35
MAX_EXIT = 0.95
MIN_GAIN = 0.005

CAUSE_BONUS = np.zeros((len(CAUSES), K))
for _cause, _pkg, _bonus in (
    (ILL, P_HEALTH, 0.45), (ILL, P_INDUSTRY, -0.10), (ILL, P_JOB, -0.10),
    (DISABLED, P_HEALTH, 0.30), (DISABLED, P_DIBAO, 0.05), (DISABLED, P_JOB, -0.15), (DISABLED, P_INDUSTRY, -0.05),
    (FUNDS, P_INDUSTRY, 0.12), (FUNDS, P_MICRO, 0.18),
    (SKILLS, P_JOB, 0.14), (SKILLS, P_TRAINING, 0.22),
    (LABOUR, P_DIBAO, 0.08), (LABOUR, P_INDUSTRY, -0.10),
    (SCHOOL, P_EDUCATION, 0.28),
    (MOTIVATION, P_INDUSTRY, 0.05), (MOTIVATION, P_JOB, 0.05),
    (DISASTER, P_HOUSING, 0.08), (DISASTER, P_RELOCATION, 0.06), (DISASTER, P_INDUSTRY, 0.05),
    (TRANSPORT, P_RELOCATION, 0.06), (TRANSPORT, P_INDUSTRY, 0.05),
    (LAND, P_INDUSTRY, 0.08), (LAND, P_RELOCATION, 0.06), (LAND, P_RANGER, 0.05),
    (WATER, P_WATER, 0.40), (WATER, P_RELOCATION, 0.06),
):
    CAUSE_BONUS[_cause, _pkg] = _bonus

MEASURES = (
    "industry support grant + cooperative link",
    "poverty-alleviation microcredit (<= 50k, interest subsidy, risk fund)",
    "job placement / labour migration with transport subsidy",
    "vocational skills training",
    "Rain and Dew vocational education subsidy",
    "dangerous-house repair",
    "ex-situ relocation to a resettlement site",
    "health package: insurance premium subsidy + medical assistance",
    "dibao (minimum living allowance) top-up",
    "ecological forest ranger post",
    "household safe-water connection / cistern",
    "dangerous-house rebuild",  # variant of housing
)
MEASURE_REBUILD = K

# --- projects ---------------------------------------------------------------------------
PROJECT_IDS = ("road", "tap_water", "broadband", "clinic", "industry_base", "relocation_site")
PROJECT_CATEGORY = ("infrastructure", "infrastructure", "infrastructure", "welfare", "industry", "housing")
PROJECT_DURATION = (2, 1, 1, 1, 1, 2)
J_ROAD, J_WATER, J_BROADBAND, J_CLINIC, J_INDUSTRY_BASE, J_RELOCATION_SITE = range(6)
GAP_P = {  # (poor village, other village)
    J_ROAD: (0.30, 0.08), J_WATER: (0.35, 0.15), J_BROADBAND: (0.60, 0.30), J_CLINIC: (0.15, 0.05),
    J_INDUSTRY_BASE: (0.50, 0.08),
}
REQ_ROAD, REQ_INDUSTRY_BASE, REQ_SITE, REQ_CLINIC = 1, 2, 4, 8
REQ_NAMES = ((REQ_ROAD, "road"), (REQ_INDUSTRY_BASE, "industry_base"), (REQ_SITE, "relocation_site"),
             (REQ_CLINIC, "clinic"))

# --- funds ------------------------------------------------------------------------------
COST_TO_MONEY_RATIO = 2.2
MANDATORY_MONEY_SHARE = 0.6
CENTRAL_GROWTH = 1.215
FUND_SOURCES = (  # source, share of all money, categories, carry_over
    ("central", 0.40, ANY, True),
    ("provincial", 0.24, ANY, False),
    ("integrated", 0.13, "infrastructure;industry", False),
    ("east_west", 0.05, "industry;ability", False),
    ("relocation_loan", 0.18, "housing", True),
)
RELOCATION_LOAN_PROFILE = (0.25, 0.35, 0.25, 0.10, 0.05)

PRESETS: dict[str, dict] = {
    # ~60 registered households in 2 counties: unit tests and examples.
    "tiny": {"households": 60, "counties": 2},
    # 3,000 registered households in 3 counties: the default demo.
    "demo": {"households": 3000, "counties": 3},
    # the demo province with 55 % of the money: the deadline is barely reachable (for seed 0
    # the smallest money_scale keeping every county on schedule is ≈ 0.52; see the module doc).
    "tight": {"households": 3000, "counties": 3, "money_scale": 0.55},
}
# Whole provinces from raw registry data (county, province-small, province, province-dispersed)
# are the presets of :mod:`allocator.synth.province`.


# --- small helpers ----------------------------------------------------------------------


# --- the generator ----------------------------------------------------------------------
def generate_canonical(households: int, start_year: int = 2016, deadline_year: int = 2020, seed: int = 0, *,
                       money_scale: float = 1.0, counties: int | None = None,
                       western: bool = True) -> dict[str, pd.DataFrame]:
    """The seven contract tables of a synthetic province with ``households`` registered poor
    households (plus ~7 % non-registered rows), planning ``start_year``..``deadline_year``.

    ``money_scale`` multiplies every fund amount; ``counties`` overrides the number of
    counties (default: one per ~11,000 registered households); ``western`` marks the
    province western (3 % exit threshold) or not (2 %).
    """
    households = int(households)
    if households < 1:
        raise ValueError(f"households must be >= 1 (got {households})")
    if deadline_year < start_year:
        raise ValueError(f"deadline_year {deadline_year} is before start_year {start_year}")
    if not (money_scale >= 0 and math.isfinite(money_scale)):
        raise ValueError(f"money_scale must be a finite number >= 0 (got {money_scale})")
    n_counties = max(1, round(households / HOUSEHOLDS_PER_COUNTY)) if counties is None else int(counties)
    if not 1 <= n_counties <= households:
        raise ValueError(f"counties must be between 1 and households={households} (got {n_counties})")
    years = np.arange(start_year, deadline_year + 1)
    rngs = np.random.default_rng(seed).spawn(8)
    geo = _geography(rngs[0], households, n_counties)
    vil = _villages(rngs[1], geo)
    hh = _households(rngs[2], vil)
    pkg = _packages(rngs[3], hh, vil, len(years))
    proj = _projects(rngs[4], vil, pkg, hh, len(years))
    funds = _funds(rngs[5], geo, pkg, proj, years, money_scale)
    personnel = _personnel(rngs[6], geo, vil, hh, pkg, years)
    names = rngs[7]
    tables = {
        "regions": regions_table(names, geo, vil, western),
        "villages": _villages_table(names, vil),
        "households": _households_table(hh, vil["n"]),
        "packages": _packages_table(pkg, hh),
        "projects": _projects_table(proj, vil),
        "funds": funds,
        "personnel": personnel,
    }
    for name, frame in tables.items():  # optional columns this generator does not draw are left out
        tables[name] = frame[[c.name for c in SPECS[name].columns if c.required or c.name in frame]]
    return tables


def _geography(rng: np.random.Generator, households: int, n_counties: int) -> dict:
    """Prefectures and counties: caseload per county and national-poor-county flags."""
    n_pref = max(1, round(n_counties / COUNTIES_PER_PREFECTURE))
    county_pref = (np.arange(n_counties) * n_pref) // n_counties
    national_poor = np.zeros(n_counties, dtype=bool)
    national_poor[rng.permutation(n_counties)[: max(1, round(NATIONAL_POOR_COUNTY_SHARE * n_counties))]] = True
    weight = rng.uniform(0.7, 1.3, n_counties) * np.where(national_poor, 1.25, 0.85)
    caseload = 1 + rng.multinomial(households - n_counties, weight / weight.sum())
    incidence_factor = np.where(national_poor, 1.12, 0.88) * rng.uniform(0.93, 1.07, n_counties)
    pref_lat = rng.uniform(LAT_BOX[0] + 0.6, LAT_BOX[1] - 0.6, n_pref)
    pref_lon = rng.uniform(LON_BOX[0] + 0.6, LON_BOX[1] - 0.6, n_pref)
    county_lat = pref_lat[county_pref] + rng.normal(0, 0.35, n_counties)
    county_lon = pref_lon[county_pref] + rng.normal(0, 0.35, n_counties)
    return {"n_pref": n_pref, "n_counties": n_counties, "county_pref": county_pref, "national_poor": national_poor,
            "caseload": caseload, "incidence_factor": incidence_factor, "county_lat": county_lat,
            "county_lon": county_lon}


def _villages(rng: np.random.Generator, geo: dict) -> dict:
    """Villages (poor or not), their townships, registered caseload, households and gaps."""
    poor_parts, reg_parts, town_parts, remote_parts, county_parts = [], [], [], [], []
    town_county, n_towns_total = [], 0
    for c in range(geo["n_counties"]):  # a loop per county; everything inside is vectorised
        caseload = int(geo["caseload"][c])
        in_poor = min(max(int(rng.binomial(caseload, SHARE_IN_POOR_VILLAGES)), 1), caseload)
        in_other = caseload - in_poor
        minimum = 2 if caseload >= 20 else 1
        n_poor = min(max(round(in_poor / POOR_PER_POOR_VILLAGE), minimum), in_poor)
        n_other = max(round(in_other / POOR_PER_OTHER_VILLAGE), minimum)
        w_poor = rng.gamma(4.0, 1.0, n_poor)
        w_other = rng.gamma(2.0, 1.0, n_other)
        reg_poor = 1 + rng.multinomial(in_poor - n_poor, w_poor / w_poor.sum())
        reg_other = rng.multinomial(in_other, w_other / w_other.sum())
        poor = np.r_[np.ones(n_poor, dtype=bool), np.zeros(n_other, dtype=bool)]
        remote = np.r_[rng.beta(3.0, 2.0, n_poor), rng.beta(2.0, 3.0, n_other)]
        n_v = n_poor + n_other
        n_towns = max(round(n_v / VILLAGES_PER_TOWNSHIP), min(2, n_v // 3), 1)
        # townships group villages of similar remoteness: poor villages cluster
        order = np.argsort(remote + rng.normal(0, 0.15, n_v), kind="stable")
        town = (np.arange(n_v) * n_towns) // n_v
        poor_parts.append(poor[order])
        reg_parts.append(np.r_[reg_poor, reg_other][order])
        remote_parts.append(remote[order])
        town_parts.append(n_towns_total + town)
        county_parts.append(np.full(n_v, c))
        town_county.append(np.full(n_towns, c))
        n_towns_total += n_towns
    poor = np.concatenate(poor_parts)
    registered = np.concatenate(reg_parts).astype(np.int64)
    remote = np.concatenate(remote_parts)
    township = np.concatenate(town_parts)
    county = np.concatenate(county_parts)
    town_county = np.concatenate(town_county)
    n_v = len(poor)

    incidence = np.where(poor, rng.uniform(0.27, 0.45, n_v), rng.uniform(0.035, 0.09, n_v))
    incidence *= geo["incidence_factor"][county]
    rural = np.where(registered > 0, np.ceil(registered / incidence), rng.integers(150, 600, n_v)).astype(np.int64)
    n_non_registered = int(math.floor(NON_REGISTERED_PER_REGISTERED * registered.sum() + 0.5))
    spare = (rural - registered).astype(float)
    non_registered = rng.multinomial(n_non_registered, spare / spare.sum()).astype(np.int64)
    rural = np.maximum(rural, registered + non_registered)

    town_lat = geo["county_lat"][town_county] + rng.normal(0, 0.12, n_towns_total)
    town_lon = geo["county_lon"][town_county] + rng.normal(0, 0.12, n_towns_total)
    lat = np.clip(town_lat[township] + rng.normal(0, 0.04, n_v), *LAT_BOX)
    lon = np.clip(town_lon[township] + rng.normal(0, 0.04, n_v), *LON_BOX)

    gaps = {}
    tilt = 0.4 + 1.2 * remote
    for j, (p_poor, p_other) in GAP_P.items():  # a loop per project kind
        gaps[j] = rng.random(n_v) < np.clip(np.where(poor, p_poor, p_other) * tilt, 0, 0.98)
    forest = rng.random(n_v) < 0.25 + 0.30 * remote
    return {"n": n_v, "poor": poor, "registered": registered, "non_registered": non_registered,
            "rural": rural, "remote": remote, "township": township, "county": county,
            "town_county": town_county, "n_towns": n_towns_total, "lat": lat, "lon": lon, "gaps": gaps,
            "forest": forest, "relocation_ok": remote > RELOCATION_REMOTENESS}


def _households(rng: np.random.Generator, vil: dict) -> dict:
    """Household rows (registered and not), grouped by village, with their attributes."""
    v_idx = np.arange(vil["n"])
    village = np.r_[np.repeat(v_idx, vil["registered"]), np.repeat(v_idx, vil["non_registered"])]
    n_reg = int(vil["registered"].sum())
    n = len(village)
    registered = np.arange(n) < n_reg

    size = 1 + rng.choice(len(SIZE_P), size=n, p=SIZE_P)
    size = size + np.where(size == 6, rng.poisson(0.6, n), 0)
    cause = np.where(registered, rng.choice(len(CAUSES), size=n, p=CAUSE_P), OTHER)
    p_zero = np.select([cause == LABOUR, (cause == ILL) | (cause == DISABLED)], [0.85, 0.38], 0.10)
    p_zero = np.where(registered, p_zero, 0.15)
    labour = np.where(rng.random(n) < p_zero, 0, 1 + rng.choice(3, size=n, p=[0.40 / 0.70, 0.25 / 0.70, 0.05 / 0.70]))
    labour = np.minimum(labour, size)
    u = rng.random(n)
    kind = np.where(labour == 0,
                    np.select([(u < 0.133) & (size <= 2), u < 0.533], [TEKUN, DIBAO], ORDINARY),
                    np.where(u < 0.086, DIBAO, ORDINARY))
    kind = np.where(registered, kind, ORDINARY)
    income = np.clip(np.exp(rng.normal(math.log(0.85), 0.40, n)), 0.2, 1.6)
    income = np.where(registered, income, rng.uniform(1.0, 1.5, n))
    unsafe = registered & (rng.random(n) < 0.30 + 0.30 * vil["remote"][village])
    baseline = np.where(labour > 0, 0.08, 0.02) * np.clip(income / 0.85, 0.5, 1.5)
    baseline = np.round(baseline, 4)

    # grouped by village, in random order inside it (one radix sort on a combined key)
    order = np.argsort((village.astype(np.int64) << 32) | rng.integers(0, 1 << 32, n), kind="stable")
    out = {"village": village, "registered": registered, "size": size, "cause": cause, "labour": labour,
           "kind": kind, "income": income, "unsafe": unsafe, "baseline": baseline}
    out = {k: v[order] for k, v in out.items()}
    out["n"] = n
    return out


def _packages(rng: np.random.Generator, hh: dict, vil: dict, n_years: int) -> dict:
    """Candidate packages: eligibility, forced needs, weighted picks, then cost and effect."""
    n = hh["n"]
    v = hh["village"]
    reg, labour, cause, kind, size = hh["registered"], hh["labour"], hh["cause"], hh["kind"], hh["size"]
    has_labour = labour > 0
    reloc_village = vil["relocation_ok"][v]

    elig = np.zeros((n, K), dtype=bool)
    elig[:, P_INDUSTRY] = has_labour | (rng.random(n) < 0.3)
    elig[:, P_MICRO] = has_labour & (kind != TEKUN)
    elig[:, P_JOB] = has_labour
    elig[:, P_TRAINING] = has_labour
    elig[:, P_EDUCATION] = (cause == SCHOOL) | ((size >= 3) & (rng.random(n) < 0.12))
    elig[:, P_HOUSING] = hh["unsafe"]
    elig[:, P_RELOCATION] = reloc_village & (hh["unsafe"] | (rng.random(n) < 0.5))
    elig[:, P_HEALTH] = True  # always possible: every household has a fallback
    elig[:, P_DIBAO] = ~has_labour | (kind != ORDINARY)
    elig[:, P_RANGER] = vil["forest"][v] & has_labour & (rng.random(n) < 0.6)
    elig[:, P_WATER] = (cause == WATER) | (rng.random(n) < 0.03)
    # non-registered households: only industry, job and health, and only some of them
    elig[~reg] &= np.isin(np.arange(K), [P_INDUSTRY, P_JOB, P_HEALTH])[None, :]

    forced = np.zeros((n, K), dtype=bool)
    prefer_reloc = reloc_village & (rng.random(n) < 0.6)
    forced[:, P_RELOCATION] = hh["unsafe"] & prefer_reloc & elig[:, P_RELOCATION]
    forced[:, P_HOUSING] = hh["unsafe"] & ~forced[:, P_RELOCATION]
    forced[:, P_DIBAO] = ~has_labour
    forced[:, P_HEALTH] = cause == ILL
    forced[:, P_EDUCATION] = cause == SCHOOL
    forced &= reg[:, None]

    # weighted sampling without replacement (exponential race: the smallest E / w wins);
    # forced needs come first, ineligible packages never
    weight = np.broadcast_to(PICK_WEIGHT.astype(np.float32), (n, K)).copy()
    weight[:, P_MICRO] *= np.where(cause == FUNDS, 2, 1).astype(np.float32)
    weight[:, P_JOB] *= np.where(cause == SKILLS, 2, 1).astype(np.float32)
    weight[:, P_TRAINING] *= np.where(cause == SKILLS, 2, 1).astype(np.float32)
    weight[:, P_HEALTH] *= np.where(cause == DISABLED, 3, 1).astype(np.float32)
    weight[:, P_INDUSTRY] *= np.where((cause == TRANSPORT) | (cause == LAND), 1.5, 1).astype(np.float32)
    weight[:, P_HOUSING] *= np.where(cause == DISASTER, 2, 1).astype(np.float32)
    weight[:, P_WATER] *= np.where(cause == WATER, 5, 1).astype(np.float32)
    race = rng.standard_exponential((n, K), dtype=np.float32)
    race /= weight
    del weight
    race[forced] = -1.0
    race[~elig] = np.inf

    m = np.where(reg, 1 + rng.choice(4, size=n, p=CANDIDATES_P),
                 (rng.random(n) < NON_REGISTERED_WITH_PACKAGE).astype(np.int64))
    m = np.minimum(np.maximum(m, forced.sum(axis=1) * reg), elig.sum(axis=1))
    del elig, forced
    chosen = np.zeros((n, K), dtype=bool)
    rows = np.arange(n)
    for j in range(int(m.max(initial=0))):  # at most 4 rounds of a row-wise argmin
        best = race.argmin(axis=1)
        pick = m > j
        chosen[rows[pick], best[pick]] = True
        race[rows, best] = np.inf
    del race, rows

    h, k = np.nonzero(chosen)  # households in row order, packages in catalogue order
    del chosen
    r = len(h)
    L = labour[h]
    sz = size[h]
    cs = cause[h]
    u = rng.random(r)
    z = rng.normal(0, 0.25, r)
    yrs3 = min(3, n_years)
    rebuild = rng.random(r) >= 0.35
    students = 1 + (rng.random(r) < 0.2)
    formulas = {  # cost per package kind, evaluated on that kind's rows only
        P_INDUSTRY: lambda i: 5000 * np.exp(z[i]) * (0.85 + 0.05 * sz[i]),
        P_MICRO: lambda i: 12000 * (0.7 + 0.3 * u[i]),
        P_JOB: lambda i: (2500 + 1000 * u[i]) * np.clip(L[i], 1, 2),
        P_TRAINING: lambda i: (1000 + 1000 * u[i]) * np.clip(L[i], 1, 2),
        P_EDUCATION: lambda i: 3000.0 * 3 * students[i],
        P_HOUSING: lambda i: np.where(rebuild[i], 25000 + 20000 * u[i], 8000 + 4000 * u[i]) * (0.8 + 0.07 * sz[i]),
        P_RELOCATION: lambda i: 50000.0 * sz[i],
        P_HEALTH: lambda i: 200.0 * sz[i] * n_years + np.where((cs[i] == ILL) | (cs[i] == DISABLED),
                                                                3000 + 5000 * u[i], 500 + 1500 * u[i]),
        P_DIBAO: lambda i: (800 + 1700 * u[i]) * sz[i] * yrs3,
        P_RANGER: lambda i: np.full(len(i), 10000.0 * yrs3),
        P_WATER: lambda i: 1500.0 * sz[i] + 1000 + 2000 * u[i],
    }
    cost = np.empty(r)
    kind_start = np.searchsorted(np.sort(k, kind="stable"), np.arange(K + 1))
    by_kind = np.argsort(k, kind="stable")
    for j, formula in formulas.items():  # a loop per package kind
        rows_j = by_kind[kind_start[j]:kind_start[j + 1]]
        cost[rows_j] = formula(rows_j)
    cost = round_to(cost, 10)

    effect = BASE_EFFECT[k] + CAUSE_BONUS[cs, k]
    effect += np.where(k == P_JOB, 0.06 * (np.minimum(L, 3) - 1), 0.0)
    effect -= np.where((k == P_INDUSTRY) & (L == 0), 0.25, 0.0)
    effect -= np.where((k == P_HOUSING) & (L == 0), 0.12, 0.0)
    effect -= np.where((k == P_DIBAO) & (L > 0), 0.22, 0.0)
    effect *= np.exp(rng.normal(0, 0.12, r))
    effect *= 1 + 0.35 * (hh["income"][h] - 0.85)
    housing_fix = (k == P_HOUSING) | (k == P_RELOCATION)
    effect *= np.where(hh["unsafe"][h] & ~housing_fix, UNSAFE_HOUSING_FACTOR, 1.0)
    effect = np.clip(effect, 0.0, 0.97)
    base = hh["baseline"][h]
    exit_p = np.clip(base + (1 - base) * effect, base + MIN_GAIN, MAX_EXIT)
    exit_p = np.maximum(np.round(exit_p, 4), base + MIN_GAIN)

    hours = np.clip(np.round(BASE_HOURS[k] * rng.uniform(0.7, 1.3, r)), 10, 60)
    lag = np.select([k == P_INDUSTRY, k == P_MICRO, k == P_TRAINING, k == P_EDUCATION, k == P_RELOCATION],
                    [(rng.random(r) < 0.5).astype(np.int64), 1, 1, 2, 1 + (rng.random(r) < 0.5)], 0)
    measure = np.where((k == P_HOUSING) & rebuild, MEASURE_REBUILD, k)
    return {"n": r, "household": h, "registered": reg[h], "kind": k, "cost": cost, "hours": hours, "exit": exit_p,
            "lag": lag.astype(np.int64), "measure": measure}


def _projects(rng: np.random.Generator, vil: dict, pkg: dict, hh: dict, n_years: int) -> dict:
    """Village projects from the gaps; set each package's requirements on them."""
    n_v = vil["n"]
    poor, remote, gaps = vil["poor"], vil["remote"], vil["gaps"]
    pkg_village = hh["village"][pkg["household"]]
    k = pkg["kind"]
    is_reloc = k == P_RELOCATION
    movers = np.bincount(pkg_village[is_reloc], weights=hh["size"][pkg["household"][is_reloc]], minlength=n_v)
    has = {j: gaps[j] for j in GAP_P}
    has[J_RELOCATION_SITE] = movers > 0
    population = vil["population"] = _village_population(rng, vil, hh)
    # a typical village has ~600 rural households; smaller (toy-size) villages get cheaper works
    scale = np.clip(np.sqrt(vil["rural"] / 600.0), 0.25, 1.5)
    cost_of = {
        J_ROAD: lambda m: (1.0e6 + 2.0e6 * remote[m] * rng.uniform(0.5, 1.0, m.sum())) * scale[m],
        J_WATER: lambda m: 1500 * population[m] * rng.uniform(0.5, 1.0, m.sum()),
        J_BROADBAND: lambda m: rng.uniform(150e3, 450e3, m.sum()) * scale[m],
        J_CLINIC: lambda m: rng.uniform(300e3, 800e3, m.sum()) * scale[m],
        J_INDUSTRY_BASE: lambda m: rng.uniform(0.5e6, 2.0e6, m.sum()) * scale[m],
        J_RELOCATION_SITE: lambda m: 0.5e6 + 12500 * movers[m],
    }
    villages, kinds, costs, mandatory = [], [], [], []
    for j in range(len(PROJECT_IDS)):  # a loop per project kind
        mask = has[j]
        villages.append(np.flatnonzero(mask))
        kinds.append(np.full(int(mask.sum()), j))
        costs.append(round_to(cost_of[j](mask), 1000))
        mandatory.append(poor[mask] & (j in (J_ROAD, J_WATER)))
    village = np.concatenate(villages)
    kind = np.concatenate(kinds)
    order = np.lexsort((kind, village))
    duration = np.minimum(np.array(PROJECT_DURATION)[kind], n_years)

    req = np.zeros(pkg["n"], dtype=np.int64)
    req |= np.where(((k == P_INDUSTRY) | (k == P_MICRO)) & has[J_ROAD][pkg_village], REQ_ROAD, 0)
    req |= np.where((k == P_INDUSTRY) & has[J_INDUSTRY_BASE][pkg_village], REQ_INDUSTRY_BASE, 0)
    req |= np.where(is_reloc, REQ_SITE, 0)
    req |= np.where((k == P_HEALTH) & has[J_CLINIC][pkg_village], REQ_CLINIC, 0)
    pkg["requires"] = req
    return {"village": village[order], "kind": kind[order], "cost": np.concatenate(costs)[order],
            "duration": duration[order], "mandatory": np.concatenate(mandatory)[order],
            "population": population}


def _village_population(rng: np.random.Generator, vil: dict, hh: dict) -> np.ndarray:
    """People: the listed households' sizes plus ~3.3 per other rural household."""
    listed = np.bincount(hh["village"], weights=hh["size"], minlength=vil["n"])
    others = vil["rural"] - vil["registered"] - vil["non_registered"]
    return np.round(listed + others * rng.uniform(3.1, 3.5, vil["n"])).astype(np.int64)


def _funds(rng: np.random.Generator, geo: dict, pkg: dict, proj: dict, years: np.ndarray,
           money_scale: float) -> pd.DataFrame:
    """Fund rows per source and year, scaled to the candidates' cost (see module doc)."""
    n_years = len(years)
    t = np.arange(n_years)
    registered_cost = pkg["cost"][pkg["registered"]].sum()
    total = (registered_cost + proj["cost"].sum()) / COST_TO_MONEY_RATIO
    central_w = CENTRAL_GROWTH ** t
    profile = {
        "central": central_w,
        "provincial": central_w,
        "integrated": central_w,
        "east_west": np.where(t >= 1, 1 + 0.25 * (t - 1), 0.0),
        "relocation_loan": np.r_[RELOCATION_LOAN_PROFILE, np.full(max(n_years - 5, 0), 0.05)][:n_years],
    }
    present = [(s, share, cats, carry) for s, share, cats, carry in FUND_SOURCES if profile[s].sum() > 0]
    share_sum = sum(share for _, share, _, _ in present)
    # floor: mandatory projects that must start by year L take at most MANDATORY_MONEY_SHARE of
    # the unrestricted money (central + provincial) available up to L
    free = sum(share * np.cumsum(profile[src]) / profile[src].sum()
               for src, share, cats, _ in present if cats == ANY) / share_sum
    latest_start = n_years - proj["duration"][proj["mandatory"]]
    due = np.cumsum(np.bincount(latest_start, weights=proj["cost"][proj["mandatory"]], minlength=n_years))
    total = max(total, float(np.max(due / (MANDATORY_MONEY_SHARE * free))))
    pref_ids = np.asarray(numbered_ids("F", geo["n_pref"], 2).to_pylist())
    county_ids = np.asarray(numbered_ids("C", geo["n_counties"], 3).to_pylist())
    ew_prefs = np.sort(rng.permutation(geo["n_pref"])[: max(1, round(geo["n_pref"] / 2))])
    regions = {
        "integrated": LIST_SEPARATOR.join(county_ids[geo["national_poor"]]),
        "east_west": LIST_SEPARATOR.join(pref_ids[ew_prefs]),
    }
    rows = []
    for source, share, cats, carry in present:  # a loop per source
        w = profile[source]
        amount = np.round(total * share / share_sum * w / w.sum() * money_scale)
        for i in np.flatnonzero(w > 0):  # and per year
            rows.append((source, int(years[i]), float(amount[i]), cats, regions.get(source, ANY), carry))
    frame = pd.DataFrame(rows, columns=["source_id", "year", "amount", "categories", "regions", "carry_over"])
    return frame.astype({"source_id": "str", "year": np.int64, "amount": float, "categories": "str",
                         "regions": "str", "carry_over": bool})


def _personnel(rng: np.random.Generator, geo: dict, vil: dict, hh: dict, pkg: dict,
               years: np.ndarray) -> pd.DataFrame:
    """Hours per township and year (binding where drawn low) and per county and year."""
    n_years = len(years)
    reg_pkg = pkg["registered"]
    h = pkg["household"][reg_pkg]
    per_hh_hours = np.bincount(h, weights=pkg["hours"][reg_pkg], minlength=hh["n"])
    per_hh_count = np.bincount(h, minlength=hh["n"])
    mean_hours = np.divide(per_hh_hours, per_hh_count, out=np.zeros(hh["n"]), where=per_hh_count > 0)
    township_of_hh = vil["township"][hh["village"]]
    need = np.bincount(township_of_hh, weights=mean_hours, minlength=vil["n_towns"])
    town_hours = round_to(need * rng.uniform(1.2, 1.9, vil["n_towns"]) / n_years, 10)
    town_hours = np.maximum(town_hours, 10.0)
    county_sum = np.bincount(vil["town_county"], weights=town_hours, minlength=geo["n_counties"])
    county_hours = round_to(county_sum * rng.uniform(0.9, 1.1, geo["n_counties"]), 10)
    town_ids = numbered_ids("T", vil["n_towns"], 4)
    county_ids = numbered_ids("C", geo["n_counties"], 3)
    region = pa.concat_arrays([pc.take(county_ids, pa.array(np.repeat(np.arange(geo["n_counties"]), n_years))),
                               pc.take(town_ids, pa.array(np.repeat(np.arange(vil["n_towns"]), n_years)))])
    return pd.DataFrame({
        "region_id": text_array(region),
        "year": np.r_[np.tile(years, geo["n_counties"]), np.tile(years, vil["n_towns"])].astype(np.int64),
        "hours": np.r_[np.repeat(county_hours, n_years), np.repeat(town_hours, n_years)].astype(float),
    })


# --- tables -----------------------------------------------------------------------------
def regions_table(rng: np.random.Generator, geo: dict, vil: dict, western: bool, *, province_id: str = "P1",
                  prefecture_prefix: str = "F") -> pd.DataFrame:
    """The region tree (province > prefectures > counties > townships) of a generated province;
    also used by :mod:`allocator.synth.province`, with its own id scheme."""
    n_pref, n_c, n_t = geo["n_pref"], geo["n_counties"], vil["n_towns"]
    pref_ids = numbered_ids(prefecture_prefix, n_pref, 2)
    county_ids, town_ids = numbered_ids("C", n_c, 3), numbered_ids("T", n_t, 4)
    province = pa.array([province_id], type=pa.large_string())
    region_id = pa.concat_arrays([province, pref_ids, county_ids, town_ids])
    parent = pa.concat_arrays([
        pa.array([""], type=pa.large_string()),
        pc.take(province, pa.array(np.zeros(n_pref, dtype=np.int64))),
        pc.take(pref_ids, pa.array(geo["county_pref"].astype(np.int64))),
        pc.take(county_ids, pa.array(vil["town_county"].astype(np.int64))),
    ])
    level = np.repeat(np.arange(4), [1, n_pref, n_c, n_t])
    name = np.r_[np.array(["Synthetic Province"]), place_names(rng, n_pref, " Prefecture"),
                 place_names(rng, n_c, " County"), place_names(rng, n_t, " Township")]
    rural = np.zeros(1 + n_pref + n_c + n_t, dtype=np.int64)
    rural[1 + n_pref: 1 + n_pref + n_c] = np.bincount(vil["county"], weights=vil["rural"], minlength=n_c)
    return pd.DataFrame({
        "region_id": text_array(region_id), "parent_id": text_array(parent),
        "level": take_text(("province", "prefecture", "county", "township"), level),
        "name": text_array(name), "western": np.full(len(level), bool(western)), "rural_population": rural,
    })


def _villages_table(rng: np.random.Generator, vil: dict) -> pd.DataFrame:
    town_ids = numbered_ids("T", vil["n_towns"], 4)
    return pd.DataFrame({
        "village_id": text_array(numbered_ids("V", vil["n"], 5)),
        "township_id": text_array(pc.take(town_ids, pa.array(vil["township"].astype(np.int64)))),
        "name": text_array(place_names(rng, vil["n"], " Village")),
        "population": vil["population"],
        "poor_village": vil["poor"].astype(bool),
        "latitude": np.round(vil["lat"], 5),
        "longitude": np.round(vil["lon"], 5),
    })


def _households_table(hh: dict, n_villages: int) -> pd.DataFrame:
    village_ids = numbered_ids("V", n_villages, 5)
    return pd.DataFrame({
        "household_id": text_array(numbered_ids("H", hh["n"], 7)),
        "village_id": text_array(pc.take(village_ids, pa.array(hh["village"].astype(np.int64)))),
        "size": hh["size"].astype(np.int64),
        "registered_poor": hh["registered"].astype(bool),
        "baseline_exit_probability": hh["baseline"].astype(float),
    })


def _requires_vocab() -> list[str]:
    return [LIST_SEPARATOR.join(name for bit, name in REQ_NAMES if code & bit) for code in range(16)]


def _packages_table(pkg: dict, hh: dict) -> pd.DataFrame:
    hh_ids = numbered_ids("H", hh["n"], 7)
    return pd.DataFrame({
        "household_id": text_array(pc.take(hh_ids, pa.array(pkg["household"].astype(np.int64)))),
        "package_id": take_text(PACKAGE_IDS, pkg["kind"]),
        "category": take_text(PACKAGE_CATEGORY, pkg["kind"]),
        "cost": pkg["cost"].astype(float),
        "personnel_hours": pkg["hours"].astype(float),
        "exit_probability": pkg["exit"].astype(float),
        "lag_years": pkg["lag"].astype(np.int64),
        "requires": take_text(_requires_vocab(), pkg["requires"]),
        "measures": take_text(MEASURES, pkg["measure"]),
    })


def _projects_table(proj: dict, vil: dict) -> pd.DataFrame:
    village_ids = numbered_ids("V", vil["n"], 5)
    return pd.DataFrame({
        "village_id": text_array(pc.take(village_ids, pa.array(proj["village"].astype(np.int64)))),
        "project_id": take_text(PROJECT_IDS, proj["kind"]),
        "category": take_text(PROJECT_CATEGORY, proj["kind"]),
        "cost": proj["cost"].astype(float),
        "duration_years": proj["duration"].astype(np.int64),
        "mandatory": proj["mandatory"].astype(bool),
    })


# --- presets and writing ----------------------------------------------------------------
def generate_preset(name: str, seed: int = 0, **overrides) -> dict[str, pd.DataFrame]:
    """The tables of preset ``name`` (see :data:`PRESETS`) with ``overrides`` applied on top."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    kwargs = {**PRESETS[name], **{k: v for k, v in overrides.items() if v is not None}}
    return generate_canonical(seed=seed, **kwargs)


def write_tables(tables: dict[str, pd.DataFrame], folder: str | Path, fmt: str = "csv", *,
                 overwrite: bool = False) -> dict[str, Path]:
    """Write each table as ``folder/NAME.csv`` (booleans as true/false, no index) or
    ``NAME.parquet``; creates the folder. An existing non-empty folder is refused unless
    ``overwrite=True``, which replaces the tables' files (both formats) and leaves any
    other file alone. Returns the path written per table."""
    if fmt not in ("csv", "parquet"):
        raise ValueError(f"fmt must be 'csv' or 'parquet' (got {fmt!r})")
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise FileExistsError(f"{folder} exists and is not a folder")
    if folder.is_dir() and any(folder.iterdir()) and not overwrite:
        raise FileExistsError(f"{folder} already exists and is not empty; choose an empty or new folder, "
                              "or pass overwrite=True to replace its tables")
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, frame in tables.items():
        for suffix in (".csv", ".parquet"):  # a stale table in the other format would shadow this one
            stale = folder / f"{name}{suffix}"
            if stale.is_file():
                stale.unlink()
        path = folder / f"{name}.{fmt}"
        write_table(frame, path)
        written[name] = path
    return written
