"""A yes/no question under a reply: only the member who asked may answer, and only for a while."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable

import discord

from bot.discord_i18n import lang, say

log = logging.getLogger(__name__)
CONFIRM_TIMEOUT_S = 60.0

Action = Callable[[], Awaitable[str]]


class Confirm(discord.ui.View):
    """Two buttons; "confirm" runs `action` and shows what it says, "cancel" changes nothing."""

    def __init__(
        self, owner_id: int, locale: str, action: Action, *, timeout: float = CONFIRM_TIMEOUT_S
    ) -> None:
        super().__init__(timeout=timeout)
        self.owner_id, self.locale, self.action = owner_id, locale, action
        self.answered: bool | None = None
        self.message: discord.InteractionMessage | None = None
        yes = discord.ui.Button(
            label=say(locale, "button.confirm"), style=discord.ButtonStyle.danger,
            custom_id="mimi:confirm",
        )  # fmt: skip
        no = discord.ui.Button(
            label=say(locale, "button.cancel"), style=discord.ButtonStyle.secondary,
            custom_id="mimi:cancel",
        )  # fmt: skip
        yes.callback, no.callback = self._confirm, self._cancel
        self.add_item(yes)
        self.add_item(no)

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        """Only the member who asked may answer."""
        if interaction.user.id == self.owner_id:
            return True
        await interaction.response.send_message(
            say(interaction, "confirm.not_yours"), ephemeral=True
        )
        return False

    async def _confirm(self, interaction: discord.Interaction) -> None:
        """Run the action once, then show its result in place of the question."""
        self.stop()
        self.answered = True
        await interaction.response.defer()  # the action may take a moment
        text = await self.action()
        await interaction.edit_original_response(content=text, view=None)

    async def _cancel(self, interaction: discord.Interaction) -> None:
        """Change nothing and say so."""
        self.stop()
        self.answered = False
        content = say(self.locale, "confirm.cancelled")
        await interaction.response.edit_message(content=content, view=None)

    async def on_timeout(self) -> None:
        """No answer in time: the buttons go, nothing changes."""
        if self.message is not None:
            with contextlib.suppress(discord.HTTPException):
                content = say(self.locale, "confirm.expired")
                await self.message.edit(content=content, view=None)

    async def on_error(
        self, interaction: discord.Interaction, error: Exception, item: discord.ui.Item
    ) -> None:
        """Errors go through the bot's one error handler (private, in the member's language)."""
        await interaction.client.on_app_command_error(interaction, error)  # type: ignore[attr-defined]


async def ask(interaction: discord.Interaction, question: str, action: Action) -> Confirm:
    """Ask the invoker `question` privately with confirm/cancel buttons."""
    view = Confirm(interaction.user.id, lang(interaction), action)
    await interaction.response.send_message(question, view=view, ephemeral=True)
    view.message = await interaction.original_response()
    return view
