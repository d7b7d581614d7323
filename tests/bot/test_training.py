"""The training service over real worker processes, TensorFlow, audio and SQLite."""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import replace
from pathlib import Path

import pytest

from bot.config import Settings
from bot.errors import MimiError
from bot.service import Mimi
from bot.training import (
    SHUTDOWN,
    WORKER_DIED,
    TrainingEvent,
    TrainingFailed,
    TrainingService,
)
from model_store.registry import ModelRegistry
from tests.audio_factory import encode
from tests.bot.helpers import Recorder, brief, kill_workers, teach_alpha_and_beta

GUILD = 7
QUIET_S = 0.3


@pytest.fixture
def recorder() -> Recorder:
    """A fresh event recorder."""
    return Recorder()


@pytest.fixture
async def service(settings: Settings, mimi: Mimi, tmp_path: Path, recorder: Recorder):
    """A started training service on a guild with two taught artists, recording events."""
    await teach_alpha_and_beta(mimi, tmp_path, guild=GUILD)
    svc = TrainingService(settings, mimi.store, quiet_s=QUIET_S)
    svc.subscribe(recorder)
    await svc.start()
    yield svc
    await svc.close()


async def test_train_now_publishes_first_model(
    service: TrainingService, recorder: Recorder, settings: Settings
):
    """train_now trains in a worker process, publishes v1, records the run and reports epochs."""
    seen: list[str] = []

    async def async_listener(event: TrainingEvent) -> None:
        await asyncio.sleep(0)
        if event.kind != "progress":
            seen.append(event.kind)

    service.subscribe(async_listener)
    meta = await service.train_now(GUILD, "manual")
    current = ModelRegistry(settings.models_dir).current(GUILD)
    assert meta["version"] == current.version == 1
    assert current.artists == ["Alpha", "Beta"]
    runs = await service.store.runs(GUILD)
    assert brief(runs) == [("succeeded", "manual", 1, None)]
    assert runs[0]["metrics"] == meta["metrics"]
    assert recorder.kinds() == ["started", "finished"]
    progress = [e for e in recorder.events if e.kind == "progress"]
    epochs = [e.epoch for e in progress]
    assert epochs and epochs == sorted(epochs) and 0 < epochs[-1] <= progress[-1].epochs
    assert all(e.songs == 4 and e.guild_id == GUILD for e in recorder.events)
    assert recorder.events[-1].meta.to_dict() == meta and recorder.events[-1].previous is None
    status = service.status(GUILD)
    assert (status.state, status.songs, status.last_error) == ("idle", 4, None)
    assert (status.epoch, status.epochs) == (progress[-1].epoch, progress[-1].epochs)
    assert service.worker_pids() and os.getpid() not in service.worker_pids()
    again = await service.train_now(GUILD, "again")
    assert again["version"] == 2 and recorder.events[-1].previous.to_dict() == meta
    await asyncio.sleep(0.05)
    assert seen == ["started", "finished"] * 2


async def test_quick_requests_coalesce_into_one_training(
    service: TrainingService, recorder: Recorder
):
    """Five quick request()s wait for the quiet period and then train exactly once."""
    for i in range(5):  # spans 2 quiet periods: without restarting the timer, more would run
        service.request(GUILD, f"taught song {i}")
        await asyncio.sleep(QUIET_S / 2)
    assert service.status(GUILD).state == "queued"
    assert await service.store.runs(GUILD) == []
    await service.wait_idle(GUILD)
    assert brief(await service.store.runs(GUILD)) == [("succeeded", "taught song 4", 1, None)]
    assert recorder.kinds() == ["started", "finished"]
    assert service.status(GUILD).state == "idle"


async def test_request_during_training_runs_exactly_one_more(
    service: TrainingService, recorder: Recorder
):
    """Requests made while a guild trains queue one follow-up training, never a parallel one."""
    service.request(GUILD, "first")
    await recorder.wait_for(lambda e: e.kind == "started")
    for i in range(3):
        service.request(GUILD, f"during {i}")
        await asyncio.sleep(0.05)
    await asyncio.sleep(QUIET_S + 0.2)
    status = service.status(GUILD)
    assert (status.state, status.pending) == ("running", True)
    await service.wait_idle(GUILD)
    assert brief(await service.store.runs(GUILD)) == [
        ("succeeded", "during 2", 2, None),
        ("succeeded", "first", 1, None),
    ]
    assert recorder.kinds() == ["started", "finished", "started", "finished"]


async def test_train_now_waits_for_the_running_training(
    service: TrainingService, recorder: Recorder
):
    """train_now during a running training waits for it, then trains afresh (never two at once)."""
    first = asyncio.create_task(service.train_now(GUILD, "first"))
    await recorder.wait_for(lambda e: e.kind == "started")
    second = await service.train_now(GUILD, "second")
    assert (await first)["version"] == 1 and second["version"] == 2
    assert recorder.kinds() == ["started", "finished", "started", "finished"]
    assert recorder.events[-1].previous.version == 1


async def test_guilds_share_the_worker_and_queue_for_it(
    service: TrainingService, recorder: Recorder, mimi: Mimi, tmp_path: Path
):
    """With one worker, a second guild waits 'queued' while the first trains, then trains too."""
    await teach_alpha_and_beta(mimi, tmp_path / "other", guild=8)
    first = asyncio.create_task(service.train_now(GUILD, "first"))
    await recorder.wait_for(lambda e: e.kind == "started")
    second = asyncio.create_task(service.train_now(8, "second"))
    await asyncio.sleep(0.3)
    assert (service.status(GUILD).state, service.status(8).state) == ("running", "queued")
    assert [m["version"] for m in await asyncio.gather(first, second)] == [1, 1]
    assert [(e.kind, e.guild_id) for e in recorder.events if e.kind != "progress"] == [
        ("started", GUILD), ("finished", GUILD), ("started", 8), ("finished", 8),
    ]  # fmt: skip


async def test_too_few_artists_fails_without_retry(
    service: TrainingService, recorder: Recorder, settings: Settings, mimi: Mimi, tmp_path: Path
):
    """One artist only: a failed run and event with the user message, no model and no retry."""
    for i in range(2):
        await mimi.teach(3, "Solo", encode(tmp_path / f"s{i}.mp3", "mp3", seconds=12, seed=i))
    with pytest.raises(MimiError) as err:
        await service.train_now(3, "manual")
    message = err.value.message
    assert err.value.code == "too_few_artists" and "2 artists" in message
    service.request(3, "taught")
    await service.wait_idle()
    await asyncio.sleep(0.5)
    assert (service.status(3).state, service.status(3).last_error) == ("idle", message)
    assert brief(await mimi.store.runs(3)) == [
        ("failed", "taught", None, message),
        ("failed", "manual", None, message),
    ]
    assert recorder.kinds() == ["started", "failed"] * 2
    assert recorder.events[-1].error == message
    assert ModelRegistry(settings.models_dir).current(3) is None


async def test_killed_worker_is_replaced_and_training_retried(
    service: TrainingService, recorder: Recorder, settings: Settings
):
    """A worker killed mid-training: run failed as 'worker died', pool rebuilt, retry publishes."""
    await service.train_now(GUILD, "first")
    killed: list[int] = []

    def kill_once(event: TrainingEvent) -> None:
        if event.kind == "progress" and not killed:
            killed.extend(kill_workers(service))

    recorder.hooks.append(kill_once)
    meta = await service.train_now(GUILD, "second")
    assert killed and meta["version"] == 2
    assert service.worker_pids() and not set(killed) & set(service.worker_pids())
    assert brief(await service.store.runs(GUILD)) == [
        ("succeeded", "second (retry)", 2, None),
        ("failed", "second", None, WORKER_DIED),
        ("succeeded", "first", 1, None),
    ]
    assert [e.attempt for e in recorder.events if e.kind == "started"] == [1, 1, 2]
    assert recorder.kinds() == ["started", "finished", "started", "started", "finished"]
    assert ModelRegistry(settings.models_dir).current(GUILD).version == 2


async def test_worker_killed_twice_gives_up_and_service_recovers(
    service: TrainingService, recorder: Recorder, settings: Settings
):
    """Killed again on the retry: gives up with a failed event, v1 keeps serving, then recovers."""
    await service.train_now(GUILD, "first")
    kills: list[int] = []

    def kill_each_attempt(event: TrainingEvent) -> None:
        if event.kind == "progress" and event.attempt > len(kills):
            kills.append(event.attempt)
            kill_workers(service)

    recorder.hooks.append(kill_each_attempt)
    with pytest.raises(TrainingFailed) as err:
        await service.train_now(GUILD, "doomed")
    assert kills == [1, 2] and WORKER_DIED in err.value.message
    failed = recorder.events[-1]
    assert (failed.kind, failed.error) == ("failed", err.value.message)
    assert failed.previous.version == 1
    assert ModelRegistry(settings.models_dir).current(GUILD).version == 1
    assert brief((await service.store.runs(GUILD))[:2]) == [
        ("failed", "doomed (retry)", None, WORKER_DIED),
        ("failed", "doomed", None, WORKER_DIED),
    ]
    assert service.status(GUILD).last_error == WORKER_DIED
    recorder.hooks.clear()
    assert (await service.train_now(GUILD, "after"))["version"] == 2
    assert service.status(GUILD).last_error is None


async def test_close_abandons_a_running_training(
    service: TrainingService, recorder: Recorder, settings: Settings
):
    """close() stops a running training quickly: run recorded failed, workers gone, no model."""
    task = asyncio.create_task(service.train_now(GUILD, "doomed"))
    await recorder.wait_for(lambda e: e.kind == "progress")
    pids = service.worker_pids()
    started = time.perf_counter()
    await service.close(wait_s=0.1)
    assert time.perf_counter() - started < 10
    with pytest.raises(TrainingFailed, match="shut down"):
        await task
    assert brief(await service.store.runs(GUILD)) == [("failed", "doomed", None, SHUTDOWN)]
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert ModelRegistry(settings.models_dir).current(GUILD) is None
    with pytest.raises(TrainingFailed, match="not running"):
        await service.train_now(GUILD, "after close")


async def test_resume_after_restart_closes_open_runs_and_retrains_stale_guilds(
    settings: Settings, mimi: Mimi, tmp_path: Path, recorder: Recorder
):
    """On start, a run a crash left open is marked interrupted; only changed guilds retrain."""
    await teach_alpha_and_beta(mimi, tmp_path / "a", guild=GUILD)
    await teach_alpha_and_beta(mimi, tmp_path / "b", guild=GUILD + 1)
    await teach_alpha_and_beta(mimi, tmp_path / "c", guild=GUILD + 2)
    first = TrainingService(settings, mimi.store, quiet_s=QUIET_S)
    await first.start()
    for guild in (GUILD, GUILD + 1):
        await first.train_now(guild, "before the crash")
    await first.close()
    crashed = await mimi.store.start_run(GUILD, "killed mid-training")  # as `kill -9` leaves it
    song = encode(tmp_path / "later.mp3", "mp3", seconds=12, voice=0, seed=9)
    await mimi.teach(GUILD, "Alpha", song)  # taught while the bot was down (CLI)
    await mimi.teach(GUILD + 2, "Solo", encode(tmp_path / "s.mp3", "mp3", seconds=12, voice=6))
    restarted = TrainingService(settings, mimi.store, quiet_s=QUIET_S)
    restarted.subscribe(recorder)
    await restarted.start()
    try:
        assert await restarted.resume() == [GUILD, GUILD + 2]  # GUILD + 1 is up to date
        await recorder.wait_for(lambda e: e.kind == "finished" and e.guild_id == GUILD)
        await restarted.wait_idle()
    finally:
        await restarted.close()
    runs = {r["id"]: r for r in await mimi.store.runs(GUILD)}
    assert runs[crashed]["status"] == "failed" and "interrupted" in runs[crashed]["error"]
    registry = ModelRegistry(settings.models_dir)
    assert registry.current(GUILD).version == 2
    assert len(registry.current(GUILD).snapshot["Alpha"]) == 3
    assert registry.current(GUILD + 1).version == 1
    assert registry.current(GUILD + 2).artists == ["Alpha", "Beta", "Solo"]
    assert [e.reason for e in recorder.events if e.kind == "started"] == [
        "resumed after a restart"
    ] * 2


async def test_worker_starts_on_demand_and_exits_when_idle(
    settings: Settings, mimi: Mimi, tmp_path: Path
) -> None:
    """No training worker (so no TensorFlow) until a training; the worker loads TensorFlow,
    exits after the idle period, and the next training starts a fresh one."""
    await teach_alpha_and_beta(mimi, tmp_path, guild=GUILD)
    svc = TrainingService(replace(settings, train_idle_s=1.0), mimi.store, quiet_s=QUIET_S)
    await svc.start()
    try:
        assert svc.worker_pids() == [] and svc.heal() == "idle"
        await svc.train_now(GUILD, "first")
        (pid,) = svc.worker_pids()
        assert "tensorflow" in Path(f"/proc/{pid}/maps").read_text()
        deadline = time.monotonic() + 60
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert not Path(f"/proc/{pid}").exists() and svc.worker_pids() == []
        assert svc.heal() == "idle"
        assert (await svc.train_now(GUILD, "second"))["version"] == 2
        assert svc.worker_pids() and pid not in svc.worker_pids()
    finally:
        await svc.close()
