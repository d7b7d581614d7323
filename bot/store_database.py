"""The Store's SQL for the whole database rather than one guild: its health, backups and
restores, every guild's songs at once, and the checks a restore runs on a foreign file."""

from __future__ import annotations

from pathlib import Path

import aiosqlite

from bot.store_base import StoreBase
from bot.store_songs import SONG_SELECT, Song


class DatabaseRows(StoreBase):
    """Mixed into `Store`: queries across every guild, and the database file as a whole."""

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
        return [Song(*r) for r in await self._all(SONG_SELECT + " ORDER BY s.guild_id, s.id")]

    async def song_keys(self) -> list[tuple[int, str]]:
        """(guild, audio sha256) of every stored song, for cache housekeeping."""
        return [(g, k) for g, k in await self._all("SELECT guild_id, audio_sha256 FROM songs")]

    async def guild_ids(self) -> list[int]:
        """Every guild that has taught at least one song."""
        return [g for (g,) in await self._all("SELECT DISTINCT guild_id FROM songs ORDER BY 1")]

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
            quoted = self._q(name)
            indexes = {}
            for _, index, unique, origin, partial in await self._all(
                f"PRAGMA index_list({quoted})"
            ):
                columns = await self._all(f"PRAGMA index_xinfo({self._q(index)})")
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
            columns = [c[1] for c in await self._all(f"PRAGMA table_info({self._q(table)})")]
            column = "guild_id" if "guild_id" in columns else "id" if table == "guilds" else None
            if column is not None:
                sql = f"SELECT DISTINCT {self._q(column)} FROM {self._q(table)}"
                out += [(table, value) for (value,) in await self._all(sql)]
        return out
