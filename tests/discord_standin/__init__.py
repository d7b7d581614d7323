"""The loopback Discord the end-to-end tests drive the real discord.py client against (it lives
in `bot/discord_local`, because `mimi playground` runs the bot against it too)."""

from bot.discord_local import (
    Attachment,
    DiscordStandIn,
    Interaction,
    Message,
    Request,
    Response,
    running_bot,
)

__all__ = [
    "Attachment",
    "DiscordStandIn",
    "Interaction",
    "Message",
    "Request",
    "Response",
    "running_bot",
]
