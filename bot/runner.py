"""Starting the bot (`mimi run`) and syncing its slash commands (`mimi sync-commands`)."""

from __future__ import annotations

import logging

import discord

from bot.client import MimiBot, configure_endpoints
from bot.config import Settings
from bot.errors import MimiError

NO_TOKEN = (
    "DISCORD_TOKEN is not set: put DISCORD_TOKEN=<your bot token> in .env "
    "(see README, 'Discord application') or export it."
)


def _token(settings: Settings) -> str:
    """The bot token, or a clear error saying how to provide it."""
    if not settings.discord_token:
        raise MimiError(NO_TOKEN)
    return settings.discord_token.reveal()


def run_bot(settings: Settings) -> int:
    """Connect to Discord and serve until stopped."""
    token = _token(settings)
    logging.getLogger().setLevel(settings.log_level.upper())
    configure_endpoints(settings)
    bot = MimiBot(settings)
    try:
        bot.run(token, log_handler=None)
    except discord.LoginFailure:
        raise MimiError("Discord rejected DISCORD_TOKEN; copy the bot token again.") from None
    return 0


async def sync_commands(settings: Settings, guild_id: int | None) -> list[str]:
    """Register the slash commands globally, or instantly for one test server."""
    token = _token(settings)
    configure_endpoints(settings)
    async with MimiBot(settings) as bot:
        try:
            await bot.login(token)
        except discord.LoginFailure:
            raise MimiError("Discord rejected DISCORD_TOKEN; copy the bot token again.") from None
        if guild_id is None:
            synced = await bot.tree.sync()
        else:
            guild = discord.Object(guild_id)
            bot.tree.copy_global_to(guild=guild)
            synced = await bot.tree.sync(guild=guild)
    return [command.name for command in synced]
