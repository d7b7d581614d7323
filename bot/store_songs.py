"""The Store's SQL for songs, their clips and artists, one guild at a time."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bot.errors import DuplicateSong, NotFound
from bot.i18n import Msg
from bot.names import display_name, name_key
from bot.store_base import StoreBase
from bot.store_people import now_iso


@dataclass(frozen=True)
class NewSong:
    """A song ready to be recorded: identity, provenance, length and usable clips."""

    audio_sha256: str
    file_sha256: str
    filename: str
    format: str
    duration_s: float
    clips: Sequence[tuple[float, float]]
    taught_by: int | None = None


@dataclass(frozen=True)
class Song:
    """A stored song."""

    id: int
    guild_id: int
    artist: str
    audio_sha256: str
    filename: str
    format: str
    duration_s: float
    clips: int
    taught_by: int | None
    taught_at: str


@dataclass(frozen=True)
class ArtistSummary:
    """An artist with how much of them this guild has taught."""

    name: str
    songs: int
    clips: int
    minutes: float


SONG_SELECT = """
    SELECT s.id, s.guild_id, a.name, s.audio_sha256, s.filename, s.format, s.duration_s,
           (SELECT COUNT(*) FROM clips c WHERE c.song_id = s.id), s.taught_by, s.taught_at
    FROM songs s JOIN artists a ON a.id = s.artist_id AND a.guild_id = s.guild_id
"""


class SongRows(StoreBase):
    """Mixed into `Store`: adding, reading, renaming and forgetting songs and artists."""

    async def add_song(self, guild_id: int, artist: str, song: NewSong) -> Song:
        """Record a song, its artist (created if new) and clips in one transaction."""
        key, shown = name_key(artist), display_name(artist)
        async with self._tx() as db:
            dup = await db.execute_fetchall(
                f"{SONG_SELECT} WHERE s.guild_id = ? AND (s.audio_sha256 = ? OR s.file_sha256 = ?)",
                (guild_id, song.audio_sha256, song.file_sha256),
            )
            if dup:
                raise duplicate_error(Song(*dup[0]))
            stamp = now_iso()
            await db.execute(
                "INSERT OR IGNORE INTO guilds (id, created_at) VALUES (?, ?)", (guild_id, stamp)
            )
            await db.execute(
                "INSERT OR IGNORE INTO artists (guild_id, name, name_key, created_at)"
                " VALUES (?, ?, ?, ?)",
                (guild_id, shown, key, stamp),
            )
            (artist_id, artist_name), *_ = await db.execute_fetchall(
                "SELECT id, name FROM artists WHERE guild_id = ? AND name_key = ?", (guild_id, key)
            )
            cur = await db.execute(
                "INSERT INTO songs (guild_id, artist_id, audio_sha256, file_sha256, filename,"
                " format, duration_s, taught_by, taught_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    guild_id,
                    artist_id,
                    song.audio_sha256,
                    song.file_sha256,
                    song.filename,
                    song.format,
                    song.duration_s,
                    song.taught_by,
                    stamp,
                ),
            )
            song_id = cur.lastrowid
            await db.executemany(
                "INSERT INTO clips (guild_id, song_id, idx, start_s, end_s) VALUES (?, ?, ?, ?, ?)",
                [(guild_id, song_id, i, s, e) for i, (s, e) in enumerate(song.clips)],
            )
        return Song(
            song_id,
            guild_id,
            artist_name,
            song.audio_sha256,
            song.filename,
            song.format,
            song.duration_s,
            len(song.clips),
            song.taught_by,
            stamp,
        )

    async def find_duplicate(self, guild_id: int, file_sha256: str) -> Song | None:
        """The song of this guild with these exact file bytes, if any."""
        rows = await self._all(
            SONG_SELECT + " WHERE s.guild_id = ? AND s.file_sha256 = ?", guild_id, file_sha256
        )
        return Song(*rows[0]) if rows else None

    async def songs(self, guild_id: int, artist: str | None = None) -> list[Song]:
        """This guild's songs, optionally of one artist, oldest first."""
        if artist is None:
            rows = await self._all(SONG_SELECT + " WHERE s.guild_id = ? ORDER BY s.id", guild_id)
        else:
            rows = await self._all(
                SONG_SELECT + " WHERE s.guild_id = ? AND a.name_key = ? ORDER BY s.id",
                guild_id,
                name_key(artist),
            )
        return [Song(*r) for r in rows]

    async def song(self, guild_id: int, song_id: int) -> Song:
        """One song of this guild, or NotFound."""
        rows = await self._all(
            f"{SONG_SELECT} WHERE s.guild_id = ? AND s.id = ?", guild_id, song_id
        )
        if not rows:
            raise NotFound(Msg("error.no_song", id=str(song_id)))
        return Song(*rows[0])

    async def clips(self, guild_id: int, song_id: int) -> list[tuple[float, float]]:
        """(start, end) seconds of a song's clips, in order."""
        rows = await self._all(
            "SELECT start_s, end_s FROM clips WHERE guild_id = ? AND song_id = ? ORDER BY idx",
            guild_id,
            song_id,
        )
        return [(s, e) for s, e in rows]

    async def artists(self, guild_id: int) -> list[ArtistSummary]:
        """Every artist of this guild with song, clip and minute totals, by name."""
        rows = await self._all(
            """SELECT a.name, COUNT(s.id),
                      COALESCE(SUM((SELECT COUNT(*) FROM clips c WHERE c.song_id = s.id)), 0),
                      COALESCE(SUM(s.duration_s), 0) / 60.0
               FROM artists a LEFT JOIN songs s ON s.artist_id = a.id AND s.guild_id = a.guild_id
               WHERE a.guild_id = ? GROUP BY a.id ORDER BY a.name_key""",
            guild_id,
        )
        return [ArtistSummary(n, songs, clips, round(m, 2)) for n, songs, clips, m in rows]

    async def forget_artist(self, guild_id: int, artist: str) -> list[Song]:
        """Delete an artist with all their songs and clips; return the songs removed."""
        key = name_key(artist)
        async with self._tx() as db:
            rows = await db.execute_fetchall(
                SONG_SELECT + " WHERE s.guild_id = ? AND a.name_key = ?", (guild_id, key)
            )
            cur = await db.execute(
                "DELETE FROM artists WHERE guild_id = ? AND name_key = ?", (guild_id, key)
            )
            if cur.rowcount == 0:
                raise NotFound(Msg("error.no_artist", artist=display_name(artist)))
        return [Song(*r) for r in rows]

    async def forget_song(self, guild_id: int, song_id: int) -> Song:
        """Delete one song and its clips (and its artist if no songs remain); return it."""
        async with self._tx() as db:
            rows = await db.execute_fetchall(
                SONG_SELECT + " WHERE s.guild_id = ? AND s.id = ?", (guild_id, song_id)
            )
            if not rows:
                raise NotFound(Msg("error.no_song", id=str(song_id)))
            await db.execute("DELETE FROM songs WHERE guild_id = ? AND id = ?", (guild_id, song_id))
            await db.execute(
                "DELETE FROM artists WHERE guild_id = ? AND NOT EXISTS"
                " (SELECT 1 FROM songs s WHERE s.artist_id = artists.id)",
                (guild_id,),
            )
        return Song(*rows[0])

    async def training_songs(self, guild_id: int) -> list[tuple[int, str, str, tuple]]:
        """(song id, artist, audio sha256, ((start, end), ...)) of every song, for training."""
        rows = await self._all(
            """SELECT s.id, a.name, s.audio_sha256, c.start_s, c.end_s
               FROM songs s JOIN artists a ON a.id = s.artist_id AND a.guild_id = s.guild_id
               JOIN clips c ON c.song_id = s.id AND c.guild_id = s.guild_id
               WHERE s.guild_id = ? ORDER BY s.id, c.idx""",
            guild_id,
        )
        songs: dict[int, tuple[str, str, list]] = {}
        for song_id, artist, key, start, end in rows:
            songs.setdefault(song_id, (artist, key, []))[2].append((start, end))
        return [(i, a, k, tuple(clips)) for i, (a, k, clips) in songs.items()]

    async def live_songs(self, guild_id: int) -> list[tuple[int, str, str]]:
        """(song id, audio sha256, artist name now) of every song this guild holds now."""
        return await self._all(
            "SELECT s.id, s.audio_sha256, a.name FROM songs s JOIN artists a"
            " ON a.guild_id = s.guild_id AND a.id = s.artist_id WHERE s.guild_id = ?",
            guild_id,
        )

    async def artist_order(self, guild_id: int) -> list[str]:
        """This guild's artist names in the order they were first taught (their colours)."""
        rows = await self._all("SELECT name FROM artists WHERE guild_id = ? ORDER BY id", guild_id)
        return [name for (name,) in rows]

    async def rename_artist(self, guild_id: int, artist: str, to: str) -> tuple[str, str, int]:
        """Rename an artist, or merge it into the artist already called `to`: (old name, new
        name, songs moved by a merge; 0 for a rename). Songs keep their ids and audio."""
        key, new_key, shown = name_key(artist), name_key(to), display_name(to)
        async with self._tx() as db:
            rows = await db.execute_fetchall(
                "SELECT id, name FROM artists WHERE guild_id = ? AND name_key IN (?, ?)",
                (guild_id, key, new_key),
            )
            found = {name_key(name): (i, name) for i, name in rows}
            if key not in found:
                raise NotFound(Msg("error.no_artist", artist=display_name(artist)))
            source, old = found[key]
            if new_key == key or new_key not in found:  # a new spelling of the same artist
                await db.execute(
                    "UPDATE artists SET name = ?, name_key = ? WHERE guild_id = ? AND id = ?",
                    (shown, new_key, guild_id, source),
                )
                return old, shown, 0
            target, target_name = found[new_key]
            cur = await db.execute(
                "UPDATE songs SET artist_id = ? WHERE guild_id = ? AND artist_id = ?",
                (target, guild_id, source),
            )
            await db.execute(
                "DELETE FROM artists WHERE guild_id = ? AND id = ?", (guild_id, source)
            )
            return old, target_name, cur.rowcount

    async def key_in_use(self, guild_id: int, audio_sha256: str) -> bool:
        """True if a stored song of this guild owns these cache files."""
        rows = await self._all(
            "SELECT 1 FROM songs WHERE guild_id = ? AND audio_sha256 = ?", guild_id, audio_sha256
        )
        return bool(rows)


def duplicate_error(existing: Song) -> DuplicateSong:
    """The error for teaching a song this guild already has."""
    return DuplicateSong(
        Msg("error.duplicate", id=str(existing.id), artist=existing.artist, file=existing.filename),
        song_id=existing.id,
        artist=existing.artist,
    )
