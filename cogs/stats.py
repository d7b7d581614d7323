"""/stats and /artists: what this server taught, and how well the model really does."""

from __future__ import annotations

import asyncio
import io
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import discord
from babel.dates import format_date
from discord import app_commands
from discord.ext import commands

from bot import i18n
from bot.discord_i18n import command_text, lang, safe, say
from bot.render import artist_colours
from bot.render_stats import StatsView, square, stats_png

if TYPE_CHECKING:
    from bot.client import MimiBot


def training_line(locale: str, status) -> str:
    """idle / queued / running epoch k of n."""
    if status.state == "running" and status.epoch:
        return i18n.t(locale, "training.epoch", epoch=status.epoch, epochs=status.epochs)
    return i18n.t(locale, f"training.{status.state}")


def recognised_lines(locale: str, labels: list[str], matrix: list[list[int]]) -> list[str]:
    """'Maxstack: 4 of 5 held-out songs recognised', per artist with held-out songs."""
    m = square(matrix, len(labels))
    return [
        say(locale, "stats.recognised", artist=name, k=int(m[i, i]), n=int(m[i].sum()))
        for i, name in enumerate(labels)
        if m[i].sum()
    ]


def model_text(locale: str, model: dict) -> str:
    """The model field: age, song and clip accuracy, held-out songs, a forget it predates."""
    ago = (datetime.now(UTC) - datetime.fromisoformat(model["trained_at"])).total_seconds()
    text = i18n.t(
        locale, "stats.model_lines", ago=i18n.ago(locale, ago),
        song=i18n.percent(locale, model["song_accuracy"]),
        clip=i18n.percent(locale, model["clip_accuracy"]), n=model["val_songs"] or 0,
    )  # fmt: skip
    if model["forgotten_songs"]:
        text += "\n" + i18n.t(locale, "stats.predates_forget", n=model["forgotten_songs"])
    feedback = model.get("feedback") or {}
    if feedback.get("confirmed") or feedback.get("corrected"):
        text += "\n" + i18n.t(
            locale, "stats.feedback", n=feedback["confirmed"] + feedback["corrected"],
            right=feedback["confirmed"], fixed=feedback["corrected"],
        )  # fmt: skip
    return text


def stats_picture(locale: str, model: dict, order: list[str]) -> discord.File:
    """The per-artist and confusion picture of the served model, with its alt text."""
    matrix, labels = model["confusion"], model["artists"]
    day = format_date(datetime.fromisoformat(model["trained_at"]), "medium", locale=locale)
    view = StatsView(tuple(labels), tuple(tuple(r) for r in matrix), model["version"], day)
    png = stats_png(view, artist_colours(order), locale=locale)
    m = square(matrix, len(labels))
    alt = i18n.t(locale, "stats.alt", k=int(m.trace()), n=int(m.sum()))
    return discord.File(io.BytesIO(png), "stats.png", description=alt)


class Stats(commands.Cog):
    """Looking at what was taught and how well it works."""

    def __init__(self, bot: MimiBot) -> None:
        self.bot = bot

    @app_commands.command(name="stats", description=command_text("cmd.stats.description"))
    @app_commands.guild_only()
    async def stats(self, interaction: discord.Interaction) -> None:
        """Artists, model version and age, honest held-out accuracy, training status."""
        await interaction.response.defer(thinking=True)
        locale, guild = lang(interaction), interaction.guild_id
        data = await self.bot.mimi.stats(guild)
        embed = discord.Embed(title=i18n.t(locale, "stats.title"), colour=0x5865F2)
        artists = "\n".join(
            say(locale, "stats.artist_line", artist=a["name"], n=a["songs"])
            for a in data["artists"]
        )
        embed.add_field(
            name=i18n.t(locale, "stats.artists_field", n=len(data["artists"])),
            value=(artists or i18n.t(locale, "stats.none_yet"))[:1024],
        )
        model, files = data["model"], []
        if model is None:
            key = "stats.withdrawn" if data["model_withdrawn"] else "stats.no_model"
            embed.add_field(name=i18n.t(locale, "stats.model_field"), value=i18n.t(locale, key))
        else:
            embed.add_field(
                name=i18n.t(locale, "stats.model_version_field", version=str(model["version"])),
                value=model_text(locale, model),
            )
            if model.get("confusion"):
                lines = recognised_lines(locale, model["artists"], model["confusion"])
                if lines:
                    embed.add_field(
                        name=i18n.t(locale, "stats.recognised_field"),
                        value="\n".join(lines)[:1024],
                        inline=False,
                    )
                order = await self.bot.mimi.artist_order(guild)
                files.append(await asyncio.to_thread(stats_picture, locale, model, order))
                embed.set_image(url="attachment://stats.png")
        status = self.bot.training.status(guild)
        embed.add_field(
            name=i18n.t(locale, "stats.training_field"),
            value=training_line(locale, status),
            inline=False,
        )
        counts = (i18n.t(locale, "count.songs", n=data["songs"]),
                  i18n.t(locale, "count.clips", n=data["clips"]))  # fmt: skip
        embed.set_footer(text=" · ".join(counts))
        await interaction.followup.send(embed=embed, files=files)

    @app_commands.command(name="artists", description=command_text("cmd.artists.description"))
    @app_commands.guild_only()
    async def artists(self, interaction: discord.Interaction) -> None:
        """Artists with songs, clips and minutes."""
        locale = lang(interaction)
        rows = await self.bot.mimi.artists(interaction.guild_id)
        lines = [
            i18n.t(
                locale,
                "artists.line",
                artist=safe(a.name),
                songs=i18n.t(locale, "count.songs", n=a.songs),
                clips=i18n.t(locale, "count.clips", n=a.clips),
                minutes=i18n.t(locale, "count.minutes", n=round(a.minutes)),
            )
            for a in rows
        ]
        text = "\n".join(lines) or i18n.t(locale, "artists.none")
        await interaction.response.send_message(text[:2000])


async def setup(bot: MimiBot) -> None:
    """Register the cog."""
    await bot.add_cog(Stats(bot))
