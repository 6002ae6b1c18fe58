"""Seeded synthetic *raw registry data*: what a province holds before identification.

:func:`generate_province` returns six tables: ``regions``, ``villages_raw``,
``households_raw``, ``funds``, ``personnel`` (the raw contract of
:mod:`allocator.inputs.raw` plus the canonical specs of :mod:`allocator.inputs.tables`) and
``cadres`` (:data:`CADRE_COLUMNS`), each with exactly its spec's columns in spec order: ids,
texts and lists as pandas ``str`` arrays, booleans as ``bool``, integers as ``int64``,
numbers as ``float64``; lists are ``;``-joined ('' for none, '*' for any). Everything is
drawn from ``numpy.random.default_rng(seed)`` with one child generator per stage, in a fixed
order, so the same arguments give byte-identical tables. Everything is vectorised: the only
Python loops run per county, per source or per year.

``households`` is the number of households the registry recorded as poor
(``registered_poor`` true), exactly. The raw contract has no poor-village flag (identification
derives it); the villages the generator drew as poor are listed, for tests and calibration
only, in ``villages_raw.attrs["poor_village_ids"]`` (a tuple of village ids). About 8 % more
rows are non-registered: 5 % marginal households just above the line and 3 % registry
exclusion errors.

Unlike :mod:`allocator.synth.canonical`, the money is *real-sized* (DOMAIN §7.3) rather than
calibrated to candidate costs, which do not exist yet at this stage.

Assumptions (S = sourced, D = derived, A = assumption; see /work/shared/DOMAIN.md):

==========================  ==================================================================  =====
quantity                    value                                                               Q
==========================  ==================================================================  =====
region tree                 province 'PROV' > prefectures P.. (~7.5 counties each) > counties   A
                            C... (default one per 11,000 registered households: 60 for 655k)
                            > townships T.... (~15 villages each, villages of similar
                            remoteness grouped together)
western                     the ``western`` argument on every region (3 % exit threshold;       S
                            False = central province, 2 %)
national poor counties      ``poor_county_share`` of counties (0.58 = 35 of 60; Shanxi 49 %);   A
                            they get 1.25x (others 0.85x) the caseload, x U(0.7, 1.3)
registered household size   1..6+: 0.15, 0.25, 0.22, 0.20, 0.11, 0.07; 6+ = 6 + Poisson(0.5)     A
                            (mean ≈ 3.115 → 655k households ≈ 2.04 m people)
incidence (households)      registered / rural households ≈ 12.5 % for the province; county      A
                            0.150 (national poor) / 0.094 (other) x U(0.85, 1.15), rescaled to
                            12.5 % overall, clipped to [0.06, 0.20]
rural_population            county: rural HOUSEHOLDS (same unit as registered households);       A
                            prefectures, townships and the province: 0
villages                    11,000 per 655,000 registered households (proportional), at least   A
                            the poor villages + one per county
poor villages               default: registered poor people / 670 (national 700 per poor        D
                            village; ``province`` ≈ 3,000); ``province-dispersed`` 4,900
                            (Shanxi ≈ 410 per poor village); apportioned to counties ∝ their
                            households in poor villages, at most one per such household
share in poor villages      55 % of registered households live in poor villages (x1.15 in       A
                            national poor counties, x0.80 elsewhere, rescaled to 55 %);
                            gamma(4) weights between the poor villages of a county
poor-village incidence      registered poor people / population: U(0.30, 0.55) (> 2 x the       S/A
                            ~12.5 % provincial rate, "one high")
non-poor village incidence  gamma(3) village sizes share the county's remaining rural           A
                            households; registered households ∝ size x LN(0, 0.6); incidence
                            capped at 0.21 (< 2 x provincial) by adding population
village population          people: registered poor people / incidence (listed households'     A
                            people + U(3.0, 3.3) per other rural household where no target)
village income_per_capita   data year start_year - 1; provincial average 7,600 yuan in 2015      A
                            for poor areas, x POVERTY_LINE[year] / POVERTY_LINE[2015] (years
                            outside the table use the nearest listed year); poor villages
                            U(0.30, 0.57) x average ("one low"), non-poor U(0.65, 1.5) x
                            average, then rescaled so the population-weighted mean is the
                            average (scale clipped to [0.95, 1.25])
collective_income           poor villages 0 ("one none"); non-poor: 80 % LN(median 60,000,       S/A
                            sigma 1.0) yuan, 20 % 0; rounded to 100 yuan
borderline villages         5 % of poor villages break one criterion (equally likely:            A
                            incidence U(0.15, 0.22), income U(0.62, 0.90) x average, or
                            collective income LN(median 20,000, sigma 0.8)); 5 % of non-poor
                            villages meet one (incidence U(0.27, 0.40) where they have >= 5
                            registered households, else income U(0.38, 0.57) x average)
remoteness                  Beta(3, 2) poor villages, Beta(2, 3) others                          A
relocation eligible         remoteness > 0.85 or hazard zone (≈ 11 % of registered people;      A/D
                            DOMAIN target ≈ 10 %)
hazard_zone                 probability 0.01 + 0.09 x remoteness (≈ 5 %)                         A
infrastructure gaps         poor / non-poor: no paved road .30/.08, no tap water .35/.15,       S/A
                            power incomplete .02/.005, no broadband .60/.30, no clinic
                            .15/.05; x (0.4 + 1.2 r) / (0.4 + 1.2 E[r]) with E[r] = .6/.4
forest                      probability 0.25 + 0.30 x remoteness                                A
tourism_potential           Beta(2, 5)                                                           A
asset_income_assets         'none' unless ``asset_share`` > 0 (every preset: 0); then a village  A
                            holds assets with probability asset_share x (0.5 + r) / (0.5 +
                            mean r), x 0.6 in a central province; kinds pv .55, hydropower
                            .30, mining .15; drawn from the 8th child generator, so nothing
                            else changes with it
coordinates                 24–29 N, 103–109 E (Guizhou/Yunnan-like); prefecture centre,        A
                            county N(0, .35°), township N(0, .12°), village N(0, .04°)
main_cause                  illness .40, disability .10, funds .15, skills .10, labour .08,     S/A
                            schooling .05, motivation .03, disaster .03, transport .02,
                            land .02, water .01, other .01
other_causes                0 / 1 / 2 secondary causes with .40 / .40 / .20, never the main;     A
                            weights illness .15, disability .05, funds .25, skills .20,
                            labour .12, schooling .08, motivation .04, disaster .03,
                            transport .04, land .02, water .01, other .01 (echoes the
                            unverified LGOP multiple-choice shares)
labourers                   0: 85 % if cause = lack of labour, 38 % if illness or disability,   A
                            10 % otherwise (→ 30 % overall); else 1 / 2 / 3+ as .40/.25/.05
                            (3+ = 3, or 4 with 15 %); never above size
household_type              zero labour: tekun 1/3 if size <= 2, else dibao up to 60 %;         A/S
                            with labour: dibao 5.7 % → ordinary .78 / dibao .18 / tekun .04
income_per_capita           ratio x POVERTY_LINE[start_year - 1], ratio LN(median 0.85,          A
                            sigma 0.40) clipped to [0.2, 1.6] (≈ 34 % of registered
                            households start above the line; DOMAIN says "roughly 25 %");
                            rounded to whole yuan
dangerous_house             0.45 x (0.5 + r) / (0.5 + mean r of registered households)          D
unsafe_water                0.60 where the village lacks tap water, else set so that 25 % of     A
                            registered households lack safe water
children_out_of_school      >= 1 in 14 % of schooling-cause households, 2.98 % of others, none   A
                            in one-person households (→ 3 %); 1, or 2 with 15 %
uninsured_members           >= 1 in 5 %: 1 + Binomial(size - 1, 0.3)                            A
chronic_illness_members     >= 1 for illness-cause households, 10 % of others:                   A
                            1 + Binomial(size - 1, 0.15)
disabled_members            >= 1 for disability-cause households, 5 % of others:                 A
                            1 + Binomial(size - 1, 0.10)
recent_shock                illness 6 %, disaster 2 %, else ''                                  A
marginal households         5 % of the registered count, not registered, income ratio            D/A
                            U(1.0, 1.5), 15 % zero labour, ordinary, guarantee gaps at 0.2x
                            (mostly none); placed ∝ the village's non-registered households
exclusion errors            3 % of the registered count, not registered, income ratio            A
                            U(0.45, 0.98) (the income rule calls them poor), gaps as the
                            registered, dibao for 30 % of those without labour; placed ∝ the
                            village's registered households
==========================  ==================================================================  =====

Funds (real-sized, DOMAIN §7.3; k = registered poor people / 2,000,000):

================  ===========================  ============  =====  ==================================  ===
source_id         categories                   regions       carry  amount per year (x money_scale)     Q
================  ===========================  ============  =====  ==================================  ===
central           '*'                          '*'           true   1.9, 2.45, 3.0, 3.6, 4.2 bn for     D
                                                                    2016..2020 (x 1.215 per year
                                                                    outside) x k
provincial        '*'                          '*'           false  0.6 x central                       D
integrated        infrastructure;industry      the national  false  360 m per national poor county x    D/A
                                               poor counties        INTEGRATED_MODELLED_SHARE (0.10:
                                                                    the share of the pooled envelope
                                                                    paying for measures modelled here);
                                                                    already per county, so not x k
relocation_loan   housing                      '*'           true   62,500 x 0.57 x registered people   D/A
                                                                    in relocation-eligible villages,
                                                                    25/35/25/10 % over the first four
                                                                    years of the horizon (weights
                                                                    renormalised to 100 % over the
                                                                    years present), 0 after
east_west         industry;ability             the counties  false  from start_year + 1: 0.3, 0.4,      A
                                               of half the          0.5, 0.6 bn, then 0.6 bn; x k
                                               prefectures
social_donation   welfare;ability;industry     '*'           true   0.02 x central                      A
================  ===========================  ============  =====  ==================================  ===

With ``asset_share`` > 0, ``asset_compensation`` (categories ``industry``, regions the counties
of the hydropower and mining villages, carried over): 25,000 x 0.6 yuan per registered household
of those villages, evenly over the years [A: enterprise and resource-development compensation
converted into the equity of asset-income support; no row without such villages].

Amounts are rounded to whole yuan; only the years start_year..deadline_year are kept and a
source with no (non-zero-weight) year in the horizon has no row.

Cadres (one row each; ids K......): per township a work team of 3 cadres per poor village
plus 1 first secretary per poor village [S], plus pairing cadres so that the township's
total capacity is ≈ 1.05 x its registered households (≈ 0.8 x in 5 % of townships, drawn
short so shortage reports can be tested) [A]. Capacity 5–10 households each, integer [A],
rescaled per township towards the target. Skills: 1 (60 %) or 2 (40 %) of
:data:`CADRE_SKILLS` with weights agriculture .40, health .15, education .15, employment
.20, finance .10 [A]. Coordinates: a random village of the township + N(0, .01°) [A].
hours_per_year U(80, 160), whole hours [A: hours a cadre can spend delivering packages].

Personnel: one row per township and year, hours = the sum of its cadres' hours_per_year.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from allocator.inputs.raw import CAUSES, HOUSEHOLD_TYPES, RAW_SPECS
from allocator.inputs.scenario import NATIONAL_STILL_POOR, POVERTY_LINE
from allocator.inputs.tables import ANY, LIST_SEPARATOR, SPECS, conform, take_text
from allocator.synth.canonical import regions_table
from allocator.synth.common import numbered_ids, place_names, round_to, text_array

TABLE_NAMES = ("regions", "villages_raw", "households_raw", "funds", "personnel", "targets", "cadres")
CADRE_COLUMNS = ("cadre_id", "township_id", "capacity", "skills", "latitude", "longitude", "hours_per_year")
CADRE_SKILLS = ("agriculture", "health", "education", "employment", "finance")

# --- geography --------------------------------------------------------------------------
HOUSEHOLDS_PER_COUNTY = 11_000
COUNTIES_PER_PREFECTURE = 7.5
VILLAGES_PER_TOWNSHIP = 15
VILLAGES_PER_REGISTERED = 11_000 / 655_000
POOR_PEOPLE_PER_POOR_VILLAGE = 670
SHARE_IN_POOR_VILLAGES = 0.55
PROVINCE_INCIDENCE = 0.125
COUNTY_INCIDENCE = (0.150, 0.094)  # national poor county, other
COUNTY_INCIDENCE_RANGE = (0.06, 0.20)
POOR_VILLAGE_INCIDENCE = (0.30, 0.55)
NON_POOR_MAX_INCIDENCE = 0.21
BORDERLINE_SHARE = 0.05
LAT_BOX = (24.0, 29.0)
LON_BOX = (103.0, 109.0)
RELOCATION_REMOTENESS = 0.85
AVERAGE_VILLAGE_INCOME_2015 = 7600.0
GAP_P = {  # column: (poor village, non-poor village) probability of lacking it
    "has_road": (0.30, 0.08), "has_tap_water": (0.35, 0.15), "has_power": (0.02, 0.005),
    "has_broadband": (0.60, 0.30), "has_clinic": (0.15, 0.05),
}
MEAN_REMOTENESS = (0.6, 0.4)  # Beta(3, 2) and Beta(2, 3)

# --- households -------------------------------------------------------------------------
SIZE_P = np.array([0.15, 0.25, 0.22, 0.20, 0.11, 0.07])
SIZE_6_EXTRA = 0.5  # 6+ = 6 + Poisson(0.5)
MEAN_SIZE = float(SIZE_P @ np.arange(1, 7)) + SIZE_P[-1] * SIZE_6_EXTRA
CAUSE_P = np.array([0.40, 0.10, 0.15, 0.10, 0.08, 0.05, 0.03, 0.03, 0.02, 0.02, 0.01, 0.01])
SECONDARY_P = np.array([0.15, 0.05, 0.25, 0.20, 0.12, 0.08, 0.04, 0.03, 0.04, 0.02, 0.01, 0.01])
OTHER_CAUSES_COUNT_P = np.array([0.40, 0.40, 0.20])
(ILL, DISABLED, FUNDS, SKILLS, LABOUR, SCHOOL, MOTIVATION, DISASTER, TRANSPORT, LAND, WATER, OTHER) = range(12)
ORDINARY, DIBAO, TEKUN = (HOUSEHOLD_TYPES.index(t) for t in ("ordinary", "dibao", "tekun"))
REGISTERED, MARGINAL, EXCLUDED = 0, 1, 2
MARGINAL_SHARE = 0.05
EXCLUDED_SHARE = 0.03
DANGEROUS_HOUSE = 0.45
UNSAFE_WATER = 0.25
UNSAFE_WATER_NO_TAP = 0.60
SHOCK_VOCAB = ("", "illness", "disaster")

# --- funds ------------------------------------------------------------------------------
REFERENCE_PEOPLE = 2_000_000
CENTRAL_BN = {2016: 1.9, 2017: 2.45, 2018: 3.0, 2019: 3.6, 2020: 4.2}
CENTRAL_GROWTH = 1.215
PROVINCIAL_SHARE = 0.6
INTEGRATED_PER_POOR_COUNTY = 360e6
INTEGRATED_MODELLED_SHARE = 0.10  # [A] share of the pooled envelope paying for modelled measures; to calibrate
RELOCATION_COST_PER_PERSON = 62_500.0
RELOCATION_LOAN_SHARE = 0.57
RELOCATION_LOAN_PROFILE = (0.25, 0.35, 0.25, 0.10)
EAST_WEST_BN = (0.3, 0.4, 0.5, 0.6)  # from start_year + 1; 0.6 after
SOCIAL_DONATION_SHARE = 0.02
FISCAL_SOURCES = ("central", "provincial", "integrated", "east_west")  # budget money: recalled when idle
RECALL_YEARS = 2  # DOMAIN §4.4: carry-over funds not spent within two years are recalled

ASSET_KIND_P = {"pv": 0.55, "hydropower": 0.30, "mining": 0.15}  # [A] kinds of the villages holding assets
ASSET_CENTRAL_FACTOR = 0.6  # [A] a central province's villages hold assets 0.6x as often as a western one's
ASSET_SHARE_COST = 25_000.0  # [A] the catalogue's asset_income cost per household
ASSET_COMPENSATION_SHARE = 0.6  # [A] share of those shares in hydropower/mining villages the enterprises pay

# --- schedule ---------------------------------------------------------------------------
COUNTY_BATCHES = {2016: 28, 2017: 125, 2018: 283, 2019: 344, 2020: 52}  # poor counties delisted (DOMAIN §2.3)

# --- cadres -----------------------------------------------------------------------------
CADRES_PER_POOR_VILLAGE = 4  # a 3-cadre work team + 1 first secretary
CAPACITY_RANGE = (5, 10)
CAPACITY_TARGET = 1.05
SHORT_TOWNSHIP_SHARE = 0.05
SHORT_CAPACITY = 0.8
SKILL_P = np.array([0.40, 0.15, 0.15, 0.20, 0.10])
HOURS_RANGE = (80.0, 160.0)

PROVINCE_PRESETS: dict[str, dict] = {
    # one county of ~10,000 registered households.
    "county": {"households": 10_000, "counties": 1},
    # a small province: 100,000 registered households in 10 counties.
    "province-small": {"households": 100_000, "counties": 10},
    # DOMAIN §7.1: 655k registered households (≈ 2 m people), 60 counties (35 national poor),
    # ≈ 3,000 poor villages of ≈ 11,000.
    "province": {"households": 655_000, "counties": 60},
    # the same province with Shanxi-like dispersion: ≈ 410 registered poor people per poor village.
    "province-dispersed": {"households": 655_000, "counties": 60, "poor_villages": 4_900},
}


# --- small helpers ----------------------------------------------------------------------
def _line(year: int) -> float:
    """The poverty line of ``year``; years outside the table use the nearest listed year."""
    years = sorted(POVERTY_LINE)
    return float(POVERTY_LINE[min(max(int(year), years[0]), years[-1])])


def _apportion(total: int, weights: np.ndarray) -> np.ndarray:
    """Split ``total`` into integers ∝ ``weights`` (largest remainders, ties by position)."""
    weights = np.asarray(weights, dtype=float)
    if total <= 0 or weights.sum() <= 0:
        return np.zeros(len(weights), dtype=np.int64)
    exact = total * weights / weights.sum()
    out = np.floor(exact).astype(np.int64)
    rest = total - int(out.sum())
    if rest > 0:
        out[np.argsort(-(exact - out), kind="stable")[:rest]] += 1
    return out


def _multinomial(rng: np.random.Generator, n: int, weights: np.ndarray) -> np.ndarray:
    weights = np.asarray(weights, dtype=float)
    if len(weights) == 0:
        return np.zeros(0, dtype=np.int64)
    if n <= 0 or weights.sum() <= 0:
        out = np.zeros(len(weights), dtype=np.int64)
        out[0] = max(n, 0)
        return out
    return rng.multinomial(n, weights / weights.sum()).astype(np.int64)


def _pick_distinct(rng: np.random.Generator, weights: np.ndarray, count: np.ndarray,
                   exclude: np.ndarray | None = None) -> np.ndarray:
    """Per row, ``count`` (0..2) distinct items drawn ∝ ``weights`` (never ``exclude``), coded
    0 = none, 1 + a = one item a, 1 + k + a * k + b = the pair a < b (k items)."""
    n, k = len(count), len(weights)
    race = rng.standard_exponential((n, k), dtype=np.float32) / weights.astype(np.float32)
    if exclude is not None:
        race[np.arange(n), exclude] = np.inf
    first = race.argmin(axis=1)
    race[np.arange(n), first] = np.inf
    second = race.argmin(axis=1)
    lo, hi = np.minimum(first, second), np.maximum(first, second)
    return np.select([count == 0, count == 1], [0, 1 + first], 1 + k + lo * k + hi).astype(np.int64)


def _combo_vocab(items) -> list[str]:
    """The texts of :func:`_pick_distinct` codes: '', singles, then ';'-joined pairs."""
    items = list(items)
    pairs = [LIST_SEPARATOR.join((a, b)) if i < j else "" for i, a in enumerate(items)
             for j, b in enumerate(items)]
    return ["", *items, *pairs]


# --- the generator ----------------------------------------------------------------------
def generate_province(households: int, start_year: int = 2016, deadline_year: int = 2020, seed: int = 0, *,
                      counties: int | None = None, poor_county_share: float = 0.58,
                      poor_villages: int | None = None, money_scale: float = 1.0,
                      western: bool = True, asset_share: float = 0.0) -> dict[str, pd.DataFrame]:
    """The raw registry tables of a synthetic province with ``households`` registered poor
    households (plus ~8 % non-registered rows), planning ``start_year``..``deadline_year``.

    ``counties`` overrides the number of counties (default one per ~11,000 registered
    households); ``poor_county_share`` is the share of national poor counties;
    ``poor_villages`` overrides the number of poor villages (default registered poor people
    / 670); ``money_scale`` multiplies every fund amount; ``western`` marks the province
    western (3 % exit threshold) or central (2 %). ``asset_share`` is the share of villages
    (at average remoteness, in a western province) holding hydropower, mining or PV assets for
    asset-income support (default 0: none, and no ``asset_compensation`` fund). See the module
    doc for every number.
    """
    households = int(households)
    if households < 1:
        raise ValueError(f"households must be >= 1 (got {households})")
    start_year, deadline_year = int(start_year), int(deadline_year)
    if deadline_year < start_year:
        raise ValueError(f"deadline_year {deadline_year} is before start_year {start_year}")
    money_scale = float(money_scale)
    if not (math.isfinite(money_scale) and money_scale >= 0):
        raise ValueError(f"money_scale must be a finite number >= 0 (got {money_scale})")
    asset_share = float(asset_share)
    if not 0 <= asset_share <= 1:
        raise ValueError(f"asset_share must be in [0, 1] (got {asset_share})")
    poor_county_share = float(poor_county_share)
    if not 0 <= poor_county_share <= 1:
        raise ValueError(f"poor_county_share must be in [0, 1] (got {poor_county_share})")
    n_counties = max(1, round(households / HOUSEHOLDS_PER_COUNTY)) if counties is None else int(counties)
    if not 1 <= n_counties <= households:
        raise ValueError(f"counties must be between 1 and households={households} (got {n_counties})")
    expected_people = households * MEAN_SIZE
    if poor_villages is None:
        n_poor = min(max(1, round(expected_people / POOR_PEOPLE_PER_POOR_VILLAGE)), households)
    else:
        n_poor = int(poor_villages)
        if not 0 <= n_poor <= households:
            raise ValueError(f"poor_villages must be between 0 and households={households} (got {n_poor})")
    n_villages = max(round(households * VILLAGES_PER_REGISTERED), n_poor + n_counties)

    years = np.arange(start_year, deadline_year + 1)
    data_year = start_year - 1
    rngs = np.random.default_rng(seed).spawn(8)  # children 0-6 as before the asset stage was added
    geo = _geography(rngs[0], households, n_counties, poor_county_share, n_poor, n_villages)
    vil = _villages(rngs[1], geo, data_year)
    vil["assets"] = _assets(rngs[7], vil, asset_share, western)
    hh = _households(rngs[2], vil, households, data_year)
    _finish_villages(rngs[3], vil, hh)
    cad = _cadres(rngs[4], vil)
    funds = _funds(rngs[5], geo, vil, hh, years, money_scale)
    funds = pd.concat([funds, _asset_fund(geo, vil, years, money_scale, funds)], ignore_index=True)
    names = rngs[6]
    regions = regions_table(names, geo, vil, western, province_id="PROV", prefecture_prefix="P")
    hat_off = np.full(len(regions), pd.NA, dtype=object)
    hat_off[(regions["level"] == "county").to_numpy()] = _hat_off_years(geo, vil, hh, years)
    tables = {
        "regions": regions.assign(hat_off_year=pd.array(hat_off, dtype="Int64")),
        "villages_raw": _villages_table(names, vil),
        "households_raw": _households_table(hh, vil),
        "funds": funds,
        "personnel": _personnel_table(cad, vil, years),
        "targets": national_targets(start_year, deadline_year),
        "cadres": _cadres_table(cad, vil),
    }
    for name, frame in tables.items():
        tables[name] = frame[list(CADRE_COLUMNS)] if name == "cadres" else conform(frame, _spec(name))
    # the generator's truth (not part of the raw contract): the villages drawn as poor
    village_ids = tables["villages_raw"]["village_id"].to_numpy(dtype=object)
    tables["villages_raw"].attrs["poor_village_ids"] = tuple(village_ids[vil["poor"]].tolist())
    return tables


def generate_province_preset(name: str, seed: int = 0, **overrides) -> dict[str, pd.DataFrame]:
    """The tables of preset ``name`` (see :data:`PROVINCE_PRESETS`) with ``overrides`` applied
    on top; overrides whose value is None are ignored."""
    if name not in PROVINCE_PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PROVINCE_PRESETS)}")
    kwargs = {**PROVINCE_PRESETS[name], **{k: v for k, v in overrides.items() if v is not None}}
    return generate_province(seed=seed, **kwargs)


def _spec(name: str):
    return RAW_SPECS.get(name) or SPECS[name]


# --- stages -----------------------------------------------------------------------------
def _geography(rng: np.random.Generator, households: int, n_counties: int, poor_county_share: float,
               n_poor: int, n_villages: int) -> dict:
    """Prefectures and counties: caseload, incidence, rural households, village counts."""
    n_pref = max(1, round(n_counties / COUNTIES_PER_PREFECTURE))
    county_pref = (np.arange(n_counties) * n_pref) // n_counties
    national_poor = np.zeros(n_counties, dtype=bool)
    national_poor[rng.permutation(n_counties)[: round(poor_county_share * n_counties)]] = True
    weight = rng.uniform(0.7, 1.3, n_counties) * np.where(national_poor, 1.25, 0.85)
    caseload = 1 + _multinomial(rng, households - n_counties, weight)

    incidence = np.where(national_poor, *COUNTY_INCIDENCE) * rng.uniform(0.85, 1.15, n_counties)
    incidence *= (caseload / incidence).sum() / (households / PROVINCE_INCIDENCE)
    incidence = np.clip(incidence, *COUNTY_INCIDENCE_RANGE)
    rural_target = caseload / incidence

    if n_poor > 0:
        share = np.where(national_poor, 1.15, 0.80) * rng.uniform(0.9, 1.1, n_counties)
        share = np.clip(share * SHARE_IN_POOR_VILLAGES * households / (share * caseload).sum(), 0, 0.9)
        in_poor = rng.binomial(caseload, share).astype(np.int64)
    else:
        in_poor = np.zeros(n_counties, dtype=np.int64)
    poor_count = np.minimum(_apportion(n_poor, in_poor), in_poor)
    in_poor = np.where(poor_count > 0, in_poor, 0)
    in_other = caseload - in_poor
    other_rural = np.maximum(rural_target - in_poor / np.mean(POOR_VILLAGE_INCIDENCE), 1.0)
    other_count = _apportion(max(n_villages - int(poor_count.sum()), 0), other_rural)
    other_count = np.where((in_other > 0) & (other_count == 0), 1, other_count)

    pref_lat = rng.uniform(LAT_BOX[0] + 0.6, LAT_BOX[1] - 0.6, n_pref)
    pref_lon = rng.uniform(LON_BOX[0] + 0.6, LON_BOX[1] - 0.6, n_pref)
    county_lat = pref_lat[county_pref] + rng.normal(0, 0.35, n_counties)
    county_lon = pref_lon[county_pref] + rng.normal(0, 0.35, n_counties)
    return {"n_pref": n_pref, "n_counties": n_counties, "county_pref": county_pref, "national_poor": national_poor,
            "caseload": caseload, "rural_target": rural_target, "in_poor": in_poor, "in_other": in_other,
            "poor_count": poor_count, "other_count": other_count, "county_lat": county_lat,
            "county_lon": county_lon}


def _villages(rng: np.random.Generator, geo: dict, data_year: int) -> dict:
    """Villages: registered caseload, draft size and incidence, townships, remoteness, gaps,
    income, collective income and borderline cases."""
    parts = {k: [] for k in ("poor", "registered", "draft", "incidence", "remote", "township", "county")}
    town_county, n_towns_total = [], 0
    for c in range(geo["n_counties"]):  # a loop per county; everything inside is vectorised
        n_p, n_o = int(geo["poor_count"][c]), int(geo["other_count"][c])
        in_poor, in_other = int(geo["in_poor"][c]), int(geo["in_other"][c])
        reg_p = 1 + _multinomial(rng, in_poor - n_p, rng.gamma(4.0, 1.0, n_p))
        inc_p = rng.uniform(*POOR_VILLAGE_INCIDENCE, n_p)
        draft_p = reg_p / inc_p
        rest = max(geo["rural_target"][c] - draft_p.sum(), in_other / 0.15, 60.0 * n_o)
        w_o = rng.gamma(3.0, 1.0, n_o)
        draft_o = np.maximum(60.0, rest * w_o / max(w_o.sum(), 1e-12))
        reg_o = _multinomial(rng, in_other, draft_o * rng.lognormal(0.0, 0.6, n_o))
        inc_o = np.minimum(reg_o / draft_o, NON_POOR_MAX_INCIDENCE)
        n_v = n_p + n_o
        poor = np.r_[np.ones(n_p, dtype=bool), np.zeros(n_o, dtype=bool)]
        remote = np.r_[rng.beta(3.0, 2.0, n_p), rng.beta(2.0, 3.0, n_o)]
        n_towns = max(round(n_v / VILLAGES_PER_TOWNSHIP), 1)
        # townships group villages of similar remoteness: poor villages cluster
        order = np.argsort(remote + rng.normal(0, 0.15, n_v), kind="stable")
        parts["poor"].append(poor[order])
        parts["registered"].append(np.r_[reg_p, reg_o][order])
        parts["draft"].append(np.r_[draft_p, draft_o][order])
        parts["incidence"].append(np.r_[inc_p, inc_o][order])
        parts["remote"].append(remote[order])
        parts["township"].append(n_towns_total + (np.arange(n_v) * n_towns) // n_v)
        parts["county"].append(np.full(n_v, c))
        town_county.append(np.full(n_towns, c))
        n_towns_total += n_towns
    vil = {k: np.concatenate(v) for k, v in parts.items()}
    vil["registered"] = vil["registered"].astype(np.int64)
    vil["n"] = n_v = len(vil["poor"])
    vil["n_towns"] = n_towns_total
    vil["town_county"] = np.concatenate(town_county)
    poor, remote, registered = vil["poor"], vil["remote"], vil["registered"]

    # borderline cases: poor villages breaking one criterion, non-poor villages meeting one
    border = rng.random(n_v) < BORDERLINE_SHARE
    which = rng.integers(0, 3, n_v)
    poor_high_inc = poor & ~border  # incidence fixed by target (else from the village size)
    low_inc = poor & border & (which == 0)
    high_income = poor & border & (which == 1)
    collective_poor = poor & border & (which == 2)
    other_high_inc = ~poor & border & (registered >= 5) & (which < 2)
    other_low_income = ~poor & border & ~other_high_inc
    vil["incidence"] = np.select([low_inc, other_high_inc], [rng.uniform(0.15, 0.22, n_v),
                                                             rng.uniform(0.27, 0.40, n_v)], vil["incidence"])
    vil["fixed_incidence"] = poor_high_inc | low_inc | high_income | collective_poor | other_high_inc

    average = AVERAGE_VILLAGE_INCOME_2015 * _line(data_year) / _line(2015)
    vil["average_income"] = average
    ratio = np.select([poor & ~high_income, high_income, other_low_income],
                      [rng.uniform(0.30, 0.57, n_v), rng.uniform(0.62, 0.90, n_v), rng.uniform(0.38, 0.57, n_v)],
                      rng.uniform(0.65, 1.50, n_v))
    vil["income_ratio"] = ratio
    vil["income_rescaled"] = ~poor & ~other_low_income  # rescaled once the population is known
    collective = np.where(rng.random(n_v) < 0.80, rng.lognormal(math.log(60_000), 1.0, n_v), 0.0)
    collective = np.where(poor, np.where(collective_poor, rng.lognormal(math.log(20_000), 0.8, n_v), 0.0),
                          collective)
    vil["collective_income"] = round_to(collective, 100)

    k_poor = np.where(poor, 0, 1)
    tilt = (0.4 + 1.2 * remote) / (0.4 + 1.2 * np.asarray(MEAN_REMOTENESS)[k_poor])
    for column, p in GAP_P.items():  # a loop per infrastructure kind
        vil[column] = ~(rng.random(n_v) < np.clip(np.asarray(p)[k_poor] * tilt, 0, 0.98))
    vil["hazard"] = rng.random(n_v) < 0.01 + 0.09 * remote
    vil["forest"] = rng.random(n_v) < 0.25 + 0.30 * remote
    vil["tourism"] = np.round(rng.beta(2.0, 5.0, n_v), 4)
    vil["relocation"] = (remote > RELOCATION_REMOTENESS) | vil["hazard"]

    town_lat = geo["county_lat"][vil["town_county"]] + rng.normal(0, 0.12, n_towns_total)
    town_lon = geo["county_lon"][vil["town_county"]] + rng.normal(0, 0.12, n_towns_total)
    vil["lat"] = np.clip(town_lat[vil["township"]] + rng.normal(0, 0.04, n_v), *LAT_BOX)
    vil["lon"] = np.clip(town_lon[vil["township"]] + rng.normal(0, 0.04, n_v), *LON_BOX)
    return vil


def _households(rng: np.random.Generator, vil: dict, households: int, data_year: int) -> dict:
    """Household rows (registered, marginal, excluded), grouped by village, with attributes."""
    n_v = vil["n"]
    v_idx = np.arange(n_v)
    registered_v = vil["registered"]
    spare = np.maximum(vil["draft"] - registered_v, 0.0)
    marginal_v = _multinomial(rng, round(MARGINAL_SHARE * households), spare)
    excluded_v = _multinomial(rng, round(EXCLUDED_SHARE * households), registered_v.astype(float))
    village = np.r_[np.repeat(v_idx, registered_v), np.repeat(v_idx, marginal_v), np.repeat(v_idx, excluded_v)]
    status = np.repeat([REGISTERED, MARGINAL, EXCLUDED],
                       [int(registered_v.sum()), int(marginal_v.sum()), int(excluded_v.sum())])
    n = len(village)
    reg, marg = status == REGISTERED, status == MARGINAL
    remote = vil["remote"][village]

    size = 1 + rng.choice(len(SIZE_P), size=n, p=SIZE_P)
    size = size + np.where(size == 6, rng.poisson(SIZE_6_EXTRA, n), 0)
    cause = rng.choice(len(CAUSES), size=n, p=CAUSE_P)
    p_zero = np.select([cause == LABOUR, (cause == ILL) | (cause == DISABLED)], [0.85, 0.38], 0.10)
    p_zero = np.where(marg, 0.15, p_zero)
    some = 1 + rng.choice(3, size=n, p=np.array([0.40, 0.25, 0.05]) / 0.70)
    some = some + ((some == 3) & (rng.random(n) < 0.15))
    labour = np.minimum(np.where(rng.random(n) < p_zero, 0, some), size)

    u = rng.random(n)
    kind = np.where(labour == 0,
                    np.select([(size <= 2) & (u < 1 / 3), u < 0.60], [TEKUN, DIBAO], ORDINARY),
                    np.where(u < 0.057, DIBAO, ORDINARY))
    kind = np.select([reg, marg], [kind, ORDINARY], np.where((labour == 0) & (u < 0.30), DIBAO, ORDINARY))

    n_other = rng.choice(len(OTHER_CAUSES_COUNT_P), size=n, p=OTHER_CAUSES_COUNT_P)
    other_causes = _pick_distinct(rng, SECONDARY_P, n_other, exclude=cause)

    ratio = np.clip(np.exp(rng.normal(math.log(0.85), 0.40, n)), 0.2, 1.6)
    ratio = np.select([reg, marg], [ratio, rng.uniform(1.0, 1.5, n)], rng.uniform(0.45, 0.98, n))
    income = np.round(ratio * _line(data_year))

    gap_scale = np.where(marg, 0.2, 1.0)
    mean_remote = float(remote[reg].mean()) if reg.any() else 0.5
    dangerous = rng.random(n) < np.clip(DANGEROUS_HOUSE * (0.5 + remote) / (0.5 + mean_remote), 0, 0.95) * gap_scale
    no_tap = ~vil["has_tap_water"][village]
    g = float(no_tap[reg].mean()) if reg.any() else 0.0
    p_no_tap = min(UNSAFE_WATER_NO_TAP, UNSAFE_WATER / g) if g > 0 else UNSAFE_WATER_NO_TAP
    p_tap = max(0.0, (UNSAFE_WATER - g * p_no_tap) / (1 - g)) if g < 1 else 0.0
    unsafe_water = rng.random(n) < np.where(no_tap, p_no_tap, p_tap) * gap_scale

    p_school = np.where(cause == SCHOOL, 0.14, 0.0298) * gap_scale  # / 0.85: none in 1-person households
    school = np.where((rng.random(n) < p_school) & (size >= 2), 1 + (rng.random(n) < 0.15), 0)
    school = np.minimum(school, size - 1)
    uninsured = np.where(rng.random(n) < 0.05 * np.where(marg, 0.4, 1.0), 1 + rng.binomial(size - 1, 0.3), 0)
    chronic = np.where((cause == ILL) | (rng.random(n) < 0.10), 1 + rng.binomial(size - 1, 0.15), 0)
    disabled = np.where((cause == DISABLED) | (rng.random(n) < 0.05), 1 + rng.binomial(size - 1, 0.10), 0)
    u = rng.random(n)
    shock = np.select([u < 0.06, u < 0.08], [1, 2], 0)

    # grouped by village, in random order inside it (one sort on a combined key)
    order = np.argsort((village.astype(np.int64) << 32) | rng.integers(0, 1 << 32, n), kind="stable")
    out = {"village": village, "status": status, "size": size, "labour": labour, "income": income, "kind": kind,
           "cause": cause, "other_causes": other_causes, "dangerous": dangerous, "unsafe_water": unsafe_water,
           "school": school, "uninsured": uninsured, "chronic": chronic, "disabled": disabled, "shock": shock}
    out = {k: v[order] for k, v in out.items()}
    out["n"] = n
    out["registered"] = out["status"] == REGISTERED
    return out


def _finish_villages(rng: np.random.Generator, vil: dict, hh: dict) -> None:
    """Population (people) from the registered people and incidence, rural households, and the
    village incomes rescaled to the provincial average."""
    n_v = vil["n"]
    reg = hh["registered"]
    reg_people = np.bincount(hh["village"][reg], weights=hh["size"][reg], minlength=n_v)
    listed_people = np.bincount(hh["village"], weights=hh["size"], minlength=n_v)
    listed = np.bincount(hh["village"], minlength=n_v)
    per_household = rng.uniform(3.0, 3.3, n_v)
    natural = listed_people + np.maximum(vil["draft"] - listed, 0) * per_household
    natural = np.maximum(natural, reg_people / NON_POOR_MAX_INCIDENCE)
    with np.errstate(divide="ignore", invalid="ignore"):
        targeted = np.where(vil["incidence"] > 0, reg_people / vil["incidence"], natural)
    population = np.where(vil["fixed_incidence"], targeted, natural)
    population = np.maximum(np.round(population), listed_people).astype(np.int64)
    vil["population"] = population
    vil["rural"] = (listed + np.round((population - listed_people) / per_household)).astype(np.int64)
    vil["registered_people"] = reg_people

    ratio = vil["income_ratio"]
    scaled = vil["income_rescaled"]
    fixed_part = (population * ratio)[~scaled].sum()
    free_part = (population * ratio)[scaled].sum()
    scale = (population.sum() - fixed_part) / free_part if free_part > 0 else 1.0
    ratio = np.where(scaled, ratio * float(np.clip(scale, 0.95, 1.25)), ratio)
    vil["income"] = np.round(ratio * vil["average_income"])


def _cadres(rng: np.random.Generator, vil: dict) -> dict:
    """Work teams, first secretaries and pairing cadres per township."""
    n_t = vil["n_towns"]
    reg_t = np.bincount(vil["township"], weights=vil["registered"], minlength=n_t)
    poor_t = np.bincount(vil["township"], weights=vil["poor"], minlength=n_t).astype(np.int64)
    short = rng.random(n_t) < SHORT_TOWNSHIP_SHARE
    target = reg_t * np.where(short, SHORT_CAPACITY, CAPACITY_TARGET)
    mean_cap = sum(CAPACITY_RANGE) / 2
    team = CADRES_PER_POOR_VILLAGE * poor_t
    pairing = np.maximum(0, np.round((target - mean_cap * team) / mean_cap)).astype(np.int64)
    count = team + pairing
    town = np.repeat(np.arange(n_t), count)
    n = len(town)
    capacity = rng.integers(CAPACITY_RANGE[0], CAPACITY_RANGE[1] + 1, n).astype(float)
    total = np.bincount(town, weights=capacity, minlength=n_t)
    factor = np.divide(target, total, out=np.ones(n_t), where=total > 0)
    capacity = np.clip(np.round(capacity * factor[town]), *CAPACITY_RANGE).astype(np.int64)

    n_skills = 1 + (rng.random(n) < 0.40)
    skills = _pick_distinct(rng, SKILL_P, n_skills)
    town_start = np.searchsorted(vil["township"], np.arange(n_t))
    town_size = np.bincount(vil["township"], minlength=n_t)
    village = town_start[town] + np.floor(rng.random(n) * town_size[town]).astype(np.int64)
    lat = np.clip(vil["lat"][village] + rng.normal(0, 0.01, n), *LAT_BOX)
    lon = np.clip(vil["lon"][village] + rng.normal(0, 0.01, n), *LON_BOX)
    hours = np.round(rng.uniform(*HOURS_RANGE, n))
    return {"n": n, "town": town, "capacity": capacity, "skills": skills, "lat": lat, "lon": lon,
            "hours": hours, "short": short, "target": target}


def _central(year: int) -> float:
    """Central special fund of the synthetic province at reference size, yuan."""
    first, last = min(CENTRAL_BN), max(CENTRAL_BN)
    if year < first:
        return CENTRAL_BN[first] * 1e9 / CENTRAL_GROWTH ** (first - year)
    if year > last:
        return CENTRAL_BN[last] * 1e9 * CENTRAL_GROWTH ** (year - last)
    return CENTRAL_BN[year] * 1e9


def batch_years(difficulty: np.ndarray, years: np.ndarray) -> np.ndarray:
    """Hat-off year per poor county: the real batches (:data:`COUNTY_BATCHES`) as cumulative
    shares, stretched onto the horizon ``years`` (linear in between), assigned by rank of
    ``difficulty`` (the least difficult first; ties by position). County r of n sits at the
    quantile (r + 0.5) / n and takes off in the first year whose cumulative share reaches it, so
    a single county gets the median county's year."""
    n = len(difficulty)
    rank = np.empty(n, dtype=np.int64)
    rank[np.argsort(difficulty, kind="stable")] = np.arange(n)
    return batch_year_at((rank + 0.5) / max(n, 1), years)


def batch_year_at(quantile: np.ndarray, years: np.ndarray) -> np.ndarray:
    """The hat-off year of counties at these quantiles of difficulty (0 = easiest): the first
    year of the horizon whose stretched cumulative batch share reaches the quantile."""
    real = np.cumsum(list(COUNTY_BATCHES.values())) / sum(COUNTY_BATCHES.values())
    real_t = np.arange(1, len(real) + 1) / len(real)
    horizon_t = np.arange(1, len(years) + 1) / len(years)
    share = np.interp(horizon_t, np.r_[0.0, real_t], np.r_[0.0, real])
    share[-1] = 1.0
    index = np.searchsorted(share, np.asarray(quantile, dtype=float) - 1e-12)
    return np.asarray(years, dtype=np.int64)[np.minimum(index, len(years) - 1)]


def _hat_off_years(geo: dict, vil: dict, hh: dict, years: np.ndarray) -> np.ndarray:
    """Per county: its hat-off year if it is a national poor county (by the rank of its
    incidence, registered / rural households, as the real batches went), else NA (the deadline)."""
    n_c = geo["n_counties"]
    county = vil["county"][hh["village"]]
    registered = np.bincount(county[hh["registered"]], minlength=n_c)
    rural = np.maximum(np.bincount(vil["county"], weights=vil["rural"], minlength=n_c), 1)
    out = np.full(n_c, pd.NA, dtype=object)
    poor = geo["national_poor"]
    out[poor] = batch_years(registered[poor] / rural[poor], years)
    return out


def national_targets(start_year: int, deadline_year: int) -> pd.DataFrame:
    """One scenario-wide target per year of the horizon where the national path (DOMAIN §7.5),
    rescaled to the stock at the end of ``start_year - 1``, still leaves some poor; years after
    the last listed one keep its value. The path's 0 (2020: every registered household declared
    out by the 2010 standard) is no target here: an expected-value model never reaches 0 poor,
    and the programme's own test for "out" is the county exit rule (incidence below 2 % / 3 %),
    which every county meets from its hat-off year. A 0 target would only be an unmeetable
    shortfall that outweighs every other aim (docs/effect-model.md). No rows when the start is
    outside the path."""
    last = max(NATIONAL_STILL_POOR)
    base = NATIONAL_STILL_POOR.get(start_year - 1)
    years = [y for y in range(start_year, deadline_year + 1)] if base else []
    shares = [round(NATIONAL_STILL_POOR[min(y, last)] / base, 3) for y in years]
    years, shares = [y for y, v in zip(years, shares, strict=True) if v > 0], [v for v in shares if v > 0]
    return pd.DataFrame({"region_id": pd.array([""] * len(years), dtype="str"),
                         "year": np.array(years, dtype=np.int64), "max_poor_share": np.array(shares, dtype=float)})


def _funds(rng: np.random.Generator, geo: dict, vil: dict, hh: dict, years: np.ndarray,
           money_scale: float) -> pd.DataFrame:
    """Real-sized fund rows per source and year (see the module doc)."""
    n_years = len(years)
    t = np.arange(n_years)
    people = float(hh["size"][hh["registered"]].sum())
    size = people / REFERENCE_PEOPLE
    central = np.array([_central(int(y)) for y in years]) * size  # a loop per year
    movers = float(vil["registered_people"][vil["relocation"]].sum())
    loan_w = np.r_[RELOCATION_LOAN_PROFILE, np.zeros(max(n_years - 4, 0))][:n_years]
    loan = RELOCATION_COST_PER_PERSON * RELOCATION_LOAN_SHARE * movers * loan_w / loan_w.sum()
    ew_index = np.clip(t - 1, 0, len(EAST_WEST_BN) - 1)
    east_west = np.where(t >= 1, np.asarray(EAST_WEST_BN)[ew_index] * 1e9 * size, 0.0)
    n_national = int(geo["national_poor"].sum())
    integrated = np.full(n_years, INTEGRATED_PER_POOR_COUNTY * INTEGRATED_MODELLED_SHARE * n_national)

    county_ids = np.asarray(numbered_ids("C", geo["n_counties"], 3).to_pylist())
    ew_prefs = rng.permutation(geo["n_pref"])[: max(1, round(geo["n_pref"] / 2))]
    ew_counties = county_ids[np.isin(geo["county_pref"], ew_prefs)]
    sources = (  # source, amount per year, weight per year (0: no row), categories, regions, carry_over
        ("central", central, np.ones(n_years), ANY, ANY, True),
        ("provincial", PROVINCIAL_SHARE * central, np.ones(n_years), ANY, ANY, True),
        ("integrated", integrated, np.full(n_years, float(n_national > 0)), "infrastructure;industry",
         LIST_SEPARATOR.join(county_ids[geo["national_poor"]]), True),
        ("relocation_loan", loan, loan_w, "housing", ANY, True),
        ("east_west", east_west, (t >= 1).astype(float), "industry;ability", LIST_SEPARATOR.join(ew_counties), True),
        ("social_donation", SOCIAL_DONATION_SHARE * central, np.ones(n_years), "welfare;ability;industry", ANY,
         True),
    )
    rows = []
    for source, amount, weight, cats, regions, carry in sources:  # a loop per source
        amount = np.round(amount * money_scale)
        for i in np.flatnonzero(weight > 0):  # and per year
            rows.append((source, int(years[i]), float(amount[i]), cats, regions, carry))
    frame = pd.DataFrame(rows, columns=["source_id", "year", "amount", "categories", "regions", "carry_over"])
    fiscal = frame["source_id"].isin(FISCAL_SOURCES).to_numpy()
    return pd.DataFrame({
        "source_id": text_array(frame["source_id"].to_numpy(dtype=object)),
        "year": frame["year"].to_numpy(dtype=np.int64),
        "amount": frame["amount"].to_numpy(dtype=float),
        "categories": text_array(frame["categories"].to_numpy(dtype=object)),
        "regions": text_array(frame["regions"].to_numpy(dtype=object)),
        "carry_over": frame["carry_over"].to_numpy(dtype=bool),
        "carry_over_years": pd.array(np.where(fiscal, RECALL_YEARS, pd.NA), dtype="Int64"),
        "min_spend_share": np.full(len(frame), np.nan),  # no sourced disbursement pace
    })


def _assets(rng: np.random.Generator, vil: dict, share: float, western: bool) -> np.ndarray:
    """The kind of assets each village holds ('none' mostly): probability ``share`` x (0.5 + r)
    / (0.5 + mean r) (mountain villages hold more hydropower and mining land), x 0.6 in a
    central province; kinds pv .55, hydropower .30, mining .15 [A]. Nothing is drawn when
    ``share`` is 0, so the other stages' draws never depend on it."""
    n_v = vil["n"]
    kinds = np.full(n_v, "none", dtype=object)
    if share <= 0:
        return kinds
    remote = vil["remote"]
    p = share * (0.5 + remote) / (0.5 + remote.mean()) * (1.0 if western else ASSET_CENTRAL_FACTOR)
    holds = rng.random(n_v) < np.clip(p, 0, 1)
    names = np.array(list(ASSET_KIND_P), dtype=object)
    drawn = names[rng.choice(len(names), n_v, p=np.array(list(ASSET_KIND_P.values())))]
    kinds[holds] = drawn[holds]
    return kinds


def _asset_fund(geo: dict, vil: dict, years: np.ndarray, money_scale: float, like: pd.DataFrame) -> pd.DataFrame:
    """The ``asset_compensation`` source: enterprise and resource-development compensation of
    the hydropower and mining projects, converted into the equity shares of asset-income
    support: ASSET_SHARE_COST x ASSET_COMPENSATION_SHARE per registered household of the
    villages holding such assets, spread evenly over the horizon; restricted to the
    ``industry`` category (the asset_income measure's) and to the counties of those villages;
    carried over. No row when no village holds hydropower or mining assets."""
    compensated = np.isin(vil["assets"], ("hydropower", "mining"))
    total = ASSET_SHARE_COST * ASSET_COMPENSATION_SHARE * float(vil["registered"][compensated].sum())
    if total <= 0 or len(years) == 0:
        return like.iloc[:0]
    county_ids = np.asarray(numbered_ids("C", geo["n_counties"], 3).to_pylist())
    regions = LIST_SEPARATOR.join(county_ids[np.unique(vil["county"][compensated])])
    n = len(years)
    return pd.DataFrame({
        "source_id": text_array(np.full(n, "asset_compensation", dtype=object)),
        "year": years.astype(np.int64),
        "amount": np.full(n, float(np.round(total / n * money_scale))),
        "categories": text_array(np.full(n, "industry", dtype=object)),
        "regions": text_array(np.full(n, regions, dtype=object)),
        "carry_over": np.ones(n, dtype=bool),
        "carry_over_years": pd.array([pd.NA] * n, dtype="Int64"),
        "min_spend_share": np.full(n, np.nan),
    })


# --- tables -----------------------------------------------------------------------------
def _villages_table(rng: np.random.Generator, vil: dict) -> pd.DataFrame:
    town_ids = numbered_ids("T", vil["n_towns"], 4)
    frame = pd.DataFrame({
        "village_id": text_array(numbered_ids("V", vil["n"], 6)),
        "township_id": text_array(pc.take(town_ids, pa.array(vil["township"].astype(np.int64)))),
        "name": text_array(place_names(rng, vil["n"], " Village")),
        "population": vil["population"].astype(np.int64),
        "latitude": np.round(vil["lat"], 5),
        "longitude": np.round(vil["lon"], 5),
    })
    for column in GAP_P:
        frame[column] = vil[column].astype(bool)
    frame["collective_income"] = vil["collective_income"].astype(float)
    frame["tourism_potential"] = vil["tourism"].astype(float)
    frame["forest"] = vil["forest"].astype(bool)
    frame["remoteness"] = np.round(vil["remote"], 4)
    frame["hazard_zone"] = vil["hazard"].astype(bool)
    frame["income_per_capita"] = vil["income"].astype(float)
    frame["asset_income_assets"] = text_array(vil["assets"])
    return frame


def _households_table(hh: dict, vil: dict) -> pd.DataFrame:
    village_ids = numbered_ids("V", vil["n"], 6)
    return pd.DataFrame({
        "household_id": text_array(numbered_ids("H", hh["n"], 7)),
        "village_id": text_array(pc.take(village_ids, pa.array(hh["village"].astype(np.int64)))),
        "size": hh["size"].astype(np.int64),
        "labourers": hh["labour"].astype(np.int64),
        "income_per_capita": hh["income"].astype(float),
        "household_type": take_text(HOUSEHOLD_TYPES, hh["kind"]),
        "main_cause": take_text(CAUSES, hh["cause"]),
        "other_causes": take_text(_combo_vocab(CAUSES), hh["other_causes"]),
        "dangerous_house": hh["dangerous"].astype(bool),
        "unsafe_water": hh["unsafe_water"].astype(bool),
        "children_out_of_school": hh["school"].astype(np.int64),
        "uninsured_members": hh["uninsured"].astype(np.int64),
        "chronic_illness_members": hh["chronic"].astype(np.int64),
        "disabled_members": hh["disabled"].astype(np.int64),
        "recent_shock": take_text(SHOCK_VOCAB, hh["shock"]),
        "registered_poor": hh["registered"].astype(bool),
    })


def _cadres_table(cad: dict, vil: dict) -> pd.DataFrame:
    town_ids = numbered_ids("T", vil["n_towns"], 4)
    return pd.DataFrame({
        "cadre_id": text_array(numbered_ids("K", cad["n"], 6)),
        "township_id": text_array(pc.take(town_ids, pa.array(cad["town"].astype(np.int64)))),
        "capacity": cad["capacity"].astype(np.int64),
        "skills": take_text(_combo_vocab(CADRE_SKILLS), cad["skills"]),
        "latitude": np.round(cad["lat"], 5),
        "longitude": np.round(cad["lon"], 5),
        "hours_per_year": cad["hours"].astype(float),
    })


def _personnel_table(cad: dict, vil: dict, years: np.ndarray) -> pd.DataFrame:
    n_t, n_years = vil["n_towns"], len(years)
    hours = np.round(np.bincount(cad["town"], weights=cad["hours"], minlength=n_t), 1)
    town_ids = numbered_ids("T", n_t, 4)
    return pd.DataFrame({
        "region_id": text_array(pc.take(town_ids, pa.array(np.repeat(np.arange(n_t), n_years)))),
        "year": np.tile(years, n_t).astype(np.int64),
        "hours": np.repeat(hours, n_years).astype(float),
    })


__all__ = ["CADRE_COLUMNS", "CADRE_SKILLS", "COUNTY_BATCHES", "PROVINCE_PRESETS", "TABLE_NAMES", "batch_year_at",
           "batch_years",
           "generate_province", "generate_province_preset", "national_targets"]
