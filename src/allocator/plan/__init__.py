"""The plan stage: the plan and its folder, the context a plan folder rebuilds, comparing two plans."""
