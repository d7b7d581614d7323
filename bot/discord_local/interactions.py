"""Interactions members start: the application commands the bot registers (refused as Discord
refuses them), ``invoke`` of a slash command and ``press`` of a message component."""

from __future__ import annotations

import re
import secrets
import time
from typing import TYPE_CHECKING

from aiohttp import web

from . import payloads as P
from .records import (
    ATTACHMENT_SIZE_LIMIT,
    JSON,
    Attachment,
    Interaction,
    Message,
    Records,
    Request,
    _Guild,
)
from .rest import _HTTPError, _json

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


class InteractionsApi(Records):
    """The command registration routes, and the INTERACTION_CREATEs members cause."""

    if TYPE_CHECKING:

        async def _dispatch(self, event: str, data: JSON, timeout: float = 20) -> None: ...
        def message_object(self, message_id: int) -> JSON: ...
        def _find_channel(self, channel_id: int) -> tuple[_Guild, JSON]: ...

    # ------------------------------------------------------------------ registered commands

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

    # ------------------------------------------------------------------ invoking them

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
