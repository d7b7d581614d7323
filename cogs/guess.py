"""/guess: name the likeliest artists of a clip, with the spectrogram and its timeline."""

from __future__ import annotations

import asyncio
import io
from dataclasses import dataclass
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot import i18n
from bot.discord_i18n import command_text, lang, safe
from bot.errors import data_writes
from bot.replies import defer_public
from cogs.common import check_size, cooldown, downloaded, shown_filename, upload_limit
from cogs.feedback import feedback_view

if TYPE_CHECKING:
    from bot.client import MimiBot

BAR = 12  # characters in a confidence bar
ALT_TEXT_LIMIT = 1024  # Discord's attachment description limit


def bar(locale: str, probability: float) -> str:
    """A text confidence bar, e.g. ██████░░░░░░ 52%."""
    filled = round(probability * BAR)
    return "█" * filled + "░" * (BAR - filled) + " " + i18n.percent(locale, probability)


def headline(locale: str, result: dict, artist: str, escape=safe) -> str:
    """The verdict: no one I know (open set), not sure (low probability) or the artist."""
    key = "guess.unknown" if result.get("unknown") else (
        "guess.unsure" if result["unsure"] else "guess.known")  # fmt: skip
    return i18n.t(locale, key, _escape=escape, artist=artist)


def _heard(result: dict) -> dict[str, i18n.Seconds]:
    """The seconds heard and the clip's length, as message parameters."""
    total = float(result["seconds"])
    return {"heard": i18n.Seconds(result.get("heard_seconds", total)), "total": i18n.Seconds(total)}


def alt_text(locale: str, result: dict, filename: str) -> str:
    """The picture's alt text: what it shows and the verdict, for screen readers."""
    top = i18n.join(locale, (f"{t['artist']} {i18n.percent(locale, t['probability'])}"
                             for t in result["top"]))  # fmt: skip
    verdict = headline(locale, result, result["top"][0]["artist"], escape=None)
    text = i18n.t(locale, "guess.alt", file=filename, verdict=verdict, top=top, **_heard(result))
    return text[:ALT_TEXT_LIMIT]


def guess_embed(locale: str, result: dict, picture: str = "guess.png") -> discord.Embed:
    """The reply: top artists with bars, 'not sure' when unsure, tags, model version."""
    top = result["top"]
    embed = discord.Embed(title=headline(locale, result, top[0]["artist"])[:256], colour=0x5865F2)
    embed.description = "\n".join(
        f"**{i}. {safe(t['artist'])}**\n`{bar(locale, t['probability'])}`"
        for i, t in enumerate(top, 1)
    )[:4096]
    if result.get("tags"):
        embed.add_field(
            name=i18n.t(locale, "guess.tags_field"),
            value=i18n.join(locale, (t["tag"] for t in result["tags"])),
        )
    footer = i18n.t(locale, "guess.footer", version=str(result["model_version"]), **_heard(result))
    embed.set_footer(text=footer)
    embed.set_image(url=f"attachment://{picture}")
    return embed


@dataclass(frozen=True)
class Answer:
    """One clip's answer: the embed, its picture, the feedback buttons, the guess itself."""

    embed: discord.Embed
    file: discord.File
    view: discord.ui.View
    result: dict


async def answer_clip(
    bot: MimiBot, guild_id: int, user_id: int, clip: discord.Attachment, locale: str,
    limit: tuple[int, str], *, picture: str = "guess.png",
) -> Answer:  # fmt: skip
    """Download, guess in the warm worker, render, and remember the guess for feedback (the
    same for /guess, the context menu and mentions)."""
    check_size(clip, limit)
    data = bot.settings.data_dir
    with data_writes(data):  # the download may hit a full or read-only disk
        async with downloaded(clip, data / "tmp", max_bytes=limit[0]) as path:
            guessed = await bot.mimi.guess(guild_id, path, run=bot.audio_pool.run)
    result = guessed.answer
    name = shown_filename(clip.filename, escape=False)
    png = await asyncio.to_thread(guessed.picture, name, locale)
    file = discord.File(io.BytesIO(png), picture, description=alt_text(locale, result, name))
    guess_id = await bot.mimi.record_guess(
        guild_id, user_id, url=clip.url, filename=name, size=clip.size,
        guessed=guessed.top[0].artist, model_version=guessed.version,
    )  # fmt: skip
    view = feedback_view(guess_id, locale, named=not result.get("unknown"))
    return Answer(guess_embed(locale, result, picture), file, view, result)


class Guess(commands.Cog):
    """Guessing clips."""

    def __init__(self, bot: MimiBot) -> None:
        self.bot = bot

    @app_commands.command(name="guess", description=command_text("cmd.guess.description"))
    @app_commands.describe(
        clip=command_text("cmd.guess.clip.description"),
        private=command_text("cmd.guess.private.description"),
    )
    @app_commands.guild_only()
    @cooldown("guess_cooldown_s")
    async def guess(
        self, interaction: discord.Interaction, clip: discord.Attachment, private: bool = False
    ) -> None:
        """Defer, then answer with embed, picture and feedback buttons (visible only to the
        member with `private`)."""
        limit = upload_limit(interaction)
        check_size(clip, limit)
        await self.bot.mimi.require_model(interaction.guild_id)  # none yet, or withdrawn
        if private:
            await interaction.response.defer(thinking=True, ephemeral=True)
        else:
            await defer_public(interaction)
        answer = await answer_clip(
            self.bot, interaction.guild_id, interaction.user.id, clip, lang(interaction), limit
        )
        await interaction.followup.send(
            embed=answer.embed, file=answer.file, view=answer.view, ephemeral=private
        )


async def setup(bot: MimiBot) -> None:
    """Register the cog."""
    await bot.add_cog(Guess(bot))
