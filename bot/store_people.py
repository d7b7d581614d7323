"""The Store's SQL for what members do around songs: guesses they confirm or correct, the
songs one member taught, and the deletion of a whole server's data."""

from __future__ import annotations

import time
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import aiosqlite

from bot.errors import NotFound
from bot.i18n import Msg

if TYPE_CHECKING:
    from bot.store import Song

GUESS_URL_KEEP = timedelta(hours=23)  # Discord's signed attachment URLs last about a day
GUILD_TABLES = ("guesses", "training_runs", "clips", "songs", "artists")


@dataclass(frozen=True)
class GuessRecord:
    """A guess mimi answered, which members may confirm ("right") or correct once."""

    id: int
    guild_id: int
    asked_by: int
    url: str | None  # None once the clip's Discord link has expired (or it was forgotten)
    filename: str
    size: int
    guessed: str
    model_version: int
    asked_at: str
    outcome: str | None = None  # "right" | "corrected"
    answer: str | None = None
    answered_by: int | None = None


_GUESS_SELECT = """SELECT id, guild_id, asked_by, url, filename, size, guessed, model_version,
                          asked_at, outcome, answer, answered_by FROM guesses"""


def now_iso() -> str:
    """The current UTC time as ISO-8601 text."""
    return datetime.now(UTC).isoformat(timespec="seconds")


class PeopleRows:
    """Mixed into `Store`: it provides `_tx` and `_all`."""

    if TYPE_CHECKING:

        def _tx(self) -> AbstractAsyncContextManager[aiosqlite.Connection]: ...

        async def _all(self, sql: str, *args: object) -> list[tuple]: ...

        async def songs(self, guild_id: int, artist: str | None = None) -> list[Song]: ...

    # --- guesses ------------------------------------------------------------------------

    async def record_guess(
        self,
        guild_id: int,
        asked_by: int,
        *,
        url: str,
        filename: str,
        size: int,
        guessed: str,
        model_version: int,
    ) -> int:
        """Remember a guess so that members can confirm or correct it; its id."""
        async with self._tx() as db:
            cur = await db.execute(
                "INSERT INTO guesses (guild_id, asked_by, url, filename, size, guessed,"
                " model_version, asked_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (guild_id, asked_by, url, filename, size, guessed, model_version, now_iso()),
            )
            return int(cur.lastrowid)

    async def guess(self, guild_id: int, guess_id: int) -> GuessRecord:
        """One recorded guess of this guild (NotFound for another guild's or a deleted one)."""
        rows = await self._all(_GUESS_SELECT + " WHERE guild_id = ? AND id = ?", guild_id, guess_id)
        if not rows:
            raise NotFound(Msg("feedback.gone"))
        return GuessRecord(*rows[0])

    async def answer_guess(
        self, guild_id: int, guess_id: int, outcome: str, answer: str, by: int
    ) -> bool:
        """Record a guess's outcome once; False if someone answered it first."""
        async with self._tx() as db:
            cur = await db.execute(
                "UPDATE guesses SET outcome = ?, answer = ?, answered_by = ?, answered_at = ?"
                " WHERE guild_id = ? AND id = ? AND outcome IS NULL",
                (outcome, answer, by, now_iso(), guild_id, guess_id),
            )
            return cur.rowcount == 1

    async def feedback(self, guild_id: int, model_version: int) -> dict[str, int]:
        """How many of this model's guesses members confirmed and corrected."""
        rows = await self._all(
            "SELECT outcome, COUNT(*) FROM guesses WHERE guild_id = ? AND model_version = ?"
            " AND outcome IS NOT NULL GROUP BY outcome",
            guild_id,
            model_version,
        )
        counts = dict(rows)
        return {"confirmed": counts.get("right", 0), "corrected": counts.get("corrected", 0)}

    async def expire_guess_urls(self, older_than: timedelta = GUESS_URL_KEEP) -> int:
        """Forget the Discord links of clips guessed longer ago than Discord keeps them."""
        cutoff = (datetime.now(UTC) - older_than).isoformat(timespec="seconds")
        async with self._tx() as db:
            cur = await db.execute(
                "UPDATE guesses SET url = NULL WHERE url IS NOT NULL AND asked_at < ?", (cutoff,)
            )
            return cur.rowcount

    # --- one member's data ----------------------------------------------------------------

    async def songs_taught_by(self, guild_id: int, user_id: int) -> list[Song]:
        """Every song this member taught in this guild."""
        return [s for s in await self.songs(guild_id) if s.taught_by == user_id]

    async def forget_member_guesses(self, guild_id: int, user_id: int) -> int:
        """Delete the guesses this member asked in this guild (their clips' links with them)."""
        async with self._tx() as db:
            cur = await db.execute(
                "DELETE FROM guesses WHERE guild_id = ? AND asked_by = ?", (guild_id, user_id)
            )
            await db.execute(  # who answered others' guesses is theirs too
                "UPDATE guesses SET answered_by = NULL WHERE guild_id = ? AND answered_by = ?",
                (guild_id, user_id),
            )
            return cur.rowcount

    # --- a whole server -------------------------------------------------------------------

    async def schedule_purge(self, guild_id: int, after_s: float) -> float:
        """Schedule deleting this guild's data `after_s` seconds from now (keeping an earlier
        schedule); when it is due, as a Unix time."""
        async with self._tx() as db:
            await db.execute(
                "INSERT INTO purges (guild_id, due_at, scheduled_at) VALUES (?, ?, ?)"
                " ON CONFLICT (guild_id) DO NOTHING",
                (guild_id, time.time() + after_s, now_iso()),
            )
            rows = await db.execute_fetchall(
                "SELECT due_at FROM purges WHERE guild_id = ?", (guild_id,)
            )
        return float(rows[0][0])

    async def cancel_purge(self, guild_id: int) -> bool:
        """Cancel a scheduled deletion (the bot came back); True if one was scheduled."""
        async with self._tx() as db:
            cur = await db.execute("DELETE FROM purges WHERE guild_id = ?", (guild_id,))
            return cur.rowcount == 1

    async def purges(self) -> dict[int, float]:
        """Every scheduled deletion: guild -> due time (Unix)."""
        return {int(g): float(d) for g, d in await self._all("SELECT guild_id, due_at FROM purges")}

    async def known_guilds(self) -> list[int]:
        """Every guild with any row here (songs, guesses, runs)."""
        rows = await self._all(
            "SELECT id FROM guilds UNION SELECT guild_id FROM songs"
            " UNION SELECT guild_id FROM guesses ORDER BY 1"
        )
        return [int(g) for (g,) in rows]

    async def delete_guild(self, guild_id: int) -> dict[str, int]:
        """Delete every row of this guild in one transaction (and its scheduled purge);
        how many rows each table lost."""
        removed: dict[str, int] = {}
        async with self._tx() as db:
            for table in GUILD_TABLES:  # children before parents
                cur = await db.execute(f"DELETE FROM {table} WHERE guild_id = ?", (guild_id,))
                removed[table] = cur.rowcount
            await db.execute("DELETE FROM guilds WHERE id = ?", (guild_id,))
            await db.execute("DELETE FROM purges WHERE guild_id = ?", (guild_id,))
        return removed
