"""REST plumbing of the stand-in: every /api/v10 request is read and recorded, then failed on
purpose (``fail_next``) or routed (the table is DiscordStandIn's); errors are answered as
Discord answers them. Also the identity routes (users, application, gateway URL)."""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from . import payloads as P
from .records import Records, Request

log = logging.getLogger("discord_standin")


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


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    # Content-Type must be exactly application/json: discord.py's json_or_text compares it
    # verbatim, and aiohttp's json_response would append "; charset=utf-8".
    return web.Response(
        body=json.dumps(data).encode(),
        status=status,
        headers={"Content-Type": "application/json", **(headers or {})},
    )


Handler = Callable[..., Awaitable[web.StreamResponse]]


class RestApi(Records):
    """Reading, recording, failing and routing REST requests; the identity routes."""

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

    async def _no_content(self, rec: Request, *args: str) -> web.Response:
        return web.Response(status=204)

    # ------------------------------------------------------------------ identity

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
