"""A Discord stand-in on 127.0.0.1: REST API + gateway websocket + CDN on one aiohttp app.

It speaks just enough of Discord's v10 API for the real discord.py 2.7 client (a
``commands.Bot`` with slash commands) to log in, receive READY/GUILD_CREATE, get
INTERACTION_CREATE dispatches, answer them (callback, followups, edits of the
original) and download/upload attachments. Everything the bot does is recorded
(``requests``, ``messages``, per-interaction timelines) for tests to assert on.

Point the client at it with::

    discord.http.Route.BASE = standin.api_base
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(standin.gateway_url)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from aiohttp import WSMsgType, web

from . import payloads as P
from .members import MemberActions

log = logging.getLogger("discord_standin")

JSON = dict[str, Any]
EPHEMERAL = 1 << 6
LOADING = 1 << 7
ATTACHMENT_SIZE_LIMIT = 10 * 1024 * 1024

# interaction callback types
PONG, CHANNEL_MESSAGE, DEFERRED_MESSAGE, DEFERRED_UPDATE, UPDATE_MESSAGE = 1, 4, 5, 6, 7
AUTOCOMPLETE_RESULT, MODAL = 8, 9


class Attachment(dict):
    """A hosted file, as the attachment object Discord sends (dict), plus typed accessors."""

    data: bytes
    # add_stream: (bytes to serve, chunk size, send Content-Length); served lazily, never held
    stream: tuple[int, int, bool] | None = None
    served: int = 0  # body bytes the CDN route wrote for this file (all requests)

    @property
    def id(self) -> int:
        return int(self["id"])

    @property
    def filename(self) -> str:
        return self["filename"]

    @property
    def size(self) -> int:
        return self["size"]

    @property
    def url(self) -> str:
        return self["url"]

    @property
    def proxy_url(self) -> str:
        return self["proxy_url"]

    @property
    def content_type(self) -> str:
        return self["content_type"]


@dataclass
class Request:
    """One HTTP request the client made (REST or CDN)."""

    method: str
    path: str  # relative to the API base for REST ("/users/@me"), absolute for the CDN
    query: dict[str, str]
    headers: dict[str, str]
    json: Any  # the JSON body, or the multipart payload_json, or None
    body: bytes  # raw body (b"" for multipart)
    files: list[tuple[str, bytes]]  # multipart uploads as (filename, bytes)
    time: float  # time.monotonic()
    status: int = 0  # what the stand-in answered
    # multipart files[n] uploads by index: (filename, bytes, content type)
    uploads: dict[int, tuple[str, bytes, str]] = field(default_factory=dict, repr=False)


@dataclass
class Message:
    """A message the bot produced (or the state of one after an edit)."""

    id: int
    kind: str  # followup | edit_original | edit_followup | channel | edit_channel | immediate
    # | update (a component interaction's type-7 response editing its message)
    channel_id: int
    content: str | None
    embeds: list[JSON]
    files: list[tuple[str, bytes]]
    ephemeral: bool
    flags: int
    allowed_mentions: JSON | None
    components: list[JSON]
    payload: JSON  # the raw JSON the bot sent for this message/edit
    at: float  # time.monotonic()
    token: str | None = None  # interaction token, for interaction messages
    attachments: list[JSON] = field(default_factory=list)  # attachment objects as returned


@dataclass
class Response:
    """The interaction callback (first response)."""

    type: int  # 4 message, 5 deferred, 6 deferred update, 7 update, 8 autocomplete, 9 modal
    data: JSON | None
    at: float
    ephemeral: bool
    files: list[tuple[str, bytes]] = field(default_factory=list)

    @property
    def choices(self) -> list[JSON]:
        return list((self.data or {}).get("choices", []))


class Interaction:
    """One invoked command and its timeline (callback, followups, edits)."""

    def __init__(self, server: DiscordStandIn, payload: JSON, created: float) -> None:
        self._server = server
        self.payload = payload
        self.id = int(payload["id"])
        self.token: str = payload["token"]
        self.created = created
        self.guild_id = int(payload["guild_id"])
        self.channel_id = int(payload["channel"]["id"])
        self.user_id = int(payload["member"]["user"]["id"])
        self.response: Response | None = None
        self.immediate: Message | None = None
        self.messages: list[Message] = []  # followups and edits, in order
        self.original: JSON | None = None  # current @original message object
        self.original_deleted = False

    def __repr__(self) -> str:
        data = self.payload["data"]
        name = data.get("name") or f"[{data.get('custom_id')}]"
        return f"<Interaction /{name} id={self.id} response={self.response and self.response.type}>"

    async def deferred(self, timeout: float = 5) -> Response:
        """The callback (type 5 deferred, 4 immediate, 8 autocomplete...), once it arrived."""
        return await self._server._wait(
            lambda: self.response, timeout, f"the callback of interaction {self.id}"
        )

    async def followups(self, n: int = 1, timeout: float = 60) -> list[Message]:
        """The first ``n`` followups / edits of the original message, in order."""
        await self._server._wait(
            lambda: len(self.messages) >= n,
            timeout,
            f"{n} followup(s) of interaction {self.id} (have {len(self.messages)})",
        )
        return self.messages[:n]

    async def final(self, timeout: float = 60) -> Message:
        """The visible answer: the immediate type-4 response, else the first followup/edit."""

        def ready() -> Message | None:
            if self.immediate is not None:
                return self.immediate
            return self.messages[0] if self.messages else None

        return await self._server._wait(ready, timeout, f"the answer to interaction {self.id}")

    @property
    def choices(self) -> list[JSON]:
        """Autocomplete choices of the type-8 response ([] before it arrived)."""
        return self.response.choices if self.response else []

    @property
    def defer_latency(self) -> float | None:
        return None if self.response is None else self.response.at - self.created

    @property
    def answer_latency(self) -> float | None:
        if self.immediate is not None:
            return self.immediate.at - self.created
        return self.messages[0].at - self.created if self.messages else None


@dataclass
class _Guild:
    id: int
    name: str
    owner_id: int
    channel_id: int
    channels: list[JSON]
    roles: list[JSON]
    members: dict[int, JSON]
    locale: str = "en-US"  # the community's preferred locale


@dataclass
class _Failure:
    method: str
    pattern: re.Pattern[str]
    status: int
    retry_after: float
    times: int
    is_global: bool


class _HTTPError(Exception):
    def __init__(self, status: int, message: str, code: int = 0) -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


# Discord's rules for application command names (in every language) and descriptions.
_COMMAND_NAME = re.compile(r"^[-_'\w\u0900-\u097F\u0E00-\u0E7F]{1,32}$")
_LOCALES = frozenset((
    "id", "da", "de", "en-GB", "en-US", "es-ES", "es-419", "fr", "hr", "it", "lt", "hu", "nl",
    "no", "pl", "pt-BR", "ro", "fi", "sv-SE", "vi", "tr", "cs", "el", "bg", "ru", "uk", "hi",
    "th", "zh-CN", "ja", "zh-TW", "ko",
))  # fmt: skip


def _check_command(cmd: JSON, sub: bool = False) -> None:
    """400 Invalid Form Body, as Discord answers, for a name or description it refuses."""

    def bad(what: str) -> _HTTPError:
        return _HTTPError(400, f"Invalid Form Body ({what})", 50035)

    names = {None: cmd.get("name", ""), **(cmd.get("name_localizations") or {})}
    descriptions = {None: cmd.get("description", ""), **(cmd.get("description_localizations")
                                                           or {})}  # fmt: skip
    for locale, name in names.items():
        if locale is not None and locale not in _LOCALES:
            raise bad(f"unknown locale {locale!r}")
        if not sub and int(cmd.get("type", 1)) in (2, 3):  # user/message menus: free text
            if not 1 <= len(name) <= 32:
                raise bad(f"name {name!r} ({locale or 'default'})")
        elif not _COMMAND_NAME.match(name) or name != name.lower():
            raise bad(f"name {name!r} ({locale or 'default'})")
    for locale, text in descriptions.items():
        if locale is not None and locale not in _LOCALES:
            raise bad(f"unknown locale {locale!r}")
        if (sub or int(cmd.get("type", 1)) == 1) and not 1 <= len(text) <= 100:
            raise bad(f"description of {cmd.get('name')!r} ({locale or 'default'})")
        if not sub and int(cmd.get("type", 1)) in (2, 3) and text:
            raise bad(f"a context menu has no description ({cmd.get('name')!r})")
    for option in cmd.get("options") or []:
        _check_command(option, sub=True)


def _check_modal(inter: Interaction, modal: JSON) -> None:
    """400, as Discord answers, for a modal it would not show."""
    if int(inter.payload["type"]) not in (2, 3):  # only commands and components open modals
        raise _HTTPError(400, "Cannot send a modal in response to this interaction", 50035)
    if not modal.get("custom_id") or not 1 <= len(modal.get("title") or "") <= 45:
        raise _HTTPError(400, "Invalid Form Body (modal custom_id/title)", 50035)
    if not 1 <= len(modal.get("components") or []) <= 5:
        raise _HTTPError(400, "Invalid Form Body (modal components)", 50035)


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    # Content-Type must be exactly application/json: discord.py's json_or_text compares it
    # verbatim, and aiohttp's json_response would append "; charset=utf-8".
    return web.Response(
        body=json.dumps(data).encode(),
        status=status,
        headers={"Content-Type": "application/json", **(headers or {})},
    )


Handler = Callable[..., Awaitable[web.StreamResponse]]


class DiscordStandIn(MemberActions):
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

    # ------------------------------------------------------------------ setup helpers

    def add_guild(
        self,
        guild_id: int,
        name: str = "Test Guild",
        *,
        channel_id: int | None = None,
        owner_id: int | None = None,
        locale: str = "en-US",
    ) -> None:
        """A guild with one text channel, @everyone, and the bot as a member (``locale``: its
        preferred locale, sent as ``preferred_locale`` and each interaction's ``guild_locale``).

        Listed in READY (unavailable) and sent as GUILD_CREATE; added after READY it is
        sent at once (a guild join).
        """
        channel_id = channel_id or P.snowflake()
        bot = P.member(self._bot_user(), roles=[])
        guild = _Guild(
            id=guild_id,
            name=name,
            owner_id=owner_id or self.owner_id,
            channel_id=channel_id,
            channels=[P.text_channel(channel_id, guild_id)],
            roles=[P.role(guild_id, "@everyone", P.EVERYONE_PERMISSIONS)],
            members={self.bot_user_id: bot},
            locale=locale,
        )
        self._guilds[guild_id] = guild
        if self._ready_sent and self._ws is not None:  # a join: no "unavailable" field
            joined = {k: v for k, v in self._guild_create(guild).items() if k != "unavailable"}
            self._spawn(self._dispatch("GUILD_CREATE", joined))

    def default_channel_id(self, guild_id: int) -> int:
        """The id of the guild's text channel (where invoke() runs by default)."""
        return self._guilds[guild_id].channel_id

    def add_file(
        self, name: str, data: bytes, content_type: str = "application/octet-stream"
    ) -> Attachment:
        """Host ``data`` on the CDN route; pass the result as an option value to invoke()."""
        self._require_started()
        return self._host(name, data, content_type, channel_id=0)

    def add_stream(
        self,
        name: str,
        *,
        declared: int,
        serves: int,
        chunk: int = 1 << 20,
        content_length: bool = False,
        content_type: str = "application/octet-stream",
    ) -> Attachment:
        """An attachment whose object says ``size: declared`` while the CDN route serves
        ``serves`` bytes, generated lazily in ``chunk``-byte pieces (nothing is held in memory).
        Without ``content_length`` the body is chunked, so only counting the bytes tells its size.
        ``served`` counts what was written before the client hung up."""
        self._require_started()
        att = self._host(name, b"", content_type, channel_id=0)
        att["size"] = declared
        att.stream = (serves, chunk, content_length)
        return att

    def fail_next(
        self,
        method: str,
        path_regex: str,
        status: int = 429,
        retry_after: float = 0.2,
        *,
        times: int = 1,
        is_global: bool = False,
    ) -> None:
        """Answer the next ``times`` REST calls matching (method, regex on the API-relative path)
        with ``status``: 429 carries ``Via`` + JSON ``retry_after`` (discord.py retries it),
        5xx a JSON error (discord.py retries 500/502/504 after 1 s, 3 s...)."""
        self._failures.append(
            _Failure(method.upper(), re.compile(path_regex), status, retry_after, times, is_global)
        )

    # ------------------------------------------------------------------ waiting

    async def wait_ready(self, timeout: float = 20) -> None:
        """Until IDENTIFY was answered with READY (+ GUILD_CREATEs) and the client heartbeated."""
        await self._wait(
            lambda: self._ready_sent and self.heartbeats > 0, timeout, "IDENTIFY + READY"
        )

    async def wait_resumed(self, count: int = 1, timeout: float = 20) -> None:
        await self._wait(lambda: self.resumes >= count, timeout, f"{count} RESUME(s)")

    async def wait_for_message(
        self,
        predicate: Callable[[Message], bool] | None = None,
        *,
        kind: str | None = None,
        timeout: float = 10,
    ) -> Message:
        """The first recorded message matching ``kind`` and ``predicate``."""

        def find() -> Message | None:
            for m in self.messages:
                if (kind is None or m.kind == kind) and (predicate is None or predicate(m)):
                    return m
            return None

        return await self._wait(find, timeout, f"a message (kind={kind})")

    async def _wait(self, predicate: Callable[[], Any], timeout: float, what: str) -> Any:
        async with self._cond:
            try:
                return await asyncio.wait_for(self._cond.wait_for(predicate), timeout)
            except TimeoutError:
                raise TimeoutError(
                    f"discord stand-in: no {what} after {timeout}s; {self._diagnostics()}"
                ) from None

    def _diagnostics(self) -> str:
        recent = [f"{r.method} {r.path} -> {r.status}" for r in self.requests[-8:]]
        unknown = [f"{r.method} {r.path}" for r in self.unknown_routes[-5:]]
        return (
            f"recent requests={recent}, unknown routes={unknown}, ws={'up' if self._ws else 'down'}"
        )

    async def _changed(self) -> None:
        async with self._cond:
            self._cond.notify_all()

    # ------------------------------------------------------------------ interactions

    async def invoke(
        self,
        guild_id: int,
        command: str,
        options: dict[str, object] | None = None,
        *,
        user_id: int = 2001,
        permissions: int = 0,
        channel_id: int | None = None,
        subcommand: str | None = None,
        focused: str | None = None,
        app_permissions: int = P.ALL_PERMISSIONS,
        locale: str = "en-US",
        guild_command: bool | None = None,
        attachment_size_limit: int = ATTACHMENT_SIZE_LIMIT,
    ) -> Interaction:
        """Dispatch INTERACTION_CREATE for ``/command [subcommand] options...``.

        Option values: str -> STRING, bool -> BOOLEAN, int -> INTEGER, float -> NUMBER,
        Attachment (from add_file) -> ATTACHMENT; a dict ``{"type": n, "value": v}`` is sent as is.
        ``subcommand`` may be "sub" or "group sub". ``focused`` names the option being typed:
        the interaction is then an autocomplete (type 4). ``guild_command``: whether the
        command is a guild command (data.guild_id set); None = as registered (default global).
        ``attachment_size_limit``: what Discord lets this server upload (boost level).
        """
        guild = self._guilds[guild_id]
        channel_id = channel_id or guild.channel_id
        channel = next((c for c in guild.channels if int(c["id"]) == channel_id), None)
        if channel is None:
            channel = P.text_channel(channel_id, guild_id, name=f"channel-{channel_id}")
            guild.channels.append(channel)

        opts: list[JSON] = []
        resolved: dict[str, JSON] = {}
        for name, value in (options or {}).items():
            opts.append(self._option(name, value, resolved, focused=name == focused))
        if focused is not None and all(o["name"] != focused for o in opts):
            opts.append({"name": focused, "type": 3, "value": "", "focused": True})
        if subcommand:
            parts = subcommand.split()
            opts = [{"name": parts[-1], "type": 1, "options": opts}]
            if len(parts) == 2:
                opts = [{"name": parts[0], "type": 2, "options": opts}]

        registered = self._find_command(command, guild_id)
        data: JSON = {
            "id": str(registered["id"]) if registered else str(P.snowflake()),
            "name": command,
            "type": 1,
            "options": opts,
        }
        is_guild_cmd = guild_command
        if is_guild_cmd is None:
            is_guild_cmd = bool(registered and registered.get("guild_id"))
        if is_guild_cmd:
            data["guild_id"] = str(guild_id)
        if resolved:
            data["resolved"] = {"attachments": resolved}

        payload = self._interaction_payload(
            guild, channel, 4 if focused is not None else 2, data,
            user_id=user_id, permissions=permissions, app_permissions=app_permissions,
            locale=locale,
        )  # fmt: skip
        payload["attachment_size_limit"] = attachment_size_limit
        return await self._create(payload)

    def _interaction_payload(
        self,
        guild: _Guild,
        channel: JSON,
        kind: int,
        data: JSON,
        *,
        user_id: int,
        permissions: int,
        app_permissions: int,
        locale: str,
    ) -> JSON:
        """An INTERACTION_CREATE body of type ``kind`` by ``user_id`` in ``channel``."""
        user = P.user(user_id, username=self.usernames.get(user_id))
        guild.members.setdefault(user_id, P.member(user))
        member = P.member(user, permissions=permissions)
        return {
            "id": str(P.snowflake()),
            "application_id": str(self.app_id),
            "type": kind,
            "token": f"itok-{secrets.token_urlsafe(24)}",
            "version": 1,
            "guild_id": str(guild.id),
            "guild": {"id": str(guild.id), "locale": guild.locale, "features": []},
            "guild_locale": guild.locale,
            "channel_id": str(channel["id"]),
            "channel": channel,
            "member": member,
            "app_permissions": str(app_permissions),
            "locale": locale,
            "attachment_size_limit": ATTACHMENT_SIZE_LIMIT,
            "entitlements": [],
            "authorizing_integration_owners": {"0": str(guild.id)},
            "context": 0,
            "data": data,
        }

    async def _create(self, payload: JSON) -> Interaction:
        """Track and dispatch one interaction."""
        inter = Interaction(self, payload, time.monotonic())
        self.interactions.append(inter)
        self._by_token[inter.token] = inter
        self._by_id[inter.id] = inter
        await self._dispatch("INTERACTION_CREATE", payload)
        return inter

    async def press(
        self,
        message: Message,
        custom_id: str,
        *,
        values: list[str] | None = None,
        user_id: int = 2001,
        permissions: int = 0,
        app_permissions: int = P.ALL_PERMISSIONS,
        locale: str = "en-US",
    ) -> Interaction:
        """Press a button (or choose ``values`` in a select menu) of a message the bot sent:
        a MESSAGE_COMPONENT interaction (type 3) carrying that message as it is now."""
        obj = self.message_object(message.id)
        guild, channel = self._find_channel(int(obj["channel_id"]))
        component = next((c for row in obj.get("components") or []
                          for c in row.get("components", []) if c.get("custom_id") == custom_id),
                         None)  # fmt: skip
        if component is None:
            raise AssertionError(f"message {message.id} has no component {custom_id!r}")
        if component.get("disabled"):
            raise AssertionError(f"component {custom_id!r} is disabled")
        data: JSON = {"custom_id": custom_id, "component_type": int(component["type"])}
        if values is not None:
            data["values"] = values
        payload = self._interaction_payload(
            guild, channel, 3, data, user_id=user_id, permissions=permissions,
            app_permissions=app_permissions, locale=locale,
        )  # fmt: skip
        payload["message"] = obj
        return await self._create(payload)

    def message_object(self, message_id: int) -> JSON:
        """A message's current JSON (an interaction's original reply or a channel message)."""
        for inter in reversed(self.interactions):
            if inter.original is not None and int(inter.original["id"]) == message_id:
                return inter.original
        obj = self._channel_messages.get(message_id)
        if obj is None:
            raise _HTTPError(404, "Unknown Message", 10008)
        return obj

    def _store_message(self, new: JSON) -> None:
        """Keep an edited message's JSON wherever it is held."""
        mid = int(new["id"])
        for inter in self.interactions:
            if inter.original is not None and int(inter.original["id"]) == mid:
                inter.original = new
        if mid in self._channel_messages:
            self._channel_messages[mid] = new

    def _option(
        self, name: str, value: object, resolved: dict[str, JSON], *, focused: bool
    ) -> JSON:
        if isinstance(value, Attachment):
            resolved[value["id"]] = dict(value)
            opt: JSON = {"name": name, "type": 11, "value": value["id"]}
        elif isinstance(value, dict) and "type" in value:
            opt = {"name": name, **value}
        elif isinstance(value, bool):
            opt = {"name": name, "type": 5, "value": value}
        elif isinstance(value, int):
            opt = {"name": name, "type": 4, "value": value}
        elif isinstance(value, float):
            opt = {"name": name, "type": 10, "value": value}
        elif isinstance(value, str):
            opt = {"name": name, "type": 3, "value": value}
        else:
            raise TypeError(f"option {name!r}: unsupported value {value!r}")
        if focused:
            opt["focused"] = True
        return opt

    def _find_command(self, name: str, guild_id: int) -> JSON | None:
        for scope in (guild_id, None):
            for cmd in self._commands.get(scope, []):
                if cmd["name"] == name:
                    return cmd
        return None

    @property
    def registered_commands(self) -> list[JSON]:
        """Every command from the last PUT per scope (guild commands carry ``guild_id``)."""
        return [c for cmds in self._commands.values() for c in cmds]

    async def drop_gateway(self, *, code: int = 4000, abrupt: bool = False) -> None:
        """Close the bot's websocket (close frame ``code``, or cut the TCP connection):
        discord.py reconnects to resume_gateway_url and RESUMEs."""
        ws = self._ws
        if ws is None:
            raise RuntimeError("no live gateway connection to drop")
        self._ws = None
        if abrupt:
            transport = self._sockets.get(ws)
            if transport is not None:
                transport.close()
        else:
            await ws.close(code=code)
        await self._changed()

    # ------------------------------------------------------------------ gateway

    def _bot_user(self) -> JSON:
        return P.user(self.bot_user_id, username=self.bot_name, bot=True)

    def _guild_create(self, g: _Guild) -> JSON:
        return P.guild_create(
            g.id,
            g.name,
            owner_id=g.owner_id,
            channels=g.channels,
            roles=g.roles,
            members=list(g.members.values()),
            locale=g.locale,
        )

    async def _send(self, ws: web.WebSocketResponse, payload: JSON) -> None:
        if not ws.closed:
            await ws.send_str(json.dumps(payload))

    async def _dispatch(self, event: str, data: JSON, timeout: float = 20) -> None:
        """Send a DISPATCH on the live socket, waiting (a while) for a RESUME if it is down."""
        ws = await self._wait(lambda: self._ws, timeout, f"a live gateway to send {event}")
        async with self._send_lock:
            self._seq += 1
            await self._send(ws, {"op": 0, "t": event, "s": self._seq, "d": data})

    async def _gateway(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(max_msg_size=0, heartbeat=None)
        await ws.prepare(request)
        self._sockets[ws] = request.transport
        try:
            await self._send(ws, {"op": 10, "d": {"heartbeat_interval": self.heartbeat_ms}})
            async for msg in ws:
                if msg.type is WSMsgType.TEXT:
                    await self._on_gateway(ws, json.loads(msg.data))
                elif msg.type is WSMsgType.ERROR:
                    break
        finally:
            self._sockets.pop(ws, None)
            if self._ws is ws:
                self._ws = None
                await self._changed()
        return ws

    async def _on_gateway(self, ws: web.WebSocketResponse, msg: JSON) -> None:
        op, d = msg.get("op"), msg.get("d")
        self.gateway_received.append(msg)
        if op == 1:  # HEARTBEAT
            self.heartbeats += 1
            await self._send(ws, {"op": 11})
        elif op == 2:  # IDENTIFY
            self.identifies += 1
            self.identify_payloads.append(d)
            async with self._send_lock:
                self._session_id = uuid.uuid4().hex
                self._seq = 0
                self._ws = ws
            await self._dispatch("READY", self._ready_payload())
            for guild in list(self._guilds.values()):
                await self._dispatch("GUILD_CREATE", self._guild_create(guild))
            self._ready_sent = True
        elif op == 6:  # RESUME
            self.resumes += 1
            if d and d.get("session_id") == self._session_id:
                self._ws = ws
                await self._dispatch("RESUMED", {})  # nothing missed is replayed
            else:
                await self._send(ws, {"op": 9, "d": False})  # invalid session
        elif op == 8:  # REQUEST_GUILD_MEMBERS
            guild = self._guilds.get(int(d["guild_id"]))
            members = list(guild.members.values()) if guild else []
            chunk = {
                "guild_id": d["guild_id"],
                "members": members,
                "chunk_index": 0,
                "chunk_count": 1,
                "not_found": [],
            }
            if d.get("nonce"):
                chunk["nonce"] = d["nonce"]
            self._spawn(self._dispatch("GUILD_MEMBERS_CHUNK", chunk))
        await self._changed()

    def _ready_payload(self) -> JSON:
        return {
            "v": 10,
            "user": P.client_user(self.bot_user_id, self.bot_name),
            "session_id": self._session_id,
            "session_type": "normal",
            "resume_gateway_url": self.gateway_url,
            "guilds": [{"id": str(g), "unavailable": True} for g in self._guilds],
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "application": {"id": str(self.app_id), "flags": 0},
            "shard": [0, 1],
        }

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ HTTP plumbing

    def _require_started(self) -> None:
        if not self.port:
            raise RuntimeError("DiscordStandIn.start() first (URLs need the port)")

    def _host(self, name: str, data: bytes, content_type: str, *, channel_id: int) -> Attachment:
        att_id = P.snowflake()
        url = f"{self.cdn_base}/attachments/{channel_id}/{att_id}/{quote(name)}"
        att = Attachment(
            id=str(att_id),
            filename=name,
            size=len(data),
            url=url,
            proxy_url=url,
            content_type=content_type,
        )
        att.data = data
        self._files[att_id] = att
        return att

    async def _read_request(self, request: web.Request, path: str) -> Request:
        json_body: Any = None
        body = b""
        files: list[tuple[str, bytes]] = []
        uploads: dict[int, tuple[str, bytes, str]] = {}
        if request.content_type.startswith("multipart/"):
            reader = await request.multipart()
            while (part := await reader.next()) is not None:
                if part.name == "payload_json":  # type: ignore[union-attr]
                    json_body = json.loads(await part.text())  # type: ignore[union-attr]
                    continue
                raw = bytes(await part.read(decode=True))  # type: ignore[union-attr]
                fname = part.filename or part.name or "file"  # type: ignore[union-attr]
                files.append((fname, raw))
                m = re.fullmatch(r"files\[(\d+)\]", part.name or "")  # type: ignore[union-attr]
                index = int(m.group(1)) if m else len(uploads)
                ctype = part.headers.get("Content-Type", "application/octet-stream")  # type: ignore[union-attr]
                uploads[index] = (fname, raw, ctype)
        else:
            body = await request.read()
            if body and request.content_type == "application/json":
                json_body = json.loads(body)
        rec = Request(
            method=request.method,
            path=path,
            query=dict(request.query),
            headers=dict(request.headers),
            json=json_body,
            body=body,
            files=files,
            time=time.monotonic(),
            uploads=uploads,
        )
        return rec

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        path = "/" + request.match_info["tail"]
        rec = await self._read_request(request, path)
        self.requests.append(rec)
        try:
            resp = self._failure(rec)
            if resp is None:
                resp = await self._route(rec)
        except _HTTPError as e:
            resp = _json({"message": e.message, "code": e.code}, e.status)
        rec.status = resp.status
        await self._changed()
        return resp

    def _failure(self, rec: Request) -> web.Response | None:
        for f in self._failures:
            if f.method in (rec.method, "*") and f.pattern.search(rec.path):
                f.times -= 1
                if f.times <= 0:
                    self._failures.remove(f)
                if f.status == 429:
                    return _json(
                        {
                            "message": "You are being rate limited.",
                            "retry_after": f.retry_after,
                            "global": f.is_global,
                        },
                        429,
                        {
                            "Via": "1.1 google",
                            "Retry-After": str(max(1, round(f.retry_after))),
                            "X-RateLimit-Scope": "global" if f.is_global else "user",
                        },
                    )
                return _json({"message": "Internal Server Error", "code": 0}, f.status)
        return None

    async def _route(self, rec: Request) -> web.Response:
        for method, pattern, handler in self._routes:
            if method != rec.method:
                continue
            m = pattern.fullmatch(rec.path)
            if m:
                return await handler(rec, *m.groups())
        log.warning("discord stand-in: unknown route %s %s", rec.method, rec.path)
        self.unknown_routes.append(rec)
        return _json({"message": "Unknown", "code": 0}, 404)

    async def _not_found(self, request: web.Request) -> web.StreamResponse:
        rec = await self._read_request(request, request.path)
        rec.status = 404
        self.requests.append(rec)
        self.unknown_routes.append(rec)
        log.warning("discord stand-in: unknown path %s %s", request.method, request.path)
        return _json({"message": "Unknown", "code": 0}, 404)

    async def _cdn(self, request: web.Request) -> web.StreamResponse:
        rec = await self._read_request(request, request.path)
        self.requests.append(rec)
        m = re.fullmatch(r"/attachments/\d+/(\d+)/.*", request.path)
        att = self._files.get(int(m.group(1))) if m else None
        if att is None:
            rec.status = 404
            return web.Response(status=404, text="Not Found")
        rec.status = 200
        resp = web.StreamResponse(headers={"Content-Type": att.content_type})
        total, chunk, with_length = att.stream or (len(att.data), 256 * 1024, True)
        if with_length:
            resp.content_length = total
        await resp.prepare(request)
        piece = b"\0" * chunk if att.stream else b""
        try:  # in pieces, as a CDN streams it: the client can stop reading (and hang up) early
            for start in range(0, total, chunk):
                size = min(chunk, total - start)
                body = piece[:size] if att.stream else att.data[start : start + size]
                await resp.write(body)
                att.served += size
            await resp.write_eof()
        except (ConnectionError, RuntimeError):  # RuntimeError: aiohttp's "closing transport"
            pass
        return resp

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

    # ------------------------------------------------------------------ REST: identity

    async def _get_me(self, rec: Request) -> web.Response:
        return _json(P.client_user(self.bot_user_id, self.bot_name))

    async def _get_user(self, rec: Request, user_id: str) -> web.Response:
        if int(user_id) == self.bot_user_id:
            return _json(self._bot_user())
        return _json(P.user(int(user_id)))

    async def _get_application(self, rec: Request) -> web.Response:
        return _json(P.application(self.app_id, self.bot_name, P.user(self.owner_id)))

    async def _get_gateway(self, rec: Request) -> web.Response:
        limit = {"total": 1000, "remaining": 1000, "reset_after": 0, "max_concurrency": 1}
        return _json({"url": self.gateway_url, "shards": 1, "session_start_limit": limit})

    # ------------------------------------------------------------------ REST: commands

    def _check_app(self, app_id: str) -> None:
        if int(app_id) != self.app_id:
            raise _HTTPError(404, "Unknown Application", 10002)

    async def _get_commands(
        self, rec: Request, app_id: str, guild_id: str | None = None
    ) -> web.Response:
        self._check_app(app_id)
        return _json(self._commands.get(int(guild_id) if guild_id else None, []))

    async def _put_commands(
        self, rec: Request, app_id: str, guild_id: str | None = None
    ) -> web.Response:
        self._check_app(app_id)
        scope = int(guild_id) if guild_id else None
        old = {c["name"]: c["id"] for c in self._commands.get(scope, [])}
        stored = []
        for cmd in rec.json or []:
            _check_command(cmd)
            out = {
                "type": 1,
                "description": "",
                "options": [],
                "default_member_permissions": None,
                "nsfw": False,
                **cmd,
                "id": old.get(cmd["name"]) or str(P.snowflake()),
                "application_id": str(self.app_id),
                "version": str(P.snowflake()),
            }
            if scope is not None:
                out["guild_id"] = str(scope)
            stored.append(out)
        self._commands[scope] = stored
        return _json(stored)

    # ------------------------------------------------------------------ REST: interactions

    def _interaction_for(self, token: str, app_id: str | None = None) -> Interaction:
        inter = self._by_token.get(token)
        if inter is None or (app_id is not None and int(app_id) != self.app_id):
            raise _HTTPError(404, "Unknown Webhook", 10015)
        return inter

    def _resolve_files(
        self,
        rec: Request,
        payload: JSON,
        channel_id: int,
        existing: list[JSON] | None = None,
    ) -> list[JSON]:
        """Attachments after this payload: kept existing ones + new uploads (files[n])."""
        uploads = rec.uploads
        existing = existing or []
        by_id = {a["id"]: a for a in existing}
        result: list[JSON] = []
        used: set[int] = set()
        meta = payload.get("attachments")
        if meta is None:
            result.extend(existing)
            meta = []
        for entry in meta:
            key = str(entry.get("id"))
            if key in by_id:
                result.append(by_id[key])
            elif key.isdigit() and int(key) in uploads:
                used.add(int(key))
                fname, raw, ctype = uploads[int(key)]
                att = self._host(entry.get("filename") or fname, raw, ctype, channel_id=channel_id)
                if entry.get("description"):
                    att["description"] = entry["description"]
                result.append(dict(att))
        for index, (fname, raw, ctype) in sorted(uploads.items()):
            if index not in used:
                result.append(dict(self._host(fname, raw, ctype, channel_id=channel_id)))
        return result

    def _files_of(self, attachments: list[JSON]) -> list[tuple[str, bytes]]:
        return [(a["filename"], self._files[int(a["id"])].data) for a in attachments]

    def _record(
        self,
        kind: str,
        obj: JSON,
        payload: JSON,
        *,
        token: str | None = None,
        ephemeral: bool | None = None,
    ) -> Message:
        flags = int(obj.get("flags") or 0)
        msg = Message(
            id=int(obj["id"]),
            kind=kind,
            channel_id=int(obj["channel_id"]),
            content=obj.get("content"),
            embeds=list(obj.get("embeds") or []),
            files=self._files_of(obj.get("attachments") or []),
            ephemeral=bool(flags & EPHEMERAL) if ephemeral is None else ephemeral,
            flags=flags,
            allowed_mentions=payload.get("allowed_mentions"),
            components=list(obj.get("components") or []),
            payload=payload,
            at=time.monotonic(),
            token=token,
            attachments=list(obj.get("attachments") or []),
        )
        self.messages.append(msg)
        return msg

    def _interaction_message(
        self, inter: Interaction, rec: Request, payload: JSON, *, message_id: int | None = None
    ) -> JSON:
        return P.message(
            message_id or P.snowflake(),
            inter.channel_id,
            self._bot_user(),
            guild_id=inter.guild_id,
            content=payload.get("content") or "",
            embeds=payload.get("embeds"),
            attachments=self._resolve_files(rec, payload, inter.channel_id),
            components=payload.get("components"),
            flags=int(payload.get("flags") or 0),
            type=20,
            webhook_id=self.app_id,
            application_id=self.app_id,
        )

    async def _callback(self, rec: Request, interaction_id: str, token: str) -> web.Response:
        inter = self._by_id.get(int(interaction_id))
        if inter is None or inter.token != token:
            raise _HTTPError(404, "Unknown interaction", 10062)
        if inter.response is not None:
            raise _HTTPError(400, "Interaction has already been acknowledged.", 40060)
        now = time.monotonic()
        if self.ack_deadline is not None and now - inter.created > self.ack_deadline:
            raise _HTTPError(404, "Unknown interaction", 10062)
        body = rec.json or {}
        rtype = int(body.get("type", 0))
        data = body.get("data")
        flags = int((data or {}).get("flags") or 0)
        ephemeral = bool(flags & EPHEMERAL)
        if rtype == MODAL:
            _check_modal(inter, data or {})
        inter.response = Response(rtype, data, now, ephemeral, files=list(rec.files))
        resource: JSON = {"type": rtype}
        if rtype == CHANNEL_MESSAGE:
            obj = self._interaction_message(inter, rec, data or {})
            inter.original = obj
            inter.immediate = self._record("immediate", obj, data or {}, token=token)
            resource["message"] = obj
        elif rtype == DEFERRED_MESSAGE:
            obj = self._interaction_message(inter, rec, {"flags": flags})
            obj["flags"] = flags | LOADING
            inter.original = obj
            resource["message"] = obj
        elif rtype in (DEFERRED_UPDATE, UPDATE_MESSAGE):  # a component's message, edited
            if "message" not in inter.payload:
                raise _HTTPError(400, "Interaction has no message to update", 50035)
            target = self.message_object(int(inter.payload["message"]["id"]))
            if rtype == UPDATE_MESSAGE:
                target = self._apply_edit(target, rec, data or {})
                self._store_message(target)
                inter.immediate = self._record("update", target, data or {}, token=token)
            inter.original = target
            resource["message"] = target
        answer: JSON = {
            "interaction": {
                "id": str(inter.id),
                "type": int(inter.payload["type"]),
                "response_message_loading": rtype == DEFERRED_MESSAGE,
                "response_message_ephemeral": ephemeral,
            },
            "resource": resource,
        }
        if inter.original is not None:
            answer["interaction"]["response_message_id"] = inter.original["id"]
        return _json(answer)

    async def _webhook_execute(self, rec: Request, app_id: str, token: str) -> web.Response:
        inter = self._interaction_for(token, app_id)
        if inter.response is None:
            raise _HTTPError(404, "Unknown Webhook", 10015)
        payload = rec.json or {}
        original = inter.original
        if (
            inter.response.type == DEFERRED_MESSAGE
            and original is not None
            and not inter.original_deleted
            and int(original["flags"]) & LOADING
        ):
            # the first followup after a deferral replaces the "thinking" message, and
            # inherits its ephemerality (once that message is deleted, a followup is new)
            eph = inter.response.ephemeral
            obj = self._interaction_message(inter, rec, payload, message_id=int(original["id"]))
            obj["flags"] = (int(obj["flags"]) & ~EPHEMERAL) | (EPHEMERAL if eph else 0)
            inter.original = obj
        else:
            obj = self._interaction_message(inter, rec, payload)
            self._channel_messages[int(obj["id"])] = obj
        inter.messages.append(self._record("followup", obj, payload, token=token))
        if rec.query.get("wait") in ("1", "true", "True"):
            return _json(obj)
        return web.Response(status=204)

    def _webhook_target(self, inter: Interaction, message_id: str) -> tuple[str, JSON]:
        if message_id == "@original" or (
            inter.original is not None and message_id == inter.original["id"]
        ):
            if inter.original is None or inter.original_deleted:
                raise _HTTPError(404, "Unknown Message", 10008)
            return "original", inter.original
        obj = self._channel_messages.get(int(message_id)) if message_id.isdigit() else None
        if obj is None:
            raise _HTTPError(404, "Unknown Message", 10008)
        return "followup", obj

    async def _webhook_get(self, rec: Request, app_id: str, token: str, mid: str) -> web.Response:
        inter = self._interaction_for(token, app_id)
        return _json(self._webhook_target(inter, mid)[1])

    async def _webhook_edit(self, rec: Request, app_id: str, token: str, mid: str) -> web.Response:
        inter = self._interaction_for(token, app_id)
        which, obj = self._webhook_target(inter, mid)
        payload = rec.json or {}
        new = self._apply_edit(obj, rec, payload)
        new["flags"] = int(new["flags"]) & ~LOADING
        self._store_message(new)
        if which == "original":
            inter.original = new
        else:
            self._channel_messages[int(new["id"])] = new
        kind = "edit_original" if which == "original" else "edit_followup"
        inter.messages.append(self._record(kind, new, payload, token=inter.token))
        return _json(new)

    async def _webhook_delete(
        self, rec: Request, app_id: str, token: str, mid: str
    ) -> web.Response:
        inter = self._interaction_for(token, app_id)
        which, obj = self._webhook_target(inter, mid)
        if which == "original":
            inter.original_deleted = True
        else:
            self._channel_messages.pop(int(obj["id"]), None)
        return web.Response(status=204)

    def _apply_edit(self, obj: JSON, rec: Request, payload: JSON) -> JSON:
        new = dict(obj)
        for key in ("content", "embeds", "components", "flags"):
            if key in payload:
                new[key] = payload[key] if payload[key] is not None else obj.get(key)
        # an edit can never change whether a message is ephemeral
        new["flags"] = (int(new.get("flags") or 0) & ~EPHEMERAL) | (int(obj["flags"]) & EPHEMERAL)
        if new.get("content") is None:
            new["content"] = ""
        new["attachments"] = self._resolve_files(
            rec, payload, int(obj["channel_id"]), existing=list(obj.get("attachments") or [])
        )
        new["edited_timestamp"] = P.iso_now()
        return new

    # ------------------------------------------------------------------ REST: channels, guilds

    def _find_channel(self, channel_id: int) -> tuple[_Guild, JSON]:
        for g in self._guilds.values():
            for c in g.channels:
                if int(c["id"]) == channel_id:
                    return g, c
        raise _HTTPError(404, "Unknown Channel", 10003)

    async def _get_channel(self, rec: Request, channel_id: str) -> web.Response:
        return _json(self._find_channel(int(channel_id))[1])

    async def _no_content(self, rec: Request, *args: str) -> web.Response:
        return web.Response(status=204)

    async def _channel_post(self, rec: Request, channel_id: str) -> web.Response:
        guild, _ = self._find_channel(int(channel_id))
        payload = rec.json or {}
        reference = payload.get("message_reference")
        if reference:  # a reply: the message must exist in this channel
            target = self._channel_messages.get(int(reference.get("message_id") or 0))
            if target is None or target["channel_id"] != channel_id:
                raise _HTTPError(400, "Invalid Form Body (Unknown message)", 50035)
        obj = P.message(
            P.snowflake(),
            int(channel_id),
            self._bot_user(),
            guild_id=guild.id,
            content=payload.get("content") or "",
            embeds=payload.get("embeds"),
            attachments=self._resolve_files(rec, payload, int(channel_id)),
            components=payload.get("components"),
            flags=int(payload.get("flags") or 0),
        )
        if reference:
            obj["type"], obj["message_reference"] = 19, reference
            obj["referenced_message"] = self._channel_messages[int(reference["message_id"])]
        self._channel_messages[int(obj["id"])] = obj
        self._record("channel", obj, payload)
        return _json(obj)

    def _channel_message(self, channel_id: str, message_id: str) -> JSON:
        obj = self._channel_messages.get(int(message_id))
        if obj is None or obj["channel_id"] != channel_id:
            raise _HTTPError(404, "Unknown Message", 10008)
        return obj

    async def _channel_get(self, rec: Request, channel_id: str, message_id: str) -> web.Response:
        return _json(self.visible(self._channel_message(channel_id, message_id)))

    async def _channel_edit(self, rec: Request, channel_id: str, message_id: str) -> web.Response:
        obj = self._channel_message(channel_id, message_id)
        payload = rec.json or {}
        new = self._apply_edit(obj, rec, payload)
        self._channel_messages[int(message_id)] = new
        self._record("edit_channel", new, payload)
        return _json(new)

    async def _channel_delete(self, rec: Request, channel_id: str, message_id: str) -> web.Response:
        self._channel_message(channel_id, message_id)
        del self._channel_messages[int(message_id)]
        return web.Response(status=204)

    def _guild(self, guild_id: str) -> _Guild:
        guild = self._guilds.get(int(guild_id))
        if guild is None:
            raise _HTTPError(404, "Unknown Guild", 10004)
        return guild

    async def _get_guild(self, rec: Request, guild_id: str) -> web.Response:
        data = self._guild_create(self._guild(guild_id))
        for key in ("channels", "members", "threads", "voice_states", "presences", "joined_at"):
            data.pop(key, None)
        return _json(data)

    async def _get_guild_channels(self, rec: Request, guild_id: str) -> web.Response:
        return _json(self._guild(guild_id).channels)

    async def _get_member(self, rec: Request, guild_id: str, user_id: str) -> web.Response:
        member = self._guild(guild_id).members.get(int(user_id))
        if member is None:
            raise _HTTPError(404, "Unknown Member", 10007)
        return _json(member)


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
