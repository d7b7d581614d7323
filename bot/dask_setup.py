"""The Dask worker plugin that sets up every worker like a local pool's initializer does
(imported only when MIMI_DASK_SCHEDULER is set: `distributed` is an optional extra)."""

from __future__ import annotations

from collections.abc import Callable

from distributed import WorkerPlugin


class WorkerSetup(WorkerPlugin):
    """Runs a pool's initializer on every worker of the cluster, now and when one joins."""

    def __init__(self, initializer: Callable, initargs: tuple) -> None:
        self.initializer, self.initargs = initializer, initargs

    def setup(self, worker=None) -> None:
        """Run the initializer in the worker process."""
        self.initializer(*self.initargs)
