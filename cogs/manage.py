"""/forget and /retrain: removing songs (owners or managers) and forcing a retrain."""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from bot.errors import MimiError
from cogs.common import artist_choices, remember_channel, safe


def can_manage(interaction: discord.Interaction) -> bool:
    """True for members with the Manage Server permission."""
    perms = interaction.permissions
    return bool(perms and (perms.manage_guild or perms.administrator))


class Manage(commands.Cog):
    """Forgetting and retraining."""

    def __init__(self, bot) -> None:
        self.bot = bot

    @app_commands.command(name="forget", description="Forget an artist or one song")
    @app_commands.describe(artist="Forget this artist and all their songs", song="A song number")
    @app_commands.guild_only()
    async def forget(
        self, interaction: discord.Interaction, artist: str | None = None, song: int | None = None
    ) -> None:
        """Managers may forget anything; members only songs they taught themselves."""
        if (artist is None) == (song is None):
            raise MimiError("Tell me either an artist or a song number, not both.")
        guild, user = interaction.guild_id, interaction.user.id
        if song is not None:
            stored = await self.bot.mimi.store.song(guild, song)
            if not can_manage(interaction) and stored.taught_by != user:
                raise MimiError(
                    "Only the member who taught that song, or a manager, can forget it."
                )
            await self.bot.mimi.forget_song(guild, song)
            text = f"Forgot song #{song} ({safe(stored.filename)}) by {safe(stored.artist)}."
        else:
            songs = await self.bot.mimi.store.songs(guild, artist)
            if not songs:
                raise MimiError(f"I don't know an artist called {safe(artist)} here.")
            if not can_manage(interaction) and any(s.taught_by != user for s in songs):
                raise MimiError(
                    "Other members taught songs of that artist: only a manager can forget them all."
                )
            removed = await self.bot.mimi.forget_artist(guild, artist)
            text = f"Forgot {safe(removed[0].artist)} and {len(removed)} songs."
        remember_channel(interaction)
        self.bot.training.request(guild, "forget")
        await interaction.response.send_message(text)

    forget.autocomplete("artist")(artist_choices)

    @app_commands.command(name="retrain", description="Retrain this server's model now")
    @app_commands.guild_only()
    @app_commands.default_permissions(manage_guild=True)
    @app_commands.checks.has_permissions(manage_guild=True)
    async def retrain(self, interaction: discord.Interaction) -> None:
        """Managers only: start a retrain without the quiet period."""
        remember_channel(interaction)
        self.bot.training.request(interaction.guild_id, "retrain", quiet_s=0.0)
        await interaction.response.send_message("Retraining now; I'll post progress here.")


async def setup(bot) -> None:
    """Register the cog."""
    await bot.add_cog(Manage(bot))
