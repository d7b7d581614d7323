"""The CDN route (``/attachments/{channel}/{id}/{name}``): files the tests host
(``add_file``, ``add_stream``) and the bot's uploads, served in pieces."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING
from urllib.parse import quote

from aiohttp import web

from . import payloads as P
from .records import Attachment, Records, Request


class Cdn(Records):
    """Hosted files and the route that serves them (counting the bytes it wrote)."""

    if TYPE_CHECKING:

        async def _read_request(self, request: web.Request, path: str) -> Request: ...

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
