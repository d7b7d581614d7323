"""A loopback Discord (REST + gateway + CDN) for end-to-end tests of the real discord.py client."""

from .server import (
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
