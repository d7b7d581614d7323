"""Hostile uploads and names through the real service: one specific answer, nothing else touched.

The bot-level half (every corpus case through /teach and /guess over the Discord stand-in) lives
in test_discord_e2e.py, which shares the corpus of tests/hostile_corpus.py.
"""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest
import pytest_asyncio

from bot.config import Settings
from bot.errors import InvalidName, MimiError
from bot.service import Mimi
from tests.hostile_corpus import (
    ACCEPTED,
    CASES,
    CODE_WORDS,
    LEGIT,
    PATHLIKE,
    RESIDENTS,
    Case,
    corpus,
    source,
)

on_module_loop = pytest.mark.asyncio(loop_scope="module")  # the loop the `world` fixture lives on
GUILD, BYSTANDER = 41, 42  # the guild under attack (two songs already) and one that must not care


class World:
    """A real service on a fresh data dir; GUILD has two taught songs, BYSTANDER one."""

    def __init__(self, settings: Settings, mimi: Mimi, paths: dict[str, Path]) -> None:
        self.settings, self.mimi, self.paths = settings, mimi, paths

    async def snapshot(self) -> dict:
        """Everything an upload must not change: rows of both guilds, cache bytes, the schema."""
        store, out = self.mimi.store, {}
        for guild in (GUILD, BYSTANDER):
            songs = await store.songs(guild)
            out[guild] = (
                await store.artists(guild),
                songs,
                [await store.clips(guild, s.id) for s in songs],
            )
        root = self.settings.cache_dir
        out["cache"] = {
            str(f.relative_to(root)): hashlib.sha256(f.read_bytes()).hexdigest()
            for f in sorted(root.rglob("*"))
            if f.is_file()
        }
        out["counts"] = await store.counts()
        out["integrity"] = await store.integrity_check()
        con = sqlite3.connect(f"{self.settings.db_path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            out["schema"] = con.execute("SELECT type, name, sql FROM sqlite_master").fetchall()
        finally:
            con.close()
        return out


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory, frontend_weights: Path):
    """The corpus, and a service whose guild already has two songs by two artists."""
    paths = corpus(tmp_path_factory)
    settings = Settings.load(
        environ={},
        env_file=None,
        data_dir=tmp_path_factory.mktemp("data"),
        frontend_weights=frontend_weights,
    )
    async with await Mimi.open(settings) as mimi:
        await mimi.teach(GUILD, "Keep A", source(paths, RESIDENTS[0]), filename=RESIDENTS[0])
        await mimi.teach(GUILD, "Keep B", source(paths, RESIDENTS[1]), filename=RESIDENTS[1])
        await mimi.teach(BYSTANDER, "Elsewhere", source(paths, RESIDENTS[1]))
        yield World(settings, mimi, paths)


def assert_safe_message(message: str, *leaks: Path) -> None:
    """Short, one line, and free of internal paths, tracebacks and file contents."""
    assert 0 < len(message) < 200 and "\n" not in message, message
    assert not any(str(p) in message for p in leaks), message
    assert not PATHLIKE.search(message), message
    assert "Traceback" not in message and "Error" not in message, message
    assert "root:" not in message and "ffmpeg" not in message.lower(), message


def test_corpus_is_big_and_covers_every_refusal() -> None:
    """The corpus holds at least 30 cases and exercises every code a file can earn."""
    assert len(CASES) >= 30
    assert len({c.name for c in CASES}) == len(CASES)
    assert {c.expect for c in CASES} == {*CODE_WORDS, ACCEPTED}


@on_module_loop
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
async def test_hostile_upload_gets_its_answer_and_changes_nothing(world: World, case: Case):
    """Each corpus file gets its exact code (or is learned and forgotten); all else is intact."""
    mimi, path = world.mimi, world.paths[case.name]
    before = await world.snapshot()
    if case.expect == ACCEPTED:
        song = await mimi.teach(GUILD, "Mallory", path, taught_by=666, filename=case.claimed)
        assert song.duration_s >= world.settings.clip_seconds and song.clips >= 1
        assert song.filename == (case.stored_as or case.claimed)
        assert "/" not in song.filename and "\\" not in song.filename
        assert song.filename.isprintable() and 0 < len(song.filename) <= 200
        if case.name.startswith("claims_10h"):
            assert song.duration_s < 60  # what was decoded, not what the header claims
        await mimi.forget_song(GUILD, song.id)
    else:
        with pytest.raises(MimiError) as err:
            await mimi.teach(GUILD, "Mallory", path, taught_by=666, filename=case.claimed)
        assert err.value.code == case.expect, err.value.message
        assert CODE_WORDS[case.expect] in err.value.message.lower()
        assert case.words in err.value.message
        assert_safe_message(err.value.message, path, path.resolve(), world.settings.data_dir)
    assert await world.snapshot() == before
    assert before["integrity"] == "ok"


# Each hostile artist name, and what it is stored as (None: refused with InvalidName).
NAMES = [
    # mentions are stored as typed; the bot shows them inert
    ("@everyone", "@everyone"),
    ("<@123> <@&456> <#789> @here", "<@123> <@&456> <#789> @here"),
    # markdown is stored as typed; the bot escapes it
    ("**bold** ||spoiler|| `code` __u__ ~~s~~", "**bold** ||spoiler|| `code` __u__ ~~s~~"),
    # SQL is just text
    ("'); DROP TABLE songs;--", "'); DROP TABLE songs;--"),
    ('" OR 1=1; DELETE FROM artists; --', '" OR 1=1; DELETE FROM artists; --'),
    # invisible direction overrides, zero-width joiners and a BOM are dropped
    ("\u202eevil\u200d\u200bname\ufeff\u2066", "evilname"),
    # control characters and terminal escapes are dropped, not echoed
    ("\x00\x07ab\x1b[31mc\x7f", "ab[31mc"),
    # line breaks and odd spaces fold to single spaces
    ("Line1 \n Line2\r\n\u3000 @here", "Line1 Line2 @here"),
    # a lone surrogate (valid JSON, invalid UTF-8) is dropped
    ("\ud800abc", "abc"),
    # full-width letters keep their look; they are the same artist as "ABC"
    ("ＡＢＣ", "ＡＢＣ"),
    # exactly 64 characters is fine
    ("x" * 64, "x" * 64),
    # 10 kB of text
    ("x" * 10_000, None),
    # 65 characters
    ("x" * 65, None),
    # a letter buried under 200 combining accents
    ("a" + "\u0301" * 200, None),
    # only whitespace
    (" \t\n\u3000 ", None),
    # only invisible characters
    ("\u200b\u200d\u2060\u202e", None),
    # only control characters
    ("\x00\x01\x1b", None),
]


@on_module_loop
@pytest.mark.parametrize(("raw", "stored"), NAMES, ids=lambda v: repr(v)[:24])
async def test_hostile_artist_name_is_refused_or_stored_inert(
    world: World, raw: str, stored: str | None
) -> None:
    """A hostile artist name gets a specific InvalidName, or is stored clean and findable."""
    mimi, legit = world.mimi, source(world.paths, LEGIT)
    before = await world.snapshot()
    if stored is None:
        with pytest.raises(InvalidName) as err:
            await mimi.teach(GUILD, raw, legit)
        assert_safe_message(err.value.message)
        assert "empty" in err.value.message or "too long" in err.value.message
    else:
        song = await mimi.teach(GUILD, raw, legit)
        assert song.artist == stored and len(stored) <= 64
        names = [a.name for a in await mimi.artists(GUILD)]
        assert names.count(stored) == 1
        assert [s.id for s in await mimi.store.songs(GUILD, raw)] == [song.id]
        assert [s.id for s in await mimi.forget_artist(GUILD, raw)] == [song.id]
    assert await world.snapshot() == before


@on_module_loop
async def test_sql_name_is_stored_verbatim_and_tables_survive(world: World) -> None:
    """An SQL-injection name is one artist row, byte for byte; every table and row survives."""
    mimi, name = world.mimi, "Robert'); DROP TABLE songs;--"
    before = await world.snapshot()
    song = await mimi.teach(GUILD, name, source(world.paths, LEGIT))
    con = sqlite3.connect(world.settings.db_path)
    try:
        rows = con.execute("SELECT name FROM artists WHERE guild_id = ?", (GUILD,)).fetchall()
        songs = con.execute("SELECT COUNT(*) FROM songs WHERE guild_id = ?", (GUILD,)).fetchone()
        integrity = con.execute("PRAGMA integrity_check").fetchone()
    finally:
        con.close()
    assert sorted(rows) == sorted([("Keep A",), ("Keep B",), (name,)])
    assert (songs, integrity) == ((3,), ("ok",))
    await mimi.forget_song(GUILD, song.id)  # its artist goes with its last song
    assert await world.snapshot() == before
