"""The real bot, real cogs and real discord.py against the loopback Discord stand-in."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest
import pytest_asyncio

from bot.client import MimiBot
from bot.config import Settings
from tests.audio_factory import encode, stranger
from tests.bot.helpers import invoke_teach
from tests.discord_standin import DiscordStandIn, running_bot
from tests.hostile_corpus import (
    ACCEPTED,
    CASES,
    CODE_WORDS,
    PATHLIKE,
    RESIDENTS,
    Case,
    corpus,
    source,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")
HOME, OTHER, SPARE = 7001, 7002, 7003  # SPARE: where the hostile corpus is taught
FORGETFUL = 7004  # where artists are forgotten
MANAGE_GUILD = 1 << 5
VOICES = {"Drone": 0, "Chime": 4}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """Real encoded songs of two synthetic artists and a held-out clip of each."""
    folder = tmp_path_factory.mktemp("audio")
    out = {}
    for artist, voice in VOICES.items():
        for i in range(3):
            out[f"{artist}{i}.mp3"] = encode(
                folder / f"{artist}{i}.mp3", "mp3", seconds=21, voice=voice, seed=i
            ).read_bytes()
        out[f"new_{artist}.ogg"] = encode(
            folder / f"new_{artist}.ogg", "ogg", seconds=14, voice=voice, seed=50
        ).read_bytes()
    out["stranger.wav"] = stranger(folder / "stranger.wav").read_bytes()
    return out


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The hostile corpus (tests/hostile_corpus.py): case name -> file."""
    return corpus(tmp_path_factory)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def env(tmp_path_factory: pytest.TempPathFactory, frontend_weights: Path):
    """One running bot (all worker pools warm) on a stand-in with three guilds."""
    data = tmp_path_factory.mktemp("data")
    settings = Settings.load(
        environ={},
        env_file=None,
        data_dir=data,
        frontend_weights=frontend_weights,
        teach_cooldown_s=0.0,
        guess_cooldown_s=0.0,
        train_quiet_s=0.5,
        max_upload_mb=8,
    )
    async with DiscordStandIn() as standin:
        standin.add_guild(HOME)
        standin.add_guild(OTHER)
        standin.add_guild(SPARE)
        standin.add_guild(FORGETFUL)
        bot = MimiBot(settings, guild_ready_timeout=0.1)
        async with running_bot(standin, bot, timeout=60):
            yield standin, bot


async def test_teach_retrain_guess_stats(env, files) -> None:
    """Teach two artists; the retrain posts news; /guess names held-out clips; /stats shows it."""
    standin, bot = env
    for artist in VOICES:
        for i in range(2):
            inter = await invoke_teach(
                standin, HOME, f"{artist}{i}.mp3", files[f"{artist}{i}.mp3"], artist
            )
            reply = await inter.final(timeout=90)
            assert inter.defer_latency < 3.0
            assert "Learned **" in reply.content and "retrain is scheduled" in reply.content
    await asyncio.sleep(1.0)  # past the quiet period: the last retrain is queued or running
    await asyncio.wait_for(bot.training.wait_idle(HOME), 180)
    version = bot.mimi.registry.current(HOME).version  # v1, or v2 when a slow machine split it
    ready = await standin.wait_for_message(
        lambda m: m.content.startswith(f"Model v{version} ready"), timeout=120
    )
    assert ready.kind in ("channel", "edit_channel")
    for artist in VOICES:
        att = standin.add_file(f"new_{artist}.ogg", files[f"new_{artist}.ogg"], "audio/ogg")
        inter = await standin.invoke(HOME, "guess", {"clip": att})
        answer = await inter.final(timeout=60)
        assert inter.defer_latency < 3.0
        assert answer.embeds[0]["title"] == f"Sounds like {artist}"
        assert f"model v{version}" in answer.embeds[0]["footer"]["text"]
        assert answer.files[0][0] == "guess.png" and answer.files[0][1][:4] == b"\x89PNG"
        alt = answer.attachments[0]["description"]  # alt text for screen readers
        assert alt.startswith(f"Picture of new_{artist}.ogg: Sounds like {artist}.")
        assert "mimi heard 10 s of 14 s" in alt
    att = standin.add_file("stranger.wav", files["stranger.wav"], "audio/wav")
    odd = await (await standin.invoke(HOME, "guess", {"clip": att})).final(timeout=60)
    assert odd.embeds[0]["title"].startswith("This doesn't sound like anyone I know here — closest")
    inter = await standin.invoke(HOME, "stats")
    stats = await inter.final(timeout=30)
    fields = {f["name"]: f["value"] for f in stats.embeds[0]["fields"]}
    assert f"Model v{version}" in fields and "song accuracy" in fields[f"Model v{version}"]
    assert stats.attachments[0]["description"].startswith("Per-artist results on held-out songs")
    (option,) = [o for o in bot.tree.get_command("teach").to_dict(bot.tree)["options"]
                 if o["name"] == "artist"]  # fmt: skip
    assert option["max_length"] == 64  # the real limit of a name, not a larger one
    assert fields["Artists (2)"].count("2 songs") == 2
    again = await invoke_teach(standin, HOME, "Drone0.mp3", files["Drone0.mp3"], "drone")
    assert "Already known" in (await again.final(timeout=60)).content


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def spare(env, hostile) -> list:
    """SPARE already has the two resident songs (one artist, so it never trains a model)."""
    _, bot = env
    for name in RESIDENTS:
        await bot.mimi.teach(SPARE, "Resident", source(hostile, name), filename=name)
    return await bot.mimi.store.songs(SPARE)


def hostile_upload(standin: DiscordStandIn, case: Case, hostile: dict[str, Path]):
    """Host a corpus file as an attachment carrying the file name its uploader claims."""
    att = standin.add_file(case.name, hostile[case.name].read_bytes(), "audio/mpeg")
    att["filename"] = case.claimed  # what a hostile client sends; the CDN URL stays valid
    return att


def assert_inert(reply) -> None:
    """A reply that fits Discord, pings nobody, and shows no path or internal failure."""
    assert reply.content is None or len(reply.content) <= 2000
    text = reply.content or ""
    assert reply.allowed_mentions == {"parse": []}
    assert "@everyone" not in text and "<@123456789012345678>" not in text
    assert not PATHLIKE.search(text) and "root:" not in text, text
    assert "Something went wrong" not in text, text


def assert_refusal(reply, case: Case, code: str) -> None:
    """A private answer naming this refusal (and the case's own words where they apply)."""
    assert reply.ephemeral, reply.content
    assert CODE_WORDS[code] in reply.content.lower(), reply.content
    if code == case.expect:
        assert case.words in reply.content, reply.content


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
async def test_hostile_teach_gets_private_specific_answer(env, spare, hostile, case: Case) -> None:
    """Each corpus file sent to /teach gets its own (private if refused) answer; all else stays."""
    standin, bot = env
    home = await bot.mimi.store.songs(HOME)
    inter = await standin.invoke(
        SPARE, "teach", {"artist": "Resident", "song": hostile_upload(standin, case, hostile)}
    )
    reply = await inter.final(timeout=60)
    assert_inert(reply)
    if case.expect == ACCEPTED:
        assert not reply.ephemeral and "Learned **Resident**" in reply.content, reply.content
        (song,) = [s for s in await bot.mimi.store.songs(SPARE) if s not in spare]
        assert song.filename == (case.stored_as or case.claimed)
        await bot.mimi.forget_song(SPARE, song.id)
    elif case.expect == "duplicate":
        assert not reply.ephemeral and "Already known" in reply.content, reply.content
    else:
        assert_refusal(reply, case, case.expect)
    assert await bot.mimi.store.songs(SPARE) == spare
    assert await bot.mimi.store.songs(HOME) == home
    listed = await (await standin.invoke(SPARE, "artists")).final(timeout=10)
    assert "Resident" in listed.content  # still serving


async def test_oversized_upload_is_refused_before_download(env) -> None:
    """An attachment over the limit is refused from its declared size, without a download."""
    standin, _ = env
    att = standin.add_file("big.flac", b"\0" * (9 << 20), "audio/flac")
    inter = await standin.invoke(HOME, "guess", {"clip": att})
    reply = await inter.final(timeout=10)
    assert reply.ephemeral and "too big" in reply.content
    assert not any("big.flac" in r.path for r in standin.requests)


async def test_other_guild_sees_nothing(env, files) -> None:
    """A second server has no artists and no model, and is told how to start."""
    standin, _ = env
    inter = await standin.invoke(
        OTHER, "guess", {"clip": standin.add_file("c.ogg", files["new_Drone.ogg"], "audio/ogg")}
    )
    reply = await inter.final(timeout=30)
    assert reply.ephemeral and "haven't learned any artists" in reply.content
    listed = await (await standin.invoke(OTHER, "artists")).final(timeout=10)
    assert "No artists yet" in listed.content


async def test_permissions_for_forget_and_retrain(env, files) -> None:
    """Members may forget only their own songs; /retrain needs Manage Server."""
    standin, bot = env
    mine = await invoke_teach(
        standin, HOME, "Chime2.mp3", files["Chime2.mp3"], "Chime", user_id=4242
    )
    await mine.final(timeout=60)
    song = next(s for s in await bot.mimi.store.songs(HOME) if s.taught_by == 4242)
    other = next(s for s in await bot.mimi.store.songs(HOME) if s.taught_by != 4242)
    refused = await (await standin.invoke(HOME, "forget", {"song": other.id}, user_id=4242)).final()
    assert refused.ephemeral and "Only the member who taught" in refused.content
    done = await (await standin.invoke(HOME, "forget", {"song": song.id}, user_id=4242)).final()
    assert f"Forgot song #{song.id}" in done.content
    no = await (await standin.invoke(HOME, "retrain", user_id=4242)).final()
    assert no.ephemeral and "Manage Server" in no.content
    yes = await (await standin.invoke(HOME, "retrain", permissions=MANAGE_GUILD)).final()
    assert "Retraining now" in yes.content and not yes.ephemeral


async def test_twenty_simultaneous_guesses(env, files) -> None:
    """20 concurrent /guess interactions are all deferred within 3 s and all answered."""
    standin, bot = env
    await bot.training.wait_idle(HOME)
    att = standin.add_file("q.ogg", files["new_Chime.ogg"], "audio/ogg")
    inters = await asyncio.gather(
        *(standin.invoke(HOME, "guess", {"clip": att}, user_id=9000 + i) for i in range(20))
    )
    answers = await asyncio.gather(*(i.final(timeout=120) for i in inters))
    assert max(i.defer_latency for i in inters) < 3.0
    assert all(a.embeds and a.embeds[0]["title"] == "Sounds like Chime" for a in answers)


async def test_gateway_drop_resumes(env) -> None:
    """After the gateway closes, the bot resumes and keeps answering."""
    standin, _ = env
    await standin.drop_gateway()
    await standin.wait_resumed(1, timeout=30)
    listed = await (await standin.invoke(OTHER, "artists")).final(timeout=10)
    assert "No artists yet" in listed.content and standin.resumes >= 1


async def test_guess_cooldown_per_user(env, files) -> None:
    """A member guessing again inside the cooldown is asked to slow down; others are not."""
    standin, bot = env
    settings = bot.settings
    bot.settings = dataclasses.replace(settings, guess_cooldown_s=60.0)
    try:
        att = standin.add_file("c.ogg", files["new_Drone.ogg"], "audio/ogg")
        first = await (await standin.invoke(OTHER, "guess", {"clip": att}, user_id=555)).final()
        assert "haven't learned" in first.content
        second = await (await standin.invoke(OTHER, "guess", {"clip": att}, user_id=555)).final()
        assert second.ephemeral and "Slow down" in second.content
        other = await (await standin.invoke(OTHER, "guess", {"clip": att}, user_id=556)).final()
        assert "haven't learned" in other.content
    finally:
        bot.settings = settings


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
async def test_hostile_guess_gets_private_specific_answer(env, hostile, case: Case) -> None:
    """Each corpus file sent to /guess gets a guess (3 s suffice) or its own private refusal."""
    standin, bot = env
    await bot.training.wait_idle(HOME)
    att = hostile_upload(standin, case, hostile)
    reply = await (await standin.invoke(HOME, "guess", {"clip": att})).final(timeout=60)
    assert_inert(reply)
    if case.guess_expect == ACCEPTED:
        assert reply.embeds and not reply.ephemeral, reply.content
        assert reply.embeds[0]["title"].startswith(("Sounds like", "Not sure", "This doesn't"))
    else:
        assert_refusal(reply, case, case.guess_expect)


async def test_bot_keeps_serving_after_the_corpus(env, files) -> None:
    """After the whole corpus, a legit /guess is still answered and SPARE has only its songs."""
    standin, bot = env
    await bot.training.wait_idle()
    att = standin.add_file("after.ogg", files["new_Drone.ogg"], "audio/ogg")
    answer = await (await standin.invoke(HOME, "guess", {"clip": att})).final(timeout=60)
    assert answer.embeds and answer.embeds[0]["title"] == "Sounds like Drone"
    assert {s.filename for s in await bot.mimi.store.songs(SPARE)} == set(RESIDENTS)


async def test_long_hostile_file_name_in_a_refusal_fits_discord(env) -> None:
    """A too-big upload with a 10 kB markdown file name is refused in one short, inert line."""
    standin, _ = env
    att = standin.add_file("big.flac", b"\0" * (9 << 20), "audio/flac")
    att["filename"] = "**@everyone**" * 800 + ".flac"
    reply = await (await standin.invoke(HOME, "guess", {"clip": att})).final(timeout=10)
    assert_inert(reply)
    assert reply.ephemeral and "too big" in reply.content and len(reply.content) < 400


@pytest.mark.parametrize(
    ("artist", "words"),
    [("x" * 10_000, "too long"), (" \t\u3000 ", "empty"), ("\u202e\u200b\u200d\x00", "empty")],
    ids=["10kB", "whitespace", "invisible"],
)
async def test_hostile_artist_name_is_refused_privately(env, files, artist: str, words: str):
    """An unusable artist name gets a private, specific refusal before anything is downloaded."""
    standin, bot = env
    before = await bot.mimi.store.songs(OTHER)
    att = standin.add_file("Drone2.mp3", files["Drone2.mp3"], "audio/mpeg")
    inter = await standin.invoke(OTHER, "teach", {"artist": artist, "song": att})
    reply = await inter.final(timeout=10)
    assert_inert(reply)
    assert reply.ephemeral and words in reply.content and len(reply.content) < 200
    assert not any(str(att.id) in r.path for r in standin.requests)
    assert await bot.mimi.store.songs(OTHER) == before


async def test_names_cannot_ping_or_format(env, files) -> None:
    """A hostile artist name is stored cleanly and echoed inert, with mentions disabled."""
    standin, bot = env
    inter = await invoke_teach(
        standin, OTHER, "Drone2.mp3", files["Drone2.mp3"], "@everyone **x**\u200b"
    )
    reply = await inter.final(timeout=60)
    assert "\\*\\*x\\*\\*" in reply.content and "@\u200beveryone" in reply.content
    assert reply.allowed_mentions == {"parse": []}
    choices = await standin.invoke(OTHER, "teach", {"artist": "every"}, focused="artist")
    assert [c["name"] for c in (await choices.deferred()).choices] == ["@everyone **x**"]
    await bot.mimi.forget_artist(OTHER, "@everyone **x**")


async def test_quota_refuses_before_download(env, files) -> None:
    """A server at its song quota is told so, and nothing is downloaded or stored."""
    standin, bot = env
    settings = bot.settings
    bot.settings = dataclasses.replace(settings, max_guild_songs=1)
    bot.mimi.settings = bot.settings
    try:
        inter = await invoke_teach(standin, HOME, "Chime1.mp3", files["Chime1.mp3"], "New Artist")
        reply = await inter.final(timeout=30)
        assert reply.ephemeral and "limit of 1 song;" in reply.content
    finally:
        bot.settings = bot.mimi.settings = settings
    assert "New Artist" not in [a.name for a in await bot.mimi.artists(HOME)]


async def test_sync_commands_registers_every_command(env, frontend_weights: Path, tmp_path) -> None:
    """`mimi sync-commands --guild G` logs in (via DISCORD_API_BASE) and registers all commands."""
    from bot.runner import sync_commands

    standin, _ = env
    settings = Settings.load(
        environ={
            "DISCORD_TOKEN": "t",
            "DISCORD_API_BASE": standin.api_base,
            "DISCORD_GATEWAY_URL": standin.gateway_url,
        },
        env_file=None,
        data_dir=tmp_path,
        frontend_weights=frontend_weights,
    )
    names = await sync_commands(settings, HOME)
    assert sorted(names) == [
        "Teach mimi this song…",  # the two message menus (Apps → …)
        "Who's this artist?",
        "artist",
        "artists",
        "forget",
        "guess",
        "help",
        "retrain",
        "songs",
        "stats",
        "teach",
    ]
    registered = {c["name"] for c in standin.registered_commands if c.get("guild_id") == str(HOME)}
    assert registered == set(names)


async def test_unexpected_error_is_logged_and_answered_generically(env, caplog) -> None:
    """A bug in a command gets a generic private reply and a log line with the interaction id."""
    standin, bot = env

    async def broken(guild_id: int):
        raise RuntimeError("disk on fire")

    real, bot.mimi.artists = bot.mimi.artists, broken
    try:
        inter = await standin.invoke(HOME, "artists")
        reply = await inter.final(timeout=10)
    finally:
        bot.mimi.artists = real
    assert reply.ephemeral and "Something went wrong" in reply.content
    assert "disk on fire" not in reply.content
    assert any(str(inter.id) in r.getMessage() for r in caplog.records if r.levelname == "ERROR")


async def test_forget_is_final_in_guess_and_stats(env, files, tmp_path: Path) -> None:
    """Once /forget answers, /guess and /stats (text and picture) never name the forgotten
    artist; with one artist left the model is withdrawn and /guess says so privately."""
    standin, bot = env
    songs = {**files}
    for i in range(2):
        path = encode(tmp_path / f"Pulse{i}.mp3", "mp3", seconds=21, voice=8, seed=i)
        songs[f"Pulse{i}.mp3"] = path.read_bytes()
    for artist in (*VOICES, "Pulse"):
        for i in range(2):
            path = tmp_path / f"{artist}{i}.mp3"
            path.write_bytes(songs[f"{artist}{i}.mp3"])
            await bot.mimi.teach(FORGETFUL, artist, path)
    await bot.training.train_now(FORGETFUL, "test")
    pulse = encode(tmp_path / "new_Pulse.ogg", "ogg", seconds=14, voice=8, seed=50).read_bytes()

    async def guess():
        att = standin.add_file("new_Pulse.ogg", pulse, "audio/ogg")
        return await (await standin.invoke(FORGETFUL, "guess", {"clip": att})).final(timeout=60)

    assert (await guess()).embeds[0]["title"] == "Sounds like Pulse"
    question = await (await standin.invoke(
        FORGETFUL, "forget", {"artist": "Pulse"}, permissions=MANAGE_GUILD)).final(30)  # fmt: skip
    assert question.ephemeral and question.content.startswith("Forget Pulse and their 2 songs?")
    assert "Pulse" in str(await bot.mimi.artists(FORGETFUL))  # nothing happens before the answer
    confirmed = await standin.press(question, "mimi:confirm", permissions=MANAGE_GUILD)
    assert "Forgot Pulse" in (await confirmed.final(timeout=30)).content
    answer = await guess()
    assert "Pulse" not in str(answer.embeds) and answer.files[0][0] == "guess.png"
    stats = await (await standin.invoke(FORGETFUL, "stats")).final(timeout=30)
    assert "Pulse" not in str(stats.embeds) and "predates a forget" in str(stats.embeds)
    question = await (await standin.invoke(
        FORGETFUL, "forget", {"artist": "Chime"}, permissions=MANAGE_GUILD)).final(30)  # fmt: skip
    await (await standin.press(question, "mimi:confirm")).final(timeout=30)
    refused = await guess()
    assert refused.ephemeral and "at least 2 artists" in refused.content
    await asyncio.wait_for(bot.training.wait_idle(FORGETFUL), 120)
