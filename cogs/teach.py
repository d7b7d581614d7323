"""/teach: a member adds up to ten songs of an artist; a retrain is scheduled."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.discord_i18n import command_text, lang, safe, say
from bot.errors import DuplicateSong, MimiError, data_writes
from bot.i18n import Seconds
from bot.names import MAX_NAME_LENGTH, display_name
from bot.replies import defer_public
from bot.service import Song
from cogs.common import (
    artist_choices,
    check_size,
    cooldown,
    downloaded,
    shown_filename,
    upload_limit,
)

if TYPE_CHECKING:
    from bot.client import MimiBot

EXTRA = range(2, 11)  # song2 … song10: up to ten songs in one /teach


async def teach_uploads(
    bot: MimiBot, interaction: discord.Interaction, name: str, uploads: list[discord.Attachment]
) -> None:
    """Check everything cheap first, then defer, and read the songs one by one (the reply
    says which it is reading), each within the quotas; then say what was learned. The same
    for /teach and "Teach mimi this song…"."""
    limit = upload_limit(interaction)
    for upload in uploads:
        check_size(upload, limit)
    await bot.mimi.check_quota(interaction.guild_id, name)
    await defer_public(interaction)
    lines, learned, locale = [], 0, lang(interaction)
    for i, upload in enumerate(uploads, 1):
        file = shown_filename(upload.filename, escape=False)
        if len(uploads) > 1:
            reading = say(locale, "teach.reading", i=str(i), n=len(uploads), file=file)
            await interaction.edit_original_response(content="\n".join([*lines, reading]))
        try:
            stored = await _teach_one(bot, interaction, name, upload, limit[0])  # quotas: service
        except MimiError as err:
            if len(uploads) == 1 and not isinstance(err, DuplicateSong):
                raise
            lines.append(f"• {shown_filename(upload.filename)}: {err.text(locale, safe)}")
            continue
        learned += 1
        lines.append("• " + say(
            locale, "teach.learned", artist=stored.artist, file=file,
            length=Seconds(stored.duration_s), n=stored.clips, id=str(stored.id),
        ))  # fmt: skip
    if learned:  # (each song told the training service: GuildChanged)
        lines.append(say(locale, "teach.scheduled"))
    if len(uploads) > 1:
        await interaction.edit_original_response(content="\n".join(lines)[:2000])
    else:
        await interaction.followup.send("\n".join(lines)[:2000])


async def _teach_one(
    bot: MimiBot,
    interaction: discord.Interaction,
    name: str,
    upload: discord.Attachment,
    limit: int,
) -> Song:
    """Download one attachment and teach it (a full or read-only disk: StorageError)."""
    data = bot.settings.data_dir
    with data_writes(data):  # the download itself may hit a full or read-only disk
        async with downloaded(upload, data / "tmp", max_bytes=limit) as path:
            return await bot.mimi.teach(
                interaction.guild_id, name, path, taught_by=interaction.user.id,
                filename=upload.filename, channel_id=interaction.channel_id,
            )  # fmt: skip


class Teach(commands.Cog):
    """Teaching songs."""

    def __init__(self, bot: MimiBot) -> None:
        self.bot = bot

    @app_commands.command(name="teach", description=command_text("cmd.teach.description"))
    @app_commands.describe(
        artist=command_text("cmd.teach.artist.description"),
        song=command_text("cmd.teach.song.description"),
        **{f"song{i}": command_text(f"cmd.teach.song{i}.description") for i in EXTRA},
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
        song4: discord.Attachment | None = None,
        song5: discord.Attachment | None = None,
        song6: discord.Attachment | None = None,
        song7: discord.Attachment | None = None,
        song8: discord.Attachment | None = None,
        song9: discord.Attachment | None = None,
        song10: discord.Attachment | None = None,
    ) -> None:
        """Teach every attached song (see `teach_uploads`)."""
        uploads = [a for a in (song, song2, song3, song4, song5, song6, song7, song8, song9,
                               song10) if a is not None]  # fmt: skip
        await teach_uploads(self.bot, interaction, display_name(artist), uploads)

    teach.autocomplete("artist")(artist_choices)


async def setup(bot: MimiBot) -> None:
    """Register the cog."""
    await bot.add_cog(Teach(bot))
