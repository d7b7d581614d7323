"""Guilds: setting them up (``add_guild``; a join once the bot is connected), their
GUILD_CREATE payload, and the REST routes that read guilds, channels and members."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from . import payloads as P
from .records import JSON, Records, Request, _Guild
from .rest import _HTTPError, _json


class GuildsApi(Records):
    """Guilds with their channels and members, and the /guilds and /channels/{id} routes."""

    if TYPE_CHECKING:

        async def _dispatch(self, event: str, data: JSON, timeout: float = 20) -> None: ...
        def _spawn(self, coro: Awaitable[Any]) -> None: ...

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

    def _find_channel(self, channel_id: int) -> tuple[_Guild, JSON]:
        for g in self._guilds.values():
            for c in g.channels:
                if int(c["id"]) == channel_id:
                    return g, c
        raise _HTTPError(404, "Unknown Channel", 10003)

    def _guild(self, guild_id: str) -> _Guild:
        guild = self._guilds.get(int(guild_id))
        if guild is None:
            raise _HTTPError(404, "Unknown Guild", 10004)
        return guild

    # ------------------------------------------------------------------ REST

    async def _get_channel(self, rec: Request, channel_id: str) -> web.Response:
        return _json(self._find_channel(int(channel_id))[1])

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
