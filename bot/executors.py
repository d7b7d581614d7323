"""Where worker jobs run: spawned processes on this machine, or the workers of a Dask cluster.

Jobs take and return plain data (bytes, arrays, frozen dataclasses), so either executor runs
them; `MIMI_DASK_SCHEDULER` picks the cluster. Progress reports travel on a channel of the same
backend: a multiprocessing queue inherited by local workers, a Dask queue otherwise."""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import queue
import secrets
from collections.abc import Callable
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

from bot.config import Settings
from bot.errors import MimiError

log = logging.getLogger(__name__)
CONNECT_TIMEOUT_S = 30.0


@dataclass
class Channel:
    """Progress from workers: `inherited` goes to the local pool's initializer, `sink` with
    each job (a Dask queue); `get` waits up to `timeout` s for one report (queue.Empty)."""

    inherited: Any
    sink: Any
    get: Callable[[float], Any]
    close: Callable[[], None]


class LocalBackend:
    """Spawned process pools on this machine (a clean interpreter each, nothing inherited)."""

    name = "local"
    lost_worker: tuple[type[BaseException], ...] = (BrokenProcessPool,)

    def executor(self, workers: int, initializer: Callable, initargs: tuple) -> Executor:
        """A pool of `workers` processes, each set up by `initializer(*initargs)`."""
        return ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=initializer,
            initargs=initargs,
        )

    def channel(self) -> Channel:
        """A fresh multiprocessing queue, handed to the workers when they start."""
        q = multiprocessing.get_context("spawn").Queue()
        return Channel(q, None, lambda timeout: q.get(timeout=timeout), q.close)

    def close(self) -> None:
        """Nothing to release: each pool is shut down by its owner."""


class DaskExecutor(Executor):
    """A `concurrent.futures.Executor` over a shared Dask client; shutting it down cancels its
    own jobs only (the client and the cluster stay)."""

    def __init__(self, client) -> None:
        self._inner = client.get_executor(pure=False)
        self._futures: set[Future] = set()

    def submit(self, fn: Callable, /, *args: Any, **kwargs: Any) -> Future:
        """Run `fn(*args)` on a cluster worker."""
        future = self._inner.submit(fn, *args, **kwargs)
        self._futures.add(future)
        future.add_done_callback(self._futures.discard)
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop accepting jobs; with `cancel_futures`, cancel those not finished."""
        if cancel_futures:
            for future in list(self._futures):
                future.cancel()
        self._inner.shutdown(wait=wait and not cancel_futures)


class DaskBackend:
    """The workers of a Dask distributed cluster, through one client of this process."""

    name = "dask"

    def __init__(self, address: str, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
        try:
            from distributed import Client
            from distributed.scheduler import KilledWorker
        except ImportError:
            raise MimiError(
                "MIMI_DASK_SCHEDULER is set but Dask is not installed: pip install "
                "'mimi-bot[dask]' (the Docker image has it).",
                code="setup",
            ) from None
        self.address = address
        try:
            self.client = Client(address, timeout=timeout_s, set_as_default=False)
        except (OSError, TimeoutError) as err:
            raise MimiError(
                f"Cannot reach the Dask scheduler at {address} (MIMI_DASK_SCHEDULER): {err}. "
                "Start it (docker compose --profile dask up -d) or unset the setting.",
                code="setup",
            ) from None
        # Dask reruns a job whose worker died on another worker by itself; KilledWorker means
        # it died too often (distributed.scheduler.allowed-failures) and is retried like ours.
        self.lost_worker = (KilledWorker, BrokenProcessPool)
        self._plugins: set[str] = set()
        log.info("compute runs on the Dask cluster at %s", address)

    def executor(self, workers: int, initializer: Callable, initargs: tuple) -> Executor:
        """An executor on the cluster whose workers ran `initializer(*initargs)` once."""
        name = f"mimi-{initializer.__module__}.{initializer.__name__}"
        if name not in self._plugins:
            from bot.dask_setup import WorkerSetup

            self.client.register_plugin(WorkerSetup(initializer, initargs), name=name)
            self._plugins.add(name)
        return DaskExecutor(self.client)

    def channel(self) -> Channel:
        """A named Dask queue that jobs put reports on."""
        from distributed import Queue

        q = Queue(f"mimi-progress-{secrets.token_hex(8)}", client=self.client)

        def get(timeout: float) -> Any:
            try:
                return q.get(timeout=timeout)
            except TimeoutError:
                raise queue.Empty from None

        return Channel(None, q, get, lambda: None)

    def close(self) -> None:
        """Disconnect from the cluster (it keeps running)."""
        with contextlib.suppress(Exception):
            self.client.close()


Backend = LocalBackend | DaskBackend


def backend_for(settings: Settings) -> Backend:
    """The Dask cluster named by MIMI_DASK_SCHEDULER, else this machine's processes."""
    if settings.dask_scheduler:
        return DaskBackend(settings.dask_scheduler)
    return LocalBackend()


def is_dask(executor: Executor | None) -> bool:
    """Whether `executor` runs on a Dask cluster."""
    return isinstance(executor, DaskExecutor)
