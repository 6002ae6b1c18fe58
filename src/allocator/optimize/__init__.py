"""The solve stage: the pipeline from a scenario to a plan, the methods (exact, lp-fix,
decompose), repair, the baselines, marginal values and where Dask work runs."""
