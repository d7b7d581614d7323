"""mimi in Japanese, private guesses, upload limits, song autocomplete, and artists renamed or
merged, through the real client and the stand-in."""

from __future__ import annotations

import asyncio
from pathlib import Path

import discord
import pytest
import pytest_asyncio

from bot.client import MimiBot
from bot.config import Settings
from bot.render import SMALL_PX
from tests.audio_factory import encode
from tests.bot.pictures import found
from tests.discord_standin import DiscordStandIn, running_bot

pytestmark = pytest.mark.asyncio(loop_scope="module")
JA, EN = 7101, 7102  # a Japanese community, and an English one
MANAGER, MEMBER, OTHER = 3001, 3002, 3003
MANAGE_GUILD = 1 << 5
VOICES = {"嵐": 0, "AAA": 4}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """Two songs and one held-out clip of each of two synthetic artists."""
    folder = tmp_path_factory.mktemp("audio")
    out = {}
    for k, voice in enumerate(VOICES.values()):
        for i in range(2):
            out[f"{k}-{i}.mp3"] = encode(
                folder / f"{k}-{i}.mp3", "mp3", seconds=21, voice=voice, seed=i
            ).read_bytes()
        out[f"new-{k}.ogg"] = encode(
            folder / f"new-{k}.ogg", "ogg", seconds=14, voice=voice, seed=50
        ).read_bytes()
    return out


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def env(tmp_path_factory: pytest.TempPathFactory, frontend_weights: Path):
    """One running bot on a stand-in with a Japanese and an English server."""
    settings = Settings.load(
        environ={}, env_file=None, data_dir=tmp_path_factory.mktemp("data"),
        frontend_weights=frontend_weights, teach_cooldown_s=0.0, guess_cooldown_s=0.0,
        train_quiet_s=0.5, max_upload_mb=25,
    )  # fmt: skip
    async with DiscordStandIn() as standin:
        standin.add_guild(JA, "日本のサーバー", locale="ja")
        standin.add_guild(EN)
        bot = MimiBot(settings, guild_ready_timeout=0.1)
        async with running_bot(standin, bot, timeout=60):
            yield standin, bot


async def _teach(standin, files, guild: int, locale: str) -> None:
    """Teach both artists' songs in `guild` as a member speaking `locale`."""
    for k, artist in enumerate(VOICES):
        for i in range(2):
            att = standin.add_file(f"{k}-{i}.mp3", files[f"{k}-{i}.mp3"], "audio/mpeg")
            inter = await standin.invoke(
                guild, "teach", {"artist": artist, "song": att}, locale=locale, user_id=MEMBER
            )
            reply = await inter.final(timeout=90)
            assert not reply.ephemeral, reply.content
            if locale == "ja":
                assert f"**{artist}** を {k}-{i}.mp3 から覚えました" in reply.content
                assert "再学習を予定しました" in reply.content


async def test_commands_are_registered_in_japanese(env) -> None:
    """Every command and option has a Japanese name and description (Discord accepted them)."""
    standin, bot = env
    await bot.tree.sync()  # what `mimi sync-commands` does: the translator runs here
    commands = {c["name"]: c for c in standin.registered_commands}
    assert set(commands) == {
        "artist", "artists", "forget", "guess", "help", "retrain", "songs", "stats", "teach",
        "Who's this artist?", "Teach mimi this song…",
    }  # fmt: skip
    assert commands["guess"]["name_localizations"]["ja"] == "当てる"
    assert commands["teach"]["description_localizations"]["ja"] == "アーティストの曲を教える"
    for command in commands.values():
        assert command["name_localizations"].get("ja"), command["name"]
        options = list(command.get("options", []))
        while options:  # subcommands' options too
            option = options.pop()
            assert option["name_localizations"].get("ja"), (command["name"], option["name"])
            assert option["description_localizations"].get("ja"), option["name"]
            options += option.get("options", [])
    (rename,) = commands["artist"]["options"]
    assert [o["name_localizations"]["ja"] for o in rename["options"]] == ["元の名前", "新しい名前"]


async def test_teach_guess_stats_in_japanese(env, files) -> None:
    """A Japanese member teaches 嵐 and AAA: replies, the training news, the guess (with a
    picture showing 嵐), errors and /stats all speak Japanese."""
    standin, bot = env
    await _teach(standin, files, JA, "ja")
    await asyncio.sleep(1.0)
    await asyncio.wait_for(bot.training.wait_idle(JA), 180)
    version = bot.mimi.registry.current(JA).version
    channel = standin.default_channel_id(JA)
    ready = await standin.wait_for_message(
        lambda m: (
            m.channel_id == channel and m.content.startswith(f"モデル v{version} ができました")
        ),
        timeout=120,
    )  # the server's language, for a message everyone reads
    assert "曲の正解率" in ready.content

    att = standin.add_file("new-0.ogg", files["new-0.ogg"], "audio/ogg")
    answer = await (await standin.invoke(JA, "guess", {"clip": att}, locale="ja")).final(60)
    embed = answer.embeds[0]
    assert embed["title"] == "嵐 の曲みたいです", embed["title"]
    assert (
        f"モデル v{version}" in embed["footer"]["text"]
        and "秒を聴きました" in embed["footer"]["text"]
    )
    picture = answer.files[0][1]
    assert found(picture, "嵐", 34) > 0.9 and found(picture, "嵐", SMALL_PX) > 0.9
    assert answer.attachments[0]["description"].startswith("new-0.ogg の図：嵐 の曲みたいです")

    stats = await (await standin.invoke(JA, "stats", locale="ja")).final(30)
    fields = {f["name"]: f["value"] for f in stats.embeds[0]["fields"]}
    assert stats.embeds[0]["title"] == "ここで覚えたこと"
    assert "嵐：2曲" in fields["アーティスト（2）"] and "曲の正解率" in fields[f"モデル v{version}"]
    assert found(stats.files[0][1], "嵐", 34) > 0.9

    att = standin.add_file("notes.txt", b"just some text, no music at all\n" * 40, "text/plain")
    refused = await (await standin.invoke(
        JA, "teach", {"artist": "嵐", "song": att}, locale="ja")).final(30)  # fmt: skip
    assert refused.ephemeral and refused.content.startswith(
        "音声ではないようです（テキストファイル）"
    )
    no = await (await standin.invoke(JA, "retrain", locale="ja")).final(30)
    assert no.ephemeral and no.content == "それには「サーバー管理」権限が必要です。"


async def test_member_language_wins_over_the_server(env, files) -> None:
    """An English-speaking member of the Japanese server is answered in English, and a
    Japanese member of an English server in Japanese."""
    standin, bot = env
    await asyncio.wait_for(bot.training.wait_idle(JA), 180)
    listed = await (await standin.invoke(JA, "artists", locale="en-US")).final(30)
    assert "**嵐**: 2 songs, " in listed.content
    empty = await (await standin.invoke(EN, "artists", locale="ja")).final(30)
    assert empty.content == "まだアーティストがいません。`/教える` で教えてください。"


@pytest.mark.parametrize("locale", ["en-US", "ja"])
async def test_help_lists_every_command_with_an_example(env, locale: str) -> None:
    """/help answers privately: an introduction, then one embed per group, each command under
    the name the member's Discord shows, with what it does and an example; last, the menus,
    mentions and corrections."""
    standin, bot = env
    reply = await (await standin.invoke(EN, "help", locale=locale)).final(30)
    assert reply.ephemeral and len(reply.embeds) == 6
    fields = [f for e in reply.embeds[1:-1] for f in e["fields"]]
    chat = [f["name"] for f in reply.embeds[-1]["fields"]]
    menus = ("このアーティストは？", "この曲をmimiに教える…") if locale == "ja" else (
        "Who's this artist?", "Teach mimi this song…")  # fmt: skip
    assert chat[:3] == [*menus, "@mimi"] and "✏️" in chat[3]
    names = [f["name"].split(" (")[0].split("（")[0] for f in fields]
    if locale == "ja":
        assert "/教える" in names and "/アーティスト 名前変更" in names and "/当てる" in names
        assert "例：" in fields[0]["value"]
    else:
        assert names == ["/teach", "/forget", "/artist rename", "/guess", "/stats", "/artists",
                         "/songs", "/retrain"]  # fmt: skip
        assert "Example: `/teach artist:AAA song:<file>`" in fields[0]["value"]
    shown = {c.qualified_name for c in bot.tree.walk_commands()
             if not isinstance(c, discord.app_commands.Group)} - {"help"}  # fmt: skip
    assert len(fields) == len(shown)  # every command is explained


async def test_private_guess_is_seen_only_by_the_member(env, files) -> None:
    """/guess private:true answers ephemerally, picture included; no public placeholder."""
    standin, bot = env
    await asyncio.wait_for(bot.training.wait_idle(JA), 180)
    att = standin.add_file("new-1.ogg", files["new-1.ogg"], "audio/ogg")
    inter = await standin.invoke(JA, "guess", {"clip": att, "private": True})
    answer = await inter.final(60)
    assert (await inter.deferred()).ephemeral and answer.ephemeral
    assert answer.embeds[0]["title"] == "Sounds like AAA" and answer.files[0][0] == "guess.png"


async def test_upload_limit_is_the_smaller_of_mimis_and_discords(env, files) -> None:
    """A server whose Discord upload limit is under mimi's gets that limit, and the refusal
    says what it is and why; mimi's own limit is named as such."""
    standin, _ = env
    att = standin.add_file("big.mp3", files["0-0.mp3"], "audio/mpeg")
    att["size"] = 3 * 2**20
    teach = {"artist": "嵐", "song": att}
    small = await (await standin.invoke(JA, "teach", teach, attachment_size_limit=2**20)).final(30)
    assert small.ephemeral
    assert "the limit is 1.0 MB, the most Discord lets this server" in small.content
    att["size"] = 30 * 2**20  # over MIMI_MAX_UPLOAD_MB (25) and under Discord's 50 MB
    inter = await standin.invoke(
        JA, "guess", {"clip": att}, attachment_size_limit=50 * 2**20, locale="ja"
    )
    ours = await inter.final(30)
    assert ours.ephemeral and "上限は 25.0 MB（この bot が受け付ける上限）" in ours.content


async def test_forget_song_autocompletes_from_the_servers_songs(env) -> None:
    """/forget song: suggests this server's songs by number, file and artist."""
    standin, bot = env
    inter = await standin.invoke(JA, "forget", {"song": {"type": 4, "value": ""}}, focused="song")
    await inter.deferred()
    songs = await bot.mimi.store.songs(JA)
    assert [c["value"] for c in inter.choices] == [s.id for s in reversed(songs)]
    assert inter.choices[0]["name"] == f"#{songs[-1].id} {songs[-1].filename} — AAA"
    typed = await standin.invoke(JA, "forget", {"song": {"type": 4, "value": "嵐"}},
                                 focused="song")  # fmt: skip
    await typed.deferred()
    assert {c["name"].split(" — ")[1] for c in typed.choices} == {"嵐"}


async def test_batch_teach_says_what_it_is_reading(env, files) -> None:
    """/teach with three songs edits its reply as it reads ("Reading 2 of 3: …"), then lists
    each song's outcome (a duplicate among them) without losing the others."""
    standin, bot = env
    songs = {"song": ("0-0.mp3", "a.mp3"), "song2": ("0-1.mp3", "b.mp3"),
             "song5": ("0-0.mp3", "again.mp3")}  # fmt: skip
    options: dict[str, object] = {"artist": "Batch"}
    for option, (source, name) in songs.items():
        options[option] = standin.add_file(name, files[source], "audio/mpeg")
    inter = await standin.invoke(EN, "teach", options)
    await standin.wait_for_message(
        lambda m: m.token == inter.token and "retrain is scheduled" in (m.content or ""),
        timeout=120,
    )
    contents = [m.content for m in inter.messages]
    assert contents[0] == "Reading 1 of 3: a.mp3…"
    assert any(c.endswith("Reading 2 of 3: b.mp3…") and "Learned **Batch** from a.mp3" in c
               for c in contents)  # fmt: skip
    final = contents[-1]
    assert final.count("Learned **Batch**") == 2 and "again.mp3: Already known" in final
    assert all(m.kind == "edit_original" for m in inter.messages)
    assert [a.songs for a in await bot.mimi.artists(EN) if a.name == "Batch"] == [2]


async def test_songs_are_listed_with_ids_and_paged(env, tmp_path: Path) -> None:
    """/songs lists the songs newest first with their ids, artist, length, who taught them and
    when, ten a page; ◀ ▶ turn the pages (disabled at the ends); /songs artist: filters."""
    standin, bot = env
    for seed in range(11):
        clip = encode(tmp_path / f"p{seed}.ogg", "ogg", seconds=11, voice=seed % 3, seed=seed)
        await bot.mimi.teach(EN, "Pages", clip, taught_by=MEMBER, filename=f"p{seed}.ogg")
    first = await (await standin.invoke(EN, "songs", {"artist": "pages"})).final(30)
    embed = first.embeds[0]
    assert first.ephemeral and embed["title"] == "Pages: 11 songs"
    assert embed["footer"]["text"] == "page 1 of 2"
    lines = embed["description"].split("\n")
    songs = await bot.mimi.store.songs(EN, "Pages")
    assert len(lines) == 10 and lines[0].startswith(f"**#{songs[-1].id}** p10.ogg — Pages · 11")
    assert f"<@{MEMBER}> <t:" in lines[0]
    buttons = first.components[0]["components"]
    assert [b.get("disabled", False) for b in buttons] == [True, False]
    turned = await (await standin.press(first, "mimi:songs:next")).final(30)
    assert turned.kind == "update" and turned.embeds[0]["footer"]["text"] == "page 2 of 2"
    assert turned.embeds[0]["description"].startswith(f"**#{songs[0].id}** p0.ogg")
    everything = await (await standin.invoke(EN, "songs", locale="ja")).final(30)
    assert everything.embeds[0]["title"] == "ここで教わった曲（13曲）"


async def test_rename_keeps_the_model_answering(env, files) -> None:
    """/artist rename changes the name everywhere at once; the same model answers with it."""
    standin, bot = env
    await asyncio.wait_for(bot.training.wait_idle(JA), 180)
    version = bot.mimi.registry.current(JA).version
    denied = await (await standin.invoke(
        JA, "artist", {"from": "AAA", "to": "トリプル・エー"}, subcommand="rename",
        user_id=MEMBER)).final(30)  # fmt: skip
    assert denied.ephemeral and "Manage Server" in denied.content
    done = await (await standin.invoke(
        JA, "artist", {"from": "aaa", "to": "トリプル・エー"}, subcommand="rename",
        user_id=MANAGER, permissions=MANAGE_GUILD, locale="ja")).final(30)  # fmt: skip
    assert done.content.startswith("AAA を **トリプル・エー** に改名しました")
    att = standin.add_file("new-1.ogg", files["new-1.ogg"], "audio/ogg")
    answer = await (await standin.invoke(JA, "guess", {"clip": att})).final(60)
    assert answer.embeds[0]["title"] == "Sounds like トリプル・エー"
    assert bot.mimi.registry.current(JA).version == version  # no retrain was needed
    stats = await bot.mimi.stats(JA)
    assert "トリプル・エー" in stats["model"]["artists"] and "AAA" not in stats["model"]["artists"]


async def test_renaming_onto_another_artist_merges_after_confirmation(env, files) -> None:
    """Renaming onto an existing artist asks first: only the asker may answer; cancel changes
    nothing; confirm moves the songs and schedules a retrain."""
    standin, bot = env
    ask = {"from": "トリプル・エー", "to": "嵐"}
    manager = {"user_id": MANAGER, "permissions": MANAGE_GUILD}
    question = await (await standin.invoke(JA, "artist", ask, subcommand="rename",
                                           **manager)).final(30)  # fmt: skip
    assert question.ephemeral and question.content.startswith("Merge トリプル・エー into 嵐?")
    stranger = await (await standin.press(question, "mimi:confirm", user_id=OTHER)).final(30)
    assert stranger.ephemeral and "Only the member who asked" in stranger.content
    cancelled = await (await standin.press(question, "mimi:cancel", user_id=MANAGER)).final(30)
    assert cancelled.kind == "update" and cancelled.content == "Cancelled; nothing changed."
    assert cancelled.components == []
    assert {a.name for a in await bot.mimi.artists(JA)} == {"嵐", "トリプル・エー"}

    question = await (await standin.invoke(JA, "artist", ask, subcommand="rename",
                                           **manager)).final(30)  # fmt: skip
    confirm = await standin.press(question, "mimi:confirm", user_id=MANAGER)
    merged = await confirm.final(30)
    assert merged.content.startswith("Merged トリプル・エー into **嵐**: 2 songs moved")
    assert [(a.name, a.songs) for a in await bot.mimi.artists(JA)] == [("嵐", 4)]
    shown = standin.message_object(question.id)
    assert shown["components"] == [] and shown["content"] == merged.content
