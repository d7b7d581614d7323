"""Replies the cogs and the error handler share: a public deferral that an error can still
turn private, and a private error reply whatever state the interaction is in."""

from __future__ import annotations

import contextlib
import logging

import discord

log = logging.getLogger(__name__)


async def defer_public(interaction: discord.Interaction) -> None:
    """Defer with a public "thinking…", remembering it so an error can still be private."""
    interaction.extras["public_defer"] = True
    await interaction.response.defer(thinking=True)


async def send_error(
    interaction: discord.Interaction, message: str, *, view: discord.ui.View | None = None
) -> None:
    """Answer with `message` (and `view`) only the user can see, whatever state the
    interaction is in."""
    extra = {} if view is None else {"view": view}
    try:
        if not interaction.response.is_done():
            await interaction.response.send_message(message, ephemeral=True, **extra)
            return
        if interaction.extras.get("public_defer"):
            with contextlib.suppress(discord.HTTPException):  # hide the public placeholder
                await interaction.delete_original_response()
        await interaction.followup.send(message, ephemeral=True, **extra)
    except discord.HTTPException:
        log.warning("could not deliver an error to interaction %s", interaction.id)
