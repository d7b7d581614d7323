"""The SQLite store (aiosqlite, WAL): every SQL statement of mimi lives here, scoped by guild."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import aiosqlite

from bot.errors import DuplicateSong, NotFound
from bot.migrations import MIGRATIONS
from bot.names import display_name, name_key


def now_iso() -> str:
    """The current UTC time as ISO-8601 text."""
    return datetime.now(UTC).isoformat(timespec="seconds")


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


_SONG_SELECT = """
    SELECT s.id, s.guild_id, a.name, s.audio_sha256, s.filename, s.format, s.duration_s,
           (SELECT COUNT(*) FROM clips c WHERE c.song_id = s.id), s.taught_by, s.taught_at
    FROM songs s JOIN artists a ON a.id = s.artist_id AND a.guild_id = s.guild_id
"""


class Store:
    """Owns the database connection; one lock serialises statements so transactions never mix."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: Path) -> Store:
        """Open (creating if needed) and migrate the database at `path`."""
        path.parent.mkdir(parents=True, exist_ok=True)
        db = await aiosqlite.connect(path, isolation_level=None)
        try:
            for pragma in (
                "journal_mode = WAL",
                "foreign_keys = ON",
                "synchronous = FULL",
                "busy_timeout = 10000",
            ):
                await db.execute(f"PRAGMA {pragma}")
            store = cls(db)
            await store._migrate()
        except BaseException:
            await db.close()
            raise
        return store

    async def close(self) -> None:
        """Close the connection."""
        async with self._lock:
            await self._db.close()

    async def _migrate(self) -> None:
        """Apply every numbered migration above the database's PRAGMA user_version."""
        async with self._lock:
            (version,) = await (await self._db.execute("PRAGMA user_version")).fetchone()
            if version > len(MIGRATIONS):
                raise RuntimeError(
                    f"database schema v{version} is newer than this mimi (v{len(MIGRATIONS)})"
                )
            for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                await self._db.executescript(
                    f"BEGIN IMMEDIATE; {script}; PRAGMA user_version = {number}; COMMIT;"
                )

    @asynccontextmanager
    async def _tx(self) -> AsyncIterator[aiosqlite.Connection]:
        """A write transaction: all of it commits, or none of it does."""
        async with self._lock:
            await self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                if self._db.in_transaction:  # SQLite may have rolled back already (disk full)
                    await self._db.execute("ROLLBACK")
                raise
            await self._db.execute("COMMIT")

    async def _all(self, sql: str, *args: object) -> list[tuple]:
        """Run a read query and return every row."""
        async with self._lock:
            return list(await (await self._db.execute(sql, args)).fetchall())

    async def schema_version(self) -> int:
        """The applied migration number."""
        return (await self._all("PRAGMA user_version"))[0][0]

    async def integrity_check(self) -> str:
        """SQLite's own verdict on the file ('ok' when sound)."""
        return (await self._all("PRAGMA integrity_check"))[0][0]

    async def ping(self) -> None:
        """Round-trip one trivial query (raises if the connection or file is unusable)."""
        await self._all("SELECT COUNT(*) FROM sqlite_master")

    async def backup_to(self, target: Path) -> None:
        """Copy a consistent snapshot of the whole database to `target` (SQLite backup API)."""
        target.parent.mkdir(parents=True, exist_ok=True)
        async with aiosqlite.connect(target, isolation_level=None) as dest:
            async with self._lock:
                await self._db.backup(dest)
            await dest.execute("PRAGMA journal_mode = DELETE")

    async def restore_from(self, source: Path) -> None:
        """Replace this whole database with the one at `source` (SQLite backup API, one step).

        Safe while other connections (a running bot) use this file: SQLite takes the write
        lock, and they see the new content on their next statement.
        """
        async with aiosqlite.connect(source, isolation_level=None) as src, self._lock:
            await src.backup(self._db)

    async def counts(self) -> dict[str, int]:
        """How many guilds, artists, songs and clips the whole database holds."""
        (row,) = await self._all(
            "SELECT (SELECT COUNT(*) FROM guilds), (SELECT COUNT(*) FROM artists),"
            " (SELECT COUNT(*) FROM songs), (SELECT COUNT(*) FROM clips)"
        )
        return dict(zip(("guilds", "artists", "songs", "clips"), row, strict=True))

    async def all_songs(self) -> list[Song]:
        """Every song of every guild, by guild then id (for backups)."""
        return [Song(*r) for r in await self._all(_SONG_SELECT + " ORDER BY s.guild_id, s.id")]

    @staticmethod
    async def inspect(path: Path, *, integrity: bool = False, read_only: bool = False) -> dict:
        """Look at a database file, never creating or writing it: schema version, guild and song
        counts, song keys and (with `integrity`) PRAGMA integrity_check; sqlite3.Error when it is
        not mimi's. mode=rw unless `read_only`: a read-only connection leaves -wal/-shm files
        behind, but also works on a read-only disk (what `mimi health` needs)."""
        if not path.is_file():
            raise FileNotFoundError("the file does not exist")
        uri = f"{path.resolve().as_uri()}?mode={'ro' if read_only else 'rw'}"
        async with aiosqlite.connect(uri, uri=True, timeout=5) as db:
            info: dict = {"integrity": None}
            if integrity:
                check = await db.execute("PRAGMA integrity_check")
                (info["integrity"],) = await check.fetchone()
            (info["schema_version"],) = await (await db.execute("PRAGMA user_version")).fetchone()
            (info["guilds"],) = await (await db.execute("SELECT COUNT(*) FROM guilds")).fetchone()
            rows = await db.execute_fetchall("SELECT guild_id, audio_sha256 FROM songs")
        info["songs"], info["song_keys"] = len(rows), [(int(g), str(k)) for g, k in rows]
        return info

    # --- songs and artists -------------------------------------------------------------

    async def add_song(self, guild_id: int, artist: str, song: NewSong) -> Song:
        """Record a song, its artist (created if new) and clips in one transaction."""
        key, shown = name_key(artist), display_name(artist)
        async with self._tx() as db:
            dup = await db.execute_fetchall(
                f"{_SONG_SELECT} WHERE s.guild_id = ?"
                " AND (s.audio_sha256 = ? OR s.file_sha256 = ?)",
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
            _SONG_SELECT + " WHERE s.guild_id = ? AND s.file_sha256 = ?", guild_id, file_sha256
        )
        return Song(*rows[0]) if rows else None

    async def songs(self, guild_id: int, artist: str | None = None) -> list[Song]:
        """This guild's songs, optionally of one artist, oldest first."""
        if artist is None:
            rows = await self._all(_SONG_SELECT + " WHERE s.guild_id = ? ORDER BY s.id", guild_id)
        else:
            rows = await self._all(
                _SONG_SELECT + " WHERE s.guild_id = ? AND a.name_key = ? ORDER BY s.id",
                guild_id,
                name_key(artist),
            )
        return [Song(*r) for r in rows]

    async def song(self, guild_id: int, song_id: int) -> Song:
        """One song of this guild, or NotFound."""
        rows = await self._all(
            f"{_SONG_SELECT} WHERE s.guild_id = ? AND s.id = ?", guild_id, song_id
        )
        if not rows:
            raise NotFound(f"This server has no song #{song_id}.")
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
                _SONG_SELECT + " WHERE s.guild_id = ? AND a.name_key = ?", (guild_id, key)
            )
            cur = await db.execute(
                "DELETE FROM artists WHERE guild_id = ? AND name_key = ?", (guild_id, key)
            )
            if cur.rowcount == 0:
                raise NotFound(f"This server has no artist called {display_name(artist)!r}.")
        return [Song(*r) for r in rows]

    async def forget_song(self, guild_id: int, song_id: int) -> Song:
        """Delete one song and its clips (and its artist if no songs remain); return it."""
        async with self._tx() as db:
            rows = await db.execute_fetchall(
                _SONG_SELECT + " WHERE s.guild_id = ? AND s.id = ?", (guild_id, song_id)
            )
            if not rows:
                raise NotFound(f"This server has no song #{song_id}.")
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

    async def song_keys(self) -> list[tuple[int, str]]:
        """(guild, audio sha256) of every stored song, for cache housekeeping."""
        return [(g, k) for g, k in await self._all("SELECT guild_id, audio_sha256 FROM songs")]

    async def key_in_use(self, guild_id: int, audio_sha256: str) -> bool:
        """True if a stored song of this guild owns these cache files."""
        rows = await self._all(
            "SELECT 1 FROM songs WHERE guild_id = ? AND audio_sha256 = ?", guild_id, audio_sha256
        )
        return bool(rows)

    async def guild_ids(self) -> list[int]:
        """Every guild that has taught at least one song."""
        return [g for (g,) in await self._all("SELECT DISTINCT guild_id FROM songs ORDER BY 1")]

    # --- training runs and models -------------------------------------------------------

    async def close_interrupted_runs(self, error: str) -> list[int]:
        """Mark runs a crash left 'running' as failed with `error`; their guilds."""
        async with self._tx() as db:
            rows = await db.execute_fetchall(
                "SELECT DISTINCT guild_id FROM training_runs WHERE status = 'running'"
            )
            await db.execute(
                "UPDATE training_runs SET status = 'failed', error = ?, finished_at = ?"
                " WHERE status = 'running'",
                (error, now_iso()),
            )
        return [g for (g,) in rows]

    async def start_run(self, guild_id: int, reason: str) -> int:
        """Record a training run as running; return its id."""
        async with self._tx() as db:
            await db.execute(
                "INSERT OR IGNORE INTO guilds (id, created_at) VALUES (?, ?)", (guild_id, now_iso())
            )
            cur = await db.execute(
                "INSERT INTO training_runs (guild_id, status, reason, started_at)"
                " VALUES (?, 'running', ?, ?)",
                (guild_id, reason, now_iso()),
            )
            return cur.lastrowid

    async def finish_run(
        self,
        guild_id: int,
        run_id: int,
        *,
        error: str | None = None,
        model_version: int | None = None,
        metrics: dict | None = None,
    ) -> None:
        """Mark a run succeeded (with its model version and metrics) or failed (with the reason)."""
        async with self._tx() as db:
            await db.execute(
                "UPDATE training_runs SET status = ?, error = ?, model_version = ?, metrics = ?,"
                " finished_at = ? WHERE guild_id = ? AND id = ?",
                (
                    "failed" if error else "succeeded",
                    error,
                    model_version,
                    json.dumps(metrics) if metrics is not None else None,
                    now_iso(),
                    guild_id,
                    run_id,
                ),
            )

    async def runs(self, guild_id: int, limit: int = 20) -> list[dict]:
        """This guild's most recent training runs, newest first."""
        rows = await self._all(
            "SELECT id, status, reason, started_at, finished_at, model_version, error, metrics"
            " FROM training_runs WHERE guild_id = ? ORDER BY id DESC LIMIT ?",
            guild_id,
            limit,
        )
        keys = ("id", "status", "reason", "started_at", "finished_at", "model_version", "error")
        return [
            {**dict(zip(keys, r[:7], strict=True)), "metrics": json.loads(r[7]) if r[7] else None}
            for r in rows
        ]


def duplicate_error(existing: Song) -> DuplicateSong:
    """The error for teaching a song this guild already has."""
    return DuplicateSong(
        f"Already known: this is song #{existing.id} by {existing.artist} "
        f"({existing.filename}); it was not counted twice.",
        song_id=existing.id,
        artist=existing.artist,
    )
