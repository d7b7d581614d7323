"""The SQLite store (aiosqlite, WAL): every SQL statement of mimi lives in `Store` and the
mixins it is made of (bot/store_*.py), scoped by guild."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import aiosqlite

from bot.migrations import MIGRATIONS
from bot.store_database import DatabaseRows
from bot.store_people import PeopleRows, now_iso
from bot.store_runs import RunRows
from bot.store_songs import ArtistSummary, NewSong, Song, SongRows, duplicate_error

__all__ = [
    "ArtistSummary",
    "NewSong",
    "PeopleRows",
    "Song",
    "Store",
    "duplicate_error",
    "now_iso",
]


class Store(SongRows, RunRows, DatabaseRows, PeopleRows):
    """Owns the database connection; one lock serialises statements so transactions never mix."""

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
