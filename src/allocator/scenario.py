"""Scenario files: YAML → typed :class:`Scenario` (pydantic), with errors naming the key path.

A scenario names the years, a data folder of contract tables *or* a generator preset,
the policy and the solver settings. Relative data paths are resolved against the YAML
file's folder, so a scenario can be run from anywhere.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from allocator.errors import Issue, ScenarioError
from allocator.tables import CATEGORIES

Category = Literal["infrastructure", "industry", "housing", "ability", "ecology", "welfare"]


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


class Policy(_Strict):
    """The policy rules of a scenario."""

    county_exit_threshold: ExitThreshold = ExitThreshold()
    min_category_share: dict[Category, float] = {}
    max_category_share: dict[Category, float] = {}
    deadline: Literal["soft", "hard"] = "soft"

    @field_validator("min_category_share", "max_category_share")
    @classmethod
    def _shares_in_unit_interval(cls, shares: dict[str, float]) -> dict[str, float]:
        for category, share in shares.items():
            if not 0 <= share <= 1:
                raise ValueError(f"share of {category} must be in [0, 1] (got {share})")
        return shares

    @model_validator(mode="after")
    def _min_not_above_max(self) -> Policy:
        for category, low in self.min_category_share.items():
            high = self.max_category_share.get(category, 1.0)
            if low > high:
                raise ValueError(f"min share of {category} ({low}) is above its max share ({high})")
        if sum(self.min_category_share.values()) > 1 + 1e-9:
            raise ValueError("minimum category shares add up to more than 1")
        return self


class SolverSettings(_Strict):
    """How to solve: backend, method and limits (``None`` = backend default)."""

    backend: str = "highs"
    method: Literal["auto", "exact", "lp-fix", "decompose"] = "auto"
    time_limit: float | None = Field(None, gt=0)
    mip_gap: float = Field(1e-3, ge=0, lt=1)
    threads: int | None = Field(None, ge=1)
    seed: int = 0
    verbose: bool = False


class Generate(_Strict):
    """A generated data set instead of a data folder: a preset of the synthetic generators
    (canonical presets give the canonical tables; province presets give raw registry data,
    which goes through identification and candidates)."""

    preset: str = "demo"
    seed: int = 0
    households: int | None = Field(None, ge=1)
    money_scale: float | None = Field(None, gt=0)
    western: bool | None = None


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
    """A scenario: years, data (folder or generator), policy and solver settings."""

    name: str
    start_year: int = Field(ge=1900, le=2200)
    deadline_year: int = Field(ge=1900, le=2200)
    data: Path | None = None
    generate: Generate | None = None
    policy: Policy = Policy()
    targeting: Targeting = Targeting()
    solver: SolverSettings = SolverSettings()
    source: Path | None = Field(None, exclude=True)  # the YAML file it was read from

    @model_validator(mode="after")
    def _years_and_data(self) -> Scenario:
        if self.deadline_year < self.start_year:
            raise ValueError(f"deadline_year {self.deadline_year} is before start_year {self.start_year}")
        if (self.data is None) == (self.generate is None):
            raise ValueError("give exactly one of 'data' (a folder of tables) or 'generate' (a preset)")
        return self

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


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario YAML file."""
    path = Path(path)
    if not path.is_file():
        raise ScenarioError([Issue(str(path), "scenario file does not exist")])
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise ScenarioError([Issue(path.name, f"not valid YAML: {error}")]) from None
    return scenario_from_dict(raw, file=path.name, source=path.resolve())


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file, for the run manifest."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


__all__ = ["CATEGORIES", "POVERTY_LINE", "Scenario", "Policy", "SolverSettings", "Targeting", "load_scenario",
           "scenario_from_dict"]
