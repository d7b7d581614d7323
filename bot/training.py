"""The training service: debounced, one-at-a-time-per-guild training in a spawned process pool.

The pool (the only processes that import TensorFlow) starts with the first training and stops
after `train_idle_s` without one, so an idle bot holds no TensorFlow at all."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import queue
import signal
import threading
from dataclasses import dataclass, field, replace

from bot.config import Settings
from bot.errors import MimiError
from bot.executors import Backend, LocalBackend
from bot.i18n import Msg
from bot.owner import owner_alive
from bot.pool import WarmPool
from bot.service import INTERRUPTED
from bot.service_records import finish_run, start_run
from bot.store import Store
from bot.train_job import TrainJob
from bot.training_events import Listener, TrainingEvent, TrainingFailed, TrainingStatus
from bot.worker import run_training, training_setup
from model_store import features
from model_store.registry import ModelMeta, ModelRegistry

log = logging.getLogger(__name__)

WORKER_DIED = "the training worker died (killed or out of memory)"
SHUTDOWN = "mimi shut down before training finished"
RESUMED = "resumed after a restart"


def outdated(meta: ModelMeta | None) -> bool:
    """A musicnn model made by an older front-end (issue 11: before MTT, calibration and the
    open-set reference), which a retrain on the cached songs improves."""
    return (
        meta is not None
        and meta.frontend_version is not None
        and meta.frontend_version < features.FRONTEND_VERSION
    )


@dataclass
class _Guild:
    """Per-guild bookkeeping: debounce timer, the queued training and its waiters, runner."""

    status: TrainingStatus = field(default_factory=TrainingStatus)
    timer: asyncio.TimerHandle | None = None
    pending: str | None = None  # reason of the one queued training
    waiters: list[asyncio.Future] = field(default_factory=list)  # its train_now callers
    task: asyncio.Task | None = None
    started: TrainingEvent | None = None  # the running training's "started" event


class TrainingService:
    """Trains guild models in worker processes; coalesces requests; survives dying workers."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        *,
        quiet_s: float | None = None,
        backend: Backend | None = None,
    ) -> None:
        self.settings = settings
        self.backend = backend or LocalBackend()
        self.store = store
        self.quiet_s = settings.train_quiet_s if quiet_s is None else quiet_s
        self.registry = ModelRegistry(settings.models_dir, keep=settings.models_keep)
        self._guilds: dict[int, _Guild] = {}
        self._listeners: list[Listener] = []
        self._tasks: set[asyncio.Task] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._slots = asyncio.Semaphore(settings.train_workers)
        self._closing = False
        # Epoch reports: one channel for every pool the service starts (a queue the local
        # workers inherit, or a Dask queue each job carries), read by one thread.
        self._channel = self.backend.channel()
        self._stop = threading.Event()
        self._reader: threading.Thread | None = None
        # The same warm pool as the audio workers', set up to import TensorFlow: it starts with
        # the first training, is replaced when a worker dies, and stops after train_idle_s.
        self._pool = WarmPool(
            "training", settings.frontend_weights, settings.train_workers,
            idle_s=settings.train_idle_s, backend=self.backend,
            setup=(training_setup, (self._channel.inherited,)),
        )  # fmt: skip

    async def start(self) -> None:
        """Accept trainings; the worker pool starts with the first one."""
        self._loop = asyncio.get_running_loop()
        if self._reader is None:
            self._reader = threading.Thread(target=self._read_progress, daemon=True)
            self._reader.start()

    async def resume(self) -> list[int]:
        """After a (re)start: close runs a crash left open; retrain guilds whose songs changed
        or whose model an upgrade made outdated (it keeps answering until the retrain lands)."""
        interrupted = await self.store.close_interrupted_runs(INTERRUPTED, owner_alive)
        stale = []
        for guild_id in await self.store.guild_ids():
            current = await asyncio.to_thread(self.registry.current, guild_id)
            by_key = bool(current and current.snapshot_keys)  # audio keys: stable identities
            taught: dict[str, set] = {}
            for song_id, artist, key, _clips in await self.store.training_songs(guild_id):
                taught.setdefault(artist, set()).add(key if by_key else song_id)
            used = None
            if current is not None:
                snap = current.snapshot_keys if by_key else current.snapshot
                used = {a: set(ids) for a, ids in snap.items()}
            if len(taught) >= 2 and (used != taught or outdated(current)):
                stale.append(guild_id)
                self.request(guild_id, RESUMED)
        if interrupted or stale:
            log.info("interrupted trainings in %s; retraining %s", interrupted, stale)
        return stale

    async def close(self, *, wait_s: float = 10.0) -> None:
        """Drop timers and queued trainings, wait `wait_s` for running ones, abandon the rest."""
        self._closing = True
        for st in self._guilds.values():
            if st.timer is not None:
                st.timer.cancel()
            _settle(st.waiters, error=TrainingFailed(Msg("training.shutdown")))
            st.timer, st.pending, st.waiters = None, None, []
        runners = [st.task for st in self._guilds.values() if st.task is not None]
        late = (await asyncio.wait(runners, timeout=wait_s))[1] if runners else set()
        for task in late:  # abandon them: their runs are recorded failed; nothing is published
            task.cancel()
        for pid in self.worker_pids() if late else []:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGTERM)
        if late or self._tasks:
            await asyncio.wait([*late, *self._tasks], timeout=wait_s)
        await self._pool.close()
        self._stop.set()
        if self._reader is not None:
            await asyncio.to_thread(self._reader.join, 5)

    def request(self, guild_id: int, reason: str, *, quiet_s: float | None = None) -> None:
        """Train this guild once no request came for `quiet_s` seconds (default: settings)."""
        if self._closing or self._loop is None:
            log.warning("guild %s: training request ignored (service not running)", guild_id)
            return
        st = self._guilds.setdefault(guild_id, _Guild())
        if st.timer is not None:
            st.timer.cancel()
        delay = self.quiet_s if quiet_s is None else quiet_s
        st.timer = self._loop.call_later(delay, self._enqueue, guild_id, reason)

    def cancel(self, guild_id: int) -> None:
        """Drop this guild's waiting or queued training (a running one finishes: wait_idle)."""
        st = self._guilds.get(guild_id)
        if st is None:
            return
        if st.timer is not None:
            st.timer.cancel()
        st.timer, st.pending = None, None
        waiters, st.waiters = st.waiters, []
        _settle(waiters, error=TrainingFailed(Msg("training.cancelled")))

    async def train_now(self, guild_id: int, reason: str) -> dict:
        """Train now (after the guild's running training, if any); the published meta dict."""
        if self._closing or self._loop is None:
            raise TrainingFailed(Msg("training.not_running"))
        waiter = asyncio.get_running_loop().create_future()
        self._enqueue(guild_id, reason, waiter)
        return await waiter

    def status(self, guild_id: int) -> TrainingStatus:
        """A snapshot of this guild's training state."""
        st = self._guilds.get(guild_id) or _Guild()
        waiting, running = st.timer is not None or st.pending is not None, st.started is not None
        state = "running" if running else "queued" if waiting or st.task else "idle"
        return replace(st.status, state=state, pending=waiting and running)

    def subscribe(self, listener: Listener) -> None:
        """Call `listener` (plain or async) with every TrainingEvent."""
        self._listeners.append(listener)

    async def wait_idle(self, guild_id: int | None = None) -> None:
        """Return once this guild (None: every guild) has nothing waiting or running."""
        while self._busy(guild_id):
            await asyncio.sleep(0.05)

    def worker_pids(self) -> list[int]:
        """Process ids of the live training workers on this machine."""
        return self._pool.pids()

    def heal(self) -> str:
        """Replace the pool if a worker died while idle; its state afterwards (see WarmPool:
        between trainings no worker runs, by design, and that is "idle")."""
        state = self._pool.heal()
        if state == "stopped":
            return "idle" if self._loop is not None and not self._closing else "stopped"
        return state

    def _enqueue(self, guild_id: int, reason: str, *waiters: asyncio.Future) -> None:
        """Queue one training (superseding a queued one and any timer); start the runner."""
        st = self._guilds.setdefault(guild_id, _Guild())
        if st.timer is not None:  # fired, or made redundant by train_now
            st.timer.cancel()
        st.timer, st.pending = None, reason
        st.waiters.extend(waiters)
        if st.task is None:
            st.task = asyncio.get_running_loop().create_task(self._runner(guild_id))

    async def _runner(self, guild_id: int) -> None:
        """Run this guild's queued trainings one after another until none is left."""
        st = self._guilds[guild_id]
        try:
            while st.pending is not None and not self._closing:
                reason, waiters = st.pending, st.waiters
                st.pending, st.waiters = None, []
                try:  # a second attempt only when the first one's worker died
                    meta = await self._attempt(guild_id, reason, 1)
                    _settle(waiters, result=meta or await self._attempt(guild_id, reason, 2))
                except Exception as err:
                    _settle(waiters, error=err)
                finally:  # still unsettled: cancelled by close()
                    _settle(waiters, error=TrainingFailed(Msg("training.shutdown")))
        finally:
            st.task = None

    def _busy(self, guild_id: int | None = None) -> bool:
        """Whether this guild (None: any guild) has a training waiting or running."""
        return any(st.task or st.timer or st.pending is not None
                   for g, st in self._guilds.items() if guild_id in (None, g))  # fmt: skip

    async def _attempt(self, guild_id: int, reason: str, attempt: int) -> dict | None:
        """One recorded training in a worker: its meta, or None when the worker died (retry)."""
        async with self._slots:  # a guild waiting for a free worker shows as "queued"
            songs = await self.store.training_songs(guild_id)
            return await self._run(guild_id, reason, attempt, songs)

    async def _run(self, guild_id: int, reason: str, attempt: int, songs: list) -> dict | None:
        """Record the run, train in the pool, report and record the outcome."""
        job = TrainJob.for_guild(self.settings, guild_id, songs)
        refs = job.songs
        previous = await asyncio.to_thread(self.registry.current, guild_id)
        run_id = await start_run(self.store, guild_id, reason + " (retry)" * (attempt > 1))
        started = TrainingEvent("started", guild_id, len(refs), reason=reason, attempt=attempt)
        st = self._guilds[guild_id]
        st.started = started
        st.status = replace(st.status, epoch=None, epochs=None, val_accuracy=None, songs=len(refs))
        log.info("guild %s: training on %d songs (%s #%d)", guild_id, len(refs), reason, attempt)
        self._emit(started)
        error: MimiError | None = None
        try:
            if self._closing or self._loop is None:
                raise TrainingFailed(Msg("training.not_running"))
            data = await asyncio.to_thread(job.load)  # the songs' features, read here
            sink = self._channel.sink
            trained = await self._pool.run(run_training, data, sink, guild=guild_id)
            published = await asyncio.to_thread(job.publish, trained)
        except MimiError as err:
            if err.code != "worker_crashed":  # the guild's data cannot be trained on (one artist)
                error = err
                await self._fail(guild_id, run_id, err.message)
            else:  # the worker died (killed, out of memory): the pool replaced it
                await self._fail(guild_id, run_id, WORKER_DIED)
                if attempt == 1 and not self._closing:
                    log.warning("guild %s: %s; retrying once", guild_id, WORKER_DIED)
                    return None
                died = "training.worker_died_twice" if attempt > 1 else "training.worker_died"
                error = TrainingFailed(Msg(died))
        except asyncio.CancelledError:
            await asyncio.shield(self._fail(guild_id, run_id, SHUTDOWN))
            raise
        except Exception as err:
            log.exception("guild %s: training crashed", guild_id)
            error = TrainingFailed(Msg("training.crashed", detail=f"{type(err).__name__}: {err}"))
            await self._fail(guild_id, run_id, error.message)
        finally:
            st.started = None
        if error is not None:
            failed = replace(started, kind="failed", previous=previous, error=error.message)
            self._emit(replace(failed, failure=error))
            raise error
        await finish_run(
            self.store, guild_id, run_id, model_version=published.version, metrics=published.metrics
        )
        st.status.last_error = None
        log.info("guild %s: published model v%s", guild_id, published.version)
        self._emit(replace(started, kind="finished", meta=published, previous=previous))
        return published.to_dict()

    async def _fail(self, guild_id: int, run_id: int, error: str) -> None:
        """Record a failed run and keep its reason in the status."""
        self._guilds[guild_id].status.last_error = error
        await finish_run(self.store, guild_id, run_id, error=error)

    def _emit(self, event: TrainingEvent) -> None:
        """Hand an event to every listener; async ones run as tracked tasks."""
        for listener in list(self._listeners):
            try:
                result = listener(event)
                if inspect.isawaitable(result):
                    task = asyncio.ensure_future(result)
                    self._tasks.add(task)
                    task.add_done_callback(self._listener_done)
            except Exception:
                log.exception("training listener failed on a %r event", event.kind)

    def _listener_done(self, task: asyncio.Task) -> None:
        """Forget a finished async listener, logging its failure."""
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("training listener failed", exc_info=task.exception())

    def _read_progress(self) -> None:
        """Reader thread: forward (guild, epoch, total, accuracy) reports to the event loop."""
        with contextlib.suppress(EOFError, OSError, ValueError, RuntimeError):  # closed: stop
            while not self._stop.is_set():
                with contextlib.suppress(queue.Empty):
                    item = self._channel.get(0.2)
                    self._loop.call_soon_threadsafe(self._on_progress, item)
        self._channel.close()

    def _on_progress(self, item: tuple) -> None:
        """An epoch report from a worker: update the status and tell listeners."""
        guild_id, epoch, total, accuracy = item
        if (st := self._guilds.get(guild_id)) is not None and st.started is not None:
            st.status = replace(st.status, epoch=epoch, epochs=total, val_accuracy=accuracy)
            self._emit(replace(st.started, kind="progress", epoch=epoch, epochs=total,
                               val_accuracy=accuracy))  # fmt: skip


def _settle(waiters: list[asyncio.Future], *, result: dict | None = None, error=None) -> None:
    """Resolve `train_now` callers with the meta dict or the error."""
    for waiter in (w for w in waiters if not w.done()):
        waiter.set_exception(error) if error is not None else waiter.set_result(result)
