"""The service layer shared by the CLI and the bot: teach, import, list and forget."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from bot.audio import read_upload
from bot.cache import sweep_tmp
from bot.config import Settings
from bot.errors import (
    DuplicateSong,
    MimiError,
    StorageError,
    data_writes,
    read_error,
)
from bot.i18n import Msg
from bot.ingest import IngestConfig, check_upload, read_song, song_cache, store_song
from bot.names import clean_filename, display_name, name_key
from bot.owner import owner_alive, process_token
from bot.service_models import ModelViews, Runner, in_thread
from bot.service_records import GuildChanged as GuildChanged
from bot.service_records import Records
from bot.store import ArtistSummary, NewSong, Song, Store, duplicate_error
from bot.store_people import GuessRecord as GuessRecord
from model_store.registry import ModelRegistry

log = logging.getLogger(__name__)
INTERRUPTED = "interrupted: mimi stopped during training"
TEACH_ATTEMPTS = 3  # a teach rewrites its files when a forget removed them meanwhile


@dataclass
class ImportReport:
    """What `import_folder` did: songs taught, duplicates seen, files skipped with reasons."""

    taught: list[Song] = field(default_factory=list)
    duplicates: list[dict] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)


class Mimi(ModelViews, Records):
    """Owns the store and the song cache; compute goes through `run` (a worker pool in the bot)."""

    def __init__(self, settings: Settings, store: Store, run: Runner | None = None) -> None:
        self.settings = settings
        self.store = store
        self.run = run or in_thread
        self.owner = process_token()
        self.ingest_config = replace(IngestConfig.from_settings(settings), owner=self.owner)
        self.cache = song_cache(self.ingest_config)
        self.registry = ModelRegistry(settings.models_dir, keep=settings.models_keep)
        self._locks: dict[int, asyncio.Lock] = {}  # per guild: teach's insert vs forget
        self._listeners = []  # GuildChanged subscribers (see Records.subscribe)

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
        channel_id: int | None = None,
        reason: str = "teach",
    ) -> Song:
        """Decode and store one song for an artist within the server's quotas (checked again
        as it is recorded, so a batch cannot overshoot); DuplicateSong if this guild already
        has it. Listeners hear GuildChanged(`reason`)."""
        check_upload(path, self.ingest_config)  # set up, and a regular file: before any open
        display_name(artist)  # reject a bad name before any decoding work
        await self.check_quota(guild_id, artist)
        data = await asyncio.to_thread(read_upload, path, self.ingest_config.limits)
        digest = await asyncio.to_thread(lambda: hashlib.sha256(data).hexdigest())
        if existing := await self.store.find_duplicate(guild_id, digest):
            raise duplicate_error(existing)
        song = await self.run(read_song, data, self.ingest_config.reading, guild=guild_id)
        for _attempt in range(TEACH_ATTEMPTS):
            try:
                with data_writes(self.settings.data_dir):  # disk full or read-only: StorageError
                    ingested = await asyncio.to_thread(
                        store_song, self.cache, guild_id, song, digest
                    )
            except FileNotFoundError as err:  # a forget removed the folder while it was written
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
                    song = await self._record(guild_id, artist, new)
                    self.changed(guild_id, reason, channel_id)
                    return song
            log.info("guild %s: song files vanished before recording; writing again", guild_id)
        raise MimiError(Msg("error.forgotten_while_reading"), code="busy")

    async def _record(self, guild_id: int, artist: str, new: NewSong) -> Song:
        """Insert a song whose files are complete (under the guild lock), within the quotas;
        release its claim."""
        key = new.audio_sha256
        try:
            await self.check_quota(guild_id, artist)  # (what the lock's earlier holders added)
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

    async def forget_artist(
        self,
        guild_id: int,
        artist: str,
        *,
        by: int | None = None,
        is_manager: bool = True,
        channel_id: int | None = None,
    ) -> list[Song]:
        """Remove an artist, their songs, clips and cached files (the served model stops naming
        them at once: see `live_model`); with `by`, only as `artist_to_forget` allows."""
        if by is not None:
            await self.artist_to_forget(guild_id, artist, by, is_manager)
        async with self.lock(guild_id):
            removed = await self.store.forget_artist(guild_id, artist)
            for song in removed:
                self.cache.drop(guild_id, song.audio_sha256)
        self.changed(guild_id, "forget", channel_id)
        return removed

    async def rename_artist(
        self,
        guild_id: int,
        artist: str,
        to: str,
        *,
        merge: bool = False,
        channel_id: int | None = None,
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
            renamed = await self.store.rename_artist(guild_id, artist, new)
        if merge:
            self.changed(guild_id, "merge", channel_id)
        return renamed

    async def forget_song(
        self,
        guild_id: int,
        song_id: int,
        *,
        by: int | None = None,
        is_manager: bool = True,
        channel_id: int | None = None,
    ) -> Song:
        """Remove one song, its clips and cached files; with `by`, only as `song_to_forget`
        allows (managers any song, members their own)."""
        if by is not None:
            await self.song_to_forget(guild_id, song_id, by, is_manager)
        async with self.lock(guild_id):
            song = await self.store.forget_song(guild_id, song_id)
            self.cache.drop(guild_id, song.audio_sha256)
        self.changed(guild_id, "forget", channel_id)
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
