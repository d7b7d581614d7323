"""Talking to mimi the Discord way, through the real client and the stand-in: message context
menus, mentions, corrections under guesses, retry after a cooldown, /forget me, and the
deletion of a server's data when mimi is removed."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path

import pytest
import pytest_asyncio

from bot.client import MimiBot
from bot.config import Settings
from bot.discord_local.members import GUILD_MESSAGES, MESSAGE_CONTENT
from tests.audio_factory import encode
from tests.discord_standin import DiscordStandIn, running_bot

pytestmark = pytest.mark.asyncio(loop_scope="module")
GUILD, LEAVING = 7201, 7202
ASKER, OTHER, MANAGER, TEACHER = 3101, 3102, 3103, 3104
MANAGE_GUILD = 1 << 5
VOICES = {"Drone": 0, "Chime": 4}
WHO, TEACH = "Who's this artist?", "Teach mimi this song…"


def custom_ids(obj: dict) -> list[str]:
    """The custom ids of a message's components, in order."""
    return [c.get("custom_id") for row in obj.get("components") or []
            for c in row.get("components", [])]  # fmt: skip


@pytest.fixture(scope="module")
def audio(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two songs of each of two synthetic artists, clips of each, a voice message, a third."""
    folder = tmp_path_factory.mktemp("audio")
    out = {}
    for k, voice in enumerate(VOICES.values()):
        for i in range(2):
            out[f"{k}-{i}"] = encode(folder / f"{k}-{i}.mp3", "mp3", seconds=21, voice=voice,
                                     seed=i)  # fmt: skip
        for i in range(3):
            out[f"clip-{k}-{i}"] = encode(folder / f"clip-{k}-{i}.ogg", "ogg", seconds=12,
                                          voice=voice, seed=60 + i)  # fmt: skip
    out["voice"] = encode(folder / "voice-message.ogg", "opus", seconds=11, voice=0, seed=77)
    out["third"] = encode(folder / "third.mp3", "mp3", seconds=21, voice=8, seed=5)
    return out


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def env(tmp_path_factory: pytest.TempPathFactory, frontend_weights: Path, audio):
    """A bot with a trained model in GUILD (two artists), and a second server with a song."""
    settings = Settings.load(
        environ={}, env_file=None, data_dir=tmp_path_factory.mktemp("data"),
        frontend_weights=frontend_weights, teach_cooldown_s=0.0, guess_cooldown_s=0.0,
        train_quiet_s=600.0,
    )  # fmt: skip
    async with DiscordStandIn() as standin:
        standin.add_guild(GUILD)
        standin.add_guild(LEAVING)
        bot = MimiBot(settings, guild_ready_timeout=0.1)
        async with running_bot(standin, bot, timeout=60):
            for k, artist in enumerate(VOICES):
                for i in range(2):
                    await bot.mimi.teach(GUILD, artist, audio[f"{k}-{i}"], taught_by=TEACHER)
            await bot.mimi.teach(LEAVING, "Drone", audio["0-0"], taught_by=TEACHER)
            await bot.training.train_now(GUILD, "test")
            yield standin, bot


def hosted(standin: DiscordStandIn, audio: dict[str, Path], key: str, ctype="audio/ogg"):
    """One of the audio files, hosted on the stand-in's CDN."""
    return standin.add_file(audio[key].name, audio[key].read_bytes(), ctype)


async def test_intents_stay_unprivileged(env) -> None:
    """mimi asks for GUILDS and GUILD_MESSAGES only: never the privileged MESSAGE_CONTENT."""
    standin, _ = env
    intents = standin.intents
    assert intents == 1 | GUILD_MESSAGES and not intents & MESSAGE_CONTENT


async def test_menus_are_registered_in_both_languages(env) -> None:
    """Both message menus are synced with the slash commands, guild-only, named in Japanese;
    /forget gains `me`."""
    standin, bot = env
    await bot.tree.sync()
    menus = {c["name"]: c for c in standin.registered_commands if c.get("type") == 3}
    assert set(menus) == {WHO, TEACH}
    assert menus[WHO]["name_localizations"]["ja"] == "このアーティストは？"
    assert menus[TEACH]["name_localizations"]["ja"] == "この曲をmimiに教える…"
    assert all(m.get("contexts") == [0] for m in menus.values())
    forget = next(c for c in standin.registered_commands if c["name"] == "forget")
    assert [o["name"] for o in forget["options"]] == ["artist", "song", "me"]


async def test_who_is_this_guesses_a_voice_message_and_files(env, audio) -> None:
    """Apps → Who's this artist? on a voice message answers with a guess linking the message,
    its picture and the feedback buttons; on a message with two songs, one answer each; on a
    message without audio, a short private answer."""
    standin, _bot = env
    voice = await standin.post(GUILD, files=[hosted(standin, audio, "voice")], voice=True,
                               user_id=ASKER)  # fmt: skip
    inter = await standin.use_message_command(voice, WHO, user_id=ASKER)
    reply = await inter.final(90)
    assert not reply.ephemeral
    assert "voice-message.ogg" in reply.content
    assert f"/channels/{GUILD}/{voice['channel_id']}/{voice['id']}" in reply.content
    assert reply.embeds[0]["title"] and reply.files[0][0] == "guess-1.png"
    ids = custom_ids(standin.message_object(reply.id))
    assert ids[0].startswith("mimi:right:") and ids[1].startswith("mimi:fix:")

    two = await standin.post(GUILD, "two songs", user_id=ASKER, files=[
        hosted(standin, audio, "clip-0-0"), hosted(standin, audio, "clip-1-0")])  # fmt: skip
    inter = await standin.use_message_command(two, WHO, user_id=ASKER)
    answers = await inter.followups(2, timeout=120)
    assert [a.files[0][0] for a in answers] == ["guess-1.png", "guess-2.png"]
    assert "clip-0-0.ogg" in answers[0].content and "clip-1-0.ogg" in answers[1].content

    text = await standin.post(GUILD, "no music here", user_id=ASKER)
    refused = await (await standin.use_message_command(text, WHO, user_id=ASKER)).final(30)
    assert refused.ephemeral and "no audio I can hear" in refused.content


async def test_teach_menu_asks_for_the_artist_then_teaches(env, audio) -> None:
    """Apps → Teach mimi this song… opens a modal suggesting the server's artists; submitting
    it teaches the message's song like /teach (a bad name gets a private answer)."""
    standin, bot = env
    msg = await standin.post(GUILD, files=[hosted(standin, audio, "third", "audio/mpeg")],
                             user_id=OTHER)  # fmt: skip
    opened = await standin.use_message_command(msg, TEACH, user_id=TEACHER)
    modal = (await opened.deferred(30)).data
    assert (await opened.deferred()).type == 9 and modal["title"] == "Teach mimi this song"
    (field,) = modal["components"][0]["components"]
    assert field["placeholder"].startswith("e.g. ") and {"Drone", "Chime"} <= set(
        field["placeholder"][5:].replace(" and ", ",").replace(", ", ",").split(",")
    )

    bad = await (await standin.submit(opened, {"artist": "   "})).final(30)
    assert bad.ephemeral
    opened = await standin.use_message_command(msg, TEACH, user_id=TEACHER)
    await opened.deferred(30)
    taught = await (await standin.submit(opened, {"artist": "Pulse"})).final(90)
    assert not taught.ephemeral and "Learned **Pulse** from third.mp3" in taught.content
    (song,) = await bot.mimi.store.songs(GUILD, "Pulse")
    assert song.taught_by == TEACHER
    await bot.mimi.forget_song(GUILD, song.id)  # the model stays the same for what follows


async def test_mentions_guess_or_explain(env, audio) -> None:
    """@mimi with a song replies with a guess; @mimi alone replies with a short help; @mimi in
    a reply to a song Discord hides from mimi says how to use the menu; a message without a
    mention is not answered (and mimi never saw its files)."""
    standin, _bot = env
    plain = await standin.post(GUILD, "listen", files=[hosted(standin, audio, "clip-1-1")],
                               user_id=ASKER)  # fmt: skip
    mention = await standin.post(GUILD, "who is this?", mention_bot=True, user_id=ASKER,
                                 files=[hosted(standin, audio, "clip-1-2")])  # fmt: skip
    guessed = await standin.wait_for_message(
        lambda m: m in standin.channel_replies(int(mention["id"])), timeout=90
    )
    assert guessed.embeds and guessed.files[0][0] == "guess.png"
    assert custom_ids(guessed.payload)[0].startswith("mimi:right:")
    assert not standin.channel_replies(int(plain["id"]))

    hello = await standin.post(GUILD, "hello", mention_bot=True, user_id=ASKER)
    helped = await standin.wait_for_message(
        lambda m: m in standin.channel_replies(int(hello["id"])), timeout=30
    )
    assert "Mention me in a message with a song" in helped.content

    reply = await standin.post(GUILD, "this one", mention_bot=True, reply_to=int(plain["id"]),
                               user_id=ASKER)  # fmt: skip
    hidden = await standin.wait_for_message(
        lambda m: m in standin.channel_replies(int(reply["id"])), timeout=30
    )
    assert "doesn't show me the files" in hidden.content and "Who's this artist?" in hidden.content


async def _guess(standin, audio, key: str, user_id: int = ASKER):
    """A /guess of one clip by `user_id`: its reply."""
    clip = hosted(standin, audio, key)
    return await (await standin.invoke(GUILD, "guess", {"clip": clip}, user_id=user_id)).final(90)


async def test_corrections_teach_and_are_counted(env, audio) -> None:
    """Under a guess: only the asker (or a manager) may answer; "Right" is recorded once and
    shown; "It was…" with an artist teaches the clip as theirs; "someone new…" asks for the
    name; /stats counts them for the model that guessed."""
    standin, bot = env
    version = bot.mimi.registry.current(GUILD).version
    first = await _guess(standin, audio, "clip-0-1")
    right = custom_ids(standin.message_object(first.id))[0]
    refused = await (await standin.press(first, right, user_id=OTHER)).final(30)
    assert refused.ephemeral and "Only the member who asked" in refused.content
    done = await (await standin.press(first, right, user_id=ASKER)).final(30)
    assert done.kind == "update" and custom_ids(done.payload) == ["mimi:answered"]
    assert done.components[0]["components"][0]["disabled"] is True

    second = await _guess(standin, audio, "clip-1-1")
    fix = custom_ids(standin.message_object(second.id))[1]
    picking = await (await standin.press(second, fix, user_id=MANAGER,
                                         permissions=MANAGE_GUILD)).final(30)  # fmt: skip
    select = picking.components[0]["components"][0]
    labels = [o["label"] for o in select["options"]]
    assert sorted(labels[:2]) == ["Chime", "Drone"] and labels[2] == "Someone new…"
    chosen = await standin.press(second, select["custom_id"], values=["Chime"],
                                 user_id=MANAGER, permissions=MANAGE_GUILD)  # fmt: skip
    learned = (await chosen.followups(2, timeout=90))[-1]
    assert "I learned clip-1-1.ogg as **Chime**" in learned.content
    assert custom_ids(standin.message_object(second.id)) == ["mimi:answered"]
    taught = [s for s in await bot.mimi.store.songs(GUILD, "Chime") if s.filename == "clip-1-1.ogg"]
    assert taught and taught[0].taught_by == ASKER  # the clip is the asker's

    third = await _guess(standin, audio, "clip-0-2")
    fix = custom_ids(standin.message_object(third.id))[-1]
    picking = await (await standin.press(third, fix, user_id=ASKER)).final(30)
    select = picking.components[0]["components"][0]
    new = next(o["value"] for o in select["options"] if o["label"] == "Someone new…")
    opened = await standin.press(third, select["custom_id"], values=[new], user_id=ASKER)
    assert (await opened.deferred(30)).type == 9
    submitted = await standin.submit(opened, {"artist": "Newcomer"})
    learned = (await submitted.followups(2, timeout=90))[-1]
    assert "as **Newcomer**" in learned.content

    assert await bot.mimi.store.feedback(GUILD, version) == {"confirmed": 1, "corrected": 2}
    stats = await (await standin.invoke(GUILD, "stats")).final(60)
    model_field = next(f for f in stats.embeds[0]["fields"] if f"v{version}" in f["name"])
    assert "Members answered 3 guesses of this model: 1 right, 2 corrected." in model_field["value"]
    for artist in ("Newcomer",):
        await bot.mimi.forget_artist(GUILD, artist)
    for song in taught:
        await bot.mimi.forget_song(GUILD, song.id)


async def test_cooldown_offers_a_retry_with_the_same_files(env, audio) -> None:
    """A /guess during the cooldown says when to retry and offers "Try again": pressed early
    it says how long is left; pressed later it answers the same clip, nothing re-attached."""
    standin, bot = env
    settings = bot.settings
    bot.settings = dataclasses.replace(settings, guess_cooldown_s=3.0)
    try:
        await _guess(standin, audio, "clip-0-0", user_id=OTHER)
        clip = hosted(standin, audio, "clip-1-0")
        cooling = await (await standin.invoke(GUILD, "guess", {"clip": clip},
                                              user_id=OTHER)).final(30)  # fmt: skip
        assert cooling.ephemeral and "Press **Try again** then" in cooling.content
        early = await (await standin.press(cooling, "mimi:retry", user_id=OTHER)).final(30)
        assert early.ephemeral and "try again in" in early.content
        await asyncio.sleep(3.2)
        retried = await (await standin.press(cooling, "mimi:retry", user_id=OTHER)).final(90)
        assert retried.embeds and retried.files[0][0] == "guess.png"
        assert custom_ids(standin.message_object(cooling.id)) == []  # the offer was taken
    finally:
        bot.settings = settings


async def test_forget_me_removes_only_my_songs_after_confirmation(env, audio) -> None:
    """/forget me:True asks first, then removes every song the member taught here (and their
    guesses), nobody else's; with nothing taught it says so."""
    standin, bot = env
    song = await bot.mimi.teach(GUILD, "Drone", audio["third"], taught_by=OTHER)
    others = {s.id for s in await bot.mimi.store.songs(GUILD) if s.taught_by != OTHER}
    question = await (await standin.invoke(GUILD, "forget", {"me": True},
                                           user_id=OTHER)).final(30)  # fmt: skip
    assert question.ephemeral and "Forget the 1 song you taught" in question.content
    assert custom_ids(standin.message_object(question.id)) == ["mimi:confirm", "mimi:cancel"]
    done = await (await standin.press(question, "mimi:confirm", user_id=OTHER)).final(60)
    assert "Forgot the 1 song you taught here" in done.content
    left = {s.id for s in await bot.mimi.store.songs(GUILD)}
    assert song.id not in left and others <= left
    assert await _guesses_of(bot, OTHER) == 0
    none = await (await standin.invoke(GUILD, "forget", {"me": True}, user_id=OTHER)).final(30)
    assert none.ephemeral and "haven't taught any songs" in none.content


async def _guesses_of(bot, user_id: int) -> int:
    """How many recorded guesses this member asked in GUILD."""
    rows = await bot.mimi.store._all(
        "SELECT COUNT(*) FROM guesses WHERE guild_id = ? AND asked_by = ?", GUILD, user_id
    )
    return rows[0][0]


async def test_removal_schedules_deletion_and_readding_cancels(env) -> None:
    """Removing mimi schedules the server's deletion after the grace period (nothing goes yet);
    adding it back cancels; with a zero grace period everything goes at once, other servers
    untouched."""
    standin, bot = env
    await standin.remove_bot(LEAVING)
    assert await until(lambda: has_purge(bot))
    due = (await bot.mimi.store.purges())[LEAVING]
    assert due > time.time() + 29 * 86400  # the default grace period: 30 days
    assert await bot.mimi.store.songs(LEAVING)  # still there during the grace period
    standin.add_guild(LEAVING)
    assert await until(lambda: no_purge(bot))

    bot.purges.after_s = 0.0
    before = len(await bot.mimi.store.songs(GUILD))
    await standin.remove_bot(LEAVING)
    assert await until(lambda: nothing_left(bot))
    assert not (bot.settings.cache_dir / str(LEAVING)).exists()
    assert bot.mimi.registry.current(LEAVING) is None
    assert len(await bot.mimi.store.songs(GUILD)) == before


async def has_purge(bot) -> bool:
    """Whether LEAVING's deletion is scheduled."""
    return LEAVING in await bot.mimi.store.purges()


async def no_purge(bot) -> bool:
    """Whether LEAVING's deletion is cancelled."""
    return not await has_purge(bot)


async def nothing_left(bot) -> bool:
    """Whether LEAVING has no songs left."""
    return not await bot.mimi.store.songs(LEAVING)


async def until(check, timeout: float = 20.0) -> bool:
    """Poll the async `check()` until it holds (True) or `timeout` passes (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return True
        await asyncio.sleep(0.05)
    return False
