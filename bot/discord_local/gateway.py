"""The gateway websocket: HELLO, IDENTIFY (READY + GUILD_CREATEs), HEARTBEAT/ACK, RESUME,
REQUEST_GUILD_MEMBERS and DISPATCH of events (a single shard), and dropping the connection."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from . import payloads as P
from .records import JSON, Records, _Guild


class Gateway(Records):
    """The bot's websocket (``gateway_url``): one live connection, identified or resumed."""

    if TYPE_CHECKING:

        def _guild_create(self, g: _Guild) -> JSON: ...

    async def wait_ready(self, timeout: float = 20) -> None:
        """Until IDENTIFY was answered with READY (+ GUILD_CREATEs) and the client heartbeated."""
        await self._wait(
            lambda: self._ready_sent and self.heartbeats > 0, timeout, "IDENTIFY + READY"
        )

    async def wait_resumed(self, count: int = 1, timeout: float = 20) -> None:
        await self._wait(lambda: self.resumes >= count, timeout, f"{count} RESUME(s)")

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
