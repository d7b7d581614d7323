"""What members do besides slash commands: post messages (with files, mentions, replies, voice
messages), use message context menus, submit modals, and remove the bot from a server.

Faithful to Discord's documented rules for an app without the privileged MESSAGE_CONTENT
intent: MESSAGE_CREATE arrives only with GUILD_MESSAGES, and its content, embeds, attachments
and components are empty unless the message mentions the app or the app sent it (the target
of a message context menu always comes whole, in ``data.resolved.messages``).
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any

from . import payloads as P

if TYPE_CHECKING:
    from .records import Attachment, Interaction, Message, _Guild

JSON = dict[str, Any]
GUILD_MESSAGES = 1 << 9
MESSAGE_CONTENT = 1 << 15
IS_VOICE_MESSAGE = 1 << 13
CONTENT_FIELDS = {"content": "", "embeds": [], "attachments": [], "components": []}
MESSAGE_COMMAND = 3  # application command type of a message context menu


class MemberActions:
    """Mixed into DiscordStandIn (which provides the guilds, files, messages and dispatch)."""

    if TYPE_CHECKING:
        _guilds: dict[int, _Guild]
        _channel_messages: dict[int, JSON]
        identify_payloads: list[JSON]
        bot_user_id: int
        usernames: dict[int, str]

        async def _dispatch(self, event: str, data: JSON, timeout: float = 20) -> None: ...
        async def _create(self, payload: JSON) -> Interaction: ...
        def _interaction_payload(self, *a: Any, **k: Any) -> JSON: ...
        def _find_command(self, name: str, guild_id: int) -> JSON | None: ...
        def message_object(self, message_id: int) -> JSON: ...
        def _find_channel(self, channel_id: int) -> tuple[_Guild, JSON]: ...

    # --- what the bot may see -------------------------------------------------------------

    @property
    def intents(self) -> int:
        """The intents of the bot's latest IDENTIFY (0 before it identified)."""
        return int(self.identify_payloads[-1].get("intents", 0)) if self.identify_payloads else 0

    def visible(self, message: JSON) -> JSON:
        """A message as the bot receives it: content fields emptied unless it may read them."""
        mentioned = any(int(u["id"]) == self.bot_user_id for u in message.get("mentions", []))
        own = int(message["author"]["id"]) == self.bot_user_id
        if self.intents & MESSAGE_CONTENT or mentioned or own:
            return message
        return {**message, **{k: type(v)() for k, v in CONTENT_FIELDS.items()}}

    # --- members' messages ----------------------------------------------------------------

    async def post(
        self,
        guild_id: int,
        content: str = "",
        *,
        files: list[Attachment] = (),  # type: ignore[assignment]
        user_id: int = 2001,
        channel_id: int | None = None,
        mention_bot: bool = False,
        reply_to: int | None = None,
        voice: bool = False,
    ) -> JSON:
        """A member posts a message (``mention_bot``: "<@bot> " is prepended; ``reply_to``: a
        reply to that message; ``voice``: a voice message, one OGG/Opus file); the bot gets
        MESSAGE_CREATE if its intents ask for it. The message as stored."""
        guild = self._guilds[guild_id]
        channel = channel_id or guild.channel_id
        author = P.user(user_id, username=self.usernames.get(user_id))
        guild.members.setdefault(user_id, P.member(author))
        if mention_bot:
            content = f"<@{self.bot_user_id}> {content}".strip()
        attachments = [dict(a) for a in files]
        if voice:
            for att in attachments:
                att.update(
                    duration_secs=12.0,
                    waveform=base64.b64encode(bytes(range(0, 256, 4))).decode(),
                )
        msg = P.message(
            P.snowflake(), channel, author, guild_id=guild_id, content=content,
            attachments=attachments, flags=IS_VOICE_MESSAGE if voice else 0,
        )  # fmt: skip
        msg["member"] = {k: v for k, v in guild.members[user_id].items() if k != "user"}
        if f"<@{self.bot_user_id}>" in content:
            msg["mentions"] = [P.user(self.bot_user_id, username="mimi-test", bot=True)]
        if reply_to is not None:
            target = self.message_object(reply_to)
            msg["type"] = 19  # REPLY
            msg["message_reference"] = {
                "type": 0, "message_id": target["id"], "channel_id": target["channel_id"],
                "guild_id": str(guild_id),
            }  # fmt: skip
            msg["referenced_message"] = target
        self._channel_messages[int(msg["id"])] = msg
        if self.intents & GUILD_MESSAGES:
            seen = self.visible(msg)
            if "referenced_message" in seen:
                seen = {**seen, "referenced_message": self.visible(seen["referenced_message"])}
            await self._dispatch("MESSAGE_CREATE", seen)
        return msg

    async def use_message_command(
        self,
        message: JSON,
        name: str,
        *,
        user_id: int = 2001,
        permissions: int = 0,
        locale: str = "en-US",
        app_permissions: int = P.ALL_PERMISSIONS,
    ) -> Interaction:
        """A member picks Apps → ``name`` on ``message``: an APPLICATION_COMMAND interaction of
        type MESSAGE carrying the whole target message."""
        guild, channel = self._find_channel(int(message["channel_id"]))
        registered = self._find_command(name, guild.id)
        data = {
            "id": str(registered["id"]) if registered else str(P.snowflake()),
            "name": name, "type": MESSAGE_COMMAND, "target_id": message["id"],
            "resolved": {"messages": {message["id"]: message}},
        }  # fmt: skip
        payload = self._interaction_payload(
            guild, channel, 2, data, user_id=user_id, permissions=permissions,
            app_permissions=app_permissions, locale=locale,
        )  # fmt: skip
        return await self._create(payload)

    async def submit(
        self,
        opened: Interaction,
        values: dict[str, str],
        *,
        user_id: int | None = None,
        permissions: int = 0,
        locale: str = "en-US",
    ) -> Interaction:
        """Submit the modal that ``opened`` answered with (callback type 9), its text inputs
        filled with ``values`` (custom_id -> text): a MODAL_SUBMIT interaction (type 5)."""
        if opened.response is None or opened.response.type != 9:
            raise AssertionError(f"{opened!r} did not open a modal")
        modal = opened.response.data or {}
        inputs = [c for row in modal.get("components", []) for c in row.get("components", [])]
        known = {c["custom_id"] for c in inputs}
        if unknown := set(values) - known:
            raise AssertionError(f"the modal has no inputs {sorted(unknown)} (has {known})")
        for c in inputs:
            if c.get("required", True) and not values.get(c["custom_id"]):
                raise AssertionError(f"required input {c['custom_id']!r} left empty")
        rows = [{"type": 1, "components": [{"type": 4, "custom_id": c["custom_id"],
                                            "value": values.get(c["custom_id"], "")}]}
                for c in inputs]  # fmt: skip
        guild, channel = self._find_channel(opened.channel_id)
        payload = self._interaction_payload(
            guild, channel, 5, {"custom_id": modal["custom_id"], "components": rows},
            user_id=opened.user_id if user_id is None else user_id, permissions=permissions,
            app_permissions=P.ALL_PERMISSIONS, locale=locale,
        )  # fmt: skip
        if "message" in opened.payload:  # opened from a component: the modal knows its message
            payload["message"] = self.message_object(int(opened.payload["message"]["id"]))
        return await self._create(payload)

    async def remove_bot(self, guild_id: int) -> None:
        """The bot is kicked from (or leaves) a guild: GUILD_DELETE without ``unavailable``."""
        self._guilds.pop(guild_id)
        await self._dispatch("GUILD_DELETE", {"id": str(guild_id)})

    def channel_replies(self, message_id: int) -> list[Message]:
        """The bot's channel messages that reply to ``message_id``."""
        return [m for m in self.messages  # type: ignore[attr-defined]
                if m.kind == "channel"
                and str((m.payload.get("message_reference") or {}).get("message_id"))
                == str(message_id)]  # fmt: skip
