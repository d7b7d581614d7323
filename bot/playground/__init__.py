"""`mimi playground`: the real bot (same MimiBot, cogs, workers) against a built-in
Discord-compatible server on 127.0.0.1, and a page in the browser that looks like a Discord
channel, so mimi can be tried without a Discord application."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ipaddress
import logging
import signal
from collections.abc import Callable
from pathlib import Path

from aiohttp import web

from bot.config import Settings

log = logging.getLogger(__name__)
DEFAULT_DATA_DIR = Path("playground-data")  # never a real bot's data
DEFAULT_PORT = 8765


def loopback(host: str) -> bool:
    """Whether `host` only listens on this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def serve(
    settings: Settings,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    *,
    ready: Callable[[str], None] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Run the stand-in, the bot and the page until `stop` is set (or SIGINT/SIGTERM);
    `ready(url)` is called once the page answers."""
    from bot.client import MimiBot
    from bot.discord_local import DiscordStandIn, running_bot
    from bot.playground.page import MEMBERS, SERVERS, Playground, app
    from cogs.common import configure_downloads

    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    async with DiscordStandIn(bot_name="mimi", ack_deadline=3.0) as standin:
        for server in SERVERS:
            standin.add_guild(server.id, server.name, locale=server.locale)
        standin.usernames.update({m.id: m.name for m in MEMBERS})
        local = dataclasses.replace(
            settings, discord_api_base=standin.api_base, discord_gateway_url=standin.gateway_url
        )
        configure_downloads(local)
        bot = MimiBot(local, guild_ready_timeout=0.1)
        async with running_bot(standin, bot, token="playground", timeout=180):
            await bot.tree.sync()  # the composer offers what mimi registered
            for sig in (signal.SIGINT, signal.SIGTERM):  # (in place of the bot's own handler)
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.add_signal_handler(sig, stop.set)
            runner = web.AppRunner(app(Playground(standin)), access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, host, port)
            await site.start()
            bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
            url = f"http://{shown}:{bound}/"
            if ready is not None:
                ready(url)
            try:
                await stop.wait()
            finally:
                await runner.cleanup()


def playground_from_cli(
    data_dir: Path | None, host: str = "127.0.0.1", port: int = DEFAULT_PORT, *, why: str = ""
) -> int:
    """The local playground on its own data dir (./playground-data unless --data-dir)."""
    return run(Settings.load(data_dir=data_dir or DEFAULT_DATA_DIR), host, port, why=why)


def run(settings: Settings, host: str, port: int, *, why: str = "") -> int:
    """`mimi playground` (and `make run` without a token): serve until Ctrl-C."""
    logging.getLogger().setLevel(settings.log_level.upper())
    if not loopback(host):
        log.warning(
            "the playground listens on %s: it has no accounts, so anyone who can reach this "
            "address can teach, guess and forget",
            host,
        )

    def ready(url: str) -> None:
        print(f"mimi playground: open {url}{why} (Ctrl-C stops it; data in "
              f"{settings.data_dir})", flush=True)  # fmt: skip

    asyncio.run(serve(settings, host, port, ready=ready))
    return 0
