"""Restore's checks of a staged database: sound, exactly this mimi's schema once migrated
(the real `Store` code), no trigger or view, no broken foreign key, only valid server ids and
song keys, and every song's audio staged."""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path

from bot.cache import AUDIO_FILE, SongCache
from bot.errors import MimiError
from bot.migrations import MIGRATIONS
from bot.store import Store

GUILD_LIMIT = 2**63  # Discord snowflakes, and SQLite's INTEGER


async def expected_schema() -> dict:
    """The schema this mimi creates: a fresh database made by Store.open, described."""
    with tempfile.TemporaryDirectory(prefix="mimi-schema-") as tmp:
        store = await Store.open(Path(tmp) / "fresh.sqlite3")
        try:
            return await store.describe_schema()
        finally:
            await store.close()


def schema_difference(expected: dict, actual: dict) -> str | None:
    """How `actual` differs from `expected` (describe_schema), in words; None if it does not."""
    want = {(t, n): tbl for t, n, tbl in expected["objects"]}
    have = {(t, n): tbl for t, n, tbl in actual["objects"]}
    tables_first = lambda key: (key[0] != "table", key)  # noqa: E731
    if extra := sorted(set(have) - set(want), key=tables_first):
        return f"it has an unexpected {extra[0][0]} {extra[0][1]!r}"
    if missing := sorted(set(want) - set(have), key=tables_first):
        return f"it lacks the {missing[0][0]} {missing[0][1]!r}"
    for key in sorted(want):
        if want[key] != have[key]:
            return f"the {key[0]} {key[1]!r} belongs to table {have[key]!r}"
    for table, spec in sorted(expected["tables"].items()):
        got = actual["tables"][table]
        cols = {c[1]: c for c in spec["columns"]}
        gcols = {c[1]: c for c in got["columns"]}
        for col in cols:
            if col not in gcols:
                return f"table {table!r} lacks the column {col!r}"
        for col in gcols:
            if col not in cols:
                return f"table {table!r} has an unexpected column {col!r}"
        if spec["columns"] != got["columns"]:
            return f"the columns of table {table!r} differ"
        if spec["indexes"] != got["indexes"]:
            return f"the indexes of table {table!r} differ"
        if spec["foreign_keys"] != got["foreign_keys"]:
            return f"the foreign keys of table {table!r} differ"
    return None


async def check_database(archive: Path, db: Path, cache_stage: Path) -> None:
    """The staged database is sound, has exactly this mimi's schema once migrated (the real
    Store code), holds no trigger or view, breaks no foreign key, stores only valid server ids
    and song keys, and every song's audio is staged."""
    where = f"The database in {archive}"
    try:
        info = await Store.peek(db)
    except (sqlite3.Error, OSError) as err:
        raise MimiError(f"{where} is not a mimi database ({err}).") from None
    if info["integrity"] != "ok":
        raise MimiError(f"{where} is damaged: {info['integrity']}.")
    version = info["schema_version"]
    if version > len(MIGRATIONS):
        raise MimiError(
            f"{archive} comes from a newer mimi (schema v{version}, this "
            f"mimi knows v{len(MIGRATIONS)}); upgrade mimi first."
        )
    if version < 0:
        raise MimiError(f"{where} has an invalid schema version (v{version}); refusing it.")
    for kind, name in info["objects"]:
        if kind in ("trigger", "view"):
            raise MimiError(
                f"{where} holds a {kind} ({name!r}), which a mimi database never has; refusing it.",
                code="hostile_database",
            )
    if version == 0 and info["objects"]:
        raise MimiError(
            f"{where} says schema v0 but already holds tables; refusing it.",
            code="hostile_database",
        )
    expected = await expected_schema()
    try:
        store = await Store.open(db)  # migrates an older backup, exactly as mimi would
    except (sqlite3.Error, RuntimeError) as err:
        raise MimiError(f"{where} does not match its schema v{version} ({err}).") from None
    try:
        problem = schema_difference(expected, await store.describe_schema())
        broken = await store.foreign_key_violations()
        guilds = await store.guild_id_values()
        keys = await store.song_keys()
    finally:
        await store.close()
    if problem:
        raise MimiError(f"{where} is not a mimi database: {problem}.", code="hostile_database")
    for table, value in guilds:
        if type(value) is not int or not 0 <= value < GUILD_LIMIT:
            raise MimiError(
                f"{where} holds an invalid server id {value!r} in {table}; refusing it.",
                code="hostile_database",
            )
    if broken:
        table, rowid, parent, _ = broken[0]
        raise MimiError(
            f"{where} is inconsistent: {len(broken)} row(s) point at rows that do not exist "
            f"(first: {table} row {rowid} → {parent}); refusing it.",
            code="hostile_database",
        )
    cache = SongCache(cache_stage)
    for guild, key in keys:
        try:
            folder = cache.song_dir(guild, key)
        except ValueError:
            raise MimiError(
                f"{where} holds a song with an invalid key {key!r}; refusing it.",
                code="hostile_database",
            ) from None
        if not (folder / AUDIO_FILE).is_file():
            raise MimiError(f"{archive} is inconsistent: a song of server {guild} lacks audio.")
