"""allocator: where poverty-alleviation money, projects and people should go.

The pipeline, each step public: :func:`load_scenario` → :func:`load_tables` →
:func:`build_problem` (checks) → :func:`formulate` → :func:`solve_problem` → :class:`Plan`.
:func:`solve` runs them all.
"""

from allocator.errors import InputError, Issue, NoSolution, ScenarioError, SolverUnavailable  # noqa: E402
from allocator.inputs.scenario import Policy, Scenario, SolverSettings, load_scenario, scenario_from_dict  # noqa: E402
from allocator.inputs.tables import read_tables  # noqa: E402
from allocator.manage.monitor import Monitoring, monitor_progress  # noqa: E402
from allocator.manage.progress import Progress, read_progress  # noqa: E402
from allocator.manage.replan import Replan, replan_from  # noqa: E402
from allocator.manage.simulate import simulate_progress  # noqa: E402
from allocator.model.formulation import Formulation, formulate  # noqa: E402
from allocator.model.problem import Problem, build_problem  # noqa: E402
from allocator.optimize.pipeline import solve, solve_problem  # noqa: E402
from allocator.plan.plan import Plan  # noqa: E402
from allocator.targeting.pipeline import load_tables  # noqa: E402
from allocator.version import __version__
from allocator.whatif.risk import Risk, plan_risk  # noqa: E402
from allocator.whatif.sweep import sweep  # noqa: E402

__all__ = [
    "__version__", "InputError", "Issue", "NoSolution", "ScenarioError", "SolverUnavailable",
    "Formulation", "formulate", "Problem", "build_problem", "load_tables", "solve", "solve_problem",
    "Plan", "Policy", "Scenario", "SolverSettings", "load_scenario", "scenario_from_dict", "read_tables",
    "Progress", "read_progress", "simulate_progress", "Monitoring", "monitor_progress", "Replan", "replan_from",
    "sweep", "plan_risk", "Risk",
]
