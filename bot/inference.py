"""Guessing in a warm worker process that keeps TensorFlow, the front-end and models loaded."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from bot.config import Settings
from bot.ingest import IngestConfig
from bot.jobs import GuessConfig, guess_file
from bot.pool import WarmPool


def guess_config(settings: Settings, top_k: int = 3) -> GuessConfig:
    """The guess configuration implied by the settings."""
    return GuessConfig(
        models_dir=settings.models_dir,
        ingest=IngestConfig.from_settings(settings),
        top_k=top_k,
        unsure_below=settings.unsure_below,
        max_windows=settings.guess_windows,
    )


class InferenceService:
    """One warm worker caching recent guild models; a crashed worker is replaced."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.config = guess_config(settings)
        self.pool = WarmPool("guessing", settings.frontend_weights)

    async def start(self) -> None:
        """Start the worker and let it warm up in the background."""
        self.pool.start()

    async def guess(self, guild_id: int, path: Path, top_k: int = 3) -> dict:
        """Guess the artist of the clip at `path` with the guild's current model."""
        return await self.pool.run(guess_file, path, guild_id, replace(self.config, top_k=top_k))

    async def close(self) -> None:
        """Stop the worker."""
        await self.pool.close()
