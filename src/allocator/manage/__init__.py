"""The running plan: the progress record, monitoring against it, simulating one, and re-planning."""
