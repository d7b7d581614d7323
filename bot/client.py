"""The Discord client: one Bot subclass that opens the services and loads the cogs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import signal
import time
from typing import Any

import discord
import yarl
from discord import app_commands
from discord.ext import commands

from bot import i18n
from bot.config import Settings
from bot.discord_i18n import Translator, lang, safe
from bot.errors import MimiError
from bot.executors import Backend, LocalBackend, backend_for
from bot.health import HEARTBEAT_EVERY_S, heartbeat_path, write_heartbeat
from bot.inference import InferenceService, audio_pool
from bot.privacy import PurgeSchedule
from bot.replies import send_error
from bot.service import GuildChanged, Mimi
from bot.training import TrainingService

log = logging.getLogger(__name__)

EXTENSIONS = (
    "cogs.teach",
    "cogs.guess",
    "cogs.stats",
    "cogs.manage",
    "cogs.status",
    "cogs.help",
    "cogs.songs",
    "cogs.feedback",
    "cogs.chat",
)
STALL_WARN_S = 0.1  # log any event-loop stall longer than this


def configure_endpoints(settings: Settings) -> None:
    """Point discord.py at a Discord-compatible server when the settings say so."""
    if settings.discord_api_base:
        discord.http.Route.BASE = settings.discord_api_base.rstrip("/")
    if settings.discord_gateway_url:
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(settings.discord_gateway_url)


class MimiBot(commands.Bot):
    """mimi on Discord: slash commands, message menus and mentions, guild-only, no privileged
    intents (GUILD_MESSAGES brings messages; Discord shows their content only when they
    mention mimi)."""

    def __init__(
        self,
        settings: Settings,
        *,
        guild_ready_timeout: float = 2.0,
        heartbeat_every_s: float = HEARTBEAT_EVERY_S,
        **client_options: Any,
    ) -> None:
        intents = discord.Intents.none()
        intents.guilds = True
        intents.guild_messages = True  # not privileged; message_content stays off
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=intents,
            help_command=None,
            allowed_mentions=discord.AllowedMentions.none(),
            guild_ready_timeout=guild_ready_timeout,
            **client_options,
        )
        self.settings = settings
        # Where compute runs: spawned processes here, or a Dask cluster (MIMI_DASK_SCHEDULER).
        self.backend: Backend = LocalBackend()
        # One pool reads uploads and answers guesses: both need the same front-end.
        self.audio_pool = audio_pool(settings)
        self.mimi: Mimi
        self.training: TrainingService
        self.inference: InferenceService
        self._stall_task: asyncio.Task | None = None
        self.max_stall_s = 0.0
        self.cooldowns: dict[str, dict] = {}  # setting -> (guild, user) -> Cooldown
        self.purges: PurgeSchedule
        self._housekeeping_task: asyncio.Task | None = None
        self.started_at = time.time()
        self.heartbeat_every_s = heartbeat_every_s
        self._heartbeat_task: asyncio.Task | None = None
        self._sigterm_task: asyncio.Future | None = None
        self._gateway_down_since: float | None = self.started_at
        self.add_listener(self._gateway_up, "on_connect")
        self.add_listener(self._gateway_up, "on_resumed")
        self.add_listener(self._gateway_down, "on_disconnect")

    async def setup_hook(self) -> None:
        """Open the store and the worker pools, then load every cog."""
        from bot import text

        if self.settings.dask_scheduler:  # connected here, off the event loop
            self.backend = await asyncio.to_thread(backend_for, self.settings)
            self.audio_pool = audio_pool(self.settings, self.backend)
        self.audio_pool.start()
        if missing := await asyncio.to_thread(text.missing_fonts):  # said once, never fatal
            log.warning("%s", missing)
        self.mimi = await Mimi.open(self.settings, run=self.audio_pool.run)
        self.training = TrainingService(self.settings, self.mimi.store, backend=self.backend)
        self.mimi.subscribe(self._guild_changed)  # teach/forget/retrain -> a (debounced) training
        await self.training.start()
        await self.training.resume()
        self.inference = InferenceService(self.settings, self.audio_pool)
        self.purges = PurgeSchedule(
            self.mimi, self.settings.purge_after_days, before_purge=self._stop_training
        )
        self.add_listener(self._guild_removed, "on_guild_remove")
        self.add_listener(self._guild_joined, "on_guild_join")
        self.add_listener(self._guild_joined, "on_guild_available")
        self.add_listener(self._ready_guilds, "on_ready")
        self.tree.on_error = self.on_app_command_error
        await self.tree.set_translator(Translator())
        for extension in EXTENSIONS:
            await self.load_extension(extension)
        self._stall_task = asyncio.create_task(self._watch_stalls())
        self._heartbeat_task = asyncio.create_task(self._heartbeat())
        self._housekeeping_task = asyncio.create_task(self._housekeeping())
        with contextlib.suppress(NotImplementedError, RuntimeError):  # no signals off Unix
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, self._on_sigterm)

    def _on_sigterm(self) -> None:
        """`docker stop`: close the gateway and the workers, then `run()` returns (exit 0)."""
        log.info("SIGTERM: shutting down")
        self._sigterm_task = asyncio.ensure_future(self.close())

    async def close(self) -> None:
        """Stop listening first, then the services, then the connection."""
        for task in (self._stall_task, self._heartbeat_task, self._housekeeping_task):
            if task is not None:
                task.cancel()
        with contextlib.suppress(NotImplementedError, RuntimeError):
            asyncio.get_running_loop().remove_signal_handler(signal.SIGTERM)
        if self._heartbeat_task is not None:
            with contextlib.suppress(OSError):
                beat = {"state": "stopped", "pid": os.getpid(), "written_at": time.time()}
                write_heartbeat(heartbeat_path(self.settings), beat)
        for name in ("training", "inference"):
            service = getattr(self, name, None)
            if service is not None:
                await service.close()
        await self.audio_pool.close()
        await asyncio.to_thread(self.backend.close)
        if hasattr(self, "mimi"):
            await self.mimi.close()
        await super().close()

    async def on_message(self, message: discord.Message) -> None:
        """No prefix commands: mentions are answered by the chat cog's listener."""

    def _guild_changed(self, event: GuildChanged) -> None:
        """A server's songs changed: train it once it goes quiet (at once for a retrain)."""
        self.training.request(event.guild_id, event.reason, quiet_s=event.quiet_s)

    async def _stop_training(self, guild_id: int) -> None:
        """Before a server's data goes: drop its queued training, wait out a running one."""
        self.training.cancel(guild_id)
        await self.training.wait_idle(guild_id)

    async def _guild_removed(self, guild: discord.Guild) -> None:
        """mimi was removed from a server: its data goes after the grace period."""
        await self.purges.removed(guild.id)

    async def _guild_joined(self, guild: discord.Guild) -> None:
        """mimi was added (back): a scheduled deletion is cancelled."""
        await self.purges.returned(guild.id)

    async def _ready_guilds(self) -> None:
        """Servers mimi is in keep their data; servers that removed it while it was offline
        are scheduled for deletion like any removal."""
        present = {g.id for g in self.guilds}
        for guild_id in present:
            await self.purges.returned(guild_id)
        await self.purges.orphans(present)

    async def _housekeeping(self) -> None:
        """Delete what fell due (deletions, old guess links) now and every purge_check_s."""
        while True:
            try:
                await self.purges.housekeeping()
            except Exception:
                log.exception("housekeeping failed")
            await asyncio.sleep(self.settings.purge_check_s)

    async def _gateway_up(self) -> None:
        """Connected (or resumed): the gateway is up."""
        self._gateway_down_since = None

    async def _gateway_down(self) -> None:
        """Disconnected: remember since when."""
        self._gateway_down_since = self._gateway_down_since or time.time()

    async def health_snapshot(self) -> dict:
        """Database, worker pools (healing any that died idle) and gateway, as one dict."""
        try:
            await asyncio.wait_for(self.mimi.ping(), 10)
            database: dict = {"ok": True}
        except Exception as err:  # the heartbeat reports it; `mimi health` fails on it
            database = {"ok": False, "error": str(err) or type(err).__name__}
        audio = {
            "state": self.audio_pool.heal(),
            "pids": self.audio_pool.pids(),
            "queued": self.audio_pool.queued(),
        }
        # "reading" and "guessing" name the same shared pool (kept for tools that read them).
        pools = {"audio": audio, "reading": audio, "guessing": audio}
        pools["training"] = {"state": self.training.heal(), "pids": self.training.worker_pids()}
        latency = self.latency
        return {
            "state": "running",
            "pid": os.getpid(),
            "started_at": self.started_at,
            "written_at": time.time(),
            "interval_s": self.heartbeat_every_s,
            "database": database,
            "pools": pools,
            "gateway": {
                "connected": self._gateway_down_since is None and not self.is_closed(),
                "down_since": self._gateway_down_since,
                "latency_ms": latency * 1000 if math.isfinite(latency) else None,
                "guilds": len(self.guilds),
            },
        }

    async def _heartbeat(self) -> None:
        """Rewrite the heartbeat file every few seconds for `mimi health` (and Docker)."""
        path, failing = heartbeat_path(self.settings), False
        while True:
            try:
                beat = await self.health_snapshot()
                write_heartbeat(path, beat)  # a few hundred bytes: no thread, no race with close
                failing = False
            except OSError as err:
                if not failing:
                    log.warning("cannot write the heartbeat %s: %s", path, err)
                failing = True
            except Exception:
                log.exception("heartbeat failed")
            await asyncio.sleep(self.heartbeat_every_s)

    async def _watch_stalls(self) -> None:
        """Measure event-loop lag every 50 ms and log stalls above 100 ms."""
        interval = 0.05
        while True:
            before = time.perf_counter()
            await asyncio.sleep(interval)
            lag = time.perf_counter() - before - interval
            self.max_stall_s = max(self.max_stall_s, lag)
            if lag > STALL_WARN_S:
                log.warning("event loop stalled for %.0f ms", lag * 1000)

    async def on_app_command_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        """The one error handler: short, specific, ephemeral; unexpected ones logged."""
        original, locale = getattr(error, "original", error), lang(interaction)
        view = None
        if isinstance(original, MimiError):
            message = original.text(locale, safe)
        elif isinstance(error, app_commands.CommandOnCooldown):
            from cogs.retry import retry_offer  # (the cogs' view; loaded with them)

            wait = i18n.Seconds(max(1, round(error.retry_after)))
            view = retry_offer(interaction, error)
            key = "error.cooldown" if view is None else "error.cooldown_retry"
            message = i18n.t(locale, key, wait=wait)
        elif isinstance(error, app_commands.MissingPermissions):
            message = i18n.t(locale, "error.manage_guild")
        elif isinstance(error, app_commands.NoPrivateMessage):
            message = i18n.t(locale, "error.guild_only")
        elif isinstance(error, app_commands.CheckFailure):
            message = i18n.t(locale, "error.check_failed")
        else:
            log.exception("interaction %s failed", interaction.id, exc_info=original)
            message = i18n.t(locale, "error.unexpected")
        await send_error(interaction, message, view=view)


class ShardedMimiBot(MimiBot, commands.AutoShardedBot):
    """The same bot over several gateway shards (MIMI_SHARDS), for very many servers."""


def make_bot(settings: Settings, **options: Any) -> MimiBot:
    """The bot the settings ask for: one gateway connection, or AutoShardedBot with
    MIMI_SHARDS shards (-1: as many as Discord recommends)."""
    if settings.shards == 0:
        return MimiBot(settings, **options)
    count = None if settings.shards < 0 else settings.shards
    return ShardedMimiBot(settings, shard_count=count, **options)
