"""One router per resource: plans, the synchronous solve, and the system (health, backends)."""
