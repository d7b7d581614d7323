"""Training news: one status message per retrain, edited from "Training…" to "Model vN ready"."""

from __future__ import annotations

import logging
import time

import discord
from discord.ext import commands

from bot.training import TrainingEvent

log = logging.getLogger(__name__)
EDIT_EVERY_S = 2.0  # at most one progress edit per this many seconds


def _pct(value: float | None) -> str:
    """A percentage or 'not yet measurable'."""
    return "not yet measurable" if value is None else f"{value:.0%}"


def finished_text(event: TrainingEvent) -> str:
    """'Model v5 ready: song accuracy 91% (was 86%)'."""
    meta = event.meta or {}
    now = meta.get("metrics", {}).get("song_accuracy")
    text = f"Model v{meta.get('version')} ready: song accuracy {_pct(now)}"
    before = ((event.previous or {}).get("metrics") or {}).get("song_accuracy")
    if before is not None:
        text += f" (was {before:.0%})"
    return text + "."


class Status(commands.Cog):
    """Posts and edits training status messages in the channel that asked for the retrain."""

    def __init__(self, bot) -> None:
        self.bot = bot
        self.messages: dict[int, discord.Message] = {}
        self.last_edit: dict[int, float] = {}
        self.songs: dict[int, int] = {}
        bot.training.subscribe(self.on_training)

    async def on_training(self, event: TrainingEvent) -> None:
        """Turn training events into one message per training."""
        try:
            if event.kind == "started":
                self.songs[event.guild_id] = event.songs or 0
                await self._post(event.guild_id, f"Training on {event.songs} songs…")
            elif event.kind == "progress":
                if time.monotonic() - self.last_edit.get(event.guild_id, 0) >= EDIT_EVERY_S:
                    songs = self.songs.get(event.guild_id, "?")
                    text = f"Training on {songs} songs… epoch {event.epoch}/{event.epochs}"
                    await self._post(event.guild_id, text)
            elif event.kind == "finished":
                await self._post(event.guild_id, finished_text(event), final=True)
            elif event.kind == "failed":
                serving, _ = await self.bot.mimi.live_model(event.guild_id)
                text = f"Training failed: {(event.error or '').rstrip('.')}." + (
                    " The previous model keeps answering." if serving else ""
                )
                await self._post(event.guild_id, text, final=True)
        except discord.HTTPException:
            log.warning("guild %s: could not post training status", event.guild_id)

    async def _post(self, guild_id: int, text: str, final: bool = False) -> None:
        """Edit this training's message, or post it in the remembered channel."""
        self.last_edit[guild_id] = time.monotonic()
        message = self.messages.get(guild_id)
        if message is not None:
            await message.edit(content=text)
        else:
            channel_id = self.bot.status_channels.get(guild_id)
            if channel_id is None:
                return
            channel = self.bot.get_partial_messageable(channel_id, guild_id=guild_id)
            message = await channel.send(text)
            self.messages[guild_id] = message
        if final:
            self.messages.pop(guild_id, None)


async def setup(bot) -> None:
    """Register the cog."""
    await bot.add_cog(Status(bot))
