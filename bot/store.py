"""The SQLite store (aiosqlite, WAL): every SQL statement of mimi lives here, scoped by guild."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiosqlite

from bot.errors import DuplicateSong, NotFound
from bot.i18n import Msg
from bot.migrations import MIGRATIONS
from bot.names import display_name, name_key
from bot.store_people import PeopleRows, now_iso


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


class Store(PeopleRows):
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
            await db.execute("PRAGMA busy_timeout = 10000")
            await _enable_wal(db)
            for pragma in ("foreign_keys = ON", "synchronous = FULL"):
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
        """Apply every numbered migration above PRAGMA user_version, read inside the same write
        transaction (two processes opening a fresh data dir at once never both migrate).
        Foreign keys are off while tables are rebuilt and checked before the commit."""
        async with self._lock:
            (version,) = await (await self._db.execute("PRAGMA user_version")).fetchone()
            if version == len(MIGRATIONS):
                return  # the common case: no write lock needed
            await self._db.execute("PRAGMA foreign_keys = OFF")  # (a no-op inside a transaction)
            try:
                await self._db.execute("BEGIN IMMEDIATE")
                try:
                    await self._apply_migrations()
                    await self._db.execute("COMMIT")
                except BaseException:
                    if self._db.in_transaction:
                        await self._db.execute("ROLLBACK")
                    raise
            finally:
                await self._db.execute("PRAGMA foreign_keys = ON")

    async def _apply_migrations(self) -> None:
        """Inside a write transaction: the migrations this database lacks, then their checks."""
        (version,) = await (await self._db.execute("PRAGMA user_version")).fetchone()
        if version > len(MIGRATIONS):
            raise RuntimeError(
                f"database schema v{version} is newer than this mimi (v{len(MIGRATIONS)})"
            )
        if version < 0:
            raise RuntimeError(f"database schema v{version} is not a mimi schema")
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            for statement in _statements(script):
                await self._db.execute(statement)
            await self._db.execute(f"PRAGMA user_version = {number}")
        broken = await (await self._db.execute("PRAGMA foreign_key_check")).fetchall()
        if broken:
            raise RuntimeError(f"the migrated database breaks {len(broken)} foreign keys")

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
                _SONG_SELECT + " WHERE s.guild_id = ? AND a.name_key = ?", (guild_id, key)
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
                _SONG_SELECT + " WHERE s.guild_id = ? AND s.id = ?", (guild_id, song_id)
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

    async def close_interrupted_runs(
        self, error: str, owner_alive: Callable[[str], bool]
    ) -> list[int]:
        """Mark 'running' runs whose owning process is gone as failed with `error`; their guilds."""
        async with self._tx() as db:
            rows = await db.execute_fetchall(
                "SELECT id, guild_id, owner FROM training_runs WHERE status = 'running'"
            )
            dead = [(i, g) for i, g, owner in rows if owner is None or not owner_alive(owner)]
            await db.executemany(
                "UPDATE training_runs SET status = 'failed', error = ?, finished_at = ?"
                " WHERE id = ?",
                [(error, now_iso(), i) for i, _ in dead],
            )
        return sorted({g for _, g in dead})

    async def start_run(self, guild_id: int, reason: str, owner: str | None = None) -> int:
        """Record a training run as running (owned by the process `owner`); return its id."""
        async with self._tx() as db:
            await db.execute(
                "INSERT OR IGNORE INTO guilds (id, created_at) VALUES (?, ?)", (guild_id, now_iso())
            )
            cur = await db.execute(
                "INSERT INTO training_runs (guild_id, status, reason, started_at, owner)"
                " VALUES (?, 'running', ?, ?, ?)",
                (guild_id, reason, now_iso(), owner),
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

    # --- restore checks (bot/restore_checks.py) ----------------------------------------

    @staticmethod
    def _q(name: str) -> str:
        """An SQL identifier, quoted (for the pragmas that take a table or index name)."""
        return '"' + name.replace('"', '""') + '"'

    @staticmethod
    async def peek(path: Path) -> dict:
        """PRAGMA integrity_check, user_version and every schema object (type, name) of a
        database file, read without migrating it (so none of its triggers can run)."""
        if not path.is_file():
            raise FileNotFoundError("the file does not exist")
        uri = f"{path.resolve().as_uri()}?mode=rw"
        async with aiosqlite.connect(uri, uri=True, timeout=5) as db:
            (integrity,) = await (await db.execute("PRAGMA integrity_check")).fetchone()
            (version,) = await (await db.execute("PRAGMA user_version")).fetchone()
            objects = await db.execute_fetchall(
                "SELECT type, name FROM sqlite_master ORDER BY type, name"
            )
        return {"integrity": integrity, "schema_version": version, "objects": list(objects)}

    async def describe_schema(self) -> dict:
        """Every schema object, and each table's columns, indexes (with their columns) and
        foreign keys, from SQLite's own pragmas: what a restore compares with a fresh database."""
        objects = await self._all(
            "SELECT type, name, tbl_name FROM sqlite_master"
            " WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY type, name"
        )
        tables: dict[str, dict] = {}
        for name in (o[1] for o in objects if o[0] == "table"):
            quoted = Store._q(name)
            indexes = {}
            for _, index, unique, origin, partial in await self._all(
                f"PRAGMA index_list({quoted})"
            ):
                columns = await self._all(f"PRAGMA index_xinfo({Store._q(index)})")
                indexes[index] = (unique, origin, partial, [tuple(c) for c in columns])
            tables[name] = {
                "columns": [tuple(c) for c in await self._all(f"PRAGMA table_xinfo({quoted})")],
                "indexes": indexes,
                "foreign_keys": [
                    tuple(r) for r in await self._all(f"PRAGMA foreign_key_list({quoted})")
                ],
            }
        return {"objects": [tuple(o) for o in objects], "tables": tables}

    async def foreign_key_violations(self) -> list[tuple]:
        """PRAGMA foreign_key_check: (table, rowid, parent table, constraint) of each bad row."""
        return [tuple(r) for r in await self._all("PRAGMA foreign_key_check")]

    async def guild_id_values(self) -> list[tuple[str, object]]:
        """(table, value) of every distinct guild id stored in any table, exactly as SQLite
        holds it: an int, or whatever else a hostile file put there."""
        out: list[tuple[str, object]] = []
        tables = await self._all(
            "SELECT name FROM sqlite_master WHERE type = 'table'"
            " AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'"
        )
        for (table,) in tables:
            columns = [c[1] for c in await self._all(f"PRAGMA table_info({Store._q(table)})")]
            column = "guild_id" if "guild_id" in columns else "id" if table == "guilds" else None
            if column is not None:
                sql = f"SELECT DISTINCT {Store._q(column)} FROM {Store._q(table)}"
                out += [(table, value) for (value,) in await self._all(sql)]
        return out


async def _enable_wal(db: aiosqlite.Connection, wait_s: float = 10.0) -> None:
    """PRAGMA journal_mode = WAL, waiting while another process creates or migrates the file
    (switching the journal mode fails at once when locked: SQLite's busy timeout never runs)."""
    deadline = asyncio.get_running_loop().time() + wait_s
    while True:
        try:
            await db.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as err:
            if "locked" not in str(err) or asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.05)


def _statements(script: str) -> list[str]:
    """The SQL statements of a migration script, one by one (executescript would commit)."""
    out, pending = [], ""
    for part in script.split(";"):
        pending += part + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n;"):
                out.append(pending.strip())
            pending = ""
    return out


def duplicate_error(existing: Song) -> DuplicateSong:
    """The error for teaching a song this guild already has."""
    return DuplicateSong(
        Msg("error.duplicate", id=str(existing.id), artist=existing.artist, file=existing.filename),
        song_id=existing.id,
        artist=existing.artist,
    )
