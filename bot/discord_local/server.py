"""A Discord stand-in on 127.0.0.1: REST API + gateway websocket + CDN on one aiohttp app.

It speaks just enough of Discord's v10 API for the real discord.py 2.7 client (a
``commands.Bot`` with slash commands) to log in, receive READY/GUILD_CREATE, get
INTERACTION_CREATE dispatches, answer them (callback, followups, edits of the
original) and download/upload attachments. Everything the bot does is recorded
(``requests``, ``messages``, per-interaction timelines) for tests to assert on.

Point the client at it with::

    discord.http.Route.BASE = standin.api_base
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(standin.gateway_url)

The route families are mixins in the sibling modules (``records`` holds what is recorded and
the shared state; ``gateway``, ``rest``, ``interactions``, ``responses``, ``messages``,
``guilds``, ``cdn``, ``members``); this module composes them and owns the app, the REST route
table and ``running_bot``.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from .cdn import Cdn
from .gateway import Gateway
from .guilds import GuildsApi
from .interactions import _COMMAND_NAME, _LOCALES, InteractionsApi, _check_command
from .members import MemberActions
from .messages import MessagesApi
from .records import (
    ATTACHMENT_SIZE_LIMIT,
    EPHEMERAL,
    JSON,
    LOADING,
    Attachment,
    Interaction,
    Message,
    Request,
    Response,
    _Guild,
)
from .responses import (
    AUTOCOMPLETE_RESULT,
    CHANNEL_MESSAGE,
    DEFERRED_MESSAGE,
    DEFERRED_UPDATE,
    MODAL,
    PONG,
    UPDATE_MESSAGE,
    ResponsesApi,
    _check_modal,
)
from .rest import Handler, RestApi, _Failure, _HTTPError, _json, log

# every name this module defined before the route families moved out
__all__ = [
    "ATTACHMENT_SIZE_LIMIT",
    "AUTOCOMPLETE_RESULT",
    "CHANNEL_MESSAGE",
    "DEFERRED_MESSAGE",
    "DEFERRED_UPDATE",
    "EPHEMERAL",
    "JSON",
    "LOADING",
    "MODAL",
    "PONG",
    "UPDATE_MESSAGE",
    "_COMMAND_NAME",
    "_LOCALES",
    "Attachment",
    "DiscordStandIn",
    "Handler",
    "Interaction",
    "MemberActions",
    "Message",
    "Request",
    "Response",
    "_Failure",
    "_Guild",
    "_HTTPError",
    "_check_command",
    "_check_modal",
    "_json",
    "log",
    "running_bot",
]


class DiscordStandIn(
    Gateway,
    RestApi,
    InteractionsApi,
    ResponsesApi,
    MessagesApi,
    GuildsApi,
    Cdn,
    MemberActions,
):
    """Loopback Discord: REST (``api_base``), gateway (``gateway_url``) and CDN on one port."""

    def __init__(
        self,
        *,
        app_id: int = 1000,
        bot_user_id: int = 1001,
        heartbeat_ms: int = 45000,
        owner_id: int = 2000,
        bot_name: str = "mimi-test",
        ack_deadline: float | None = None,
    ) -> None:
        self.app_id = app_id
        self.bot_user_id = bot_user_id
        self.heartbeat_ms = heartbeat_ms
        self.owner_id = owner_id
        self.bot_name = bot_name
        # Discord drops interactions not acknowledged within 3 s; set 3.0 to enforce it
        # (a late callback then gets 404 Unknown interaction, like the real API).
        self.ack_deadline = ack_deadline

        self.api_base = ""
        self.gateway_url = ""
        self.cdn_base = ""
        self.port = 0

        self.identifies = 0
        self.resumes = 0
        self.heartbeats = 0
        self.identify_payloads: list[JSON] = []
        self.gateway_received: list[JSON] = []  # every op the client sent, in order
        self.requests: list[Request] = []
        self.unknown_routes: list[Request] = []
        self.messages: list[Message] = []
        self.interactions: list[Interaction] = []
        self._commands: dict[int | None, list[JSON]] = {}  # None = global
        self.usernames: dict[int, str] = {}  # user id -> username (default "user<id>")

        self._guilds: dict[int, _Guild] = {}
        self._files: dict[int, Attachment] = {}
        self._channel_messages: dict[int, JSON] = {}
        self._message_files: dict[int, dict[int, bytes]] = {}  # message id -> att id -> bytes
        self._by_token: dict[str, Interaction] = {}
        self._by_id: dict[int, Interaction] = {}
        self._failures: list[_Failure] = []

        self._runner: web.AppRunner | None = None
        self._cond = asyncio.Condition()
        self._ws: web.WebSocketResponse | None = None  # the live, identified/resumed socket
        self._sockets: dict[web.WebSocketResponse, asyncio.BaseTransport | None] = {}
        self._send_lock = asyncio.Lock()
        self._session_id: str | None = None
        self._seq = 0
        self._ready_sent = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._routes = self._build_routes()

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)  # uploads up to 25 MiB+
        app.router.add_get("/gateway", self._gateway)
        app.router.add_route("*", "/api/v{version:\\d+}/{tail:.*}", self._rest)
        app.router.add_get("/attachments/{tail:.*}", self._cdn)
        app.router.add_route("*", "/{tail:.*}", self._not_found)
        self._runner = web.AppRunner(app, shutdown_timeout=1.0, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None and server.sockets  # type: ignore[attr-defined]
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        root = f"127.0.0.1:{self.port}"
        self.api_base = f"http://{root}/api/v10"
        self.gateway_url = f"ws://{root}/gateway"
        self.cdn_base = f"http://{root}"

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for ws in list(self._sockets):
            await ws.close(code=1001)
        self._ws = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> DiscordStandIn:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------------ REST routes

    def _build_routes(self) -> list[tuple[str, re.Pattern[str], Handler]]:
        S = r"([^/]+)"
        table: list[tuple[str, str, Handler]] = [
            ("GET", r"/users/@me", self._get_me),
            ("GET", r"/users/(\d+)", self._get_user),
            ("GET", r"/oauth2/applications/@me", self._get_application),
            ("GET", r"/applications/@me", self._get_application),
            ("GET", r"/gateway", self._get_gateway),
            ("GET", r"/gateway/bot", self._get_gateway),
            ("GET", r"/applications/(\d+)/commands", self._get_commands),
            ("PUT", r"/applications/(\d+)/commands", self._put_commands),
            ("GET", r"/applications/(\d+)/guilds/(\d+)/commands", self._get_commands),
            ("PUT", r"/applications/(\d+)/guilds/(\d+)/commands", self._put_commands),
            ("POST", rf"/interactions/(\d+)/{S}/callback", self._callback),
            ("POST", rf"/webhooks/(\d+)/{S}", self._webhook_execute),
            ("GET", rf"/webhooks/(\d+)/{S}/messages/{S}", self._webhook_get),
            ("PATCH", rf"/webhooks/(\d+)/{S}/messages/{S}", self._webhook_edit),
            ("DELETE", rf"/webhooks/(\d+)/{S}/messages/{S}", self._webhook_delete),
            ("GET", r"/channels/(\d+)", self._get_channel),
            ("POST", r"/channels/(\d+)/typing", self._no_content),
            ("POST", r"/channels/(\d+)/messages", self._channel_post),
            ("GET", r"/channels/(\d+)/messages/(\d+)", self._channel_get),
            ("PATCH", r"/channels/(\d+)/messages/(\d+)", self._channel_edit),
            ("DELETE", r"/channels/(\d+)/messages/(\d+)", self._channel_delete),
            ("GET", r"/guilds/(\d+)", self._get_guild),
            ("GET", r"/guilds/(\d+)/channels", self._get_guild_channels),
            ("GET", r"/guilds/(\d+)/members/(\d+)", self._get_member),
        ]
        return [(m, re.compile(p), h) for m, p, h in table]


@contextlib.asynccontextmanager
async def running_bot(
    standin: DiscordStandIn, bot: Any, *, token: str = "test-token", timeout: float = 20
) -> AsyncIterator[Any]:
    """Point discord.py at ``standin``, run ``bot.start(token)`` until on_ready, yield the bot;
    then ``bot.close()`` and restore discord.py's URLs. The bot should be built with a small
    ``guild_ready_timeout`` (e.g. 0.1): on_ready waits that long after the last GUILD_CREATE."""
    import discord
    import yarl

    route_cls, ws_cls = discord.http.Route, discord.gateway.DiscordWebSocket
    old_base, old_gateway = route_cls.BASE, ws_cls.DEFAULT_GATEWAY
    route_cls.BASE = standin.api_base
    ws_cls.DEFAULT_GATEWAY = yarl.URL(standin.gateway_url)
    task = asyncio.create_task(bot.start(token), name="standin-bot")
    try:
        deadline = time.monotonic() + timeout
        while not bot.is_ready():
            if task.done():
                task.result()  # raises the login/connect error
                raise RuntimeError("bot.start() returned before on_ready")
            if time.monotonic() > deadline:
                raise TimeoutError(f"bot not ready after {timeout}s; {standin._diagnostics()}")
            await asyncio.sleep(0.02)
        yield bot
    finally:
        await bot.close()
        try:
            await asyncio.wait_for(task, 10)
        except Exception:
            log.exception("bot task ended with an error")
        route_cls.BASE, ws_cls.DEFAULT_GATEWAY = old_base, old_gateway
