"""Helpers the cogs share: safe text, cooldowns, attachment downloads, the status channel."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import discord
from discord import app_commands

from bot.audio import describe_seconds
from bot.errors import MimiError

MANAGE_GUILD = discord.Permissions(manage_guild=True)


def safe(text: str) -> str:
    """User text made inert for Discord: no mentions, no markdown."""
    return discord.utils.escape_markdown(discord.utils.escape_mentions(text))


def cooldown(setting: str):
    """A per-user, per-server cooldown whose length comes from the bot's settings."""

    def factory(interaction: discord.Interaction) -> app_commands.Cooldown | None:
        seconds = getattr(interaction.client.settings, setting)
        return app_commands.Cooldown(1, seconds) if seconds > 0 else None

    return app_commands.checks.dynamic_cooldown(factory, key=lambda i: (i.guild_id, i.user.id))


def shown_filename(name: str, limit: int = 100) -> str:
    """An uploader-chosen file name fit for a reply: base name, printable, cut, inert."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    text = "".join(ch for ch in base if ch.isprintable()) or "upload"
    return safe(text if len(text) <= limit else text[: limit - 1] + "…")


def check_size(attachment: discord.Attachment, max_bytes: int) -> None:
    """Refuse an attachment over the size limit before downloading a byte of it."""
    if attachment.size > max_bytes:
        raise MimiError(
            f"{shown_filename(attachment.filename)} is too big "
            f"({attachment.size / 2**20:.1f} MB; "
            f"the limit is {max_bytes / 2**20:.0f} MB).",
            code="too_big",
        )


@contextlib.asynccontextmanager
async def downloaded(attachment: discord.Attachment, folder: Path) -> AsyncIterator[Path]:
    """The attachment saved to a private temporary file, removed afterwards."""
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        path = Path(tmp) / "upload"
        try:
            data = await attachment.read()
        except discord.HTTPException:
            raise MimiError("I couldn't download that attachment; please try again.") from None
        path.write_bytes(data)
        yield path


async def artist_choices(
    interaction: discord.Interaction, current: str
) -> list[app_commands.Choice[str]]:
    """Autocomplete: this server's artists whose names contain what is typed so far."""
    if interaction.guild_id is None:
        return []
    typed = current.casefold()
    names = [a.name for a in await interaction.client.mimi.artists(interaction.guild_id)]
    return [app_commands.Choice(name=n, value=n) for n in names if typed in n.casefold()][:25]


def remember_channel(interaction: discord.Interaction) -> None:
    """Training news for this server goes to the channel of its latest teach/forget/retrain."""
    if interaction.guild_id is not None and interaction.channel_id is not None:
        interaction.client.status_channels[interaction.guild_id] = interaction.channel_id


def length(seconds: float) -> str:
    """A song length for replies."""
    return describe_seconds(seconds)
