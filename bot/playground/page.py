"""The playground's page and its JSON API: the channel as each pretend member sees it, and the
actions a member takes (commands, uploads, buttons, selects, modals, message menus)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

from aiohttp import web

from bot.discord_local import Attachment, DiscordStandIn, Interaction

EPHEMERAL, LOADING = 1 << 6, 1 << 7
MANAGE_GUILD = 1 << 5
STATIC = ("index.html", "app.js", "style.css")
TYPES = {"index.html": "text/html", "app.js": "text/javascript", "style.css": "text/css"}


@dataclass(frozen=True)
class Member:
    """A pretend member: one may manage the servers, one may not."""

    id: int
    name: str
    manager: bool


@dataclass(frozen=True)
class Server:
    """A pretend server and the language it is set to."""

    id: int
    name: str
    locale: str


MEMBERS = (Member(4001, "Aiko", True), Member(4002, "Ben", False))
SERVERS = (Server(100001, "Game music club", "en-US"), Server(100002, "ゲーム音楽部", "ja"))


@dataclass(frozen=True)
class _Ref:
    """What DiscordStandIn.press needs of a message: its id."""

    id: int


class Playground:
    """Reads the stand-in's state for the page and turns page actions into Discord events."""

    def __init__(self, standin: DiscordStandIn) -> None:
        self.standin = standin
        self.uploads: dict[int, Attachment] = {}
        self.submitted: set[int] = set()  # interactions whose modal was submitted
        self.members = {m.id: m for m in MEMBERS}

    # --- what the page shows ------------------------------------------------------------------

    def world(self) -> dict:
        """Servers, members and the commands mimi registered."""
        return {
            "servers": [vars(s) for s in SERVERS],
            "members": [vars(m) for m in MEMBERS],
            "commands": self.standin.registered_commands,
            "bot": {"id": str(self.standin.bot_user_id), "name": self.standin.bot_name},
        }

    def channel(self, guild_id: int, viewer: int) -> dict:
        """The channel of `guild_id` as `viewer` sees it: messages oldest first, and the modal
        mimi opened for them, if any."""
        owners: dict[int, Interaction] = {}
        for inter in self.standin.interactions:
            if inter.original is not None and int(inter.original["id"]) not in owners:
                owners[int(inter.original["id"])] = inter
        by_token = {i.token: i for i in self.standin.interactions}
        for record in self.standin.messages:
            if record.token and record.id not in owners and record.token in by_token:
                owners[record.id] = by_token[record.token]
        ids = set(owners) | set(self.standin._channel_messages)
        shown = []
        for mid in sorted(ids):
            try:
                obj = self.standin.message_object(mid)
            except Exception:  # deleted
                continue
            owner = owners.get(mid)
            if int(obj.get("guild_id") or (owner.guild_id if owner else 0)) != guild_id:
                continue
            if owner is not None and owner.original_deleted and mid == int(owner.original["id"]):
                continue  # (a "thinking…" placeholder an error reply replaced)
            if int(obj.get("flags") or 0) & EPHEMERAL and (
                owner is None or owner.user_id != viewer
            ):
                continue
            shown.append(self._message(obj, owner))
        return {"messages": shown, "modal": self._modal(guild_id, viewer)}

    def _message(self, obj: dict, owner: Interaction | None) -> dict:
        """One message for the page (attachments served by the page itself)."""
        author = obj["author"]
        member = self.members.get(int(author["id"]))
        entry: dict[str, Any] = {
            "id": obj["id"],
            "author": member.name if member else author.get("username"),
            "bot": bool(author.get("bot")) or int(author["id"]) == self.standin.bot_user_id,
            "content": obj.get("content") or "",
            "embeds": obj.get("embeds") or [],
            "components": obj.get("components") or [],
            "attachments": [_attachment(a) for a in obj.get("attachments") or []],
            "ephemeral": bool(int(obj.get("flags") or 0) & EPHEMERAL),
            "loading": bool(int(obj.get("flags") or 0) & LOADING),
            "edited": bool(obj.get("edited_timestamp")),
        }
        command = owner is not None and int(owner.payload["type"]) == 2
        if command and owner.original is not None and owner.original["id"] == obj["id"]:
            data, used = owner.payload.get("data", {}), self.members.get(owner.user_id)
            entry["used"] = {
                "by": used.name if used else str(owner.user_id),
                "command": data.get("name"),
                "menu": data.get("type") == 3,
            }
        return entry

    def _modal(self, guild_id: int, viewer: int) -> dict | None:
        """The latest modal mimi opened for this member here and not yet submitted."""
        for inter in reversed(self.standin.interactions):
            if inter.guild_id != guild_id or inter.user_id != viewer:
                continue
            if inter.response and inter.response.type == 9 and inter.id not in self.submitted:
                return {"interaction": str(inter.id), **(inter.response.data or {})}
        return None

    # --- what a member does ----------------------------------------------------------------

    def _who(self, body: dict) -> dict:
        """The acting member's identity for an interaction."""
        member = self.members[int(body["user"])]
        return {"user_id": member.id, "permissions": MANAGE_GUILD if member.manager else 0,
                "locale": body.get("locale") or "en-US"}  # fmt: skip

    def _options(self, options: dict) -> dict:
        """Option values from the page: an uploaded file is {"upload": id}."""
        out = {}
        for name, value in options.items():
            if isinstance(value, dict) and "upload" in value:
                out[name] = self.uploads[int(value["upload"])]
            elif value not in (None, ""):
                out[name] = value
        return out

    async def command(self, body: dict) -> dict:
        """A member runs a slash command."""
        inter = await self.standin.invoke(
            int(body["guild"]), body["name"], self._options(body.get("options") or {}),
            subcommand=body.get("subcommand") or None, **self._who(body),
        )  # fmt: skip
        return {"interaction": str(inter.id)}

    async def autocomplete(self, body: dict) -> dict:
        """Choices for the option being typed."""
        inter = await self.standin.invoke(
            int(body["guild"]), body["name"], self._options(body.get("options") or {}),
            subcommand=body.get("subcommand") or None, focused=body["focused"],
            **self._who(body),
        )  # fmt: skip
        await inter.deferred(10)
        return {"choices": inter.choices}

    async def press(self, body: dict) -> dict:
        """A member presses a button or picks in a select."""
        inter = await self.standin.press(
            _Ref(int(body["message"])), body["custom_id"], values=body.get("values"),
            **self._who(body),
        )  # fmt: skip
        return {"interaction": str(inter.id)}

    async def submit(self, body: dict) -> dict:
        """A member submits the modal mimi opened."""
        opened = self.standin._by_id[int(body["interaction"])]
        self.submitted.add(opened.id)
        who = self._who(body)
        inter = await self.standin.submit(
            opened, body.get("values") or {}, user_id=who["user_id"],
            permissions=who["permissions"], locale=who["locale"],
        )  # fmt: skip
        return {"interaction": str(inter.id)}

    async def menu(self, body: dict) -> dict:
        """A member uses Apps → <menu> on a message."""
        target = self.standin.message_object(int(body["message"]))
        inter = await self.standin.use_message_command(target, body["name"], **self._who(body))
        return {"interaction": str(inter.id)}

    async def post(self, body: dict) -> dict:
        """A member writes in the channel (with files, perhaps mentioning mimi)."""
        files = [self.uploads[int(u)] for u in body.get("uploads") or []]
        msg = await self.standin.post(
            int(body["guild"]), body.get("content") or "", files=files,
            user_id=int(body["user"]), mention_bot=bool(body.get("mention")),
        )  # fmt: skip
        return {"message": msg["id"]}

    def upload(self, filename: str, data: bytes, content_type: str) -> dict:
        """A file the member chose, hosted on the Discord CDN route."""
        att = self.standin.add_file(filename, data, content_type or "application/octet-stream")
        self.uploads[att.id] = att
        return {"id": str(att.id), "filename": filename, "size": len(data)}


def app(playground: Playground) -> web.Application:
    """The page, its files and the JSON API."""
    routes = web.RouteTableDef()

    @routes.get("/")
    async def index(request: web.Request) -> web.Response:
        return _static("index.html")

    @routes.get("/static/{name}")
    async def static(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in STATIC:
            raise web.HTTPNotFound()
        return _static(name)

    @routes.get("/files/{id}")
    async def files(request: web.Request) -> web.Response:
        hosted = playground.standin._files.get(int(request.match_info["id"]))
        if hosted is None:
            raise web.HTTPNotFound()
        return web.Response(body=hosted.data, content_type=hosted.content_type)

    @routes.get("/api/world")
    async def world(request: web.Request) -> web.Response:
        return web.json_response(playground.world())

    @routes.get("/api/channel")
    async def channel(request: web.Request) -> web.Response:
        q = request.query
        return web.json_response(playground.channel(int(q["guild"]), int(q["user"])))

    @routes.post("/api/upload")
    async def upload(request: web.Request) -> web.Response:
        form = await request.post()
        field = form["file"]
        data = field.file.read()  # type: ignore[union-attr]
        return web.json_response(playground.upload(field.filename, data, field.content_type))  # type: ignore[union-attr]

    for action in ("command", "autocomplete", "press", "submit", "menu", "post"):
        routes.post(f"/api/{action}")(_action(getattr(playground, action)))
    application = web.Application(client_max_size=128 * 1024 * 1024)
    application.add_routes(routes)
    return application


def _attachment(att: dict) -> dict:
    """An attachment as the page shows it (served by the page itself)."""
    return {
        "filename": att["filename"],
        "url": f"/files/{att['id']}",
        "content_type": att.get("content_type", ""),
        "description": att.get("description"),
    }


def _action(handler):
    """A POST route calling `handler(json body)`; a bad request answers 400 with the reason."""

    async def route(request: web.Request) -> web.Response:
        try:
            body = await request.json()
            return web.json_response(await handler(body))
        except (KeyError, ValueError, TypeError, AssertionError, json.JSONDecodeError) as err:
            return web.json_response({"error": str(err) or type(err).__name__}, status=400)

    return route


def _static(name: str) -> web.Response:
    """One of the page's files, shipped in the package."""
    text = resources.files("bot.playground").joinpath("static", name).read_text("utf-8")
    return web.Response(text=text, content_type=TYPES[name], charset="utf-8")
