"""Deleting people's data: one member's songs, and a whole server's data once mimi is removed
from it (after a grace period that re-adding mimi cancels, surviving restarts)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from bot.service import Mimi
from bot.store import Song

log = logging.getLogger(__name__)
DAY_S = 86400.0


async def forget_member(
    mimi: Mimi, guild_id: int, user_id: int, channel_id: int | None = None
) -> list[Song]:
    """Forget every song this member taught in this guild, and the guesses they asked."""
    removed = []
    for song in await mimi.songs_taught_by(guild_id, user_id):
        try:
            removed.append(await mimi.forget_song(guild_id, song.id, channel_id=channel_id))
        except LookupError:  # forgotten meanwhile by someone else
            continue
    await mimi.store.forget_member_guesses(guild_id, user_id)
    return removed


async def purge_guild(mimi: Mimi, guild_id: int) -> dict:
    """Delete every row, song file and model of this guild now; what went."""
    async with mimi.lock(guild_id):
        rows = await mimi.store.delete_guild(guild_id)
        await asyncio.to_thread(mimi.cache.drop_guild, guild_id)
        await asyncio.to_thread(mimi.registry.drop_guild, guild_id)
    return {"guild": guild_id, "songs": rows.get("songs", 0), "rows": rows}


class PurgeSchedule:
    """The bot's side: schedule on removal, cancel on return, delete what fell due."""

    def __init__(
        self,
        mimi: Mimi,
        after_days: float,
        *,
        before_purge: Callable[[int], Awaitable[None]] | None = None,
    ) -> None:
        self.mimi = mimi
        self.after_s = after_days * DAY_S
        self.before_purge = before_purge  # e.g. cancel and wait out the guild's training

    async def removed(self, guild_id: int) -> float:
        """mimi left this guild: schedule its deletion (at once with a zero grace period)."""
        due = await self.mimi.store.schedule_purge(guild_id, self.after_s)
        when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(due))
        log.info("guild %s: mimi was removed; its data will be deleted at %s", guild_id, when)
        if due <= time.time():
            await self.run_due()
        return due

    async def returned(self, guild_id: int) -> bool:
        """mimi is back in this guild: cancel a scheduled deletion; True if one was."""
        cancelled = await self.mimi.store.cancel_purge(guild_id)
        if cancelled:
            log.info("guild %s: mimi was added back; the scheduled deletion is cancelled", guild_id)
        return cancelled

    async def orphans(self, present: set[int]) -> list[int]:
        """Schedule the deletion of guilds with data that mimi is no longer in (removed while
        it was offline); which were newly scheduled."""
        scheduled = await self.mimi.store.purges()
        orphaned = [g for g in await self.mimi.store.known_guilds() if g not in present]
        for guild_id in orphaned:
            if guild_id not in scheduled:
                await self.removed(guild_id)
        return [g for g in orphaned if g not in scheduled]

    async def run_due(self) -> list[dict]:
        """Delete every guild whose grace period ended; what was deleted."""
        done = []
        now = time.time()
        for guild_id, due in sorted((await self.mimi.store.purges()).items()):
            if due > now:
                continue
            if self.before_purge is not None:
                await self.before_purge(guild_id)
            report = await purge_guild(self.mimi, guild_id)
            log.info(
                "guild %s: deleted its data (%d songs, %d rows, models and files), as scheduled",
                guild_id, report["songs"], sum(report["rows"].values()),
            )  # fmt: skip
            done.append(report)
        return done

    async def housekeeping(self) -> None:
        """What fell due: scheduled deletions, and Discord links of old guesses."""
        await self.run_due()
        if expired := await self.mimi.store.expire_guess_urls():
            log.info("forgot the expired Discord links of %d guessed clips", expired)
