"""The Discord stand-in drives the real discord.py client end to end (no internet)."""

from __future__ import annotations

import asyncio
import io

import discord
import pytest
from discord import app_commands
from discord.ext import commands

from tests.discord_standin import DiscordStandIn, running_bot

GUILD = 5001
WORDS = ["apple", "apricot", "banana", "cherry"]
PAYLOAD = bytes(range(256)) * 64 + b"\x00tail"  # 16 KiB of every byte value


class EchoBot(commands.Bot):
    """A minimal slash-command bot: /echo, /ping, with autocomplete."""

    def __init__(self) -> None:
        intents = discord.Intents.none()
        intents.guilds = True
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=intents,
            help_command=None,
            guild_ready_timeout=0.1,
        )
        self.status_message: discord.Message | None = None

    async def setup_hook(self) -> None:
        self.tree.add_command(echo)
        self.tree.add_command(ping)
        self.tree.add_command(progress)


@app_commands.command(name="echo", description="Echo text and a file back")
async def echo(
    interaction: discord.Interaction, text: str, file: discord.Attachment, private: bool = False
) -> None:
    await interaction.response.defer(ephemeral=private, thinking=True)
    data = await file.read()
    embed = discord.Embed(title="echo", description=text)
    embed.add_field(name="bytes", value=str(len(data)))
    await interaction.followup.send(
        content=f"echo: {text}",
        embed=embed,
        file=discord.File(io.BytesIO(data), filename=f"echo-{file.filename}"),
        ephemeral=private,
        allowed_mentions=discord.AllowedMentions.none(),
    )


@echo.autocomplete("text")
async def echo_text(interaction: discord.Interaction, current: str) -> list[app_commands.Choice]:
    return [app_commands.Choice(name=w, value=w) for w in WORDS if w.startswith(current)]


@app_commands.command(name="ping", description="Answer at once, then post and edit a status")
async def ping(interaction: discord.Interaction) -> None:
    await interaction.response.send_message(
        "pong", file=discord.File(io.BytesIO(b"pong-bytes"), filename="pong.txt")
    )
    status = await interaction.channel.send("working…")
    await status.edit(content="done")
    await interaction.edit_original_response(content="pong (edited)")


@app_commands.command(name="progress", description="Defer privately, edit the original twice")
async def progress(interaction: discord.Interaction) -> None:
    await interaction.response.defer(ephemeral=True)
    await interaction.edit_original_response(content="50%")
    report = discord.File(io.BytesIO(b"report"), filename="report.txt")
    await interaction.edit_original_response(content="done", attachments=[report])
    await interaction.followup.send("public extra")


@pytest.fixture
async def standin():
    server = DiscordStandIn()
    await server.start()
    server.add_guild(GUILD, "Echo Guild")
    yield server
    await server.close()
    await asyncio.sleep(0)
    leaked = [t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()]
    assert not leaked, f"tasks left running: {leaked}"


@pytest.fixture
async def bot(standin: DiscordStandIn):
    async with running_bot(standin, EchoBot()) as running:
        yield running


async def test_login_ready(standin: DiscordStandIn, bot: EchoBot) -> None:
    """Login (REST), IDENTIFY and READY + GUILD_CREATE reach on_ready with the guild cached."""
    await standin.wait_ready()
    assert bot.is_ready() and standin.identifies == 1
    assert bot.user is not None and bot.user.id == standin.bot_user_id
    assert bot.application_id == standin.app_id
    guild = bot.get_guild(GUILD)
    assert guild is not None and guild.name == "Echo Guild" and guild.text_channels
    paths = [r.path for r in standin.requests]
    assert "/users/@me" in paths and "/oauth2/applications/@me" in paths
    assert standin.requests[0].headers["Authorization"] == "Bot test-token"
    assert not standin.unknown_routes


async def test_deferred_followup_roundtrip(standin: DiscordStandIn, bot: EchoBot) -> None:
    """/echo is deferred, then a followup brings content, the embed and the file bytes back."""
    att = standin.add_file("clip.bin", PAYLOAD)
    inter = await standin.invoke(GUILD, "echo", {"text": "hello", "file": att}, permissions=32)
    resp = await inter.deferred()
    assert resp.type == 5 and not resp.ephemeral
    final = await inter.final(timeout=10)
    assert final.kind == "followup" and final.content == "echo: hello"
    assert final.embeds[0]["title"] == "echo" and final.embeds[0]["description"] == "hello"
    assert final.embeds[0]["fields"][0]["value"] == str(len(PAYLOAD))
    assert final.files == [("echo-clip.bin", PAYLOAD)]
    assert final.allowed_mentions == {"parse": []} and not final.ephemeral
    assert inter.defer_latency is not None and inter.defer_latency < 3
    assert inter.answer_latency is not None and inter.answer_latency >= inter.defer_latency
    cdn = [r for r in standin.requests if r.path.startswith("/attachments/")]
    assert len(cdn) == 1 and cdn[0].status == 200
    # what discord.py sends: no Authorization on interaction endpoints, JSON callback body
    callback = next(r for r in standin.requests if r.path.endswith("/callback"))
    assert "Authorization" not in callback.headers and callback.json["type"] == 5


async def test_ephemeral(standin: DiscordStandIn, bot: EchoBot) -> None:
    """An ephemeral defer (flags 64) makes the deferral and its followup ephemeral."""
    att = standin.add_file("a.txt", b"secret", "text/plain")
    inter = await standin.invoke(GUILD, "echo", {"text": "x", "file": att, "private": True})
    assert (await inter.deferred()).ephemeral
    final = await inter.final(timeout=10)
    assert final.ephemeral and final.flags & 64 and final.files == [("echo-a.txt", b"secret")]


async def test_autocomplete(standin: DiscordStandIn, bot: EchoBot) -> None:
    """A focused option becomes an autocomplete interaction answered with choices (type 8)."""
    inter = await standin.invoke(GUILD, "echo", {"text": "ap"}, focused="text")
    resp = await inter.deferred()
    assert resp.type == 8
    assert [c["value"] for c in inter.choices] == ["apple", "apricot"]


async def test_gateway_drop_resumes(standin: DiscordStandIn, bot: EchoBot) -> None:
    """After the gateway drops, the client RESUMEs (no new IDENTIFY) and commands still work."""
    await standin.drop_gateway()
    await standin.wait_resumed(timeout=10)
    assert standin.resumes == 1 and standin.identifies == 1
    att = standin.add_file("b.bin", b"after-resume")
    inter = await standin.invoke(GUILD, "echo", {"text": "again", "file": att})
    final = await inter.final(timeout=10)
    assert final.files == [("echo-b.bin", b"after-resume")]
    # an abrupt TCP cut is survived the same way
    await standin.drop_gateway(abrupt=True)
    await standin.wait_resumed(2, timeout=10)
    inter = await standin.invoke(GUILD, "echo", {"text": "ap"}, focused="text")
    assert (await inter.deferred()).type == 8 and standin.identifies == 1


async def test_rate_limited_followup_is_retried(standin: DiscordStandIn, bot: EchoBot) -> None:
    """A 429 (Via header + retry_after) on the followup is retried by discord.py and succeeds."""
    standin.fail_next("POST", r"^/webhooks/\d+/[^/]+$", 429, retry_after=0.2)
    att = standin.add_file("c.bin", b"rl")
    inter = await standin.invoke(GUILD, "echo", {"text": "rl", "file": att})
    final = await inter.final(timeout=10)
    assert final.content == "echo: rl"
    posts = [r.status for r in standin.requests if r.method == "POST" and "/webhooks/" in r.path]
    assert posts == [429, 200]
    assert len(inter.messages) == 1


async def test_command_sync(standin: DiscordStandIn, bot: EchoBot) -> None:
    """tree.sync() (global and guild) stores the commands; guild commands are invoked as such."""
    synced = await bot.tree.sync()
    assert sorted(c.name for c in synced) == ["echo", "ping", "progress"]
    assert all(c.id for c in synced)
    echo_cmd = next(c for c in standin.registered_commands if c["name"] == "echo")
    assert [o["name"] for o in echo_cmd["options"]] == ["text", "file", "private"]
    assert echo_cmd["options"][0]["autocomplete"] is True

    guild = discord.Object(GUILD)
    bot.tree.copy_global_to(guild=guild)
    await bot.tree.sync(guild=guild)
    scoped = [c for c in standin.registered_commands if c.get("guild_id") == str(GUILD)]
    assert sorted(c["name"] for c in scoped) == ["echo", "ping", "progress"]
    inter = await standin.invoke(GUILD, "echo", {"text": "ap"}, focused="text")
    assert inter.payload["data"]["guild_id"] == str(GUILD)
    assert (await inter.deferred()).type == 8


class _BadTranslator(app_commands.Translator):
    """Translates every name into something Discord refuses (upper case and a space)."""

    async def translate(self, string, locale, context):
        is_name = context.location is app_commands.TranslationContextLocation.command_name
        return "Bad Name" if locale is discord.Locale.japanese and is_name else None


async def test_command_sync_refuses_names_discord_refuses(
    standin: DiscordStandIn, bot: EchoBot
) -> None:
    """Like Discord, the stand-in answers 400 to a command name (in any language) that is not
    lower-case letters, digits, - or _ (1-32), so a bad translation fails the sync."""
    await bot.tree.set_translator(_BadTranslator())
    try:
        with pytest.raises(discord.HTTPException) as err:
            await bot.tree.sync()
        assert err.value.status == 400 and "Invalid Form Body" in err.value.text
    finally:
        await bot.tree.set_translator(None)
    assert len(await bot.tree.sync()) == 3


async def test_immediate_response_and_channel_messages(
    standin: DiscordStandIn, bot: EchoBot
) -> None:
    """An immediate multipart response, a channel message + edit, and an @original edit."""
    inter = await standin.invoke(GUILD, "ping")
    final = await inter.final(timeout=10)
    assert final.kind == "immediate" and final.content == "pong"
    assert final.files == [("pong.txt", b"pong-bytes")] and inter.response.type == 4
    edit = (await inter.followups(1, timeout=10))[0]
    assert edit.kind == "edit_original" and edit.content == "pong (edited)"
    assert edit.files == [("pong.txt", b"pong-bytes")]  # attachments kept across the edit
    posted = await standin.wait_for_message(kind="channel")
    edited = await standin.wait_for_message(kind="edit_channel")
    assert posted.content == "working…" and edited.content == "done" and edited.id == posted.id
    assert posted.channel_id == standin.default_channel_id(GUILD)


async def test_unknown_route_and_second_ack(standin: DiscordStandIn, bot: EchoBot) -> None:
    """Unknown routes answer 404 JSON; a second callback is refused like Discord (40060)."""
    with pytest.raises(discord.NotFound):
        await bot.http.request(discord.http.Route("GET", "/nowhere/{x}", x=1))
    assert standin.unknown_routes[-1].path == "/nowhere/1"
    inter = await standin.invoke(GUILD, "ping")
    await inter.followups(1, timeout=10)  # ping's last step: the @original edit
    webhook = discord.Webhook.partial(standin.app_id, inter.token, client=bot)
    with pytest.raises(discord.HTTPException) as err:
        await bot.http.request(
            discord.http.Route("POST", f"/interactions/{inter.id}/{inter.token}/callback"),
            json={"type": 5},
        )
    assert err.value.code == 40060
    msg = await webhook.fetch_message(int(inter.original["id"]))
    assert msg.content == "pong (edited)"


async def test_deferred_then_edit_original(standin: DiscordStandIn, bot: EchoBot) -> None:
    """Edits of a deferred @original stay ephemeral and carry files; a later followup is new."""
    inter = await standin.invoke(GUILD, "progress")
    first, second, extra = await inter.followups(3, timeout=10)
    assert [m.kind for m in (first, second, extra)] == [
        "edit_original",
        "edit_original",
        "followup",
    ]
    assert first.content == "50%" and first.ephemeral and first.files == []
    assert second.content == "done" and second.ephemeral
    assert second.files == [("report.txt", b"report")] and second.id == first.id
    assert extra.content == "public extra" and not extra.ephemeral and extra.id != first.id
    assert (await inter.final()) is first


class ListeningBot(EchoBot):
    """EchoBot that also asks for GUILD_MESSAGES (and MESSAGE_CONTENT when `content`)."""

    def __init__(self, *, content: bool = False) -> None:
        intents = discord.Intents.none()
        intents.guilds = intents.guild_messages = True
        intents.message_content = content
        commands.Bot.__init__(
            self, command_prefix=commands.when_mentioned, intents=intents, help_command=None,
            guild_ready_timeout=0.1,
        )  # fmt: skip
        self.seen: list[discord.Message] = []

    async def on_message(self, message: discord.Message) -> None:
        self.seen.append(message)


@pytest.mark.parametrize("content", [False, True])
async def test_message_content_is_hidden_without_the_intent_unless_mentioned(
    standin: DiscordStandIn, content: bool
) -> None:
    """As Discord documents: without MESSAGE_CONTENT a bot gets a member's message with empty
    content and attachments unless it mentions the bot (the replied-to message too)."""
    listener = ListeningBot(content=content)
    async with running_bot(standin, listener):
        song = standin.add_file("song.ogg", PAYLOAD, "audio/ogg")
        plain = await standin.post(GUILD, "hello", files=[song])
        await standin.post(GUILD, "look", mention_bot=True, files=[song],
                           reply_to=int(plain["id"]))  # fmt: skip
        for _ in range(100):
            if len(listener.seen) == 2:
                break
            await asyncio.sleep(0.02)
        first, second = listener.seen
        assert second.content.startswith(f"<@{standin.bot_user_id}>") and second.attachments
        replied = second.reference.resolved
        if content:
            assert first.content == "hello" and first.attachments and replied.attachments
        else:
            assert first.content == "" and not first.attachments
            assert replied.content == "" and not replied.attachments


async def test_modals_and_menus_follow_discords_rules(standin: DiscordStandIn, bot: EchoBot):
    """A message menu (synced, free-text name) opens a modal; a modal cannot answer that
    modal's submit: 400, as Discord answers."""

    class Ask(discord.ui.Modal, title="Ask"):
        answer = discord.ui.TextInput(label="Answer", custom_id="answer")

        async def on_submit(self, interaction: discord.Interaction) -> None:
            await interaction.response.send_modal(Ask())  # not allowed by Discord

    async def open_modal(interaction: discord.Interaction, message: discord.Message) -> None:
        await interaction.response.send_modal(Ask())

    menu = app_commands.ContextMenu(name="Open a form", callback=open_modal)
    bot.tree.add_command(menu)
    await bot.tree.sync()
    posted = await standin.post(GUILD, "x")
    opened = await standin.use_message_command(posted, "Open a form")
    assert (await opened.deferred()).type == 9
    submitted = await standin.submit(opened, {"answer": "yes"})
    for _ in range(100):
        if any(r.status == 400 and "/callback" in r.path for r in standin.requests):
            break
        await asyncio.sleep(0.02)
    assert submitted.response is None  # the modal-on-modal was refused
    assert any(r.status == 400 and "/callback" in r.path for r in standin.requests)
