"""The warm inference worker: answers guesses, follows new versions, survives its own death."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from bot.errors import MimiError
from bot.inference import InferenceService
from bot.service import Mimi
from bot.train_job import train_job
from tests.audio_factory import encode
from tests.bot.helpers import teach_drone_and_chime


async def test_worker_guesses_follows_publish_and_recovers(mimi: Mimi, tmp_path: Path) -> None:
    """Guesses run in the worker; a new version is picked up; a killed worker is replaced."""
    await teach_drone_and_chime(mimi, tmp_path, songs=2)
    train_job(await mimi.training_job(1))
    service = InferenceService(mimi.settings)
    await service.start()
    try:
        clip = encode(tmp_path / "q.mp3", "mp3", seconds=12, voice=4, seed=3)
        first = await service.guess(1, clip)
        assert first["top"][0]["artist"] == "Chime" and first["model_version"] == 1
        train_job(await mimi.training_job(1))  # publish v2: the cached v1 must not be served
        assert (await service.guess(1, clip))["model_version"] == 2
        for pid in service.pool.pids():  # the worker dies (OOM killer, kill -9)
            os.kill(pid, signal.SIGKILL)
        with pytest.raises(MimiError, match="audio worker crashed"):
            await service.guess(1, clip)
        again = await service.guess(1, clip, top_k=1)
        assert again["top"][0]["artist"] == "Chime" and len(again["top"]) == 1
    finally:
        await service.close()
