"""Scenario files: YAML → typed :class:`Scenario` (pydantic), with errors naming the key path.

A scenario names the years, a data folder of contract tables *or* a generator preset,
changes to the money, the policy and the solver settings. Relative data paths are resolved
against the YAML file's folder, so a scenario can be run from anywhere.

Overrides (what-if variants): a file with ``base: other.yaml`` plus any keys of the base, or
``load_scenario(path, overrides={"policy.deadline": "hard"})``; see :func:`apply_overrides`.
"""

from __future__ import annotations

import codecs
import dataclasses
import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal, get_args

import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from allocator.errors import Issue, ScenarioError
from allocator.inputs.tables import CATEGORIES

Category = Literal["infrastructure", "industry", "housing", "ability", "ecology", "welfare"]
Share = Annotated[float, Field(ge=0, le=1)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ExitThreshold(_Strict):
    """County exit threshold on remaining incidence: 2% by default, 3% in western provinces."""

    default: float = Field(0.02, ge=0, le=1)
    western: float = Field(0.03, ge=0, le=1)


# The national rural poverty line, yuan per person per year at current prices (DOMAIN.md §1.1;
# 2017 and 2018 are unverified there, 2020 is "about 4,000").
POVERTY_LINE = {2010: 2300.0, 2011: 2536.0, 2012: 2625.0, 2013: 2736.0, 2014: 2800.0, 2015: 2855.0, 2016: 2952.0,
                2017: 2952.0, 2018: 2995.0, 2019: 3218.0, 2020: 4000.0}
# Share of the end-2014 rural poor still poor at each year end (NBS survey; DOMAIN.md §7.5).
NATIONAL_STILL_POOR = {2014: 1.0, 2015: 0.79, 2016: 0.62, 2017: 0.43, 2018: 0.24, 2019: 0.08, 2020: 0.0}


EQUITY_RULES = ("county_floor_per_poor", "max_exit_rate_spread", "maxmin")  # the equity rules, by name


class Equity(_Strict):
    """Equity rules (docs/model.md, "Equity rules"): a money floor per registered poor household
    in every county, a cap on the spread of county exit rates, and a max-min objective."""

    # yuan per registered poor household every county receives, over all sources and years
    county_floor_per_poor: float | None = Field(None, ge=0)
    # largest max - min of county exit rates (expected exits / registered poor at the deadline)
    max_exit_rate_spread: float | None = Field(None, ge=0, le=1)
    # "maxmin": the lowest county exit rate first (a stage of its own), then the usual objective
    objective: Literal["usual", "maxmin"] = "usual"
    # how the price of fairness is found: "auto" re-solves without each rule on models up to the
    # lp-fix size and estimates it from the rule's row prices above; "off" skips it
    price_of_fairness: Literal["auto", "resolve", "duals", "off"] = "auto"

    @property
    def rules(self) -> list[str]:
        """The equity rules in force, by name (:data:`EQUITY_RULES`)."""
        return [name for name, on in zip(EQUITY_RULES, (self.county_floor_per_poor is not None,
                                                        self.max_exit_rate_spread is not None,
                                                        self.objective == "maxmin"), strict=True) if on]

    @property
    def uses_rates(self) -> bool:
        """The exit-rate columns (lowest and highest county rate) are needed."""
        return self.max_exit_rate_spread is not None or self.objective == "maxmin"

    def without(self, rule: str) -> Equity:
        """These rules with ``rule`` taken out (for the price of fairness)."""
        change = {"county_floor_per_poor": {"county_floor_per_poor": None},
                  "max_exit_rate_spread": {"max_exit_rate_spread": None},
                  "maxmin": {"objective": "usual"}}[rule]
        return self.model_copy(update=change)


class Policy(_Strict):
    """The policy rules of a scenario."""

    county_exit_threshold: ExitThreshold = ExitThreshold()
    min_category_share: dict[Category, float] = {}
    max_category_share: dict[Category, float] = {}
    deadline: Literal["soft", "hard"] = "soft"
    sustain_years: int = Field(3, ge=0, le=30)  # consolidation horizon after the deadline for a sustained exit
    # the schedule: largest share of the starting registered poor still poor at each year-end
    # (the whole scenario; per region in the `targets` table); replaces the table's scenario-wide rows
    annual_targets: dict[int, Share] = {}
    # objective credit per expected household-year out of poverty at the year-ends before the
    # deadline, beside one per sustained exit: among plans equal on the rules, earlier exits win
    earliness_weight: float = Field(0.02, ge=0, le=1)
    # category shares of one source's spend, all years and counties: {source: {category: share}}
    min_source_category_share: dict[str, dict[Category, Share]] = {}
    max_source_category_share: dict[str, dict[Category, Share]] = {}
    # county floors: every county a source may pay gets at least this share of the source's spend
    county_floor_share: dict[str, Share] = {}
    equity: Equity = Equity()  # equity rules and their price (Equity)
    # weigh each household's exits in the objective by its households.poverty_probability q
    # (targeting error: money spent on a household that is not poor buys no exit); the county
    # exit rows and annual targets stay on the registered households, unweighted
    targeting_weights: bool = False

    @field_validator("min_category_share", "max_category_share")
    @classmethod
    def _shares_in_unit_interval(cls, shares: dict[str, float]) -> dict[str, float]:
        for category, share in shares.items():
            if not 0 <= share <= 1:
                raise ValueError(f"share of {category} must be in [0, 1] (got {share})")
        return shares

    @model_validator(mode="after")
    def _min_not_above_max(self) -> Policy:
        rules = [("", self.min_category_share, self.max_category_share)]
        rules += [(f" of source {source}", low, self.max_source_category_share.get(source, {}))
                  for source, low in self.min_source_category_share.items()]
        for where, lows, highs in rules:
            for category, low in lows.items():
                high = highs.get(category, 1.0)
                if low > high:
                    raise ValueError(f"min share of {category}{where} ({low}) is above its max share ({high})")
            if sum(lows.values()) > 1 + 1e-9:
                raise ValueError(f"minimum category shares{where} add up to more than 1")
        return self

    @property
    def has_source_shares(self) -> bool:
        """Per-source category share rules or county floors are set (rules on one source's spend)."""
        return bool(self.min_source_category_share or self.max_source_category_share or self.county_floor_share)


class SolverSettings(_Strict):
    """How to solve: backend, method and limits (``None`` = backend default)."""

    backend: str = "highs"
    method: Literal["auto", "exact", "lp-fix", "decompose"] = "auto"
    time_limit: float | None = Field(None, gt=0)
    mip_gap: float = Field(1e-3, ge=0, lt=1)
    threads: int | None = Field(None, ge=1)
    seed: int = 0
    verbose: bool = False
    group_columns: int | None = Field(None, ge=1)  # decompose: kept columns per group of counties (None: 60,000)


class Generate(_Strict):
    """A generated data set instead of a data folder: a preset of the synthetic generators
    (canonical presets give the canonical tables; province presets give raw registry data,
    which goes through identification and candidates)."""

    preset: str = "demo"
    seed: int = 0
    households: int | None = Field(None, ge=1)
    money_scale: float | None = Field(None, gt=0)
    western: bool | None = None
    # province presets only: share of villages holding hydropower, mining or PV assets
    # (asset-income support; the presets draw none by default)
    asset_share: float | None = Field(None, ge=0, le=1)


class Targeting(_Strict):
    """How raw registry data becomes the canonical problem (ignored for canonical data)."""

    catalog: Path | None = None  # measure catalogue YAML, relative to the scenario file; None: the default
    basis: Literal["rule", "registry"] = "rule"  # plan for the rule's poor or the registry's
    data_year: int | None = Field(None, ge=1900, le=2200)  # year of the raw incomes; None: start_year - 1
    edge_factor: float = Field(1.5, ge=1, le=10)  # edge households: income below this x the line
    poverty_line: dict[int, float] = {}  # yuan per person per year, on top of POVERTY_LINE

    @field_validator("poverty_line")
    @classmethod
    def _positive_lines(cls, lines: dict[int, float]) -> dict[int, float]:
        for year, value in lines.items():
            if not value > 0:
                raise ValueError(f"poverty line of {year} must be > 0 (got {value})")
        return lines


class Scenario(_Strict):
    """A scenario: years, data (folder or generator), money changes, policy and solver settings."""

    name: str
    start_year: int = Field(ge=1900, le=2200)
    deadline_year: int = Field(ge=1900, le=2200)
    data: Path | None = None
    encoding: str | None = None  # of the data folder's CSV files; None: UTF-8, else GB18030 (detected)
    generate: Generate | None = None
    money_scale: float = Field(1.0, ge=0)  # multiplies every fund amount, after `money`
    money: dict[str, dict[int, float]] = {}  # yuan per source and year, replacing the funds table's amount
    policy: Policy = Policy()
    targeting: Targeting = Targeting()
    solver: SolverSettings = SolverSettings()
    source: Path | None = Field(None, exclude=True)  # the YAML file it was read from
    _overrides: dict = PrivateAttr(default_factory=dict)  # library overrides applied on top of `source`

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, encoding: str | None) -> str | None:
        if encoding is None:
            return None
        try:
            return codecs.lookup(encoding).name
        except LookupError:
            raise ValueError(f"unknown text encoding {encoding!r} (e.g. utf-8, gb18030, gbk)") from None

    @model_validator(mode="after")
    def _years_and_data(self) -> Scenario:
        if self.deadline_year < self.start_year:
            raise ValueError(f"deadline_year {self.deadline_year} is before start_year {self.start_year}")
        if (self.data is None) == (self.generate is None):
            raise ValueError("give exactly one of 'data' (a folder of tables) or 'generate' (a preset)")
        for source, amounts in self.money.items():
            for year, amount in amounts.items():
                if not self.start_year <= year <= self.deadline_year:
                    raise ValueError(f"money of {source} in {year}: the year is outside "
                                     f"{self.start_year}..{self.deadline_year}")
                if not amount >= 0:
                    raise ValueError(f"money of {source} in {year} must be >= 0 (got {amount})")
        for year in self.policy.annual_targets:
            if not self.start_year <= year <= self.deadline_year:
                raise ValueError(f"policy.annual_targets: the year {year} is outside "
                                 f"{self.start_year}..{self.deadline_year}")
        return self

    @property
    def overrides(self) -> dict:
        """The overrides given to :func:`load_scenario` (nested keys), which its file does not show."""
        return self._overrides

    @property
    def years(self) -> list[int]:
        return list(range(self.start_year, self.deadline_year + 1))

    def data_dir(self) -> Path | None:
        """The data folder, resolved against the scenario file's folder."""
        return self._resolve(self.data)

    def catalog_path(self) -> Path | None:
        """The measure catalogue file, resolved against the scenario file's folder (None: default)."""
        return self._resolve(self.targeting.catalog)

    @property
    def data_year(self) -> int:
        """The year of the raw incomes: ``targeting.data_year`` or the year before the plan."""
        return self.targeting.data_year if self.targeting.data_year is not None else self.start_year - 1

    def poverty_line(self, year: int) -> float:
        """The poverty line of ``year``: the scenario's own, else POVERTY_LINE (nearest year)."""
        lines = {**POVERTY_LINE, **self.targeting.poverty_line}
        if year in lines:
            return float(lines[year])
        return float(lines[min(lines, key=lambda y: (abs(y - year), -y))])

    def _resolve(self, path: Path | None) -> Path | None:
        if path is None:
            return None
        if path.is_absolute() or self.source is None:
            return path
        return (self.source.parent / path).resolve()


def _issues_from_validation(file: str, error: ValidationError) -> list[Issue]:
    issues = []
    for err in error.errors():
        key = ".".join(str(p) for p in err["loc"]) or None
        found = None if err["type"] == "missing" else repr(err.get("input"))
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = "unknown key"
            found = None
        issues.append(Issue(file=file, message=message, key=key, found=found))
    return issues


def scenario_from_dict(raw: dict, file: str = "scenario", source: Path | None = None) -> Scenario:
    """Validate a scenario given as a dict (the YAML's content)."""
    if not isinstance(raw, dict):
        raise ScenarioError([Issue(file, "must be a mapping of keys", found=type(raw).__name__)])
    try:
        scenario = Scenario.model_validate(raw)
    except ValidationError as error:
        raise ScenarioError(_issues_from_validation(file, error)) from None
    scenario.source = source
    return scenario


def load_scenario(path: str | Path, overrides: Mapping | None = None) -> Scenario:
    """Read and validate a scenario YAML file, then apply ``overrides`` (see :func:`apply_overrides`).

    A file with a ``base:`` key (a scenario file, relative to this one) holds overrides of that
    base: any of its keys, validated the same way; its paths resolve against its own folder and
    the base's against the base's folder.
    """
    scenario = _load_file(Path(path), ())
    return apply_overrides(scenario, overrides, record=True) if overrides else scenario


def _read_yaml(path: Path):
    if path.is_dir():
        inside = path / "scenario.yaml"
        raise ScenarioError([Issue(str(path), "is a folder, not a scenario file",
                                   expected=f"a scenario YAML file{f' such as {inside}' if inside.is_file() else ''}")])
    if not path.is_file():
        raise ScenarioError([Issue(str(path), "scenario file does not exist")])
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as error:
        raise ScenarioError([Issue(path.name, f"not UTF-8 text (byte {error.start} cannot be read)",
                                   expected="a scenario file saved as UTF-8")]) from None
    except yaml.YAMLError as error:
        raise ScenarioError([Issue(path.name, f"not valid YAML: {error}")]) from None


def _load_file(path: Path, chain: tuple[Path, ...]) -> Scenario:
    raw = _read_yaml(path)
    if not (isinstance(raw, dict) and "base" in raw):
        return scenario_from_dict(raw, file=path.name, source=path.resolve())
    raw = dict(raw)
    base = _base_path(path, raw.pop("base"))
    if base in chain or base == path.resolve():
        raise ScenarioError([Issue(path.name, "scenario bases form a cycle", key="base", found=str(base))])
    return apply_overrides(_load_file(base, (*chain, path.resolve())), raw, file=path.name, source=path.resolve())


def _base_path(path: Path, base) -> Path:
    if not isinstance(base, str) or not base:
        raise ScenarioError([Issue(path.name, "must name a scenario file", key="base", found=repr(base))])
    return (path.resolve().parent / base).resolve()


def scenario_files(scenario: Scenario) -> list[Path]:
    """The YAML files a scenario was read from: its own, then its bases (``base:``), in order."""
    files = []
    path = scenario.source
    while path is not None and path.is_file() and path not in files:
        files.append(path)
        raw = _read_yaml(path)
        path = _base_path(path, raw["base"]) if isinstance(raw, dict) and "base" in raw else None
    return files


HIDDEN_KEYS = ("source",)  # fields a scenario file cannot set


def expand_keys(overrides: Mapping) -> dict:
    """Overrides as nested dicts: dotted keys (``"policy.deadline"``) and nested mappings may be mixed."""
    nested: dict = {}
    for key, value in overrides.items():
        *parents, leaf = str(key).split(".")
        node = nested
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ScenarioError([Issue("overrides", "a key is given both as a value and as a mapping",
                                           key=str(key))])
        value = expand_keys(value) if isinstance(value, Mapping) else value
        node[leaf] = merge(node[leaf], value) if isinstance(node.get(leaf), dict) and isinstance(value, dict) \
            else value
    return nested


def merge(base: dict, changes: dict) -> dict:
    """``base`` with ``changes`` on top: mappings merge key by key (a year 2017 and '2017' are one
    key), anything else replaces."""
    out = dict(base)
    same = {str(key): key for key in base}
    for key, value in changes.items():
        key = same.get(str(key), key)
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def apply_overrides(scenario: Scenario, overrides: Mapping, *, file: str = "overrides",
                    source: Path | None = None, record: bool = False) -> Scenario:
    """A new scenario: ``scenario`` with ``overrides`` (dotted keys or nested mappings) on top.

    Every key must be a key of the scenario model, else a :class:`ScenarioError` names its path
    and says the base has no such key; values are validated as in a scenario file. ``source``
    (an override file) is the file that relative paths among the overrides resolve against;
    the base's own paths keep resolving against its folder. ``record`` keeps the overrides on
    the result (:attr:`Scenario.overrides`), for the run manifest.
    """
    changes = expand_keys(overrides)
    base_file = scenario.source.name if scenario.source else "scenario"
    issues = _unknown_keys(changes, Scenario, "", file, base_file)
    raw = scenario.model_dump(mode="json", exclude_none=True)
    if source is not None and source != scenario.source:
        for keys, path in ((("data",), scenario.data_dir()), (("targeting", "catalog"), scenario.catalog_path())):
            if path is not None:
                _set(raw, keys, str(path))
    try:
        result = Scenario.model_validate(merge(raw, changes))
    except ValidationError as error:
        unknown = {issue.key for issue in issues}
        issues += [issue if _touches(issue.key, changes) else dataclasses.replace(issue, file=base_file)
                   for issue in _issues_from_validation(file, error) if issue.key not in unknown]
    if issues:
        raise ScenarioError(issues)
    result.source = source or scenario.source
    result._overrides = merge(scenario.overrides, changes) if record else dict(scenario.overrides)
    return result


def _unknown_keys(changes: dict, model: type[BaseModel], prefix: str, file: str, base: str) -> list[Issue]:
    issues = []
    for key, value in changes.items():
        path = f"{prefix}{key}"
        field = model.model_fields.get(key) if key not in HIDDEN_KEYS else None
        if field is None:
            known = ", ".join(k for k in model.model_fields if k not in HIDDEN_KEYS)
            issues.append(Issue(file, f"unknown key: the base scenario ({base}) has no such key", key=path,
                                expected=f"one of {known}"))
            continue
        inner = next((t for t in (field.annotation, *get_args(field.annotation))
                      if isinstance(t, type) and issubclass(t, BaseModel)), None)
        if inner is not None and isinstance(value, dict):
            issues += _unknown_keys(value, inner, f"{path}.", file, base)
    return issues


def _touches(key: str | None, changes: dict) -> bool:
    """True when the key path ``key`` lies inside or above one of the changed keys."""
    node = changes
    for part in (key or "").split("."):
        if not isinstance(node, dict):
            return True
        match = next((v for k, v in node.items() if str(k) == part), _MISSING)
        if match is _MISSING:
            return False
        node = match
    return True


_MISSING = object()


def _set(raw: dict, keys: tuple[str, ...], value) -> None:
    for key in keys[:-1]:
        raw = raw.setdefault(key, {})
    raw[keys[-1]] = value


def apply_money(funds: pd.DataFrame, scenario: Scenario) -> pd.DataFrame:
    """The funds table with the scenario's ``money`` amounts put in and every amount times
    ``money_scale``; a source or year without a fund row is an error naming it."""
    if not scenario.money and scenario.money_scale == 1:
        return funds
    file = scenario.source.name if scenario.source else "scenario"
    funds = funds.copy()
    amount = funds["amount"].to_numpy(dtype=float, copy=True)
    issues = []
    for source, amounts in scenario.money.items():
        rows = funds["source_id"].to_numpy() == source
        if not rows.any():
            issues.append(Issue(file, f"no fund row has source '{source}'", key=f"money.{source}",
                                expected="a source of the funds table: " + ", ".join(sorted(set(funds["source_id"])))))
            continue
        years = funds["year"].to_numpy()
        for year, value in amounts.items():
            here = rows & (years == year)
            if not here.any():
                issues.append(Issue(file, f"source '{source}' has no fund row in {year}", key=f"money.{source}.{year}",
                                    expected="a year with a row: " + ", ".join(map(str, sorted(set(years[rows]))))))
            else:  # (source_id, year) is the funds table's key
                amount[here] = value
    if issues:
        raise ScenarioError(issues)
    funds["amount"] = amount * scenario.money_scale
    return funds


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file, for the run manifest."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


__all__ = ["CATEGORIES", "EQUITY_RULES", "POVERTY_LINE", "Equity", "Scenario", "Policy", "SolverSettings",
           "Targeting", "apply_money", "apply_overrides", "expand_keys", "load_scenario", "scenario_files",
           "scenario_from_dict"]
