"""/songs [artist]: the server's songs with their ids, who taught them and when, paged."""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot import i18n
from bot.discord_i18n import command_text, lang, safe, say
from bot.service import Song
from cogs.common import artist_choices

if TYPE_CHECKING:
    from bot.client import MimiBot

PAGE = 10  # songs per page
PAGER_TIMEOUT_S = 300.0


def song_line(locale: str, song: Song) -> str:
    """'#12 Coherence.ogg — Maxstack · 3 min 28 s · <@member> · <t:…:R>'."""
    when = round(datetime.fromisoformat(song.taught_at).timestamp())
    who = f"<@{song.taught_by}>" if song.taught_by else i18n.t(locale, "songs.cli")
    return i18n.t(
        locale, "songs.line", id=str(song.id), file=safe(song.filename),
        artist=safe(song.artist), length=i18n.Seconds(song.duration_s), who=who,
        when=f"<t:{when}:R>",
    )  # fmt: skip


def songs_page(locale: str, songs: list[Song], page: int, artist: str | None) -> discord.Embed:
    """One page of the list as an embed, with 'page k of n' in its footer."""
    pages = max(1, -(-len(songs) // PAGE))
    title = (say(locale, "songs.title_artist", artist=artist, n=len(songs)) if artist
             else i18n.t(locale, "songs.title", n=len(songs)))  # fmt: skip
    shown = songs[page * PAGE : (page + 1) * PAGE]
    body = "\n".join(song_line(locale, s) for s in shown) or i18n.t(locale, "songs.none")
    embed = discord.Embed(title=title[:256], description=body[:4096], colour=0x5865F2)
    embed.set_footer(text=i18n.t(locale, "songs.page", k=page + 1, n=pages))
    return embed


class Pager(discord.ui.View):
    """◀ ▶ buttons that turn the pages of one member's song list."""

    def __init__(self, owner_id: int, locale: str, songs: list[Song], artist: str | None):
        super().__init__(timeout=PAGER_TIMEOUT_S)
        self.owner_id, self.locale, self.songs, self.artist = owner_id, locale, songs, artist
        self.page, self.pages = 0, max(1, -(-len(songs) // PAGE))
        self.message: discord.InteractionMessage | None = None
        self.back = discord.ui.Button(label="◀", custom_id="mimi:songs:back", disabled=True)
        self.ahead = discord.ui.Button(
            label="▶", custom_id="mimi:songs:next", disabled=self.pages == 1
        )
        self.back.callback, self.ahead.callback = self._back, self._ahead
        self.add_item(self.back)
        self.add_item(self.ahead)

    def embed(self) -> discord.Embed:
        """The current page."""
        return songs_page(self.locale, self.songs, self.page, self.artist)

    async def _turn(self, interaction: discord.Interaction, step: int) -> None:
        """Show the page `step` away, disabling the buttons at the ends."""
        self.page = min(self.pages - 1, max(0, self.page + step))
        self.back.disabled, self.ahead.disabled = self.page == 0, self.page == self.pages - 1
        await interaction.response.edit_message(embed=self.embed(), view=self)

    async def _back(self, interaction: discord.Interaction) -> None:
        await self._turn(interaction, -1)

    async def _ahead(self, interaction: discord.Interaction) -> None:
        await self._turn(interaction, 1)

    async def on_timeout(self) -> None:
        """The buttons go once nobody turns a page for a while."""
        if self.message is not None:
            with contextlib.suppress(discord.HTTPException):
                await self.message.edit(view=None)


class Songs(commands.Cog):
    """Listing songs."""

    def __init__(self, bot: MimiBot) -> None:
        self.bot = bot

    @app_commands.command(name="songs", description=command_text("cmd.songs.description"))
    @app_commands.describe(artist=command_text("cmd.songs.artist.description"))
    @app_commands.guild_only()
    async def songs(self, interaction: discord.Interaction, artist: str | None = None) -> None:
        """The songs (of one artist), newest first, ten a page; only the asker sees them."""
        songs = await self.bot.mimi.songs(interaction.guild_id, artist)
        songs.reverse()
        shown = songs[0].artist if artist and songs else artist
        view = Pager(interaction.user.id, lang(interaction), songs, shown)
        await interaction.response.send_message(embed=view.embed(), view=view, ephemeral=True)
        view.message = await interaction.original_response()

    songs.autocomplete("artist")(artist_choices)


async def setup(bot: MimiBot) -> None:
    """Register the cog."""
    await bot.add_cog(Songs(bot))
