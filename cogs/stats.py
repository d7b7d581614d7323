"""/stats and /artists: what this server taught, and how well the model really does."""

from __future__ import annotations

import asyncio
import io
from datetime import UTC, datetime

import discord
from discord import app_commands
from discord.ext import commands

from bot.render import confusion_png
from cogs.common import safe


def _pct(value: float | None) -> str:
    """A percentage or 'not yet measurable'."""
    return "not yet measurable" if value is None else f"{value:.0%}"


def _age(iso: str) -> str:
    """How long ago an ISO timestamp was, in words."""
    seconds = (datetime.now(UTC) - datetime.fromisoformat(iso)).total_seconds()
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            n = int(seconds // size)
            return f"{n} {unit}{'s' * (n != 1)} ago"
    return "just now"


def training_line(status) -> str:
    """idle / queued / running epoch k of n."""
    if status.state == "running":
        if status.epoch:
            return f"running (epoch {status.epoch} of {status.epochs})"
        return "running"
    return status.state


class Stats(commands.Cog):
    """Looking at what was taught and how well it works."""

    def __init__(self, bot) -> None:
        self.bot = bot

    @app_commands.command(name="stats", description="How well I tell this server's artists apart")
    @app_commands.guild_only()
    async def stats(self, interaction: discord.Interaction) -> None:
        """Artists, model version and age, honest held-out accuracy, training status."""
        await interaction.response.defer(thinking=True)
        data = await self.bot.mimi.stats(interaction.guild_id)
        embed = discord.Embed(title="What I know here", colour=0x5865F2)
        artists = "\n".join(f"{safe(a['name'])}: {a['songs']} songs" for a in data["artists"])
        embed.add_field(
            name=f"Artists ({len(data['artists'])})", value=(artists or "none yet")[:1024]
        )
        model = data["model"]
        files = []
        if model is None and data["model_withdrawn"]:
            embed.add_field(
                name="Model",
                value="withdrawn: fewer than 2 of its artists remain; teach another artist",
            )
        elif model is None:
            embed.add_field(name="Model", value="none yet: teach songs of at least 2 artists")
        else:
            embed.add_field(
                name=f"Model v{model['version']}",
                value=(
                    f"trained {_age(model['trained_at'])}\n"
                    f"song accuracy {_pct(model['song_accuracy'])}\n"
                    f"clip accuracy {_pct(model['clip_accuracy'])}\n"
                    f"on {model['val_songs'] or 0} held-out songs"
                    + (
                        f"\npredates a forget of {model['forgotten_songs']} songs "
                        "(left out above); a retrain replaces it"
                        if model["forgotten_songs"]
                        else ""
                    )
                ),
            )
            if model.get("confusion"):
                png = await asyncio.to_thread(confusion_png, model["confusion"], model["artists"])
                matrix = model["confusion"]
                hits = sum(row[i] for i, row in enumerate(matrix) if i < len(row))
                alt = (
                    "Confusion matrix of the held-out songs: rows are the true artists, columns "
                    f"the guessed ones; {hits} of {sum(map(sum, matrix))} guessed right."
                )
                files.append(discord.File(io.BytesIO(png), "confusion.png", description=alt))
                embed.set_image(url="attachment://confusion.png")
        status = self.bot.training.status(interaction.guild_id)
        embed.add_field(name="Training", value=training_line(status), inline=False)
        embed.set_footer(text=f"{data['songs']} songs · {data['clips']} clips")
        await interaction.followup.send(embed=embed, files=files)

    @app_commands.command(name="artists", description="The artists I know here")
    @app_commands.guild_only()
    async def artists(self, interaction: discord.Interaction) -> None:
        """Artists with songs, clips and minutes."""
        rows = await self.bot.mimi.artists(interaction.guild_id)
        lines = [
            f"**{safe(a.name)}**: {a.songs} songs, {a.clips} clips, {a.minutes:.0f} min"
            for a in rows
        ]
        text = "\n".join(lines) or "No artists yet: teach me one with `/teach`."
        await interaction.response.send_message(text[:2000])


async def setup(bot) -> None:
    """Register the cog."""
    await bot.add_cog(Stats(bot))
