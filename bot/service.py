"""The service layer shared by the CLI and the bot: teach, import, list and forget."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.config import Settings
from bot.errors import DuplicateSong, MimiError, StorageError, data_writes, read_error
from bot.ingest import IngestConfig, file_sha256, ingest_file, song_cache
from bot.jobs import TrainJob
from bot.names import display_name, name_key
from bot.store import ArtistSummary, NewSong, Song, Store, duplicate_error
from model_store.registry import ModelRegistry

log = logging.getLogger(__name__)
Runner = Callable[..., Awaitable[Any]]
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


async def _in_thread(fn: Callable[..., Any], *args: Any) -> Any:
    """The default runner: a thread of this process (the bot passes a worker pool's run)."""
    return await asyncio.to_thread(fn, *args)


class Mimi:
    """Owns the store and the song cache; compute goes through `run` (a worker pool in the bot)."""

    def __init__(self, settings: Settings, store: Store, run: Runner | None = None) -> None:
        self.settings = settings
        self.store = store
        self.run = run or _in_thread
        self.ingest_config = IngestConfig.from_settings(settings)
        self.cache = song_cache(self.ingest_config)
        self.registry = ModelRegistry(settings.models_dir, keep=settings.models_keep)

    @classmethod
    async def open(cls, settings: Settings, run: Runner | None = None) -> Mimi:
        """Open the store under the data dir and tidy cache files no song owns."""
        with data_writes(settings.data_dir):  # a read-only or full disk: say so plainly
            store = await Store.open(settings.db_path)
        service = cls(settings, store, run)
        removed = service.cache.sweep(await store.song_keys())
        if removed:
            log.info("removed %d orphaned song folders from the cache", removed)
        return service

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
        display_name(artist)  # reject a bad name before any decoding work
        existing = await self.store.find_duplicate(
            guild_id, await asyncio.to_thread(file_sha256, path)
        )
        if existing:
            raise duplicate_error(existing)
        with data_writes(self.settings.data_dir):  # disk full or read-only: a StorageError
            ingested = await self.run(ingest_file, path, guild_id, self.ingest_config)
        new = NewSong(
            audio_sha256=ingested.audio_sha256,
            file_sha256=ingested.file_sha256,
            filename=_clean_filename(filename or path.name),
            format=ingested.format,
            duration_s=round(ingested.seconds, 3),
            clips=ingested.clips,
            taught_by=taught_by,
        )
        try:
            with data_writes(self.settings.data_dir):
                return await self.store.add_song(guild_id, artist, new)
        except DuplicateSong:
            raise  # the files belong to the song already stored
        except BaseException:
            if not await self.store.key_in_use(guild_id, ingested.audio_sha256):
                self.cache.drop(guild_id, ingested.audio_sha256)
            raise

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
            raise MimiError(
                f"This server has reached its limit of {s.max_guild_songs} songs; "
                "forget some first.",
                code="quota",
            )
        if sum(a.minutes for a in rows) >= s.max_guild_minutes:
            raise MimiError(
                f"This server has reached its limit of {s.max_guild_minutes:.0f} minutes of "
                "music; forget some first.",
                code="quota",
            )
        key = name_key(artist)
        if len(rows) >= s.max_guild_artists and all(name_key(a.name) != key for a in rows):
            raise MimiError(
                f"This server has reached its limit of {s.max_guild_artists} artists.",
                code="quota",
            )

    async def artists(self, guild_id: int) -> list[ArtistSummary]:
        """Artists of this guild with their song, clip and minute totals."""
        return await self.store.artists(guild_id)

    async def forget_artist(self, guild_id: int, artist: str) -> list[Song]:
        """Remove an artist, their songs, clips and cached files."""
        removed = await self.store.forget_artist(guild_id, artist)
        for song in removed:
            self.cache.drop(guild_id, song.audio_sha256)
        return removed

    async def training_job(self, guild_id: int, kind: str = "musicnn") -> TrainJob:
        """Everything a worker needs to train this guild's model, read from the store."""
        songs = await self.store.training_songs(guild_id)
        return TrainJob.for_guild(self.settings, guild_id, songs, kind)

    async def stats(self, guild_id: int) -> dict:
        """Artists, totals, the current model and its honest held-out accuracy."""
        artists = await self.store.artists(guild_id)
        meta = self.registry.current(guild_id)
        model = None
        if meta is not None:
            model = {
                "version": meta.version,
                "kind": meta.kind,
                "trained_at": meta.created_at,
                "train_seconds": meta.train_seconds,
                "artists": meta.artists,
                **{k: meta.metrics.get(k) for k in STAT_KEYS},
            }
        return {
            "guild": guild_id,
            "artists": [
                {"name": a.name, "songs": a.songs, "clips": a.clips, "minutes": a.minutes}
                for a in artists
            ],
            "songs": sum(a.songs for a in artists),
            "clips": sum(a.clips for a in artists),
            "model": model,
            "runs": await self.store.runs(guild_id, limit=5),
        }

    async def forget_song(self, guild_id: int, song_id: int) -> Song:
        """Remove one song, its clips and cached files."""
        song = await self.store.forget_song(guild_id, song_id)
        self.cache.drop(guild_id, song.audio_sha256)
        return song


def import_plan(folder: Path) -> list[tuple[str, Path]]:
    """(artist, file) pairs: each sub-folder is an artist; hidden entries are ignored."""
    plan = []
    for artist_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        if artist_dir.name.startswith("."):
            continue
        for path in sorted(artist_dir.rglob("*")):
            hidden = any(part.startswith(".") for part in path.relative_to(artist_dir).parts)
            if path.is_file() and not hidden:
                plan.append((artist_dir.name, path))
    return plan


def _clean_filename(name: str) -> str:
    """The base name of an upload, printable and at most 200 characters."""
    base = Path(name.replace("\\", "/")).name
    return "".join(ch for ch in base if ch.isprintable())[:200] or "upload"
