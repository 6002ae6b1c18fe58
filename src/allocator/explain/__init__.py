"""The explain stage: why counties miss their schedule, what it would take, and where extra money would go."""
