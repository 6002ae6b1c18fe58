"""What-if studies: scenario variants and sweeps as Dask tasks."""
