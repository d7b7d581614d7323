"""Training news: one status message per retrain, edited from "Training…" to "Model vN ready"."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

import discord
from discord.ext import commands

from bot import i18n
from bot.discord_i18n import guild_lang, safe
from bot.service import GuildChanged
from bot.training import TrainingEvent

if TYPE_CHECKING:
    from bot.client import MimiBot

log = logging.getLogger(__name__)
EDIT_EVERY_S = 2.0  # at most one progress edit per this many seconds


def finished_text(locale: str, event: TrainingEvent) -> str:
    """'Model v5 ready: song accuracy 91% (was 86%).'"""
    meta, previous = event.meta, event.previous
    now = meta.metrics.get("song_accuracy") if meta else None
    before = previous.metrics.get("song_accuracy") if previous else None
    params = {"version": str(meta.version if meta else None), "now": i18n.percent(locale, now)}
    if before is None:
        return i18n.t(locale, "status.ready", **params)
    return i18n.t(locale, "status.ready_was", before=i18n.percent(locale, before), **params)


def failed_text(locale: str, event: TrainingEvent, serving: bool) -> str:
    """'Training failed: <why>. The previous model keeps answering.'"""
    failure = event.failure
    if failure is not None and failure.code == "training_failed":
        text = failure.text(locale, safe)  # it says "training failed" itself
    else:
        reason = failure.text(locale, safe) if failure is not None else safe(event.error or "")
        text = i18n.t(locale, "status.failed", reason=reason.rstrip(".。"))
    if serving:
        text += (" " if locale == "en" else "") + i18n.t(locale, "status.keeps_serving")
    return text


class Status(commands.Cog):
    """Posts and edits training status messages in the channel where the server last taught,
    forgot or asked for a retrain (it remembers that channel from the service's events)."""

    def __init__(self, bot: MimiBot) -> None:
        self.bot = bot
        self.channels: dict[int, int] = {}  # guild -> channel for training news
        self.messages: dict[int, discord.Message] = {}
        self.last_edit: dict[int, float] = {}
        self.songs: dict[int, int] = {}
        bot.training.subscribe(self.on_training)
        bot.mimi.subscribe(self.on_changed)

    async def cog_unload(self) -> None:
        """Stop hearing the service's events."""
        self.bot.mimi.unsubscribe(self.on_changed)

    def on_changed(self, event: GuildChanged) -> None:
        """Training news for this server goes to the channel of its latest change."""
        if event.channel_id is not None:
            self.channels[event.guild_id] = event.channel_id

    async def on_training(self, event: TrainingEvent) -> None:
        """Turn training events into one message per training, in the server's language."""
        locale = guild_lang(self.bot.get_guild(event.guild_id))
        try:
            if event.kind == "started":
                self.songs[event.guild_id] = event.songs or 0
                await self._post(event.guild_id, i18n.t(locale, "status.training", n=event.songs))
            elif event.kind == "progress":
                if time.monotonic() - self.last_edit.get(event.guild_id, 0) >= EDIT_EVERY_S:
                    text = i18n.t(
                        locale, "status.progress", n=self.songs.get(event.guild_id, 0),
                        epoch=event.epoch, epochs=event.epochs,
                    )  # fmt: skip
                    await self._post(event.guild_id, text)
            elif event.kind == "finished":
                await self._post(event.guild_id, finished_text(locale, event), final=True)
            elif event.kind == "failed":
                serving, _ = await self.bot.mimi.live_model(event.guild_id)
                text = failed_text(locale, event, serving is not None)
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
            channel_id = self.channels.get(guild_id)
            if channel_id is None:
                return
            channel = self.bot.get_partial_messageable(channel_id, guild_id=guild_id)
            message = await channel.send(text)
            self.messages[guild_id] = message
        if final:
            self.messages.pop(guild_id, None)


async def setup(bot: MimiBot) -> None:
    """Register the cog."""
    await bot.add_cog(Status(bot))
