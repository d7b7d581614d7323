"""The bot's messages: where their JSON is kept, how an edit applies, the attachments a payload
leaves them (uploads are hosted on the CDN route), the ``Message`` records, and the channel
message routes (post or reply, get, edit, delete)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from aiohttp import web

from . import payloads as P
from .records import EPHEMERAL, JSON, Attachment, Message, Records, Request, _Guild
from .rest import _HTTPError, _json


class MessagesApi(Records):
    """Message storage, edits and records, and the /channels/{id}/messages routes."""

    if TYPE_CHECKING:

        def _host(
            self, name: str, data: bytes, content_type: str, *, channel_id: int
        ) -> Attachment: ...
        def _find_channel(self, channel_id: int) -> tuple[_Guild, JSON]: ...
        def visible(self, message: JSON) -> JSON: ...

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

    # ------------------------------------------------------------------ channel messages

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
