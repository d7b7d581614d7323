"""Races and ids: teach against forget, ids never reused, concurrent migration, interrupted runs,
and what the start-up sweep removes (only what no row references and no live process writes)."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from bot import service as service_module
from bot.cache import AUDIO_FILE, CLAIM_PREFIX, tmp_prefix
from bot.config import Settings
from bot.ingest import ingest_file, store_song
from bot.migrations import MIGRATIONS
from bot.owner import owner_alive, process_token
from bot.service import INTERRUPTED, Mimi
from bot.store import Store
from bot.train_job import train_job
from bot.training import TrainingService
from tests.audio_factory import encode, retag
from tests.bot.helpers import teach_voices
from tests.conftest import song_dirs

ROOT = Path(__file__).resolve().parents[2]


async def test_teach_racing_a_forget_of_the_same_audio_keeps_its_files(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A retagged copy taught while the original is forgotten (the forget lands after the copy
    was written, before it is recorded) is written again: the stored song has its audio."""
    original = encode(tmp_path / "song.mp3", "mp3", voice=2)
    copy = retag(original, tmp_path / "copy.mp3", "Retagged")  # other bytes, same audio
    assert copy.read_bytes() != original.read_bytes()
    forgets: list[object] = []
    loop = asyncio.get_running_loop()

    def store_then_forget(cache, guild_id, song, file_sha256):
        stored = store_song(cache, guild_id, song, file_sha256)
        if not forgets:  # the forget wins the race, once: after the files, before the insert
            forgets.append(
                asyncio.run_coroutine_threadsafe(mimi.forget_song(7, first.id), loop).result()
            )
        return stored

    monkeypatch.setattr(service_module, "store_song", store_then_forget)
    mimi = await Mimi.open(settings)
    try:
        first = await mimi.store.add_song(7, "A", (await _ingested(mimi, original)))
        mimi.cache.release(7, first.audio_sha256)
        song = await mimi.teach(7, "A", copy)
        assert forgets and song.id != first.id
        folder = mimi.cache.song_dir(7, song.audio_sha256)
        assert (folder / AUDIO_FILE).is_file() and mimi.cache.complete(7, song.audio_sha256)
        assert not list(folder.glob(f"{CLAIM_PREFIX}*"))  # the claim ends with the insert
    finally:
        await mimi.close()


async def _ingested(mimi: Mimi, path: Path):
    """A NewSong for `path` whose cache files are written (as teach does before recording)."""
    from bot.store import NewSong

    got = await asyncio.to_thread(ingest_file, path, 7, mimi.ingest_config)
    return NewSong(got.audio_sha256, got.file_sha256, path.name, got.format, got.seconds,
                   got.clips)  # fmt: skip


async def test_song_ids_are_never_reused_and_resume_sees_the_change(
    mimi: Mimi, tmp_path: Path
) -> None:
    """Forget the newest song and teach another: it gets a new id, so a restarted bot sees the
    model's snapshot differ and schedules a retrain."""
    await teach_voices(mimi, tmp_path, {"A": 0, "B": 4}, guild=3, songs=2, seconds=21)
    train_job(await mimi.training_job(3))
    newest = max(s.id for s in await mimi.store.songs(3))
    await mimi.forget_song(3, newest)
    fresh = await mimi.teach(3, "B", encode(tmp_path / "B9.mp3", "mp3", voice=4, seed=9))
    assert fresh.id > newest
    service = TrainingService(mimi.settings, mimi.store, quiet_s=3600)
    await service.start()
    try:
        assert await service.resume() == [3]
    finally:
        await service.close()


async def test_migration_2_keeps_every_row_and_stops_id_reuse(tmp_path: Path) -> None:
    """A database of schema v1 (ids reusable) is migrated in place: songs, clips and artists
    survive with their ids, foreign keys still hold, and the next id is above the old maximum."""
    path = tmp_path / "old.sqlite3"
    con = sqlite3.connect(path)
    con.executescript(MIGRATIONS[0] + "; PRAGMA user_version = 1;")
    con.executescript(
        "INSERT INTO guilds VALUES (1, 't');"
        "INSERT INTO artists VALUES (4, 1, 'A', 'a', 't');"
        f"INSERT INTO songs VALUES (9, 1, 4, '{'a' * 64}', 'f', 'x.mp3', 'mp3', 20, NULL, 't');"
        "INSERT INTO clips VALUES (1, 1, 9, 0, 0, 10), (2, 1, 9, 1, 5, 15);"
    )
    con.close()
    store = await Store.open(path)
    try:
        assert await store.schema_version() == len(MIGRATIONS)
        assert [s.id for s in await store.songs(1)] == [9] and await store.clips(1, 9) == [
            (0.0, 10.0), (5.0, 15.0),
        ]  # fmt: skip
        await store.forget_song(1, 9)
        from bot.store import NewSong

        new = NewSong("b" * 64, "g", "y.mp3", "mp3", 20.0, [(0.0, 10.0)])
        assert (await store.add_song(1, "A", new)).id == 10
    finally:
        await store.close()


OPEN_SCRIPT = """
import asyncio, sys, time
from pathlib import Path
from bot.store import Store
start = float(sys.argv[2])
while time.time() < start:
    pass
async def main():
    store = await Store.open(Path(sys.argv[1]))
    await store.close()
asyncio.run(main())
"""


def test_two_processes_opening_a_fresh_data_dir_both_succeed(tmp_path: Path) -> None:
    """Two processes migrating a fresh database at the same instant: neither fails (the
    version is read inside the write transaction), eight times over."""
    for run in range(8):
        db = tmp_path / f"d{run}" / "mimi.sqlite3"
        start = str(time.time() + 1.0)
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", OPEN_SCRIPT, str(db), start],
                cwd=ROOT,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        for proc in procs:
            _, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err
        con = sqlite3.connect(db)
        assert con.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        con.close()


def dead_token() -> str:
    """The owner token of a process that has exited."""
    proc = subprocess.run(
        [sys.executable, "-c", "from bot.owner import process_token; print(process_token())"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    token = proc.stdout.strip()
    assert not owner_alive(token)
    return token


async def test_runs_of_dead_processes_are_closed_at_start(settings: Settings) -> None:
    """A run left 'running' by a killed `mimi train` reads failed ('interrupted') at the next
    start; a run whose process still runs is left alone."""
    store = await Store.open(settings.db_path)
    dead = await store.start_run(2, "cli", dead_token())
    alive = await store.start_run(2, "cli", process_token())
    legacy = await store.start_run(2, "cli")  # written before runs recorded their owner
    await store.close()
    async with await Mimi.open(settings) as mimi:
        runs = {r["id"]: r for r in await mimi.store.runs(2)}
    assert runs[dead]["status"] == "failed" and runs[dead]["error"] == INTERRUPTED
    assert runs[legacy]["status"] == "failed"
    assert runs[alive]["status"] == "running"


async def test_start_sweeps_what_no_row_or_live_process_owns(
    settings: Settings, tmp_path: Path
) -> None:
    """At start: an unowned orphan folder and one claimed by a dead process go at once (any
    age); one a live process is writing stays; so do downloads of a live process, while a dead
    process's downloads and stale claims on stored songs go."""
    async with await Mimi.open(settings) as mimi:
        kept = await mimi.teach(1, "A", encode(tmp_path / "a.mp3", "mp3", voice=1))
    cache = settings.cache_dir / "1"
    folders = {name: cache / (name * 64) for name in "bcd"}
    for folder in folders.values():
        folder.mkdir(parents=True)
        np.save(folder / "logmel.v1.npy", np.zeros(3))
    (folders["c"] / f"{CLAIM_PREFIX}{dead_token()}").touch()
    (folders["d"] / f"{CLAIM_PREFIX}{process_token()}").touch()  # this test process: alive
    stale = cache / kept.audio_sha256 / f"{CLAIM_PREFIX}{dead_token()}"
    stale.touch()
    tmp = settings.data_dir / "tmp"
    (tmp / f"{tmp_prefix(dead_token())}x").mkdir(parents=True)
    (tmp / f"{tmp_prefix(process_token())}y").mkdir()
    (tmp / "legacy-download").mkdir()
    async with await Mimi.open(settings):
        pass
    assert song_dirs(settings) == {f"1/{kept.audio_sha256}", f"1/{'d' * 64}"}
    assert not stale.exists()
    assert sorted(p.name for p in tmp.iterdir()) == [f"{tmp_prefix(process_token())}y"]
