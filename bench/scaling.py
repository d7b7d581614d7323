"""Where one box runs out: guess latency on local workers vs a Dask cluster (same run, same
clip), SQLite write rates, and cache disk per minute of audio (figures for docs/SCALING.md).

    python bench/scaling.py [--runs 7] [--songs 4]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.config import Settings  # noqa: E402
from bot.executors import DaskBackend, LocalBackend  # noqa: E402
from bot.inference import audio_pool  # noqa: E402
from bot.service import Mimi  # noqa: E402
from bot.store import NewSong  # noqa: E402
from bot.train_job import train_job  # noqa: E402
from tests.audio_factory import encode  # noqa: E402


async def guess_times(settings: Settings, backend, clip: Path, runs: int) -> list[float]:
    """Seconds per /guess of `clip` through an audio pool on `backend` (after one warm-up)."""
    pool = audio_pool(settings, backend)
    async with await Mimi.open(settings, run=pool.run) as mimi:
        await mimi.guess(1, clip, run=pool.run)  # warm: front-end and model loaded
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            await mimi.guess(1, clip, run=pool.run)
            times.append(time.perf_counter() - started)
    await pool.close()
    return times


async def store_rates(settings: Settings, n: int = 500) -> dict[str, float]:
    """Song records and guess records written per second by one process (WAL, fsync on)."""
    async with await Mimi.open(settings) as mimi:
        started = time.perf_counter()
        for i in range(n):
            new = NewSong(f"{i:064x}", f"{i:064x}", f"s{i}.mp3", "mp3", 240.0,
                          tuple((t * 10.0, t * 10.0 + 10) for t in range(24)))  # fmt: skip
            await mimi.store.add_song(9, f"A{i % 20}", new)
        songs = n / (time.perf_counter() - started)
        started = time.perf_counter()
        for _ in range(n):
            await mimi.record_guess(9, 1, url="https://cdn/x", filename="x.ogg", size=1,
                                    guessed="A1", model_version=1)  # fmt: skip
        guesses = n / (time.perf_counter() - started)
    return {"songs_per_s": songs, "guesses_per_s": guesses}


def cache_mib_per_minute(settings: Settings) -> float:
    """Cache disk per minute of taught audio (audio.flac + log-mel + embeddings)."""
    files = [p for p in settings.cache_dir.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files) / 2**20


async def main(args: argparse.Namespace) -> None:
    """Teach and train one server, then measure."""
    from distributed import LocalCluster

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        settings = Settings.load(environ={}, env_file=None, data_dir=root / "data")
        minutes = 0.0
        async with await Mimi.open(settings) as mimi:
            for artist, voice in (("Drone", 0), ("Chime", 4)):
                for i in range(args.songs):
                    path = encode(root / f"{artist}{i}.mp3", "mp3", seconds=60, voice=voice, seed=i)
                    minutes += (await mimi.teach(1, artist, path)).duration_s / 60
            train_job(await mimi.training_job(1))
        disk = cache_mib_per_minute(settings) / minutes
        clip = encode(root / "clip.ogg", "ogg", seconds=30, voice=4, seed=99)
        local = await guess_times(settings, LocalBackend(), clip, args.runs)
        cluster = await asyncio.to_thread(
            LocalCluster, n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
            dashboard_address=None, silence_logs=40,
        )  # fmt: skip
        backend = await asyncio.to_thread(DaskBackend, cluster.scheduler_address)
        try:
            dask = await guess_times(settings, backend, clip, args.runs)
        finally:
            await asyncio.to_thread(backend.close)
            await asyncio.to_thread(cluster.close)
        rates = await store_rates(dataclasses.replace(settings, data_dir=root / "rates"))
    lm, dm = statistics.median(local), statistics.median(dask)
    print(f"guess of a 30 s clip, median of {args.runs}: local worker {lm:.3f} s, "
          f"Dask worker {dm:.3f} s ({dm / lm:.2f}x), i.e. {60 / lm:.0f} vs {60 / dm:.0f} per "
          "minute per worker")  # fmt: skip
    print(f"SQLite, one process: {rates['songs_per_s']:.0f} songs/s recorded, "
          f"{rates['guesses_per_s']:.0f} guesses/s recorded")  # fmt: skip
    print(f"cache disk: {disk:.2f} MiB per minute of taught audio")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--songs", type=int, default=4, help="songs per artist (60 s each)")
    asyncio.run(main(parser.parse_args()))
