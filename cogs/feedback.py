"""Corrections that teach: "✅ Right" and "✏️ It was…" under every guess. A correction adds the
guessed clip as a song of the chosen artist (the same checks as /teach) and schedules a
retrain; both are counted in /stats. Only the member who asked, or a manager, may answer."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, ClassVar

import discord
from discord.ext import commands

from bot.discord_i18n import lang, say
from bot.errors import DuplicateSong, MimiError, data_writes
from bot.i18n import Msg
from bot.names import MAX_NAME_LENGTH, display_name
from bot.service import GuessRecord
from cogs.common import Upload, can_manage, downloaded

if TYPE_CHECKING:
    from bot.client import MimiBot

log = logging.getLogger(__name__)
NEW = "\u0000new"  # the select's "someone new…" value (no artist name can contain NUL)
PICK_TIMEOUT_S = 180.0
MAX_CHOICES = 24  # Discord allows 25 options; one is "someone new…"


def feedback_view(guess_id: int, locale: str, *, named: bool) -> discord.ui.View:
    """The buttons under a guess (persistent: they work after a restart). No "Right" when the
    verdict named no one."""
    view = discord.ui.View(timeout=None)
    if named:
        view.add_item(RightButton(guess_id, say(locale, "button.right")))
    view.add_item(FixButton(guess_id, say(locale, "button.fix")))
    return view


def done_view(text: str) -> discord.ui.View:
    """What replaces the buttons once answered: one disabled button saying how."""
    view = discord.ui.View(timeout=None)
    view.add_item(discord.ui.Button(label=text[:80], disabled=True, custom_id="mimi:answered"))
    return view


async def _guarded(interaction: discord.Interaction, action: Callable[[], Awaitable[None]]):
    """Run a component's action; errors go through the bot's one handler."""
    try:
        await action()
    except Exception as err:
        await interaction.client.on_app_command_error(interaction, err)  # type: ignore[attr-defined]


async def _open(interaction: discord.Interaction, guess_id: int) -> GuessRecord:
    """The guess, if this member may answer it and no one has yet."""
    mimi = interaction.client.mimi  # type: ignore[attr-defined]
    return await mimi.open_guess(
        interaction.guild_id, guess_id, interaction.user.id, can_manage(interaction)
    )


class _GuessButton(discord.ui.DynamicItem[discord.ui.Button], template=r"mimi:guess:(?P<id>\d+)"):
    """A persistent button of one guess: its custom id names the guess (after a restart too)."""

    prefix: ClassVar[str] = "mimi:guess:"
    style: ClassVar[discord.ButtonStyle] = discord.ButtonStyle.secondary

    def __init__(self, guess_id: int, label: str = "…") -> None:
        button = discord.ui.Button(
            label=label, style=self.style, custom_id=f"{self.prefix}{guess_id}"
        )
        super().__init__(button)
        self.guess_id = guess_id

    @classmethod
    async def from_custom_id(cls, interaction, item, match: re.Match[str]) -> _GuessButton:
        """Rebuilt from the custom id."""
        return cls(int(match["id"]))


class RightButton(_GuessButton, template=r"mimi:right:(?P<id>\d+)"):
    """✅ Right: counts the guess as confirmed."""

    prefix, style = "mimi:right:", discord.ButtonStyle.success

    async def callback(self, interaction: discord.Interaction) -> None:
        """Record it once, then show it under the guess."""

        async def confirm() -> None:
            record = await _open(interaction, self.guess_id)
            mimi = interaction.client.mimi  # type: ignore[attr-defined]
            if not await mimi.answer_guess(
                record.guild_id, record.id, "right", record.guessed, interaction.user.id
            ):
                raise MimiError(Msg("feedback.already", artist=record.guessed), code="answered")
            text = say(lang(interaction), "feedback.done_right", artist=record.guessed)
            await interaction.response.edit_message(view=done_view(text))

        await _guarded(interaction, confirm)


class FixButton(_GuessButton, template=r"mimi:fix:(?P<id>\d+)"):
    """✏️ It was…: replaces the buttons with a choice of this server's artists."""

    prefix = "mimi:fix:"

    async def callback(self, interaction: discord.Interaction) -> None:
        """Offer the artists (and "someone new…"); the clip must still be on Discord."""

        async def pick() -> None:
            record = await _open(interaction, self.guess_id)
            if record.url is None:
                raise MimiError(Msg("feedback.expired"), code="expired")
            names = [a.name for a in await interaction.client.mimi.artists(record.guild_id)]  # type: ignore[attr-defined]
            picker = Picker(record, lang(interaction), names, interaction)
            await interaction.response.edit_message(view=picker)

        await _guarded(interaction, pick)


class Picker(discord.ui.View):
    """The artist select and a cancel button, in place of the guess's buttons for a while."""

    def __init__(
        self, record: GuessRecord, locale: str, names: list[str], origin: discord.Interaction
    ) -> None:
        super().__init__(timeout=PICK_TIMEOUT_S)
        self.record, self.locale, self.origin = record, locale, origin
        options = [discord.SelectOption(label=n[:100], value=n[:100]) for n in names[:MAX_CHOICES]]
        options.append(discord.SelectOption(label=say(locale, "feedback.someone_new"), value=NEW))
        select = discord.ui.Select(
            placeholder=say(locale, "feedback.pick"), options=options,
            custom_id=f"mimi:fix:pick:{record.id}",
        )  # fmt: skip
        select.callback = self._picked
        cancel = discord.ui.Button(
            label=say(locale, "button.cancel"), style=discord.ButtonStyle.secondary,
            custom_id=f"mimi:fix:cancel:{record.id}",
        )  # fmt: skip
        cancel.callback = self._cancel
        self.select = select
        self.add_item(select)
        self.add_item(cancel)

    def _restored(self) -> discord.ui.View:
        return feedback_view(self.record.id, self.locale, named=True)

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        """Only who may answer the guess."""
        if interaction.user.id == self.record.asked_by or can_manage(interaction):
            return True
        await interaction.response.send_message(
            say(interaction, "feedback.not_yours"), ephemeral=True
        )
        return False

    async def _picked(self, interaction: discord.Interaction) -> None:
        """An artist: teach the clip as theirs. "Someone new…": ask for the name first."""
        choice = self.select.values[0]
        if choice == NEW:
            await interaction.response.send_modal(NewArtist(self))
            return
        await _guarded(interaction, lambda: self.teach(interaction, choice))

    async def _cancel(self, interaction: discord.Interaction) -> None:
        """Back to the buttons."""
        self.stop()
        await interaction.response.edit_message(view=self._restored())

    async def on_timeout(self) -> None:
        """No choice in time: the buttons come back."""
        try:
            await self.origin.edit_original_response(view=self._restored())
        except discord.HTTPException:
            log.debug("could not restore the buttons of guess %s", self.record.id)

    async def teach(self, interaction: discord.Interaction, artist: str) -> None:
        """Teach the guessed clip as `artist` (as /teach would), record the correction, show
        it under the guess and schedule a retrain."""
        bot, record = interaction.client, self.record
        await interaction.response.defer()  # reading the clip takes a moment
        name = display_name(artist)
        await bot.mimi.check_quota(record.guild_id, name)  # type: ignore[attr-defined]
        upload = Upload(record.url or "", record.size, record.filename)
        data, limit = bot.settings.data_dir, bot.settings.max_upload_bytes  # type: ignore[attr-defined]
        with data_writes(data):
            async with downloaded(upload, data / "tmp", max_bytes=limit) as path:
                try:
                    song = await bot.mimi.teach(  # type: ignore[attr-defined]
                        record.guild_id, name, path, taught_by=record.asked_by,
                        filename=record.filename, channel_id=interaction.channel_id,
                        reason="correction",
                    )  # fmt: skip
                except DuplicateSong as dup:
                    raise MimiError(
                        Msg("feedback.duplicate", detail=dup.msg), code="duplicate"
                    ) from None
        await bot.mimi.answer_guess(  # type: ignore[attr-defined]
            record.guild_id, record.id, "corrected", song.artist, interaction.user.id
        )
        self.stop()
        done = say(self.locale, "feedback.done_fixed", artist=song.artist)
        await interaction.edit_original_response(view=done_view(done))
        private = bool(interaction.message and interaction.message.flags.ephemeral)
        text = say(
            self.locale, "feedback.learned", artist=song.artist, file=record.filename,
            id=str(song.id),
        )  # fmt: skip
        await interaction.followup.send(text, ephemeral=private)


class NewArtist(discord.ui.Modal):
    """ "Someone new…": the artist's name."""

    def __init__(self, picker: Picker) -> None:
        super().__init__(
            title=say(picker.locale, "feedback.new_title")[:45],
            custom_id=f"mimi:fix:new:{picker.record.id}",
            timeout=PICK_TIMEOUT_S,
        )
        self.picker = picker
        self.name = discord.ui.TextInput(
            label=say(picker.locale, "modal.artist_label")[:45],
            max_length=MAX_NAME_LENGTH,
            custom_id="artist",
        )
        self.add_item(self.name)

    async def on_submit(self, interaction: discord.Interaction) -> None:
        """Teach the clip as the artist named."""
        await _guarded(interaction, lambda: self.picker.teach(interaction, self.name.value))


class Feedback(commands.Cog):
    """Registers the persistent buttons."""

    def __init__(self, bot: MimiBot) -> None:
        self.bot = bot

    async def cog_load(self) -> None:
        """Buttons of guesses sent before a restart keep working."""
        self.bot.add_dynamic_items(RightButton, FixButton)

    async def cog_unload(self) -> None:
        """Stop handling them."""
        self.bot.remove_dynamic_items(RightButton, FixButton)


async def setup(bot: MimiBot) -> None:
    """Register the cog."""
    await bot.add_cog(Feedback(bot))
