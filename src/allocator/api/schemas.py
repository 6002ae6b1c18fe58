"""Request and response bodies of the HTTP service (kept apart from the library's models)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from allocator.api.store import Job

JobStatus = Literal["queued", "running", "done", "failed", "cancelled"]
TableName = Literal["regions", "villages", "households", "packages", "projects", "funds", "personnel",
                    "villages_raw", "households_raw", "cadres", "teams"]
# diff: re-plans only; marginal_values: plans whose solve priced its rows (allocator.optimize.marginal)
PlanTable = Literal["households", "projects", "funding", "counties", "marginal_values", "diff"]
MonitorTable = Literal["watch", "households_off_track", "villages", "counties"]
Language = Literal["en", "zh"]  # of reports, workbooks and the web page: allocator.report.i18n.LANGUAGES
Cell = str | int | float | bool | None | list[str | int | float]

SCENARIO_EXAMPLE = {"name": "tiny", "start_year": 2016, "deadline_year": 2020,
                    "generate": {"preset": "tiny", "seed": 1}, "solver": {"time_limit": 10}}


class PlanRequest(BaseModel):
    """A scenario to plan: its settings, and its tables as records unless it uses ``generate``."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"scenario": SCENARIO_EXAMPLE}]})

    scenario: dict[str, Any] = Field(description="the scenario YAML's keys (name, start_year, deadline_year, "
                                                 "policy, targeting, solver; generate for a synthetic preset). "
                                                 "'data' is set by the service to the uploaded tables.")
    tables: dict[TableName, list[dict[str, Cell]]] | None = Field(
        None, description="contract tables by name, each a list of records (column: value); a list value "
                          "is one ';'-separated cell")
    explain: bool = Field(False, strict=True, description="also compute difficulties.json after the solve (slower)")


class IssueOut(BaseModel):
    """One problem in the input, as the command line reports it."""

    file: str
    message: str
    row: int | None = None
    id: str | None = None
    column: str | None = None
    key: str | None = None
    expected: str | None = None
    found: str | None = None


class ErrorOut(BaseModel):
    """Every error body: a sentence, and for bad input each problem found."""

    detail: str
    issues: list[IssueOut] = []
    truncated: bool = False


class Progress(BaseModel):
    """Where a solve is: its phase, time, and what is known of the plan so far."""

    phase: str | None = None
    elapsed: float | None = Field(None, description="seconds since the current attempt started")
    incumbent: float | None = Field(None, description="objective of the best plan found so far")
    bound: float | None = Field(None, description="best proven bound on the objective")
    gap: float | None = Field(None, description="relative gap between incumbent and bound")
    expected_exits: float | None = Field(None, description="expected exits at the deadline of the best plan so far")
    shortfall: float | None = Field(None, description="households of county and target shortfall of that plan")
    details: dict[str, Any] = {}


class PlanOut(BaseModel):
    """A plan's job: status, progress, outcome, timestamps and links to its results."""

    plan_id: str
    status: JobStatus
    kind: Literal["plan", "sync"]
    scenario: str
    region: str = Field(description="lowest region holding every county of the data")
    region_path: list[str] = Field(description="from the root region down to 'region'")
    households: int
    plan_status: str | None = Field(None, description="the plan's own status once done: optimal, feasible, "
                                                      "infeasible or error")
    progress: Progress
    error: ErrorOut | None = None
    attempt: int = Field(description="how many times the solve was started (restarts re-queue it)")
    parent_plan_id: str | None = Field(None, description="for a re-plan, the plan it re-plans")
    created_at: str
    started_at: str | None = None
    finished_at: str | None = None
    links: dict[str, str]


def plan_out(job: Job) -> PlanOut:
    """The response body of a job: elapsed time is counted from the current attempt's start."""
    elapsed = None
    if job.started_at:
        end = datetime.fromisoformat(job.finished_at) if job.finished_at else datetime.now(UTC)
        elapsed = max((end - datetime.fromisoformat(job.started_at)).total_seconds(), 0.0)
    base = f"/v1/plans/{job.plan_id}"
    links = {"self": base, "summary": f"{base}/summary", "tables": f"{base}/tables/{{name}}",
             "difficulties": f"{base}/difficulties", "report": f"{base}/report"}
    if job.parent_plan_id:
        links.update(replan=f"{base}/replan", parent=f"/v1/plans/{job.parent_plan_id}")
    return PlanOut(
        plan_id=job.plan_id, status=job.status, kind=job.kind, scenario=job.scenario_name, region=job.region,
        region_path=job.region_path, households=job.households, plan_status=job.plan_status,
        progress=Progress(**{**job.progress, "elapsed": elapsed}),
        error=ErrorOut(**job.error) if job.error else None, attempt=job.attempt, parent_plan_id=job.parent_plan_id,
        created_at=job.created_at, started_at=job.started_at, finished_at=job.finished_at, links=links)


class PlanList(BaseModel):
    """A page of plans the key may see, newest first."""

    plans: list[PlanOut]
    limit: int
    offset: int


class TableOut(BaseModel):
    """One table of a plan folder as records."""

    plan_id: str
    name: PlanTable
    columns: list[str]
    rows: int
    records: list[dict[str, Any]]


class ProgressTableOut(TableOut):
    """One table of a progress record's monitoring as records."""

    progress_id: str
    name: MonitorTable


class ProgressOut(BaseModel):
    """A progress record of a plan, checked against it: the monitoring summary (monitor.json)."""

    plan_id: str
    progress_id: str
    record_year: int
    summary: dict[str, Any] = Field(description="monitor.json: headline numbers, sentences, counties at risk, "
                                                "off-track reasons and the meaning of every table and column")
    links: dict[str, str]


def progress_out(plan_id: str, progress_id: str, summary: dict) -> ProgressOut:
    base = f"/v1/plans/{plan_id}/progress/{progress_id}"
    return ProgressOut(plan_id=plan_id, progress_id=progress_id, record_year=summary["record_year"], summary=summary,
                       links={"self": base, "tables": f"{base}/tables/{{name}}"})


class ReplanRequest(BaseModel):
    """Re-plan a done plan from one of its progress records (POST /v1/plans/{id}/replan)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"progress_id": "3f2c9a7e0b1d4c5e8f6a7b8c9d0e1f2a", "from_year": 2018, "stability": 0.01}]})

    progress_id: str = Field(pattern="^[0-9a-f]{32}$", description="a record uploaded to POST .../progress")
    from_year: int | None = Field(None, ge=1900, le=2200, description="first year planned again (default: the "
                                                                        "record's year); earlier years are history")
    stability: float = Field(0.0, ge=0, allow_inf_nan=False, description="exits a planned decision must gain to "
                                                                         "be changed (0: none); solves twice")
    time_limit: float | None = Field(None, gt=0, allow_inf_nan=False, description="seconds per solve (default: the "
                                     "plan's; capped at ALLOCATOR_MAX_TIME_LIMIT)")


MAX_RISK_DRAWS = 10_000  # draws one request may ask for (they run in one worker process)


class RiskRequest(BaseModel):
    """Sample futures of a done plan (POST /v1/plans/{id}/risk), as ``allocator risk``."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"draws": 200, "seed": 1, "cost_overrun": 0.15, "correlation": 0.0}]})

    draws: int = Field(ge=1, le=MAX_RISK_DRAWS, description="futures to sample")
    seed: int = Field(0, ge=0, le=2**63 - 1, description="random seed: the same seed gives the same result")
    cost_overrun: float = Field(0.0, ge=0, le=10, allow_inf_nan=False,
                                description="relative sd of the cost of each county, category and year (0: as "
                                            "planned)")
    correlation: float = Field(0.0, ge=0, lt=1, allow_inf_nan=False,
                               description="share of a household's outcome that is its county's common shock "
                                           "(0: independent households)")


class RiskOut(BaseModel):
    """The risk of a plan: risk.json (per year the poor, the money needed in the bad 10 % of draws,
    draws, seed, the plan's fingerprint) and risk.csv's rows (each county's chance on time and by
    the deadline)."""

    plan_id: str
    risk_id: str = Field(description="the request's key: the same request is answered from the same result")
    summary: dict[str, Any] = Field(description="risk.json")
    counties: list[dict[str, Any]] = Field(description="risk.csv as records: county_id, county_name, p_on_time, "
                                                       "p_deadline, ...")


class SolveOut(BaseModel):
    """The result of a synchronous solve: the job, its summary and its tables."""

    plan: PlanOut
    summary: dict[str, Any] | None = None
    tables: dict[str, list[dict[str, Any]]] = {}


class HealthOut(BaseModel):
    status: Literal["ok"]
    version: str
    dispatching: bool = Field(description="this server process runs the solves (holds the dispatcher lock)")
    workers: int
    sync_workers: int
    queued: int
    running: int


class BackendOut(BaseModel):
    name: str
    available: bool
    version: str | None
    package: str
    supports_mip: bool
    supports_duals: bool


class PurgedOut(BaseModel):
    """A plan removed with DELETE ...?purge=true: nothing of it is kept."""

    plan_id: str
    purged: Literal[True]


class RegionRecord(BaseModel):
    """One region of the registry, as in the contract's regions table."""

    model_config = ConfigDict(extra="forbid")

    region_id: str = Field(min_length=1, max_length=64)
    parent_id: str = Field("", max_length=64, description="empty at a root (a province)")
    level: Literal["province", "prefecture", "county", "township"]
    name: str = Field("", max_length=200)


class RegionsIn(BaseModel):
    """The region tree to register (PUT /v1/regions): new regions are added, known ones must
    keep their parent and level."""

    model_config = ConfigDict(extra="forbid")

    regions: list[RegionRecord] = Field(min_length=1, max_length=100_000)


class RegionsOut(BaseModel):
    """The registered regions a key may see: its region's subtree and the path above it (all for an admin key)."""

    regions: list[RegionRecord]
    added: int | None = Field(None, description="for PUT: how many regions were new")
    total: int = Field(description="regions registered in all")
