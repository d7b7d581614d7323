"""What the Discord stand-in records for tests to inspect (requests, messages, interactions
and their timelines, hosted files), the state every route family shares, and waiting on it."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from . import payloads as P

if TYPE_CHECKING:
    from .rest import Handler, _Failure
    from .server import DiscordStandIn

JSON = dict[str, Any]
EPHEMERAL = 1 << 6
LOADING = 1 << 7
ATTACHMENT_SIZE_LIMIT = 10 * 1024 * 1024


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


class Records:
    """The shared state (DiscordStandIn.__init__ sets it up), and waiting for it to change."""

    if TYPE_CHECKING:
        app_id: int
        bot_user_id: int
        heartbeat_ms: int
        owner_id: int
        bot_name: str
        ack_deadline: float | None
        api_base: str
        gateway_url: str
        cdn_base: str
        port: int
        identifies: int
        resumes: int
        heartbeats: int
        identify_payloads: list[JSON]
        gateway_received: list[JSON]
        requests: list[Request]
        unknown_routes: list[Request]
        messages: list[Message]
        interactions: list[Interaction]
        _commands: dict[int | None, list[JSON]]
        usernames: dict[int, str]
        _guilds: dict[int, _Guild]
        _files: dict[int, Attachment]
        _channel_messages: dict[int, JSON]
        _message_files: dict[int, dict[int, bytes]]
        _by_token: dict[str, Interaction]
        _by_id: dict[int, Interaction]
        _failures: list[_Failure]
        _runner: web.AppRunner | None
        _cond: asyncio.Condition
        _ws: web.WebSocketResponse | None
        _sockets: dict[web.WebSocketResponse, asyncio.BaseTransport | None]
        _send_lock: asyncio.Lock
        _session_id: str | None
        _seq: int
        _ready_sent: bool
        _tasks: set[asyncio.Task[Any]]
        _routes: list[tuple[str, re.Pattern[str], Handler]]

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

    def _bot_user(self) -> JSON:
        return P.user(self.bot_user_id, username=self.bot_name, bot=True)
