"""A warm spawn-context process pool that replaces a dead worker and says so to the user."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from bot.errors import MimiError
from bot.jobs import warm_up

log = logging.getLogger(__name__)


def executor_pids(executor: ProcessPoolExecutor | None) -> list[int]:
    """Process ids of an executor's live workers (the executor has no public list)."""
    return list(getattr(executor, "_processes", None) or {})


def executor_state(executor: ProcessPoolExecutor | None) -> str:
    """'stopped', 'broken' (a worker died), 'idle' (no worker yet) or 'ok'."""
    if executor is None:
        return "stopped"
    processes = dict(getattr(executor, "_processes", None) or {})
    if getattr(executor, "_broken", False) or any(
        p.exitcode is not None for p in processes.values()
    ):
        return "broken"
    return "ok" if processes else "idle"


class WarmPool:
    """Workers that import TensorFlow and load the front-end once, before the first task."""

    def __init__(self, name: str, weights: Path, workers: int = 1) -> None:
        self.name = name
        self.weights = weights
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None

    def _new(self) -> ProcessPoolExecutor:
        """A fresh pool (TensorFlow is not fork-safe: spawn)."""
        return ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=warm_up,
            initargs=(self.weights,),
        )

    def start(self) -> None:
        """Create the pool and have it spawn its workers now."""
        if self._pool is None:
            self._pool = self._new()
            for _ in range(self.workers):
                self._pool.submit(int, 0)

    def pids(self) -> list[int]:
        """Process ids of the live workers."""
        return executor_pids(self._pool)

    def state(self) -> str:
        """See executor_state."""
        return executor_state(self._pool)

    def heal(self) -> str:
        """Replace the pool if a worker died while idle; the state afterwards."""
        if self.state() == "broken":
            log.error("a %s worker died while idle; starting a new one", self.name)
            self._replace(self._pool)
        return self.state()

    def _replace(self, broken: ProcessPoolExecutor | None) -> None:
        """Swap a broken pool for a fresh, warming one (once, however many callers saw it)."""
        if self._pool is broken:
            self._pool = None
            if broken is not None:
                broken.shutdown(wait=False, cancel_futures=True)
            self.start()

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run `fn(*args)` in a worker; a worker that dies is replaced and the caller told."""
        self.start()
        pool, loop = self._pool, asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(pool, fn, *args)
        except BrokenProcessPool:
            log.error("the %s worker died; starting a new one", self.name)
            self._replace(pool)
            raise MimiError(
                f"The {self.name} worker crashed while handling that file; please try again.",
                code="worker_crashed",
            ) from None

    async def close(self) -> None:
        """Stop the workers."""
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)
