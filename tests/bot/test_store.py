"""The SQLite store: migrations, transactional songs, duplicates, guild isolation, forgetting."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from bot.errors import DuplicateSong, NotFound
from bot.migrations import MIGRATIONS
from bot.store import NewSong, Store


def song(key: str, clips: int = 3, file_key: str | None = None) -> NewSong:
    """A NewSong with `clips` 10-second clips."""
    return NewSong(
        audio_sha256=key,
        file_sha256=file_key or f"f{key}",
        filename=f"{key}.mp3",
        format="mp3",
        duration_s=clips * 10.0,
        clips=[(i * 10.0, i * 10.0 + 10) for i in range(clips)],
    )


@pytest.fixture
async def store(tmp_path: Path):
    """A real store on a real SQLite file."""
    s = await Store.open(tmp_path / "db.sqlite3")
    yield s
    await s.close()


async def test_migrations_set_user_version_and_wal(tmp_path: Path) -> None:
    """A new database is migrated to the latest user_version, in WAL mode, with foreign keys."""
    s = await Store.open(tmp_path / "db.sqlite3")
    assert await s.schema_version() == len(MIGRATIONS)
    await s.close()
    con = sqlite3.connect(tmp_path / "db.sqlite3")
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"guilds", "artists", "songs", "clips", "training_runs", "guesses", "purges"} <= tables
    assert "models" not in tables  # migration 4: nothing used it
    con.close()
    again = await Store.open(tmp_path / "db.sqlite3")  # re-opening applies nothing twice
    assert await again.schema_version() == len(MIGRATIONS)
    await again.close()


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    """A database from a newer mimi is not touched."""
    con = sqlite3.connect(tmp_path / "db.sqlite3")
    con.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    con.close()
    with pytest.raises(RuntimeError, match="newer"):
        await Store.open(tmp_path / "db.sqlite3")


async def test_artist_names_are_one_identity(store: Store) -> None:
    """Songs taught as "AAA", "ａａａ" and "aaa" land on one artist, shown as first taught."""
    for name, key in (("AAA", "k1"), ("ａａａ", "k2"), ("aaa", "k3")):
        await store.add_song(1, name, song(key))
    (artist,) = await store.artists(1)
    assert (artist.name, artist.songs, artist.clips) == ("AAA", 3, 9)
    assert artist.minutes == pytest.approx(1.5)


async def test_duplicate_is_reported_not_counted(store: Store) -> None:
    """The same audio (or the same file) taught twice is refused, even under another artist."""
    first = await store.add_song(1, "A", song("k1"))
    with pytest.raises(DuplicateSong) as err:
        await store.add_song(1, "B", song("k1", file_key="other"))
    assert err.value.song_id == first.id and err.value.artist == "A"
    with pytest.raises(DuplicateSong):
        await store.add_song(1, "A", song("k2", file_key="fk1"))
    assert [(a.name, a.songs) for a in await store.artists(1)] == [("A", 1)]


async def test_guilds_are_isolated(store: Store) -> None:
    """Guild 2 sees none of guild 1's songs, cannot forget them, and may hold the same audio."""
    a = await store.add_song(1, "Shared", song("k1"))
    b = await store.add_song(2, "Shared", song("k1"))  # not a duplicate across servers
    assert a.id != b.id
    assert [s.id for s in await store.songs(1)] == [a.id]
    assert [s.id for s in await store.songs(2)] == [b.id]
    with pytest.raises(NotFound):
        await store.forget_song(2, a.id)
    with pytest.raises(NotFound):
        await store.song(2, a.id)
    await store.forget_artist(2, "shared")
    assert await store.artists(2) == []
    assert [x.songs for x in await store.artists(1)] == [1]
    assert await store.clips(2, a.id) == []
    assert len(await store.clips(1, a.id)) == 3


async def test_forget_song_and_artist_remove_clips(store: Store) -> None:
    """Forgetting removes songs and clips; an artist with no songs left disappears."""
    s1 = await store.add_song(1, "A", song("k1"))
    s2 = await store.add_song(1, "A", song("k2"))
    await store.add_song(1, "B", song("k3"))
    assert (await store.forget_song(1, s1.id)).id == s1.id
    assert await store.clips(1, s1.id) == []
    removed = await store.forget_artist(1, "a")
    assert [s.id for s in removed] == [s2.id]
    assert [a.name for a in await store.artists(1)] == ["B"]
    with pytest.raises(NotFound):
        await store.forget_artist(1, "A")
    assert await store.integrity_check() == "ok"


async def test_failed_transaction_leaves_nothing(store: Store) -> None:
    """A song whose clips cannot be written leaves no song, artist or guild row behind."""
    bad = NewSong("k1", "f1", "x.mp3", "mp3", 20.0, clips=[(0.0, 10.0), (0.0, None)])  # type: ignore[list-item]
    with pytest.raises(sqlite3.IntegrityError):
        await store.add_song(1, "A", bad)
    assert await store.artists(1) == []
    assert await store.songs(1) == []
    await store.add_song(1, "A", song("k1"))  # and the store still works
    assert len(await store.songs(1)) == 1


async def test_training_runs_are_recorded(store: Store) -> None:
    """Runs go running -> succeeded/failed with their reason, per guild."""
    ok = await store.start_run(1, "teach")
    bad = await store.start_run(1, "manual")
    await store.finish_run(1, ok, model_version=3, metrics={"song_accuracy": 0.9})
    await store.finish_run(1, bad, error="worker died")
    runs = await store.runs(1)
    assert [(r["status"], r["model_version"], r["error"]) for r in runs] == [
        ("failed", None, "worker died"),
        ("succeeded", 3, None),
    ]
    assert runs[1]["metrics"] == {"song_accuracy": 0.9}
    assert await store.runs(2) == []


async def test_migration_4_keeps_runs_and_drops_the_unused_models_table(tmp_path: Path) -> None:
    """A v3 database keeps its training runs through migration 4 (a never-set 'queued' row
    reads 'failed'), loses the `models` table, and refuses 'queued' from then on."""
    path = tmp_path / "v3.sqlite3"
    con = sqlite3.connect(path)
    for script in MIGRATIONS[:3]:
        con.executescript(script)
    con.execute("PRAGMA user_version = 3")
    con.execute("INSERT INTO guilds (id, created_at) VALUES (5, 'x')")
    con.executemany(
        "INSERT INTO training_runs (guild_id, status, reason, owner) VALUES (5, ?, 'teach', 'o')",
        [("succeeded",), ("queued",)],
    )
    con.commit()
    con.close()
    store = await Store.open(path)
    try:
        assert await store.schema_version() == len(MIGRATIONS)
        rows = await store._all("SELECT status, reason, owner FROM training_runs ORDER BY id")
        assert rows == [("succeeded", "teach", "o"), ("failed", "teach", "o")]
        names = {n for (n,) in await store._all("SELECT name FROM sqlite_master")}
        assert "models" not in names and "runs_by_guild" in names
        with pytest.raises(sqlite3.IntegrityError):
            await store._all(
                "INSERT INTO training_runs (guild_id, status, reason) VALUES (5, 'queued', 'r')"
            )
    finally:
        await store.close()
