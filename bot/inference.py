"""Guessing in the warm audio worker, which keeps the front-end and recent guild heads loaded."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from bot.audio import read_upload
from bot.config import Settings
from bot.executors import Backend
from bot.guess_job import GuessConfig, guess_clip, model_files
from bot.ingest import IngestConfig
from bot.pool import WarmPool
from model_store.registry import ModelRegistry

Runner = Callable[..., Awaitable[Any]]


def guess_config(settings: Settings, top_k: int = 3) -> GuessConfig:
    """The guess configuration implied by the settings."""
    return GuessConfig(
        models_dir=settings.models_dir,
        ingest=IngestConfig.from_settings(settings),
        top_k=top_k,
        unsure_below=settings.unsure_below,
        max_windows=settings.guess_windows,
    )


async def run_guess(
    run: Runner, registry: ModelRegistry, guild_id: int, path: Path, config: GuessConfig
) -> dict:
    """Read the clip and the guild's model here; guess in `run` (a worker pool, or a thread)."""
    clip = config.clip
    model = await asyncio.to_thread(model_files, registry, guild_id)  # NoModel before reading
    data = await asyncio.to_thread(read_upload, path, clip.limits)
    return await run(guess_clip, data, model, clip, guild=guild_id)


def audio_pool(settings: Settings, backend: Backend | None = None) -> WarmPool:
    """The worker pool that reads uploads and answers guesses (they share the front-end)."""
    return WarmPool(
        "audio",
        settings.frontend_weights,
        settings.audio_workers,
        settings.infer_threads,
        idle_s=settings.audio_idle_s,
        backend=backend,
    )


class InferenceService:
    """Guesses in the audio workers (its own pool unless given the bot's shared one)."""

    def __init__(self, settings: Settings, pool: WarmPool | None = None) -> None:
        self.settings = settings
        self.config = guess_config(settings)
        self._owns_pool = pool is None
        self.pool = pool or audio_pool(settings)
        self.registry = ModelRegistry(settings.models_dir)

    async def start(self) -> None:
        """Start the worker and let it warm up in the background."""
        self.pool.start()

    async def guess(self, guild_id: int, path: Path, top_k: int = 3) -> dict:
        """Guess the artist of the clip at `path` with the guild's current model."""
        config = replace(self.config, top_k=top_k)
        return await run_guess(self.pool.run, self.registry, guild_id, path, config)

    async def close(self) -> None:
        """Stop the worker if it is this service's own."""
        if self._owns_pool:
            await self.pool.close()
