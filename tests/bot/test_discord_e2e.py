"""The real bot, real cogs and real discord.py against the loopback Discord stand-in."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest
import pytest_asyncio

from bot.client import MimiBot
from bot.config import Settings
from tests.audio_factory import encode
from tests.bot.test_audio import HOSTILE, _hostile
from tests.discord_standin import DiscordStandIn, running_bot

pytestmark = pytest.mark.asyncio(loop_scope="module")
HOME, OTHER = 7001, 7002
MANAGE_GUILD = 1 << 5
VOICES = {"Drone": 0, "Chime": 4}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """Real encoded songs of two synthetic artists, a held-out clip of each, hostile files."""
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
    for name in HOSTILE:
        if name not in ("two_hours.wav", "huge.wav"):  # the big ones are covered below
            out[name] = _hostile(folder, name).read_bytes()
    return out


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def env(tmp_path_factory: pytest.TempPathFactory, frontend_weights: Path):
    """One running bot (all worker pools warm) on a stand-in with two guilds."""
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
        bot = MimiBot(settings, guild_ready_timeout=0.1)
        async with running_bot(standin, bot, timeout=60):
            yield standin, bot


async def teach(standin: DiscordStandIn, name: str, data: bytes, artist: str, **kw):
    """Invoke /teach with one attachment and return the interaction."""
    att = standin.add_file(name, data, "audio/mpeg")
    return await standin.invoke(
        kw.pop("guild", HOME), "teach", {"artist": artist, "song": att}, **kw
    )


async def test_teach_retrain_guess_stats(env, files) -> None:
    """Teach two artists; the retrain posts news; /guess names held-out clips; /stats shows it."""
    standin, _ = env
    for artist in VOICES:
        for i in range(2):
            inter = await teach(standin, f"{artist}{i}.mp3", files[f"{artist}{i}.mp3"], artist)
            reply = await inter.final(timeout=90)
            assert inter.defer_latency < 3.0
            assert "Learned **" in reply.content and "retrain is scheduled" in reply.content
    ready = await standin.wait_for_message(
        lambda m: m.content.startswith("Model v1 ready"), timeout=120
    )
    assert ready.kind in ("channel", "edit_channel")
    for artist in VOICES:
        att = standin.add_file(f"new_{artist}.ogg", files[f"new_{artist}.ogg"], "audio/ogg")
        inter = await standin.invoke(HOME, "guess", {"clip": att})
        answer = await inter.final(timeout=60)
        assert inter.defer_latency < 3.0
        assert answer.embeds[0]["title"] == f"Sounds like {artist}"
        assert "model v1" in answer.embeds[0]["footer"]["text"]
        assert answer.files[0][0] == "guess.png" and answer.files[0][1][:4] == b"\x89PNG"
    inter = await standin.invoke(HOME, "stats")
    stats = await inter.final(timeout=30)
    fields = {f["name"]: f["value"] for f in stats.embeds[0]["fields"]}
    assert "Model v1" in fields and "song accuracy" in fields["Model v1"]
    assert fields["Artists (2)"].count("2 songs") == 2
    again = await teach(standin, "Drone0.mp3", files["Drone0.mp3"], "drone")
    assert "Already known" in (await again.final(timeout=60)).content


@pytest.mark.parametrize(
    "name", sorted(n for n in HOSTILE if n not in ("two_hours.wav", "huge.wav"))
)
async def test_hostile_teach_gets_private_specific_answer(env, files, name: str) -> None:
    """Every hostile upload gets its own message, only the sender sees it, nothing is stored."""
    standin, bot = env
    before = await bot.mimi.store.songs(HOME)
    inter = await teach(standin, name, files[name], "Mallory")
    reply = await inter.final(timeout=60)
    assert reply.ephemeral and HOSTILE[name][1].lower() in reply.content.lower()
    assert await bot.mimi.store.songs(HOME) == before


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
    mine = await teach(standin, "Chime2.mp3", files["Chime2.mp3"], "Chime", user_id=4242)
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


HOSTILE_SMALL = sorted(n for n in HOSTILE if n not in ("two_hours.wav", "huge.wav"))


@pytest.mark.parametrize("name", HOSTILE_SMALL)
async def test_hostile_guess_gets_private_specific_answer(env, files, name: str) -> None:
    """Hostile clips sent to /guess get the same specific, private answers."""
    standin, bot = env
    await bot.training.wait_idle(HOME)
    att = standin.add_file(name, files[name], "audio/mpeg")
    reply = await (await standin.invoke(HOME, "guess", {"clip": att})).final(timeout=60)
    if name == "truncated.mp3":  # 5 s survive: enough for a guess, which needs one 3 s patch
        assert reply.embeds and not reply.ephemeral
        return
    expected = "too short" if name == "half_second.flac" else HOSTILE[name][1].lower()
    assert reply.ephemeral and expected in reply.content.lower()


async def test_names_cannot_ping_or_format(env, files) -> None:
    """A hostile artist name is stored cleanly and echoed inert, with mentions disabled."""
    standin, bot = env
    inter = await teach(
        standin, "Drone2.mp3", files["Drone2.mp3"], "@everyone **x**\u200b", guild=OTHER
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
        inter = await teach(standin, "Chime1.mp3", files["Chime1.mp3"], "New Artist")
        reply = await inter.final(timeout=30)
        assert reply.ephemeral and "limit of 1 songs" in reply.content
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
    assert sorted(names) == ["artists", "forget", "guess", "retrain", "stats", "teach"]
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
