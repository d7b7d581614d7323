"""/guess: name the likeliest artists of a clip, with the spectrogram and its timeline."""

from __future__ import annotations

import asyncio
import io

import discord
from discord import app_commands
from discord.ext import commands

from bot.client import defer_public
from bot.errors import data_writes
from bot.render import Window, spectrogram_png
from cogs.common import check_size, cooldown, downloaded, safe

BAR = 12  # characters in a confidence bar


def bar(probability: float) -> str:
    """A text confidence bar, e.g. ██████░░░░░░ 52%."""
    filled = round(probability * BAR)
    return "█" * filled + "░" * (BAR - filled) + f" {probability:.0%}"


UNKNOWN = "This doesn't sound like anyone I know here — closest: {artist}"
UNSURE = "Not sure… my best guesses"
KNOWN = "Sounds like {artist}"


def headline(result: dict, artist: str) -> str:
    """The verdict: no one I know (open set), not sure (low probability) or the artist."""
    if result.get("unknown"):
        return UNKNOWN.format(artist=artist)
    return UNSURE if result["unsure"] else KNOWN.format(artist=artist)


ALT_TEXT_LIMIT = 1024  # Discord's attachment description limit


def alt_text(result: dict, filename: str) -> str:
    """The picture's alt text: what it shows and the verdict, for screen readers."""
    top = ", ".join(f"{t['artist']} {t['probability']:.0%}" for t in result["top"])
    text = (
        f"Spectrogram of {filename} ({result['seconds']:.0f} s listened). "
        f"{headline(result, result['top'][0]['artist'])}. Top guesses: {top}. The strip under it "
        "shows which artist each 10-second window sounded like."
    )
    return text[:ALT_TEXT_LIMIT]


def guess_embed(result: dict) -> discord.Embed:
    """The reply: top artists with bars, 'not sure' when unsure, tags, model version."""
    top = result["top"]
    title = headline(result, safe(top[0]["artist"]))
    embed = discord.Embed(title=title[:256], colour=0x5865F2)
    embed.description = "\n".join(
        f"**{i}. {safe(t['artist'])}**\n`{bar(t['probability'])}`" for i, t in enumerate(top, 1)
    )[:4096]
    if result.get("tags"):
        embed.add_field(name="Sounds like", value=", ".join(t["tag"] for t in result["tags"]))
    embed.set_footer(text=f"model v{result['model_version']} · {result['seconds']:.0f} s listened")
    embed.set_image(url="attachment://guess.png")
    return embed


class Guess(commands.Cog):
    """Guessing clips."""

    def __init__(self, bot) -> None:
        self.bot = bot

    @app_commands.command(name="guess", description="Guess who made this clip")
    @app_commands.describe(clip="A clip or song (MP3, M4A, OGG, Opus, FLAC, WAV)")
    @app_commands.guild_only()
    @cooldown("guess_cooldown_s")
    async def guess(self, interaction: discord.Interaction, clip: discord.Attachment) -> None:
        """Defer, download, guess in the warm worker, render, reply with embed + picture."""
        check_size(clip, self.bot.settings.max_upload_bytes)
        await self.bot.mimi.require_model(interaction.guild_id)  # none yet, or withdrawn
        await defer_public(interaction)
        data = self.bot.settings.data_dir
        with data_writes(data):  # the download may hit a full or read-only disk
            limit = self.bot.settings.max_upload_bytes
            async with downloaded(clip, data / "tmp", max_bytes=limit) as path:
                result = await self.bot.mimi.guess(
                    interaction.guild_id, path, run=self.bot.audio_pool.run
                )
        mel, artists = result.pop("mel"), result.pop("artists")
        windows = [
            Window(w["start"], w["end"], w["artist"], w["probability"]) for w in result["windows"]
        ]
        title = clip.filename
        if result.get("unknown"):
            title = f"{clip.filename}: no one I know (closest: {result['top'][0]['artist']})"
        png = await asyncio.to_thread(spectrogram_png, mel, windows, artists, title=title)
        picture = discord.File(
            io.BytesIO(png), "guess.png", description=alt_text(result, clip.filename)
        )
        await interaction.followup.send(embed=guess_embed(result), file=picture)


async def setup(bot) -> None:
    """Register the cog."""
    await bot.add_cog(Guess(bot))
