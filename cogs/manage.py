"""/forget, /retrain and /artist rename: removing songs, forcing a retrain, renaming artists."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.discord_i18n import command_text, lang, say
from bot.errors import MimiError
from bot.i18n import Msg
from bot.names import MAX_NAME_LENGTH, display_name, name_key
from bot.privacy import forget_member
from cogs.common import artist_choices, can_manage, song_choices
from cogs.confirm import ask

if TYPE_CHECKING:
    from bot.client import MimiBot


class Manage(commands.Cog):
    """Forgetting, retraining and renaming."""

    artist = app_commands.Group(
        name="artist",
        description=command_text("cmd.artist.description"),
        guild_only=True,
        default_permissions=discord.Permissions(manage_guild=True),
    )

    def __init__(self, bot: MimiBot) -> None:
        self.bot = bot

    @app_commands.command(name="forget", description=command_text("cmd.forget.description"))
    @app_commands.describe(
        artist=command_text("cmd.forget.artist.description"),
        song=command_text("cmd.forget.song.description"),
        me=command_text("cmd.forget.me.description"),
    )
    @app_commands.guild_only()
    async def forget(
        self,
        interaction: discord.Interaction,
        artist: str | None = None,
        song: int | None = None,
        me: bool = False,
    ) -> None:
        """Managers may forget anything; members only songs they taught themselves. A whole
        artist, or everything a member taught (`me`), goes only after a confirmation (buttons
        only the asker can press)."""
        if sum((artist is not None, song is not None, me)) != 1:
            raise MimiError(Msg("forget.one_of"), code="usage")
        guild, user = interaction.guild_id, interaction.user.id
        if me:
            await self._forget_me(interaction)
            return
        if song is not None:
            stored = await self.bot.mimi.forget_song(
                guild, song, by=user, is_manager=can_manage(interaction),
                channel_id=interaction.channel_id,
            )  # fmt: skip
            text = say(
                interaction, "forget.song", id=str(song), file=stored.filename,
                artist=stored.artist,
            )  # fmt: skip
            await interaction.response.send_message(text)
            return
        manager = can_manage(interaction)
        songs = await self.bot.mimi.artist_to_forget(guild, artist, user, manager)
        locale, channel = lang(interaction), interaction.channel_id

        async def forget_all() -> str:
            removed = await self.bot.mimi.forget_artist(
                guild, artist, by=user, is_manager=manager, channel_id=channel
            )  # (asked again: someone may have taught the artist a song meanwhile)
            return say(locale, "forget.artist", artist=removed[0].artist, n=len(removed))

        question = say(locale, "forget.confirm_artist", artist=songs[0].artist, n=len(songs))
        await ask(interaction, question, forget_all)

    async def _forget_me(self, interaction: discord.Interaction) -> None:
        """Everything this member taught here (and the guesses they asked), once confirmed."""
        guild, user, locale = interaction.guild_id, interaction.user.id, lang(interaction)
        songs = await self.bot.mimi.songs_taught_by(guild, user)
        if not songs:
            await forget_member(self.bot.mimi, guild, user)  # their guesses, if any
            await interaction.response.send_message(say(locale, "forget.me_none"), ephemeral=True)
            return

        async def forget_all() -> str:
            removed = await forget_member(self.bot.mimi, guild, user, interaction.channel_id)
            return say(locale, "forget.me_done", n=len(removed))

        await ask(interaction, say(locale, "forget.confirm_me", n=len(songs)), forget_all)

    forget.autocomplete("artist")(artist_choices)
    forget.autocomplete("song")(song_choices)

    @app_commands.command(name="retrain", description=command_text("cmd.retrain.description"))
    @app_commands.guild_only()
    @app_commands.default_permissions(manage_guild=True)
    @app_commands.checks.has_permissions(manage_guild=True)
    async def retrain(self, interaction: discord.Interaction) -> None:
        """Managers only: start a retrain without the quiet period."""
        self.bot.mimi.retrain(interaction.guild_id, interaction.channel_id)
        await interaction.response.send_message(say(interaction, "retrain.started"))

    @artist.command(name="rename", description=command_text("cmd.artist.rename.description"))
    @app_commands.rename(old=command_text("cmd.artist.rename.from.name"))
    @app_commands.describe(
        old=command_text("cmd.artist.rename.from.description"),
        to=command_text("cmd.artist.rename.to.description"),
    )
    @app_commands.checks.has_permissions(manage_guild=True)
    async def rename(
        self,
        interaction: discord.Interaction,
        old: str,
        to: app_commands.Range[str, 1, MAX_NAME_LENGTH],
    ) -> None:
        """Rename at once; onto another artist's name, merge them after a confirmation."""
        guild, locale = interaction.guild_id, lang(interaction)
        try:
            was, now, _ = await self.bot.mimi.rename_artist(guild, old, to)
        except MimiError as err:
            if err.code != "merge_needed":
                raise
        else:
            await interaction.response.send_message(say(locale, "rename.done", old=was, new=now))
            return
        rows = await self.bot.mimi.artists(guild)
        target = next((a.name for a in rows if name_key(a.name) == name_key(to)), to)
        songs = next((a.songs for a in rows if name_key(a.name) == name_key(old)), 0)

        async def merge() -> str:
            was, now, moved = await self.bot.mimi.rename_artist(
                guild, old, to, merge=True, channel_id=interaction.channel_id
            )
            return say(locale, "rename.merged", old=was, new=now, n=moved)

        question = say(
            locale, "rename.confirm_merge", old=display_name(old), new=target,
            n=songs,
        )  # fmt: skip
        await ask(interaction, question, merge)

    rename.autocomplete("old")(artist_choices)


async def setup(bot: MimiBot) -> None:
    """Register the cog."""
    await bot.add_cog(Manage(bot))
