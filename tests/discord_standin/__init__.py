"""The loopback Discord the end-to-end tests drive the real discord.py client against (it lives
in `bot/discord_local`, because `mimi playground` runs the bot against it too)."""

from bot.discord_local import *  # noqa: F403  (the same names, for the tests' imports)
from bot.discord_local import __all__  # noqa: F401
