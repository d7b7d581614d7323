"""After a cooldown: a "Try again" button that reruns the command with the same options and
attachments, so nothing has to be attached again."""

from __future__ import annotations

import contextlib

import discord
from discord import app_commands

from bot import i18n
from bot.discord_i18n import lang, say
from cogs.common import spend_cooldown

MIN_OFFER_S = 300.0  # the button stays at least this long (Discord keeps attachments longer)


class Retry(discord.ui.View):
    """One button for the member who met the cooldown; pressed early, it says how long is left."""

    def __init__(self, origin: discord.Interaction, setting: str, wait: float) -> None:
        super().__init__(timeout=max(MIN_OFFER_S, wait + 120))
        self.origin, self.setting = origin, setting
        self.command: app_commands.Command = origin.command  # type: ignore[assignment]
        self.options = {
            p.name: getattr(origin.namespace, p.display_name, None) for p in self.command.parameters
        }
        button = discord.ui.Button(
            label=say(lang(origin), "button.retry"), style=discord.ButtonStyle.primary,
            custom_id="mimi:retry",
        )  # fmt: skip
        button.callback = self._retry
        self.add_item(button)

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        """Only the member whose command it was."""
        if interaction.user.id == self.origin.user.id:
            return True
        await interaction.response.send_message(
            say(interaction, "confirm.not_yours"), ephemeral=True
        )
        return False

    async def _retry(self, interaction: discord.Interaction) -> None:
        """Still cooling down: say for how long; else run the command again, as it was."""
        wait = spend_cooldown(
            interaction.client, self.setting, interaction.guild_id or 0, interaction.user.id
        )
        if wait:
            text = say(interaction, "error.cooldown", wait=i18n.Seconds(max(1, round(wait))))
            await interaction.response.send_message(text, ephemeral=True)
            return
        self.stop()
        with contextlib.suppress(discord.HTTPException):  # the offer has been taken
            await self.origin.edit_original_response(view=None)
        try:
            await self.command.callback(self.command.binding, interaction, **self.options)
        except Exception as err:  # the bot's one handler answers, privately
            wrapped = app_commands.CommandInvokeError(self.command, err)
            await interaction.client.on_app_command_error(interaction, wrapped)  # type: ignore[attr-defined]


def retry_offer(
    interaction: discord.Interaction, error: app_commands.CommandOnCooldown
) -> Retry | None:
    """The button to offer after `error`, for commands with a shared cooldown."""
    setting = interaction.extras.get("retry_setting")
    if setting is None or not isinstance(interaction.command, app_commands.Command):
        return None
    return Retry(interaction, setting, error.retry_after)
