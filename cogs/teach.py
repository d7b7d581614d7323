"""/teach: a member adds songs of an artist; a retrain is scheduled."""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from bot.client import defer_public
from bot.discord_i18n import command_text, lang, safe, say
from bot.errors import DuplicateSong, MimiError, data_writes
from bot.i18n import Seconds
from bot.names import MAX_NAME_LENGTH, display_name
from cogs.common import (
    artist_choices,
    check_size,
    cooldown,
    downloaded,
    remember_channel,
    shown_filename,
    upload_limit,
)


class Teach(commands.Cog):
    """Teaching songs."""

    def __init__(self, bot) -> None:
        self.bot = bot

    @app_commands.command(name="teach", description=command_text("cmd.teach.description"))
    @app_commands.describe(
        artist=command_text("cmd.teach.artist.description"),
        song=command_text("cmd.teach.song.description"),
        song2=command_text("cmd.teach.song2.description"),
        song3=command_text("cmd.teach.song3.description"),
    )
    @app_commands.guild_only()
    @cooldown("teach_cooldown_s")
    async def teach(
        self,
        interaction: discord.Interaction,
        artist: app_commands.Range[str, 1, MAX_NAME_LENGTH],
        song: discord.Attachment,
        song2: discord.Attachment | None = None,
        song3: discord.Attachment | None = None,
    ) -> None:
        """Check everything cheap first, then defer, download, decode in a worker, reply."""
        name = display_name(artist)
        uploads = [a for a in (song, song2, song3) if a is not None]
        limit = upload_limit(interaction)
        for upload in uploads:
            check_size(upload, limit)
        await self.bot.mimi.check_quota(interaction.guild_id, name)
        await defer_public(interaction)
        lines, learned, data, locale = [], 0, self.bot.settings.data_dir, lang(interaction)
        for upload in uploads:
            try:
                with data_writes(data):  # the download itself may hit a full or read-only disk
                    async with downloaded(upload, data / "tmp", max_bytes=limit[0]) as path:
                        stored = await self.bot.mimi.teach(
                            interaction.guild_id,
                            name,
                            path,
                            taught_by=interaction.user.id,
                            filename=upload.filename,
                        )
            except DuplicateSong as dup:
                lines.append(f"• {shown_filename(upload.filename)}: {dup.text(locale, safe)}")
                continue
            except MimiError as err:
                if len(uploads) == 1:
                    raise
                lines.append(f"• {shown_filename(upload.filename)}: {err.text(locale, safe)}")
                continue
            learned += 1
            lines.append("• " + say(
                locale, "teach.learned", artist=stored.artist,
                file=shown_filename(stored.filename, escape=False),
                length=Seconds(stored.duration_s), n=stored.clips, id=str(stored.id),
            ))  # fmt: skip
        if learned:
            remember_channel(interaction)
            self.bot.training.request(interaction.guild_id, "teach")
            lines.append(say(locale, "teach.scheduled"))
        await interaction.followup.send("\n".join(lines))

    teach.autocomplete("artist")(artist_choices)


async def setup(bot) -> None:
    """Register the cog."""
    await bot.add_cog(Teach(bot))
