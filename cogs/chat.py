"""Music already in the channel: right-click a message → Apps → "Who's this artist?" or
"Teach mimi this song…", and @mimi on a message (or a reply) with audio."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.discord_i18n import command_text, guild_lang, lang, safe, say
from bot.errors import MimiError
from bot.i18n import Msg, Seconds, join
from bot.names import MAX_NAME_LENGTH, display_name
from bot.replies import defer_public
from cogs.common import (
    audio_attachments,
    check_size,
    cooldown_check,
    shown_filename,
    spend_cooldown,
    upload_limit,
)
from cogs.guess import answer_clip
from cogs.teach import teach_uploads

if TYPE_CHECKING:
    from bot.client import MimiBot

log = logging.getLogger(__name__)
MAX_CLIPS = 3  # audio attachments guessed from one message
MAX_SONGS = 10  # audio attachments taught from one message (as /teach)
SUGGESTED = 5  # artists named in the modal's placeholder


def no_audio() -> MimiError:
    """The private answer for a message without audio."""
    return MimiError(Msg("menu.no_audio"), code="no_audio")


class TeachModal(discord.ui.Modal):
    """The artist's name for "Teach mimi this song…" (existing artists suggested)."""

    def __init__(
        self, bot: MimiBot, uploads: list[discord.Attachment], locale: str, names: list[str]
    ) -> None:
        super().__init__(title=say(locale, "menu.teach_title")[:45], custom_id="mimi:teach")
        self.bot, self.uploads = bot, uploads
        hint = join(locale, names[:SUGGESTED]) if names else say(locale, "modal.artist_new")
        self.artist = discord.ui.TextInput(
            label=say(locale, "modal.artist_label")[:45],
            placeholder=say(locale, "modal.artist_hint", names=hint)[:100],
            max_length=MAX_NAME_LENGTH,
            custom_id="artist",
        )
        self.add_item(self.artist)

    async def on_submit(self, interaction: discord.Interaction) -> None:
        """Teach the message's audio exactly as /teach would."""
        await teach_uploads(self.bot, interaction, display_name(self.artist.value), self.uploads)

    async def on_error(self, interaction: discord.Interaction, error: Exception) -> None:
        """Errors go through the bot's one handler (private, in the member's language)."""
        await interaction.client.on_app_command_error(interaction, error)  # type: ignore[attr-defined]


class Chat(commands.Cog):
    """Context menus and mentions."""

    def __init__(self, bot: MimiBot) -> None:
        self.bot = bot
        guilds = app_commands.AppCommandContext(guild=True)
        self.who = app_commands.ContextMenu(
            name=command_text("cmd.menu.who.name"), callback=self.who_is_this,
            allowed_contexts=guilds,
        )  # fmt: skip
        self.who.add_check(cooldown_check("guess_cooldown_s"))
        self.teach = app_commands.ContextMenu(
            name=command_text("cmd.menu.teach.name"), callback=self.teach_this,
            allowed_contexts=guilds,
        )  # fmt: skip
        self.teach.add_check(cooldown_check("teach_cooldown_s"))

    async def cog_load(self) -> None:
        """Register the menus with the slash commands."""
        self.bot.tree.add_command(self.who)
        self.bot.tree.add_command(self.teach)

    async def cog_unload(self) -> None:
        """Take them away again."""
        for menu in (self.who, self.teach):
            self.bot.tree.remove_command(menu.name, type=menu.type)

    async def who_is_this(self, interaction: discord.Interaction, message: discord.Message):
        """Guess each audio attachment (up to 3), each answer linking the message."""
        audio = audio_attachments(message)
        if not audio:
            raise no_audio()
        limit, locale = upload_limit(interaction), lang(interaction)
        for clip in audio[:MAX_CLIPS]:
            check_size(clip, limit)
        await self.bot.mimi.require_model(interaction.guild_id)
        await defer_public(interaction)
        failed: list[str] = []
        answered = 0
        for i, clip in enumerate(audio[:MAX_CLIPS], 1):
            try:
                answer = await answer_clip(
                    self.bot, interaction.guild_id, interaction.user.id, clip, locale, limit,
                    picture=f"guess-{i}.png",
                )  # fmt: skip
            except MimiError as err:
                if len(audio) == 1:
                    raise
                failed.append(f"• {shown_filename(clip.filename)}: {err.text(locale, safe)}")
                continue
            heard = say(locale, "menu.heard", file=shown_filename(clip.filename, escape=False),
                        link=message.jump_url)  # fmt: skip
            await interaction.followup.send(
                heard, embed=answer.embed, file=answer.file, view=answer.view
            )
            answered += 1
        if len(audio) > MAX_CLIPS:
            failed.append(say(locale, "menu.first_only", n=MAX_CLIPS))
        if failed:
            await interaction.followup.send("\n".join(failed)[:2000], ephemeral=answered > 0)

    async def teach_this(self, interaction: discord.Interaction, message: discord.Message):
        """Ask for the artist, then teach the message's audio (as /teach, quotas included)."""
        audio = audio_attachments(message)
        if not audio:
            raise no_audio()
        limit = upload_limit(interaction)
        for upload in audio[:MAX_SONGS]:
            check_size(upload, limit)
        names = [a.name for a in await self.bot.mimi.artists(interaction.guild_id)]
        modal = TeachModal(self.bot, audio[:MAX_SONGS], lang(interaction), names)
        await interaction.response.send_modal(modal)

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        """@mimi with audio (or replying to audio) guesses it; @mimi alone gets a short help."""
        me = self.bot.user
        if message.guild is None or message.author.bot or me is None:
            return
        if all(user.id != me.id for user in message.mentions):
            return  # (Discord shows mimi only the content of messages that mention it)
        locale = guild_lang(message.guild)
        try:
            await self._answer_mention(message, locale)
        except MimiError as err:
            await self._reply(message, err.text(locale, safe))
        except Exception:
            log.exception("answering message %s failed", message.id)
            await self._reply(message, say(locale, "error.unexpected"))

    async def _answer_mention(self, message: discord.Message, locale: str) -> None:
        """Find the audio (this message's, else the replied-to message's) and guess it."""
        audio = audio_attachments(message)
        if not audio and message.reference is not None:
            replied = message.reference.resolved
            if isinstance(replied, discord.Message):
                audio = audio_attachments(replied)
            if not audio:  # Discord hides its files: it does not mention mimi
                await self._reply(message, say(locale, "mention.cannot_see"))
                return
        if not audio:
            await self._reply(message, say(locale, "mention.help"))
            return
        guild, author = message.guild.id, message.author.id  # type: ignore[union-attr]
        if wait := spend_cooldown(self.bot, "guess_cooldown_s", guild, author):
            await self._reply(message, say(locale, "error.cooldown", wait=Seconds(round(wait))))
            return
        await self.bot.mimi.require_model(guild)
        limit = (self.bot.settings.max_upload_bytes, "mimi")
        for clip in audio[:MAX_CLIPS]:
            answer = await answer_clip(self.bot, guild, author, clip, locale, limit)
            await message.reply(
                embed=answer.embed, file=answer.file, view=answer.view, mention_author=False
            )
        if len(audio) > MAX_CLIPS:
            await self._reply(message, say(locale, "menu.first_only", n=MAX_CLIPS))

    async def _reply(self, message: discord.Message, text: str) -> None:
        """Reply in the channel (logged, not raised, where mimi may not post)."""
        try:
            await message.reply(text[:2000], mention_author=False)
        except discord.HTTPException as err:
            log.warning("cannot reply to message %s: %s", message.id, err)


async def setup(bot: MimiBot) -> None:
    """Register the cog."""
    await bot.add_cog(Chat(bot))
