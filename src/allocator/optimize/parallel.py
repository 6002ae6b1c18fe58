"""Where Dask work runs: a client on an existing scheduler or on a new LocalCluster.
Decompose's county groups, sweeps and explain's re-solves share it."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator


@contextlib.contextmanager
def dask_client(scheduler: str | None = None, workers: int | None = None) -> Iterator:
    """A Dask ``Client``: connected to the scheduler at ``scheduler`` (e.g. ``tcp://host:8786``),
    or to a new LocalCluster of ``workers`` processes (default: the cores) with one thread each,
    closed on exit."""
    from distributed import Client, LocalCluster

    if scheduler:
        with Client(scheduler) as client:
            yield client
        return
    with LocalCluster(n_workers=workers or os.cpu_count() or 1, threads_per_worker=1, processes=True,
                      dashboard_address=None, silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
        yield client


__all__ = ["dask_client"]
