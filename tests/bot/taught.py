"""A data dir with three synthetic artists taught and a model trained, built once per session."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from bot.config import Settings
from bot.jobs import train_job
from bot.service import Mimi
from tests.audio_factory import encode

VOICES = {"Drone": 0, "Chime": 4, "Pulse": 8}
GUILD = 5


async def teach_three(mimi: Mimi, folder: Path, songs: int = 2) -> dict[str, list[int]]:
    """Teach `songs` real MP3s of each of three synthetic artists; their song ids."""
    ids: dict[str, list[int]] = {}
    for artist, voice in VOICES.items():
        for i in range(songs):
            path = encode(folder / f"{artist}{i}.mp3", "mp3", seconds=21, voice=voice, seed=i)
            ids.setdefault(artist, []).append((await mimi.teach(GUILD, artist, path)).id)
    return ids


def build_taught(root: Path, weights: Path) -> tuple[Path, dict[str, list[int]]]:
    """Teach the three artists under `root`, train model v1; the data dir and song ids."""
    settings = Settings.load(
        environ={}, env_file=None, data_dir=root / "data", frontend_weights=weights
    )

    async def build() -> dict[str, list[int]]:
        async with await Mimi.open(settings) as mimi:
            ids = await teach_three(mimi, root)
            meta = train_job(await mimi.training_job(GUILD))
            assert meta["artists"] == ["Chime", "Drone", "Pulse"]
            return ids

    return settings.data_dir, asyncio.run(build())


def run_cli(settings: Settings, *args: str) -> subprocess.CompletedProcess:
    """Run the real `mimi` CLI (`--json`) against this settings' data dir."""
    env = {"MIMI_FRONTEND_WEIGHTS": str(settings.frontend_weights), "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, "-m", "bot", *args, "--data-dir", str(settings.data_dir), "--json"],
        capture_output=True, text=True, timeout=120, env=env,
        cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip
