"""A data dir with three synthetic artists taught and a model trained, built once per session."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from bot.config import Settings
from bot.service import Mimi
from bot.train_job import train_job
from tests.audio_factory import encode
from tests.bot.helpers import teach_voices

VOICES = {"Drone": 0, "Chime": 4, "Pulse": 8}
GUILD = 5


async def teach_three(mimi: Mimi, folder: Path, songs: int = 2) -> dict[str, list[int]]:
    """Teach `songs` real MP3s of each of three synthetic artists; their song ids."""
    return await teach_voices(mimi, folder, VOICES, guild=GUILD, songs=songs, seconds=21)


def clip_of(tmp_path: Path, artist: str) -> Path:
    """A held-out clip of one taught artist."""
    return encode(tmp_path / f"new_{artist}.ogg", "ogg", seconds=14, voice=VOICES[artist], seed=77)


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
