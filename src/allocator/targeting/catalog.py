"""The measure catalogue (YAML → typed :class:`Catalog`): household measures, bundles, village
projects and the effect model's parameters, each number with its source.

The default is ``default_catalog.yaml`` beside this module (``scenarios/catalog/default.yaml``
links to it); a scenario may name its own. Rules (eligibility, cost, hours, mean gain, project
gaps) are pandas expressions over the household card or the village file, evaluated for all rows
at once; an expression that fails names the catalogue key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from allocator.errors import Issue, ScenarioError
from allocator.inputs.raw import CAUSES
from allocator.inputs.scenario import Category

DEFAULT_CATALOG = Path(__file__).with_name("default_catalog.yaml")
GUARANTEES = ("housing", "water", "schooling", "medical")
SOURCE_TAGS = ("S", "D", "A", "B")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Gain(_Strict):
    """Income gain of a measure, yuan per person per year at the deadline, if it succeeds.

    ``mean`` is an expression; ``relative`` a share of the projected income; ``to_line`` lifts
    income to a named line of the parameters (the dibao line). ``sd`` is relative to the mean.

    Durability after the deadline (the sustained exit, docs/effect-model.md §3a): an ``earned``
    gain (the household's own business or job) keeps going, growing with the household's
    income, and stops with probability ``yearly_failure`` per year; a ``transfer`` (paid only
    while the household is eligible or the post lasts) stops after the deadline, except for
    the households the ``continues`` expression names (the safety net of households that
    cannot work).
    """

    mean: str | None = None
    relative: float = Field(0.0, ge=0)
    to_line: str | None = None
    sd: float = Field(0.0, ge=0)
    failure: float = Field(0.0, ge=0, le=1)
    kind: Literal["earned", "transfer"]
    yearly_failure: float = Field(0.0, ge=0, le=1)
    continues: str = "False"

    @model_validator(mode="after")
    def _durability_fits_kind(self) -> Gain:
        if self.kind == "earned" and self.continues != "False":
            raise ValueError("'continues' is for transfers; an earned gain has 'yearly_failure'")
        if self.kind == "transfer" and self.yearly_failure > 0:
            raise ValueError("'yearly_failure' is for earned gains; a transfer has 'continues'")
        return self


class Measure(_Strict):
    """A household measure: who may get it, what it costs and what it does."""

    name: str
    category: Category
    # safety_net: no option of its own; it backs every package of an eligible household and
    # pays only if the rest of the package leaves the household below the line (docs/effect-model.md §3b)
    role: Literal["income", "fix", "both", "safety_net"]
    fixes: list[Literal["housing", "water", "schooling", "medical"]] = []
    eligible: str
    cost: str
    hours: str
    gain: Gain | None = None
    lag: int = Field(ge=0, le=20)
    return_risk: float = Field(ge=0, le=1)
    protects_illness: bool = False
    requires: list[str] = []
    # asset-income support: the village column (villages_raw) naming the assets the village holds;
    # the measure is eligible only in villages where it is neither false, empty nor 'none'
    village_assets: str | None = None
    sources: dict[str, str]

    @model_validator(mode="after")
    def _consistent(self) -> Measure:
        if self.role in ("fix", "both") and not self.fixes:
            raise ValueError(f"role '{self.role}' needs 'fixes' (one of {', '.join(GUARANTEES)})")
        if self.role in ("income", "both") and self.gain is None:
            raise ValueError(f"role '{self.role}' needs a 'gain'")
        if self.role == "safety_net" and (self.gain is None or self.gain.to_line is None or self.fixes
                                          or self.requires or self.lag):
            raise ValueError("role 'safety_net' needs a gain with 'to_line', and no 'fixes', 'requires' or 'lag'")
        needed = ["cost", "hours", "lag", "return_risk", "eligible"] + (["gain", "durability"] if self.gain else [])
        _require_sources(self.sources, needed)
        return self


class Bundle(_Strict):
    """Measures taken together, and the failure probabilities the combination changes."""

    measures: list[str] = Field(min_length=2)
    failure: dict[str, float] = {}
    source: str

    @model_validator(mode="after")
    def _tagged(self) -> Bundle:
        _require_sources({"source": self.source}, ["source"])
        return self


class Project(_Strict):
    """A village project: which villages lack it (``gap``), whether it is mandatory there, its cost."""

    name: str
    category: Category
    gap: str
    mandatory: str
    cost: str
    duration: int = Field(ge=0, le=20)
    sources: dict[str, str]

    @model_validator(mode="after")
    def _tagged(self) -> Project:
        _require_sources(self.sources, ["cost", "duration", "mandatory"])
        return self


class Parameters(_Strict):
    """Effect-model parameters (see docs/effect-model.md)."""

    income_growth_with_labour: float = Field(ge=-0.5, le=1)
    income_growth_without_labour: float = Field(ge=-0.5, le=1)
    income_volatility: float = Field(ge=0, le=5)
    baseline_return_risk: float = Field(ge=0, le=1)
    illness_return_risk: float = Field(ge=0, le=1)
    contract_years: int = Field(ge=1, le=20)
    max_packages_per_household: int = Field(ge=1, le=50)
    dibao_line: dict[int, float]
    line_growth: float = Field(ge=-0.5, le=1)  # yearly growth of the poverty line after the deadline
    return_hazard: list[float] = Field(min_length=1)  # yearly return risk after exit: year 1, 2, ..., last repeats
    transition_years: int = Field(ge=0, le=30)  # years after the deadline with support policies kept stable
    unsupported_failure_factor: float = Field(ge=1, le=20)  # earned gains' yearly failure x this after them

    @field_validator("return_hazard")
    @classmethod
    def _hazards_are_probabilities(cls, hazards: list[float]) -> list[float]:
        if not all(0 <= h <= 1 for h in hazards):
            raise ValueError(f"return hazards must be in [0, 1] (got {hazards})")
        return hazards


class PracticeRule(_Strict):
    """A rule of practice: the measures counties gave for one registered cause of poverty, one
    failing guarantee or the households a ``condition`` (an expression over the household
    card) names. Each entry of ``measures`` is a measure or a list of measures taken together;
    a household gets the first entry it is eligible for."""

    cause: str | None = None
    guarantee: str | None = None
    condition: str | None = None
    measures: list[str | list[str]] = Field(min_length=1)
    source: str

    @model_validator(mode="after")
    def _one_subject(self) -> PracticeRule:
        if sum(v is not None for v in (self.cause, self.guarantee, self.condition)) != 1:
            raise ValueError("a practice rule names one of 'cause', 'guarantee' or 'condition'")
        _require_sources({"source": self.source}, ["source"])
        return self

    def options(self) -> list[list[str]]:
        """The entries of ``measures``, each as a list of measure keys."""
        return [[entry] if isinstance(entry, str) else list(entry) for entry in self.measures]


class Catalog(_Strict):
    """The whole catalogue."""

    parameters: Parameters
    sources: dict[str, str]
    measures: dict[str, Measure]
    bundles: list[Bundle] = []
    projects: dict[str, Project]
    practice: list[PracticeRule] = []

    @model_validator(mode="after")
    def _references(self) -> Catalog:
        _require_sources(self.sources, list(Parameters.model_fields))
        for bundle in self.bundles:
            for name in bundle.measures + list(bundle.failure):
                if name not in self.measures:
                    raise ValueError(f"bundle {bundle.measures} names unknown measure '{name}'")
                if self.measures[name].role == "safety_net":
                    raise ValueError(f"bundle {bundle.measures} names the safety net '{name}', "
                                     "which backs every package")
        nets = [key for key, measure in self.measures.items() if measure.role == "safety_net"]
        if len(nets) > 1:
            raise ValueError(f"at most one measure may have role 'safety_net' (found {', '.join(nets)})")
        for key, measure in self.measures.items():
            for project in measure.requires:
                if project not in self.projects:
                    raise ValueError(f"measure '{key}' requires unknown project '{project}'")
            if measure.gain and measure.gain.to_line and measure.gain.to_line not in ("dibao_line",):
                raise ValueError(f"measure '{key}': to_line must be 'dibao_line'")
        return self

    def line(self, name: str, year: int) -> float:
        """A named income line (the dibao line) in ``year``: the nearest year given."""
        lines = getattr(self.parameters, name)
        nearest = min(lines, key=lambda y: (abs(y - year), -y))
        return float(lines[nearest])


def _require_sources(sources: dict[str, str], keys: list[str]) -> None:
    missing = [k for k in keys if k not in sources]
    if missing:
        raise ValueError(f"no source for {', '.join(missing)}: every number needs a source "
                         "tagged S, D, B or A (assumption)")
    untagged = [k for k in keys if str(sources[k]).strip()[:1] not in SOURCE_TAGS]
    if untagged:
        raise ValueError(f"source of {', '.join(untagged)} must start with S, D, B or A")


def _practice_issues(catalog: Catalog, file: str) -> list[Issue]:
    """Practice rules naming an unknown cause, guarantee or measure or the safety net, or ruling one thing twice
    (``row``: the rule's number in the ``practice`` list, from 1)."""
    issues, seen = [], set()
    for row, rule in enumerate(catalog.practice, start=1):
        if rule.cause is not None and rule.cause not in CAUSES:
            issues.append(Issue(file, "unknown cause", row=row, key="practice.cause",
                                expected="one of " + ", ".join(CAUSES), found=rule.cause))
        if rule.guarantee is not None and rule.guarantee not in GUARANTEES:
            issues.append(Issue(file, "unknown guarantee", row=row, key="practice.guarantee",
                                expected="one of " + ", ".join(GUARANTEES), found=rule.guarantee))
        subject = (rule.cause, rule.guarantee, rule.condition)
        if subject in seen:
            kind = "cause" if rule.cause else "guarantee" if rule.guarantee else "condition"
            issues.append(Issue(file, f"a second rule for the same {kind}", row=row, key=f"practice.{kind}",
                                found=rule.cause or rule.guarantee or rule.condition))
        seen.add(subject)
        named = {m for option in rule.options() for m in option}
        for name in sorted(named - set(catalog.measures)):
            issues.append(Issue(file, "unknown measure", row=row, key="practice.measures",
                                expected="a key of 'measures'", found=name))
        for name in sorted(m for m in named if m in catalog.measures and catalog.measures[m].role == "safety_net"):
            issues.append(Issue(file, "the safety net backs every package by itself", row=row,
                                key="practice.measures", expected="a measure without role 'safety_net'", found=name))
    return issues


def load_catalog(path: str | Path | None = None) -> Catalog:
    """Read and validate a catalogue YAML (the default one when ``path`` is None)."""
    path = Path(path) if path is not None else DEFAULT_CATALOG
    if not path.is_file():
        raise ScenarioError([Issue(str(path), "catalogue file does not exist")])
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise ScenarioError([Issue(path.name, f"not valid YAML: {error}")]) from None
    try:
        catalog = Catalog.model_validate(raw)
    except ValidationError as error:
        raise ScenarioError([_issue(path.name, err) for err in error.errors()]) from None
    issues = _practice_issues(catalog, path.name)
    if issues:
        raise ScenarioError(issues)
    return catalog


def _issue(file: str, err: dict) -> Issue:
    """A pydantic error as an Issue; in the ``practice`` list the rule's number is the row."""
    message = err["msg"] if err["type"] != "extra_forbidden" else "unknown key"
    loc = [str(p) for p in err["loc"]]
    if len(loc) >= 2 and loc[0] == "practice" and loc[1].isdigit():
        return Issue(file, message, row=int(loc[1]) + 1, key=".".join(["practice"] + loc[2:]))
    return Issue(file, message, key=".".join(loc) or None)


def evaluate(frame: pd.DataFrame, expression: str, where: str, kind: type = float) -> np.ndarray:
    """Evaluate a catalogue expression on every row of ``frame``; a constant broadcasts.

    Raises ScenarioError naming ``where`` (the catalogue key) when it fails or gives
    something that is not one number (or truth value) per row.
    """
    try:
        value = frame.eval(expression, engine="python")
    except Exception as error:  # any failure of a user's expression is their input's fault
        raise ScenarioError([Issue("catalogue", f"expression {expression!r} cannot be evaluated: {error}",
                                   key=where, expected="a pandas expression over the columns "
                                   + ", ".join(frame.columns))]) from None
    array = np.broadcast_to(np.asarray(value), (len(frame),)) if np.ndim(value) == 0 else np.asarray(value)
    try:
        array = array.astype(kind)
    except (TypeError, ValueError):
        raise ScenarioError([Issue("catalogue", f"expression {expression!r} does not give numbers", key=where)]) \
            from None
    if kind is float and not np.isfinite(array).all():
        raise ScenarioError([Issue("catalogue", f"expression {expression!r} gives a value that is not finite",
                                   key=where)])
    return array


__all__ = ["Catalog", "DEFAULT_CATALOG", "GUARANTEES", "Measure", "PracticeRule", "Project", "evaluate", "load_catalog"]
