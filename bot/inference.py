"""Guessing in a warm worker process that keeps TensorFlow, the front-end and models loaded."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace
from pathlib import Path

from bot.config import Settings
from bot.errors import MimiError
from bot.ingest import IngestConfig
from bot.jobs import GuessConfig, guess_file, warm_up

log = logging.getLogger(__name__)


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
    """One warm spawn-context worker; a crashed worker is replaced and the user told to retry."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.config = guess_config(settings)
        self._pool: ProcessPoolExecutor | None = None

    def _new_pool(self) -> ProcessPoolExecutor:
        """A fresh single-worker pool that loads the front-end at start."""
        return ProcessPoolExecutor(
            max_workers=1,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=warm_up,
            initargs=(self.settings.frontend_weights,),
        )

    async def start(self) -> None:
        """Start the worker and let it warm up in the background."""
        self._pool = self._new_pool()
        self._pool.submit(int, 0)  # makes the pool spawn its worker now

    async def guess(self, guild_id: int, path: Path, top_k: int = 3) -> dict:
        """Guess the artist of the clip at `path` with the guild's current model."""
        if self._pool is None:
            await self.start()
        config = replace(self.config, top_k=top_k)
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, guess_file, path, guild_id, config)
        except BrokenProcessPool:
            log.error("the inference worker died; starting a new one")
            old, self._pool = self._pool, self._new_pool()
            if old is not None:
                old.shutdown(wait=False, cancel_futures=True)
            raise MimiError(
                "The guessing worker crashed while reading that clip; please try again.",
                code="worker_crashed",
            ) from None

    async def close(self) -> None:
        """Stop the worker."""
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)
