"""A Discord-compatible server on 127.0.0.1 (REST + gateway + CDN): the real discord.py client
talks to it in the tests and in `mimi playground`."""

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
