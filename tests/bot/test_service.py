"""The service layer over real files: teach, duplicates, hostile uploads, forget, crash safety."""

from __future__ import annotations

import dataclasses
import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from bot.config import Settings
from bot.errors import AudioRejected, DuplicateSong, InvalidName, MimiError, NotFound
from bot.owner import owner_alive
from bot.service import Mimi
from model_store import features
from model_store.stages import LOGMEL
from tests.audio_factory import encode, retag
from tests.conftest import song_dirs
from tests.hostile_corpus import FOUNDATION_REFUSALS, build_case

ROOT = Path(__file__).resolve().parents[2]


async def test_teach_stores_song_clips_audio_and_features(mimi: Mimi, tmp_path: Path) -> None:
    """A taught song has its row, one row per 10 s clip, a FLAC copy and a cached log-mel."""
    path = encode(tmp_path / "a.mp3", "mp3", seconds=35.0)
    song = await mimi.teach(5, "Artist", path, taught_by=42)
    assert (song.artist, song.clips, song.format, song.taught_by) == ("Artist", 3, "mp3", 42)
    assert song.duration_s == pytest.approx(35.0, abs=0.1)
    assert await mimi.store.clips(5, song.id) == [(0.0, 10.0), (10.0, 20.0), (20.0, 30.0)]
    mel = mimi.cache.get(5, song.audio_sha256, LOGMEL.name)
    assert mel.dtype == features.MEL_DTYPE and mel.shape[1] == features.N_MELS
    assert mel.shape[0] == pytest.approx(35.0 * 62.5, abs=2)
    assert mimi.cache.load_audio(5, song.audio_sha256).dtype == np.int16


async def test_same_song_twice_is_a_duplicate(mimi: Mimi, tmp_path: Path) -> None:
    """Teaching the same file again (even under another name) reports the original song."""
    path = encode(tmp_path / "a.ogg", "ogg")
    first = await mimi.teach(1, "A", path)
    with pytest.raises(DuplicateSong) as err:
        await mimi.teach(1, "B", path)
    assert err.value.song_id == first.id and "song #" in err.value.message
    assert [(a.name, a.songs) for a in await mimi.artists(1)] == [("A", 1)]


async def test_retagged_copy_is_a_duplicate(mimi: Mimi, tmp_path: Path) -> None:
    """A copy with different tags but the same audio is caught by the audio hash."""
    path = encode(tmp_path / "a.flac", "flac")
    await mimi.teach(1, "A", path)
    retagged = retag(path, tmp_path / "b.flac", "Other")
    assert retagged.read_bytes() != path.read_bytes()
    with pytest.raises(DuplicateSong):
        await mimi.teach(1, "A", retagged)


@pytest.mark.parametrize("name", sorted(FOUNDATION_REFUSALS))
async def test_hostile_upload_changes_nothing(
    mimi: Mimi, settings: Settings, tmp_path: Path, name: str
) -> None:
    """A hostile upload is refused with its reason and leaves rows and cache untouched."""
    good = await mimi.teach(1, "Keep", encode(tmp_path / "good.mp3", "mp3"))
    before = (await mimi.artists(1), await mimi.store.songs(1), song_dirs(settings))
    with pytest.raises(AudioRejected) as err:
        await mimi.teach(1, "Bad", build_case(tmp_path, name))
    assert err.value.code == FOUNDATION_REFUSALS[name][0]
    assert (await mimi.artists(1), await mimi.store.songs(1), song_dirs(settings)) == before
    assert mimi.cache.has(1, good.audio_sha256, LOGMEL.name)


async def test_bad_artist_name_is_refused_before_decoding(mimi: Mimi, tmp_path: Path) -> None:
    """An unusable artist name is refused with InvalidName and stores nothing."""
    with pytest.raises(InvalidName):
        await mimi.teach(1, "\u200b", encode(tmp_path / "a.wav", "wav"))
    assert await mimi.artists(1) == []


async def test_forget_removes_rows_and_cached_files(
    mimi: Mimi, settings: Settings, tmp_path: Path
) -> None:
    """Forgetting a song or an artist deletes its clips, audio copy and features."""
    a1 = await mimi.teach(1, "A", encode(tmp_path / "1.mp3", "mp3", voice=0))
    a2 = await mimi.teach(1, "A", encode(tmp_path / "2.mp3", "mp3", voice=1))
    b = await mimi.teach(1, "B", encode(tmp_path / "3.mp3", "mp3", voice=2))
    assert len(song_dirs(settings)) == 3
    await mimi.forget_song(1, a1.id)
    assert f"1/{a1.audio_sha256}" not in song_dirs(settings)
    assert await mimi.store.clips(1, a1.id) == []
    removed = await mimi.forget_artist(1, "a")
    assert [s.id for s in removed] == [a2.id]
    assert song_dirs(settings) == {f"1/{b.audio_sha256}"}
    with pytest.raises(NotFound):
        await mimi.forget_song(1, a1.id)


async def test_guilds_share_nothing(mimi: Mimi, settings: Settings, tmp_path: Path) -> None:
    """The same song in two guilds is two songs with own files; forgetting one spares the other."""
    path = encode(tmp_path / "a.opus", "opus")
    a = await mimi.teach(1, "X", path)
    b = await mimi.teach(2, "X", path)
    await mimi.forget_artist(1, "X")
    assert await mimi.artists(1) == []
    assert [s.id for s in await mimi.store.songs(2)] == [b.id]
    assert song_dirs(settings) == {f"2/{b.audio_sha256}"}
    assert a.audio_sha256 == b.audio_sha256


async def test_import_folder_skips_and_lists_bad_files(mimi: Mimi, tmp_path: Path) -> None:
    """Import teaches each artist sub-folder, lists unusable files and carries on."""
    lib = tmp_path / "lib"
    (lib / "Alpha").mkdir(parents=True)
    (lib / "Beta").mkdir()
    encode(lib / "Alpha" / "one.mp3", "mp3", voice=0)
    encode(lib / "Alpha" / "two.ogg", "ogg", voice=1)
    encode(lib / "Beta" / "three.m4a", "m4a", voice=2)
    (lib / "Beta" / "cover.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(100))
    (lib / "Beta" / ".DS_Store").write_bytes(b"junk")
    seen: list[Path] = []
    report = await mimi.import_folder(1, lib, progress=seen.append)
    assert sorted(s.filename for s in report.taught) == ["one.mp3", "three.m4a", "two.ogg"]
    assert [(Path(s["file"]).name, s["error"]) for s in report.skipped] == [
        ("cover.jpg", "not_audio")
    ]
    assert "JPEG" in report.skipped[0]["message"]
    assert len(seen) == 4
    assert [(a.name, a.songs) for a in await mimi.artists(1)] == [("Alpha", 2), ("Beta", 1)]


CRASH_SCRIPT = textwrap.dedent(
    """
    import asyncio, os, sys
    from pathlib import Path
    import aiosqlite
    from bot.config import Settings
    from bot.service import Mimi

    real = aiosqlite.Connection.executemany

    async def crash(self, sql, params):
        if "INSERT INTO clips" in sql:
            os._exit(9)  # the process dies mid-transaction: rows written, nothing committed
        return await real(self, sql, params)

    aiosqlite.Connection.executemany = crash

    async def main():
        settings = Settings.load(
            environ={}, env_file=None, data_dir=Path(sys.argv[1]), frontend_weights=sys.argv[3]
        )
        mimi = await Mimi.open(settings)
        await mimi.teach(1, "Ghost", Path(sys.argv[2]))

    asyncio.run(main())
    """
)


async def test_crash_mid_teach_leaves_no_half_song(settings: Settings, tmp_path: Path) -> None:
    """A process killed inside the teach transaction leaves no rows; its files are swept at the
    next start (its claim names a dead process), whatever their age."""
    async with await Mimi.open(settings) as mimi:
        kept = await mimi.teach(1, "Kept", encode(tmp_path / "kept.mp3", "mp3", voice=3))
    path = encode(tmp_path / "ghost.mp3", "mp3", voice=1)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            CRASH_SCRIPT,
            str(settings.data_dir),
            str(path),
            str(settings.frontend_weights),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 9, proc.stderr
    con = sqlite3.connect(settings.db_path)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert con.execute("SELECT name FROM artists").fetchall() == [("Kept",)]
    assert con.execute("SELECT COUNT(*) FROM songs").fetchone()[0] == 1
    assert con.execute("SELECT COUNT(DISTINCT song_id) FROM clips").fetchone()[0] == 1
    con.close()
    assert len(song_dirs(settings)) == 2  # the dead process's files are still on disk
    async with await Mimi.open(settings) as mimi:  # the sweep at start removed them
        assert mimi.cache.sweep(await mimi.store.song_keys(), owner_alive) == 0
        assert [s.id for s in await mimi.store.songs(1)] == [kept.id]
    assert song_dirs(settings) == {f"1/{kept.audio_sha256}"}


async def test_forget_permissions_and_change_events_live_in_the_service(
    mimi: Mimi, tmp_path: Path
) -> None:
    """Members forget only what they taught, managers anything; every teach and forget tells
    the subscribers (GuildChanged, with the channel); a quota is checked per song."""
    events: list = []
    mimi.subscribe(events.append)
    mine = await mimi.teach(1, "A", encode(tmp_path / "1.mp3", "mp3", voice=0), taught_by=11,
                            channel_id=500)  # fmt: skip
    theirs = await mimi.teach(1, "A", encode(tmp_path / "2.mp3", "mp3", voice=1), taught_by=22)
    assert [(e.reason, e.channel_id) for e in events] == [("teach", 500), ("teach", None)]
    with pytest.raises(MimiError) as err:
        await mimi.forget_song(1, theirs.id, by=11, is_manager=False)
    assert err.value.code == "forbidden"
    with pytest.raises(MimiError) as err:
        await mimi.forget_artist(1, "A", by=11, is_manager=False)  # not all of A is theirs
    assert err.value.code == "forbidden" and len(await mimi.songs(1)) == 2
    assert (await mimi.forget_song(1, mine.id, by=11, is_manager=False)).id == mine.id
    assert [s.id for s in await mimi.forget_artist(1, "A", by=11, is_manager=True)] == [theirs.id]
    assert [e.reason for e in events][-2:] == ["forget", "forget"]
    full = dataclasses.replace(mimi.settings, max_guild_songs=1)
    capped = await Mimi.open(full)
    try:
        await capped.teach(1, "B", encode(tmp_path / "3.mp3", "mp3", voice=2))
        with pytest.raises(MimiError) as err:
            await capped.teach(1, "B", encode(tmp_path / "4.mp3", "mp3", voice=3))
        assert err.value.code == "quota" and len(await capped.songs(1)) == 1
    finally:
        await capped.close()
