"""The same worker jobs on a real Dask cluster (LocalCluster: worker processes on loopback)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot import guess_job
from bot.config import Settings
from bot.errors import MimiError
from bot.executors import DaskBackend, backend_for
from bot.inference import audio_pool
from bot.pool import WarmPool
from bot.service import Mimi
from bot.training import TrainingEvent, TrainingService
from tests.audio_factory import encode

distributed = pytest.importorskip("distributed", reason="pip install 'mimi-bot[dask]'")
dask = pytest.importorskip("dask")
VOICES = {"Drone": 0, "Chime": 4}
GUILD = 42


@dataclasses.dataclass
class OnCluster:
    """The bot's compute parts wired to one cluster, as MIMI_DASK_SCHEDULER wires them."""

    backend: DaskBackend
    pool: WarmPool
    mimi: Mimi
    training: TrainingService


@contextlib.asynccontextmanager
async def on_cluster(settings: Settings, **config: object) -> AsyncIterator[OnCluster]:
    """A LocalCluster of two single-threaded worker processes on loopback (`config` for its
    scheduler), and the service, audio pool and training service using it; all closed after."""
    with dask.config.set(config):
        cluster = await asyncio.to_thread(
            distributed.LocalCluster, n_workers=2, threads_per_worker=1, processes=True,
            host="127.0.0.1", dashboard_address=None, silence_logs=40,
        )  # fmt: skip
    settings = dataclasses.replace(settings, dask_scheduler=cluster.scheduler_address)
    backend = await asyncio.to_thread(backend_for, settings)
    assert isinstance(backend, DaskBackend)
    pool = audio_pool(settings, backend)
    mimi = await Mimi.open(settings, run=pool.run)
    training = TrainingService(settings, mimi.store, quiet_s=0, backend=backend)
    try:
        yield OnCluster(backend, pool, mimi, training)
    finally:
        await training.close()
        await pool.close()
        await mimi.close()
        await asyncio.to_thread(backend.close)
        await asyncio.to_thread(cluster.close)


async def _teach(mimi: Mimi, tmp_path: Path) -> None:
    """Two songs of each synthetic artist, read by the cluster."""
    for artist, voice in VOICES.items():
        for i in range(2):
            path = encode(tmp_path / f"{artist}{i}.mp3", "mp3", seconds=21, voice=voice, seed=i)
            await mimi.teach(GUILD, artist, path)


async def test_teach_train_guess_run_on_the_cluster(settings: Settings, tmp_path: Path) -> None:
    """Reading, training (with epoch reports) and guessing all run on Dask workers: the bot
    process decodes nothing and holds no model, and the answer is right."""
    async with on_cluster(settings) as c:
        events: list[TrainingEvent] = []
        c.training.subscribe(events.append)
        await c.training.start()
        await _teach(c.mimi, tmp_path)
        meta = await c.training.train_now(GUILD, "dask test")
        assert meta["version"] == 1 and sorted(meta["artists"]) == ["Chime", "Drone"]
        assert [e for e in events if e.kind == "progress"], "no epoch report crossed the cluster"
        clip = encode(tmp_path / "q.ogg", "ogg", seconds=12, voice=VOICES["Chime"], seed=9)
        result = (await c.mimi.guess(GUILD, clip, run=c.pool.run)).answer
        assert result["top"][0]["artist"] == "Chime" and result["model_version"] == 1
        held = await asyncio.to_thread(
            c.backend.client.run, lambda: [key[0] for key in guess_job._MODELS]
        )
        assert GUILD in {g for guilds in held.values() for g in guilds}  # cached there,
        assert all(key[0] != GUILD for key in guess_job._MODELS)  # and not here
        assert c.pool.state() == "ok" and c.pool.pids() == []  # no local worker process


async def test_a_worker_killed_mid_training_is_retried(settings: Settings, tmp_path: Path) -> None:
    """A Dask worker killed while it trains is recorded as a died worker and the training is
    retried once on the cluster, as with local workers (the scheduler here gives up at once)."""
    async with on_cluster(settings, **{"distributed.scheduler.allowed-failures": 0}) as c:
        events: list[TrainingEvent] = []
        killed: list[int] = []

        def kill_the_trainer(event: TrainingEvent) -> None:
            events.append(event)
            if event.kind == "progress" and not killed:
                busy = [w for w, keys in c.backend.client.processing().items() if keys]
                for pid in c.backend.client.run(os.getpid, workers=busy).values():
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)

        c.training.subscribe(kill_the_trainer)
        await c.training.start()
        await _teach(c.mimi, tmp_path)
        meta = await c.training.train_now(GUILD, "dask test")
        assert killed and meta["version"] == 1
        assert [e.attempt for e in events if e.kind == "started"] == [1, 2]
        runs = await c.mimi.store.runs(GUILD, limit=5)
        assert [r["status"] for r in runs] == ["succeeded", "failed"]
        assert "worker died" in runs[1]["error"]


def test_an_unreachable_scheduler_is_one_clear_error() -> None:
    """MIMI_DASK_SCHEDULER naming no scheduler fails fast with what to do, not a traceback."""
    with pytest.raises(MimiError, match=r"Cannot reach the Dask scheduler at tcp://127\.0\.0\.1:9"):
        DaskBackend("tcp://127.0.0.1:9", timeout_s=2)
