"""Guessing in the warm audio worker, which keeps the front-end and recent guild heads loaded."""

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


def audio_pool(settings: Settings) -> WarmPool:
    """The worker pool that reads uploads and answers guesses (they share the front-end)."""
    return WarmPool(
        "audio",
        settings.frontend_weights,
        settings.audio_workers,
        settings.infer_threads,
        idle_s=settings.audio_idle_s,
    )


class InferenceService:
    """Guesses in the audio workers (its own pool unless given the bot's shared one)."""

    def __init__(self, settings: Settings, pool: WarmPool | None = None) -> None:
        self.settings = settings
        self.config = guess_config(settings)
        self._owns_pool = pool is None
        self.pool = pool or audio_pool(settings)

    async def start(self) -> None:
        """Start the worker and let it warm up in the background."""
        self.pool.start()

    async def guess(self, guild_id: int, path: Path, top_k: int = 3) -> dict:
        """Guess the artist of the clip at `path` with the guild's current model."""
        config = replace(self.config, top_k=top_k)
        return await self.pool.run(guess_file, path, guild_id, config, guild=guild_id)

    async def close(self) -> None:
        """Stop the worker if it is this service's own."""
        if self._owns_pool:
            await self.pool.close()
