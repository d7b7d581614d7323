"""Starting the bot (`mimi run`) and syncing its slash commands (`mimi sync-commands`)."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time

import discord

from bot.client import MimiBot, configure_endpoints, make_bot
from bot.config import Settings
from bot.errors import MimiError
from bot.health import HEARTBEAT_EVERY_S, heartbeat_path, write_heartbeat
from cogs.common import configure_downloads

log = logging.getLogger(__name__)

NO_TOKEN = (
    "DISCORD_TOKEN is not set: put DISCORD_TOKEN=<your bot token> in .env "
    "(see README, 'Discord application') or export it."
)
WAITING = (
    f"{NO_TOKEN} Waiting instead of exiting (MIMI_WAIT_FOR_TOKEN=1); `mimi health` fails until "
    "then. After editing .env, recreate the container: docker compose up -d"
)
NO_TOKEN_HEALTH = "no DISCORD_TOKEN: put DISCORD_TOKEN=<your bot token> in .env, then restart"
WAIT_LOG_EVERY_S = 60.0  # how often a token-less `mimi run` repeats what to do


def _token(settings: Settings) -> str:
    """The bot token, or a clear error saying how to provide it."""
    if not settings.discord_token:
        raise MimiError(NO_TOKEN)
    return settings.discord_token.reveal()


def serve(settings: Settings) -> int:
    """`mimi run`: the bot on Discord; without a token wait (Docker) or say what is missing."""
    if not settings.discord_token:
        if settings.wait_for_token:  # Docker: stay up (unhealthy) and say why, no restart loop
            return wait_for_token(settings)
        raise MimiError(NO_TOKEN)
    return run_bot(settings)  # (TensorFlow loads only in the training worker, on demand)


def run_bot(settings: Settings) -> int:
    """Connect to Discord and serve until stopped."""
    token = _token(settings)
    logging.getLogger().setLevel(settings.log_level.upper())
    configure_endpoints(settings)
    configure_downloads(settings)
    bot = make_bot(settings)
    try:
        bot.run(token, log_handler=None)
    except discord.LoginFailure:
        raise MimiError("Discord rejected DISCORD_TOKEN; copy the bot token again.") from None
    return 0


def wait_for_token(
    settings: Settings,
    *,
    log_every_s: float = WAIT_LOG_EVERY_S,
    beat_every_s: float = HEARTBEAT_EVERY_S,
    stop: threading.Event | None = None,
) -> int:
    """`mimi run` without a token under MIMI_WAIT_FOR_TOKEN: stay up instead of exiting (no
    restart loop), log what to put in .env every `log_every_s`, keep a "waiting" heartbeat so
    `mimi health` fails saying why, and return 0 on SIGTERM (or when `stop` is set)."""
    stop = stop or threading.Event()
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    path, started, failing = heartbeat_path(settings), time.time(), False

    def beat(state: str) -> None:
        nonlocal failing
        heartbeat = {
            "state": state,
            "pid": os.getpid(),
            "started_at": started,
            "written_at": time.time(),
            "interval_s": beat_every_s,
            "detail": NO_TOKEN_HEALTH,
        }
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_heartbeat(path, heartbeat)
            failing = False
        except OSError as err:
            if not failing:
                log.warning("cannot write the heartbeat %s: %s", path, err)
            failing = True

    try:
        next_log = time.monotonic()
        while True:
            if time.monotonic() >= next_log:
                log.warning(WAITING)
                next_log += log_every_s
            beat("waiting")
            if stop.wait(max(0.0, min(beat_every_s, next_log - time.monotonic()))):
                log.warning("SIGTERM: stopped waiting for DISCORD_TOKEN")
                return 0
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        beat("stopped")


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
