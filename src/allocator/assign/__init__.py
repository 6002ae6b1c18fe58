"""The assignment stage: cadres to households and work teams to villages, and the generic GAP solver."""
