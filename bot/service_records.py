"""The service's lookups, guess records, permission rules and "guild changed" events, so the
cogs and the CLI never reach into the store themselves."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bot.errors import MimiError
from bot.i18n import Msg
from bot.owner import process_token
from bot.store import Song, Store
from bot.store_people import GuessRecord

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GuildChanged:
    """A server's songs changed (taught, forgotten, merged) or a member asked for a retrain."""

    guild_id: int
    reason: str  # "teach" | "forget" | "correction" | "merge" | "retrain"
    channel_id: int | None = None  # where the member acted: training news go there
    quiet_s: float | None = None  # None: the training's quiet period; 0: at once


Listener = Callable[[GuildChanged], None]


async def start_run(store: Store, guild_id: int, reason: str) -> int:
    """The one way a training run is recorded as started (by `mimi train` and the training
    service): owned by this process, so a restart can tell it was interrupted; its id."""
    return await store.start_run(guild_id, reason, process_token())


async def finish_run(store: Store, guild_id: int, run_id: int, **outcome: Any) -> None:
    """The one way a run's outcome is recorded: `model_version` and `metrics`, or `error`."""
    await store.finish_run(guild_id, run_id, **outcome)


class Records:
    """Mixed into the service (`bot.service.Mimi`): everything it offers besides teaching,
    guessing and the model."""

    store: Store
    _listeners: list[Listener]

    def subscribe(self, listener: Listener) -> None:
        """Call `listener` with every GuildChanged (the training service and the news)."""
        self._listeners.append(listener)

    def unsubscribe(self, listener: Listener) -> None:
        """Stop calling `listener` (a cog being unloaded)."""
        if listener in self._listeners:
            self._listeners.remove(listener)

    def changed(
        self,
        guild_id: int,
        reason: str,
        channel_id: int | None = None,
        quiet_s: float | None = None,
    ) -> None:
        """Tell every listener that this server changed; a failing listener is logged."""
        event = GuildChanged(guild_id, reason, channel_id, quiet_s)
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                log.exception("guild-changed listener failed on %r", event)

    def retrain(self, guild_id: int, channel_id: int | None = None) -> None:
        """Ask for a retrain now, without the quiet period."""
        self.changed(guild_id, "retrain", channel_id, quiet_s=0.0)

    async def song(self, guild_id: int, song_id: int) -> Song:
        """One of this server's songs (NotFound otherwise)."""
        return await self.store.song(guild_id, song_id)

    async def songs(self, guild_id: int, artist: str | None = None) -> list[Song]:
        """This server's songs (of one artist), oldest first."""
        return await self.store.songs(guild_id, artist)

    async def songs_taught_by(self, guild_id: int, user_id: int) -> list[Song]:
        """The songs one member taught here."""
        return await self.store.songs_taught_by(guild_id, user_id)

    async def artist_order(self, guild_id: int) -> list[str]:
        """This server's artists in the order they were first taught (their colours)."""
        return await self.store.artist_order(guild_id)

    async def guild_ids(self) -> list[int]:
        """Every server with stored songs."""
        return await self.store.guild_ids()

    async def start_run(self, guild_id: int, reason: str) -> int:
        """Record a training run starting in this process (`mimi train`); its id."""
        return await start_run(self.store, guild_id, reason)

    async def finish_run(self, guild_id: int, run_id: int, **outcome: Any) -> None:
        """Record a run's outcome: `model_version` and `metrics`, or `error`."""
        await finish_run(self.store, guild_id, run_id, **outcome)

    async def ping(self) -> None:
        """Raise unless the database answers."""
        await self.store.ping()

    async def song_to_forget(self, guild_id: int, song_id: int, by: int, is_manager: bool) -> Song:
        """The song, if `by` may forget it: managers any, members only their own."""
        song = await self.store.song(guild_id, song_id)
        if not is_manager and song.taught_by != by:
            raise MimiError(Msg("forget.not_your_song"), code="forbidden")
        return song

    async def artist_to_forget(
        self, guild_id: int, artist: str, by: int, is_manager: bool
    ) -> list[Song]:
        """The artist's songs, if `by` may forget them all: managers, or the one who taught
        every one of them."""
        songs = await self.store.songs(guild_id, artist)
        if not songs:
            raise MimiError(Msg("error.no_artist", artist=artist), code="not_found")
        if not is_manager and any(s.taught_by != by for s in songs):
            raise MimiError(Msg("forget.not_your_artist"), code="forbidden")
        return songs

    async def record_guess(self, guild_id: int, asked_by: int, **fields: Any) -> int:
        """Remember a guess so that members can confirm or correct it; its id."""
        return await self.store.record_guess(guild_id, asked_by, **fields)

    async def open_guess(self, guild_id: int, guess_id: int, by: int, is_manager: bool):
        """A guess `by` may answer (the asker or a manager) that no one answered yet."""
        record: GuessRecord = await self.store.guess(guild_id, guess_id)
        if by != record.asked_by and not is_manager:
            raise MimiError(Msg("feedback.not_yours"), code="forbidden")
        if record.outcome is not None:
            raise MimiError(Msg("feedback.already", artist=record.answer or ""), code="answered")
        return record

    async def answer_guess(
        self, guild_id: int, guess_id: int, outcome: str, answer: str, by: int
    ) -> bool:
        """Record a member's verdict on a guess once; False if someone answered first."""
        return await self.store.answer_guess(guild_id, guess_id, outcome, answer, by)
