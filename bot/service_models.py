"""The service's view of models: the served model after forgets, guesses masked to today's
artists, honest stats and the kept versions (mixed into `bot.service.Mimi`)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bot.config import Settings
from bot.errors import NoModel, model_errors
from bot.forgetting import (
    MIN_ARTISTS,
    Live,
    forgotten_songs,
    live_artists,
    live_metrics,
    live_names,
    mask,
    merge_columns,
    open_set_verdict,
    redact,
    renames,
)
from bot.guess_result import GuessResult
from bot.i18n import Msg
from bot.store import Store
from bot.train_job import TrainJob
from model_store.predict import summarise
from model_store.registry import ModelMeta, ModelRegistry

Runner = Callable[..., Awaitable[Any]]
FIRST_STEPS = Msg("model.first_steps")
STAT_KEYS = (
    "clip_accuracy",
    "song_accuracy",
    "macro_f1",
    "confusion",
    "val_songs",
    "train_songs",
    "measurable",
    "needs_more_songs",
)


async def in_thread(fn: Callable[..., Any], *args: Any, guild: int | None = None) -> Any:
    """The default runner: a thread of this process (the bot passes a worker pool's run)."""
    return await asyncio.to_thread(fn, *args)


class ModelViews:
    """Guessing, stats and model versions, as members and operators may see them."""

    settings: Settings
    store: Store
    registry: ModelRegistry

    async def training_job(self, guild_id: int, kind: str = "musicnn") -> TrainJob:
        """Everything a worker needs to train this guild's model, read from the store."""
        songs = await self.store.training_songs(guild_id)
        return TrainJob.for_guild(self.settings, guild_id, songs, kind)

    async def live(self, guild_id: int) -> Live:
        """The songs this guild holds right now."""
        return Live.of(await self.store.live_songs(guild_id))

    async def live_model(self, guild_id: int) -> tuple[ModelMeta | None, Live]:
        """The served model (None when there is none or it is withdrawn: fewer than 2 of its
        artists remain after forgets) and the songs it is viewed through."""
        meta = await asyncio.to_thread(self.registry.current, guild_id)
        live = await self.live(guild_id)
        if meta is not None and len(live_names(meta, live)) < MIN_ARTISTS:
            return None, live
        return meta, live

    async def require_model(self, guild_id: int) -> ModelMeta:
        """The served model, or NoModel saying what to teach (first steps, or after forgets)."""
        meta, _ = await self.live_model(guild_id)
        if meta is not None:
            return meta
        if await asyncio.to_thread(self.registry.current, guild_id) is None:
            raise NoModel(FIRST_STEPS)
        raise await self._withdrawn(guild_id)

    async def _withdrawn(self, guild_id: int) -> NoModel:
        """The answer while the model is withdrawn: how many artists remain, what to do."""
        artists = sum(1 for a in await self.store.artists(guild_id) if a.songs)
        return NoModel(Msg("model.withdrawn", n=artists))

    async def guess(
        self, guild_id: int, path: Path, *, top_k: int = 3, run: Runner | None = None
    ) -> GuessResult:
        """Guess the artist of the clip at `path` (in `run`: the bot's warm worker, else a
        thread), naming only artists that still exist here."""
        from bot.inference import guess_config, run_guess

        await self.require_model(guild_id)
        config = guess_config(self.settings, top_k=top_k)
        raw = await run_guess(run or in_thread, self.registry, guild_id, path, config)
        return await self.finish_guess(guild_id, raw, top_k, config.unsure_below)

    async def finish_guess(
        self, guild_id: int, raw: dict, top_k: int, unsure: float
    ) -> GuessResult:
        """Mask artists forgotten since the model was trained (read now, after the worker
        answered), renormalise and summarise."""
        meta = await asyncio.to_thread(self.registry.meta, guild_id, raw["model_version"])
        live = await self.live(guild_id)
        allowed = live_artists(meta, live) if meta is not None else []
        if meta is None or len(live_names(meta, live)) < MIN_ARTISTS:  # forgotten meanwhile
            raise await self._withdrawn(guild_id)
        now = renames(meta, live)  # renamed or merged since training: today's names
        trained = list(raw.pop("artists"))
        probs, names = merge_columns(mask(raw.pop("window_probs"), trained, allowed), trained, now)
        if raw.get("reference_artists") is not None:
            raw["reference_artists"] = [now.get(a, a) for a in raw["reference_artists"]]
        allowed = [now[a] for a in allowed]
        starts, frames = raw.pop("window_starts"), raw.pop("frames")
        temperature = float(meta.metrics.get("calibration", {}).get("temperature", 1.0))
        raw.update(
            summarise(
                probs, starts, frames, names, top_k=top_k, unsure_below=unsure,
                temperature=temperature,
            )
        )  # fmt: skip
        raw.update(open_set_verdict(raw, meta, live))
        raw["unsure"] = raw["unsure"] or raw["unknown"]
        order = tuple(await self.store.artist_order(guild_id))  # the server's colours
        mel = raw.pop("mel")
        return GuessResult(raw, mel, order, tuple(a for a in names if a in allowed))

    async def stats(self, guild_id: int) -> dict:
        """Artists, totals, the served model and its honest held-out accuracy (over songs and
        artists that still exist)."""
        artists = await self.store.artists(guild_id)
        meta, live = await self.live_model(guild_id)
        model = None
        if meta is not None:
            metrics = live_metrics(meta, live)
            model = {
                "version": meta.version,
                "kind": meta.kind,
                "trained_at": meta.created_at,
                "train_seconds": meta.train_seconds,
                "artists": metrics["artists"],
                **{k: metrics.get(k) for k in STAT_KEYS},
                "forgotten_songs": forgotten_songs(meta, live),
                "feedback": await self.store.feedback(guild_id, meta.version),
            }
        withdrawn = meta is None and self.registry.current(guild_id) is not None
        return {
            "guild": guild_id,
            "artists": [
                {"name": a.name, "songs": a.songs, "clips": a.clips, "minutes": a.minutes}
                for a in artists
            ],
            "songs": sum(a.songs for a in artists),
            "clips": sum(a.clips for a in artists),
            "model": model,
            "model_withdrawn": withdrawn,
            "runs": await self.store.runs(guild_id, limit=5),
        }

    async def models(self, guild_id: int) -> tuple[int | None, list[dict]]:
        """The current version and every kept version's metadata, as it may be shown."""
        live = await self.live(guild_id)
        current = self.registry.current(guild_id)
        shown = [redact(m, live) for m in self.registry.versions(guild_id)]
        return (current.version if current else None), shown

    async def rollback(self, guild_id: int, version: int | None) -> dict:
        """Serve an earlier kept version; its metadata as it may be shown."""
        with model_errors():
            meta = self.registry.rollback(guild_id, version)
        return redact(meta, await self.live(guild_id))
