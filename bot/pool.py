"""A warm spawn-context process pool with a fair queue; it replaces a dead worker and says so."""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot import i18n
from bot.errors import MimiError
from bot.executors import Backend, LocalBackend, is_dask
from bot.i18n import Msg
from bot.worker import warm_up

log = logging.getLogger(__name__)
MAX_REMEMBERED_LANES = 1024  # (guild, task) pairs whose last turn the queue remembers


def executor_pids(executor: Executor | None) -> list[int]:
    """Process ids of an executor's live workers on this machine (it has no public list)."""
    return list(getattr(executor, "_processes", None) or {})


def executor_state(executor: Executor | None) -> str:
    """'stopped', 'broken' (a worker died), 'idle' (no worker yet) or 'ok'."""
    if executor is None:
        return "stopped"
    if is_dask(executor):  # the cluster replaces its own workers
        return "ok"
    processes = dict(getattr(executor, "_processes", None) or {})
    if getattr(executor, "_broken", False) or any(
        p.exitcode is not None for p in processes.values()
    ):
        return "broken"
    return "ok" if processes else "idle"


@dataclass
class _Job:
    """One queued call and the future its caller awaits."""

    fn: Callable[..., Any]
    args: tuple
    future: asyncio.Future


class WarmPool:
    """Workers that load the front-end once, before the first task, fed from a fair queue.

    Calls wait in lanes, one per (guild, task) pair, and a free worker takes the next call
    from the lane served least recently: one server's 10-song /teach cannot starve another
    server's /guess, and a server's guesses interleave with its own uploads. At most
    `workers` calls are in the executor at once, so the queue is ours, not the pool's."""

    def __init__(
        self,
        name: str,
        weights: Path,
        workers: int = 1,
        threads: int = 1,
        idle_s: float = 0.0,
        backend: Backend | None = None,
        setup: tuple[Callable[..., None], tuple] | None = None,
    ) -> None:
        self.name = name
        self.backend = backend or LocalBackend()
        # Each worker runs setup[0](*setup[1]) first: by default it loads the front-end.
        self.setup = setup or (warm_up, (weights, threads))
        self.weights = weights
        self.workers = workers
        self.threads = threads
        self.idle_s = idle_s  # > 0: the workers exit after this long without a call
        self._pool: Executor | None = None
        self._idle: asyncio.TimerHandle | None = None
        self._retired = False  # stopped for idleness; the next call starts them again
        self._lanes: OrderedDict[Hashable, deque[_Job]] = OrderedDict()
        self._served: dict[Hashable, int] = {}  # lane -> tick of its last dispatch
        self._tick = 0
        self._busy = 0
        self._running: set[asyncio.Task] = set()

    def _new(self) -> Executor:
        """A fresh pool of set-up workers (spawned here, or Dask's)."""
        return self.backend.executor(self.workers, *self.setup)

    def start(self) -> None:
        """Create the pool and have it spawn its workers now."""
        if self._pool is None:
            self._retired = False
            self._pool = self._new()
            for _ in range(self.workers):
                self._pool.submit(int, 0)

    def pids(self) -> list[int]:
        """Process ids of the live workers."""
        return executor_pids(self._pool)

    def state(self) -> str:
        """See executor_state; 'idle' while the workers are stopped for idleness."""
        return "idle" if self._retired and self._pool is None else executor_state(self._pool)

    def queued(self) -> int:
        """Calls waiting for a worker."""
        return sum(len(q) for q in self._lanes.values())

    def heal(self) -> str:
        """Replace the pool if a worker died while idle; the state afterwards."""
        if self.state() == "broken" and not self._busy:
            log.error("a %s worker died while idle; starting a new one", self.name)
            self._replace(self._pool)
        return self.state()

    def _replace(self, broken: Executor | None) -> None:
        """Swap a broken pool for a fresh, warming one (once, however many callers saw it)."""
        if self._pool is broken:
            self._pool = None
            if broken is not None:
                broken.shutdown(wait=False, cancel_futures=True)
            self.start()

    async def run(self, fn: Callable[..., Any], *args: Any, guild: int | None = None) -> Any:
        """Run `fn(*args)` in a worker when its turn comes; a worker that dies is replaced
        and the caller told."""
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        self.start()
        job = _Job(fn, args, asyncio.get_running_loop().create_future())
        self._lanes.setdefault((guild, getattr(fn, "__name__", "")), deque()).append(job)
        self._dispatch()
        return await job.future  # (a cancelled caller's queued job is skipped)

    def _dispatch(self) -> None:
        """Hand queued calls to free workers, least recently served lane first."""
        while self._busy < self.workers and self._lanes:
            lane = min(self._lanes, key=lambda k: self._served.get(k, -1))
            queue = self._lanes[lane]
            job = queue.popleft()
            self._served[lane], self._tick = self._tick, self._tick + 1
            if not queue:
                del self._lanes[lane]
                if len(self._served) > MAX_REMEMBERED_LANES:  # forget idle lanes' turns
                    self._served = {k: v for k, v in self._served.items() if k in self._lanes}
            if job.future.done():  # its caller gave up while it waited
                continue
            self._busy += 1
            task = asyncio.ensure_future(self._execute(job))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _execute(self, job: _Job) -> None:
        """Run one call in the executor and settle its future."""
        pool, loop = self._pool, asyncio.get_running_loop()
        try:
            result = await loop.run_in_executor(pool, job.fn, *job.args)
        except self.backend.lost_worker:
            log.error("the %s worker died; starting a new one", self.name)
            self._replace(pool)
            known = f"worker.{self.name}" in i18n.keys(i18n.DEFAULT)
            worker = Msg(f"worker.{self.name}") if known else self.name
            crashed = Msg("error.worker_crashed", worker=worker)
            _settle(job.future, error=MimiError(crashed, code="worker_crashed"))
        except Exception as err:  # the caller gets whatever the task raised
            _settle(job.future, error=err)
        else:
            _settle(job.future, result=result)
        finally:
            if not job.future.done():  # this task was cancelled (shutdown)
                job.future.cancel()
            self._busy -= 1
            self._dispatch()
            if self.idle_s > 0 and not self._busy and not self._lanes and self._idle is None:
                self._idle = loop.call_later(self.idle_s, self._retire)

    def _retire(self) -> None:
        """No call for `idle_s`: stop the workers (and their memory) until the next call."""
        self._idle = None
        if self._pool is not None and not self._busy and not self._lanes:
            pool, self._pool, self._retired = self._pool, None, True
            log.info("%s worker idle for %.0f s: stopping it", self.name, self.idle_s)
            pool.shutdown(wait=False)

    async def close(self) -> None:
        """Stop the workers; calls still waiting are told the service is stopping."""
        for queue in self._lanes.values():
            for job in queue:
                _settle(job.future, error=MimiError(Msg("error.shutdown"), code="shutdown"))
        self._lanes.clear()
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)


def _settle(future: asyncio.Future, *, result: Any = None, error: BaseException | None = None):
    """Resolve a caller's future unless it was cancelled meanwhile."""
    if not future.done():
        future.set_exception(error) if error is not None else future.set_result(result)
