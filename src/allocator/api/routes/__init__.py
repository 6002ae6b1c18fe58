"""One router per resource: plans, their progress records and re-plans (manage), the synchronous
solve, and the system (health, backends)."""
