"""Deleting people's data: a member's songs, and a server's data after mimi was removed
(scheduled in the database, so it survives restarts), at once from `mimi purge`."""

from __future__ import annotations

import json
import logging
import shutil
import time

import pytest

from bot.config import Settings
from bot.privacy import PurgeSchedule, forget_member, purge_guild
from bot.service import Mimi
from tests.audio_factory import encode
from tests.bot.taught import GUILD, run_cli
from tests.conftest import song_dirs

OTHER = 77  # a second server, which must be untouched


async def _second_server(mimi: Mimi) -> None:
    """Teach one song in OTHER (member 1)."""
    path = encode(mimi.settings.data_dir / "other.mp3", "mp3", seconds=21, voice=8, seed=9)
    await mimi.teach(OTHER, "Someone", path, taught_by=1)


async def test_purge_deletes_rows_files_and_models_of_one_server(taught_mimi: Mimi) -> None:
    """purge_guild removes every row, song folder and model version of that server only."""
    await _second_server(taught_mimi)
    gid = await taught_mimi.store.record_guess(
        GUILD, 9, url="https://cdn.discordapp.com/x", filename="x.ogg", size=1,
        guessed="Drone", model_version=1,
    )  # fmt: skip
    assert gid and taught_mimi.registry.current(GUILD) is not None
    report = await purge_guild(taught_mimi, GUILD)
    assert report["songs"] == 6 and report["rows"]["guesses"] == 1
    assert await taught_mimi.store.songs(GUILD) == []
    assert taught_mimi.registry.current(GUILD) is None
    assert not (taught_mimi.settings.cache_dir / str(GUILD)).exists()
    assert {d.split("/")[0] for d in song_dirs(taught_mimi.settings)} == {str(OTHER)}
    assert [s.artist for s in await taught_mimi.store.songs(OTHER)] == ["Someone"]
    assert GUILD not in await taught_mimi.store.known_guilds()


async def test_a_scheduled_deletion_survives_a_restart(
    settings: Settings, taught_dir, caplog: pytest.LogCaptureFixture
) -> None:
    """Scheduled, then mimi stops before it is due: the next start finds it in the database
    and deletes the server once due (and logs it); a return in between cancels it."""
    caplog.set_level(logging.INFO, logger="bot.privacy")
    shutil.copytree(taught_dir[0], settings.data_dir)
    async with await Mimi.open(settings) as mimi:
        schedule = PurgeSchedule(mimi, after_days=1.0)
        due = await schedule.removed(GUILD)
        assert due > time.time() + 86000
        assert await schedule.run_due() == []  # not yet
    async with await Mimi.open(settings) as mimi:
        assert GUILD in await mimi.store.purges()
        assert await PurgeSchedule(mimi, 1.0).returned(GUILD) is True  # added back
        assert await mimi.store.purges() == {}
        await mimi.store.schedule_purge(GUILD, -1.0)  # due a second ago
    async with await Mimi.open(settings) as mimi:
        stopped: list[int] = []

        async def before(guild: int) -> None:
            stopped.append(guild)

        done = await PurgeSchedule(mimi, 1.0, before_purge=before).run_due()
        assert [d["guild"] for d in done] == [GUILD] and stopped == [GUILD]
        assert await mimi.store.songs(GUILD) == [] and await mimi.store.purges() == {}
    assert f"guild {GUILD}: deleted its data (6 songs" in caplog.text


async def test_servers_left_while_offline_are_scheduled(taught_mimi: Mimi) -> None:
    """At start-up, a server with data that mimi is no longer in is scheduled like a removal;
    servers mimi is in are not."""
    await _second_server(taught_mimi)
    schedule = PurgeSchedule(taught_mimi, after_days=30)
    assert await schedule.orphans({OTHER}) == [GUILD]
    assert set(await taught_mimi.store.purges()) == {GUILD}
    assert await schedule.orphans({OTHER}) == []  # already scheduled: the date is kept


async def test_forget_member_removes_only_their_songs(taught_mimi: Mimi) -> None:
    """A member's songs (and guesses) go; songs others taught stay."""
    await _second_server(taught_mimi)  # taught by member 1 in OTHER
    song = (await taught_mimi.store.songs(GUILD))[0]
    removed = await forget_member(taught_mimi, OTHER, 1)
    assert [s.artist for s in removed] == ["Someone"]
    assert await taught_mimi.store.songs(OTHER) == []
    assert song in await taught_mimi.store.songs(GUILD)  # nobody else's


def test_cli_purge_deletes_one_server_at_once(settings: Settings, taught_dir) -> None:
    """`mimi purge --guild G --json` deletes that server now and says what went."""
    shutil.copytree(taught_dir[0], settings.data_dir)
    done = run_cli(settings, "purge", "--guild", str(GUILD))
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["guild"] == GUILD and report["songs"] == 6
    listed = run_cli(settings, "artists", "--guild", str(GUILD))
    assert json.loads(listed.stdout)["artists"] == []
    missing = run_cli(settings, "purge")
    assert missing.returncode == 2 and "--guild" in missing.stderr
