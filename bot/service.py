"""The service layer shared by the CLI and the bot: teach, import, list and forget."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bot.cache import sweep_tmp
from bot.config import Settings
from bot.errors import DuplicateSong, MimiError, StorageError, data_writes, read_error
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
from bot.i18n import Msg
from bot.ingest import IngestConfig, check_upload, file_sha256, ingest_file, song_cache
from bot.jobs import TrainJob
from bot.names import clean_filename, display_name, name_key
from bot.owner import owner_alive, process_token
from bot.store import ArtistSummary, NewSong, Song, Store, duplicate_error
from model_store.predict import summarise
from model_store.registry import ModelMeta, ModelRegistry, NoModel

log = logging.getLogger(__name__)
Runner = Callable[..., Awaitable[Any]]
INTERRUPTED = "interrupted: mimi stopped during training"
FIRST_STEPS = Msg("model.first_steps")
TEACH_ATTEMPTS = 3  # a teach re-reads its upload when a forget removed its files meanwhile
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


@dataclass
class ImportReport:
    """What `import_folder` did: songs taught, duplicates seen, files skipped with reasons."""

    taught: list[Song] = field(default_factory=list)
    duplicates: list[dict] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)


async def _in_thread(fn: Callable[..., Any], *args: Any, guild: int | None = None) -> Any:
    """The default runner: a thread of this process (the bot passes a worker pool's run)."""
    return await asyncio.to_thread(fn, *args)


class Mimi:
    """Owns the store and the song cache; compute goes through `run` (a worker pool in the bot)."""

    def __init__(self, settings: Settings, store: Store, run: Runner | None = None) -> None:
        self.settings = settings
        self.store = store
        self.run = run or _in_thread
        self.owner = process_token()
        self.ingest_config = replace(IngestConfig.from_settings(settings), owner=self.owner)
        self.cache = song_cache(self.ingest_config)
        self.registry = ModelRegistry(settings.models_dir, keep=settings.models_keep)
        self._locks: dict[int, asyncio.Lock] = {}  # per guild: teach's insert vs forget

    @classmethod
    async def open(cls, settings: Settings, run: Runner | None = None) -> Mimi:
        """Open the store under the data dir and tidy cache files no song owns."""
        from bot.backup_files import sweep_leftovers  # what killed restores left behind

        with data_writes(settings.data_dir):  # a read-only or full disk: say so plainly
            store = await Store.open(settings.db_path)
        service = cls(settings, store, run)
        if leftovers := await asyncio.to_thread(sweep_leftovers, settings):
            log.info("tidied what interrupted restores left: %s", ", ".join(leftovers))
        removed = service.cache.sweep(await store.song_keys(), owner_alive)
        downloads = sweep_tmp(settings.data_dir / "tmp", owner_alive)
        if removed or downloads:
            log.info("swept %d orphaned song folders and %d downloads", removed, downloads)
        if closed := await store.close_interrupted_runs(INTERRUPTED, owner_alive):
            log.info("trainings interrupted in servers %s are recorded as failed", closed)
        return service

    def lock(self, guild_id: int) -> asyncio.Lock:
        """The lock that serialises recording and forgetting songs of one guild."""
        return self._locks.setdefault(guild_id, asyncio.Lock())

    async def close(self) -> None:
        """Release the store."""
        await self.store.close()

    async def __aenter__(self) -> Mimi:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def teach(
        self,
        guild_id: int,
        artist: str,
        path: Path,
        *,
        taught_by: int | None = None,
        filename: str | None = None,
    ) -> Song:
        """Decode and store one song for an artist; DuplicateSong if this guild already has it."""
        check_upload(path, self.ingest_config)  # set up, and a regular file: before any open
        display_name(artist)  # reject a bad name before any decoding work
        existing = await self.store.find_duplicate(
            guild_id, await asyncio.to_thread(file_sha256, path)
        )
        if existing:
            raise duplicate_error(existing)
        for _attempt in range(TEACH_ATTEMPTS):
            try:
                with data_writes(self.settings.data_dir):  # disk full or read-only: StorageError
                    ingested = await self.run(
                        ingest_file, path, guild_id, self.ingest_config, guild=guild_id
                    )
            except FileNotFoundError as err:  # a forget removed the folder while it was written
                if not path.exists():
                    raise
                log.info("guild %s: teach retried (%s)", guild_id, err)
                continue
            new = NewSong(
                audio_sha256=ingested.audio_sha256,
                file_sha256=ingested.file_sha256,
                filename=clean_filename(filename or path.name),
                format=ingested.format,
                duration_s=round(ingested.seconds, 3),
                clips=ingested.clips,
                taught_by=taught_by,
            )
            async with self.lock(guild_id):
                if self.cache.complete(guild_id, new.audio_sha256):
                    return await self._record(guild_id, artist, new)
            log.info("guild %s: song files vanished before recording; reading again", guild_id)
        raise MimiError(Msg("error.forgotten_while_reading"), code="busy")

    async def _record(self, guild_id: int, artist: str, new: NewSong) -> Song:
        """Insert a song whose files are complete (under the guild lock); release its claim."""
        key = new.audio_sha256
        try:
            with data_writes(self.settings.data_dir):
                return await self.store.add_song(guild_id, artist, new)
        except DuplicateSong:
            raise  # the files belong to the song already stored
        except BaseException:
            if not await self.store.key_in_use(guild_id, key):
                self.cache.drop(guild_id, key)
            raise
        finally:
            self.cache.release(guild_id, key)

    async def import_folder(
        self, guild_id: int, folder: Path, progress: Callable[[Path], None] | None = None
    ) -> ImportReport:
        """Teach every file of `<folder>/<artist>/...`; skip and report what cannot be used."""
        if not folder.is_dir():
            raise MimiError(f"{folder} is not a folder.", code="usage")
        report = ImportReport()
        for artist, path in import_plan(folder):
            try:
                report.taught.append(await self.teach(guild_id, artist, path))
            except DuplicateSong as dup:
                report.duplicates.append(
                    {"file": str(path), **dup.as_dict(), "song_id": dup.song_id}
                )
            except StorageError:
                raise  # every later file would fail the same way
            except MimiError as err:
                report.skipped.append({"file": str(path), **err.as_dict()})
            except OSError as err:
                report.skipped.append({"file": str(path), **read_error(err)})
            if progress:
                progress(path)
        return report

    async def check_quota(self, guild_id: int, artist: str) -> None:
        """Refuse a teach that would pass the server's song, artist or minute limits."""
        s = self.settings
        rows = await self.store.artists(guild_id)
        if sum(a.songs for a in rows) >= s.max_guild_songs:
            raise MimiError(Msg("quota.songs", n=s.max_guild_songs), code="quota")
        if sum(a.minutes for a in rows) >= s.max_guild_minutes:
            raise MimiError(Msg("quota.minutes", n=round(s.max_guild_minutes)), code="quota")
        key = name_key(artist)
        if len(rows) >= s.max_guild_artists and all(name_key(a.name) != key for a in rows):
            raise MimiError(Msg("quota.artists", n=s.max_guild_artists), code="quota")

    async def artists(self, guild_id: int) -> list[ArtistSummary]:
        """Artists of this guild with their song, clip and minute totals."""
        return await self.store.artists(guild_id)

    async def forget_artist(self, guild_id: int, artist: str) -> list[Song]:
        """Remove an artist, their songs, clips and cached files (the served model stops naming
        them at once: see `live_model`)."""
        async with self.lock(guild_id):
            removed = await self.store.forget_artist(guild_id, artist)
            for song in removed:
                self.cache.drop(guild_id, song.audio_sha256)
        return removed

    async def rename_artist(
        self, guild_id: int, artist: str, to: str, *, merge: bool = False
    ) -> tuple[str, str, int]:
        """Rename an artist (the model keeps answering, under the new name, without a retrain);
        onto another artist's name only with `merge`: (old name, new name, songs moved)."""
        new = display_name(to)
        async with self.lock(guild_id):
            if not merge and name_key(new) != name_key(artist):
                for a in await self.store.artists(guild_id):
                    if name_key(a.name) == name_key(new):
                        raise MimiError(
                            Msg("rename.needs_merge", artist=display_name(artist), to=a.name),
                            code="merge_needed",
                        )
            return await self.store.rename_artist(guild_id, artist, new)

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
    ) -> dict:
        """Guess the artist of the clip at `path` (in `run`: the bot's warm worker, else a
        thread), naming only artists that still exist here; the result with `mel` (for the
        picture) and `artists` (the live artists of the model that answered)."""
        from bot.inference import guess_config
        from bot.jobs import guess_file

        await self.require_model(guild_id)
        config = guess_config(self.settings, top_k=top_k)
        raw = await (run or _in_thread)(guess_file, path, guild_id, config, guild=guild_id)
        return await self.finish_guess(guild_id, raw, top_k, config.unsure_below)

    async def finish_guess(self, guild_id: int, raw: dict, top_k: int, unsure: float) -> dict:
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
        raw["colour_order"] = await self.store.artist_order(guild_id)  # the server's colours
        raw["artists"] = [a for a in names if a in allowed]
        return raw

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
        meta = self.registry.rollback(guild_id, version)
        return redact(meta, await self.live(guild_id))

    async def forget_song(self, guild_id: int, song_id: int) -> Song:
        """Remove one song, its clips and cached files."""
        async with self.lock(guild_id):
            song = await self.store.forget_song(guild_id, song_id)
            self.cache.drop(guild_id, song.audio_sha256)
        return song


def import_plan(folder: Path) -> list[tuple[str, Path]]:
    """(artist, file) pairs: each sub-folder is an artist; hidden entries are ignored.

    Every non-folder entry is listed, FIFOs, devices and dangling symlinks included: teaching
    refuses them with a reason, so an import reports them as skipped instead of hiding them.
    """
    plan = []
    for artist_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        if artist_dir.name.startswith("."):
            continue
        for path in sorted(artist_dir.rglob("*")):
            hidden = any(part.startswith(".") for part in path.relative_to(artist_dir).parts)
            if not hidden and not path.is_dir():
                plan.append((artist_dir.name, path))
    return plan
