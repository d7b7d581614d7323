"""How the bot answers interactions: the callback (its first response, refused where Discord
refuses it) and the interaction webhook (followups; reads, edits and deletes of its messages)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from aiohttp import web

from . import payloads as P
from .records import EPHEMERAL, JSON, LOADING, Interaction, Message, Records, Request, Response
from .rest import _HTTPError, _json

# interaction callback types
PONG, CHANNEL_MESSAGE, DEFERRED_MESSAGE, DEFERRED_UPDATE, UPDATE_MESSAGE = 1, 4, 5, 6, 7
AUTOCOMPLETE_RESULT, MODAL = 8, 9


def _check_modal(inter: Interaction, modal: JSON) -> None:
    """400, as Discord answers, for a modal it would not show."""
    if int(inter.payload["type"]) not in (2, 3):  # only commands and components open modals
        raise _HTTPError(400, "Cannot send a modal in response to this interaction", 50035)
    if not modal.get("custom_id") or not 1 <= len(modal.get("title") or "") <= 45:
        raise _HTTPError(400, "Invalid Form Body (modal custom_id/title)", 50035)
    if not 1 <= len(modal.get("components") or []) <= 5:
        raise _HTTPError(400, "Invalid Form Body (modal components)", 50035)


class ResponsesApi(Records):
    """The /interactions/{id}/{token}/callback and /webhooks/{app}/{token} routes."""

    if TYPE_CHECKING:

        def message_object(self, message_id: int) -> JSON: ...
        def _store_message(self, new: JSON) -> None: ...
        def _apply_edit(self, obj: JSON, rec: Request, payload: JSON) -> JSON: ...
        def _resolve_files(
            self,
            rec: Request,
            payload: JSON,
            channel_id: int,
            existing: list[JSON] | None = None,
        ) -> list[JSON]: ...
        def _record(
            self,
            kind: str,
            obj: JSON,
            payload: JSON,
            *,
            token: str | None = None,
            ephemeral: bool | None = None,
        ) -> Message: ...

    def _interaction_for(self, token: str, app_id: str | None = None) -> Interaction:
        inter = self._by_token.get(token)
        if inter is None or (app_id is not None and int(app_id) != self.app_id):
            raise _HTTPError(404, "Unknown Webhook", 10015)
        return inter

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

    # ------------------------------------------------------------------ the webhook

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
