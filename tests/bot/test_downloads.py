"""Attachment downloads through the real bot, real cogs and real discord.py on the stand-in:
only from Discord's CDN, never more than declared, streamed to disk without blocking the loop."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp import web

from bot.client import MimiBot
from bot.config import Settings
from bot.errors import MimiError
from cogs.common import DEFAULT_CDN_HOSTS, cdn_hosts, from_cdn
from tests.discord_standin import DiscordStandIn, running_bot

pytestmark = pytest.mark.asyncio(loop_scope="module")
GUILD = 7101
MiB = 1 << 20


def rss_bytes() -> int:
    """This process's resident set size now."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


class PeakRss:
    """The highest RSS of this process while the block runs, sampled every 5 ms by a thread
    (it keeps sampling even if the event loop is blocked)."""

    def __enter__(self) -> PeakRss:
        self.start = self.peak = rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, rss_bytes())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())

    @property
    def growth(self) -> int:
        return self.peak - self.start


class Teaches:
    """Stands in for `mimi.teach` behind the real cog: records each downloaded file (size, and
    when the download had finished), then refuses it, so no worker decodes junk."""

    def __init__(self, bot: MimiBot) -> None:
        self.bot = bot
        self.calls: list[tuple[int, float, float]] = []  # (bytes, at, longest loop stall so far)

    async def __call__(self, guild_id: int, artist: str, path: Path, **kw: object) -> None:
        self.calls.append((path.stat().st_size, time.time(), self.bot.max_stall_s))
        raise MimiError("recorded by the test", code="not_audio")


class SlowFile:
    """A file on a slow disk: each write() takes as long as `rate` bytes/s allows (the home
    server where a 57 MB upload stalled the loop for 303 ms writes about 190 MB/s)."""

    def __init__(self, raw, rate: float) -> None:
        self._raw, self._rate = raw, rate

    def write(self, data) -> int:
        time.sleep(len(data) / self._rate)
        return self._raw.write(data)

    def __getattr__(self, name: str):
        return getattr(self._raw, name)

    def __enter__(self) -> SlowFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self._raw.close()


@pytest.fixture
def slow_disk(monkeypatch: pytest.MonkeyPatch, env) -> None:
    """Files opened for writing under data/tmp write at 190 MB/s, like a real disk."""
    tmp, real_open = env[1].settings.data_dir / "tmp", Path.open

    def slow_open(self: Path, mode: str = "r", *args, **kw):
        raw = real_open(self, mode, *args, **kw)
        return SlowFile(raw, 190e6) if "w" in mode and tmp in self.parents else raw

    monkeypatch.setattr(Path, "open", slow_open)


class Stalls(logging.Handler):
    """Event-loop stall warnings of bot.client, with the time they were logged."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if "event loop stalled" in record.getMessage():
            self.records.append(record)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def env(tmp_path_factory: pytest.TempPathFactory, frontend_weights: Path):
    """A running bot (upload limit 64 MB, the default) on a stand-in with one guild."""
    data = tmp_path_factory.mktemp("data")
    settings = Settings.load(
        environ={},
        env_file=None,
        data_dir=data,
        frontend_weights=frontend_weights,
        teach_cooldown_s=0.0,
        guess_cooldown_s=0.0,
    )
    stalls = Stalls()
    logging.getLogger("bot.client").addHandler(stalls)
    async with DiscordStandIn() as standin:
        standin.add_guild(GUILD)
        bot = MimiBot(settings, guild_ready_timeout=0.1)
        async with running_bot(standin, bot, timeout=120):
            # warm workers first: three TensorFlow start-ups on a small machine starve the loop
            await asyncio.wait_for(bot.audio_pool.run(int, 0), 300)
            teaches = Teaches(bot)
            bot.mimi.teach = teaches  # type: ignore[method-assign]
            yield standin, bot, teaches, stalls
    logging.getLogger("bot.client").removeHandler(stalls)


@pytest_asyncio.fixture(loop_scope="module")
async def foreign():
    """A second web server on loopback that records every request it gets."""
    seen: list[str] = []

    async def anything(request: web.Request) -> web.Response:
        seen.append(request.path)
        return web.Response(body=b"\0" * 1000)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", anything)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}", seen
    await runner.cleanup()


def tmp_entries(bot: MimiBot) -> list[str]:
    """What is left in data/tmp (downloads in progress)."""
    folder = bot.settings.data_dir / "tmp"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


async def test_attachment_from_another_host_is_refused_unfetched(env, foreign) -> None:
    """An attachment whose URL is not Discord's CDN is refused; that host never gets a request."""
    standin, bot, teaches, _ = env
    base, seen = foreign
    att = standin.add_file("song.mp3", b"\0" * 1000, "audio/mpeg")
    att["url"] = att["proxy_url"] = f"{base}/attachments/1/2/song.mp3"
    before = len(teaches.calls)
    inter = await standin.invoke(GUILD, "teach", {"artist": "Elsewhere", "song": att})
    reply = await inter.final(timeout=30)
    assert reply.ephemeral and "not from Discord" in reply.content, reply.content
    await asyncio.sleep(0.2)  # a download that was started would have arrived by now
    assert seen == []
    assert len(teaches.calls) == before
    assert tmp_entries(bot) == []


@pytest.mark.parametrize("content_length", [False, True], ids=["chunked", "content-length"])
async def test_body_bigger_than_declared_is_cut_off(env, content_length: bool) -> None:
    """Declared 1,000 bytes, served 300 MiB: refused as too big, memory barely moves, the
    stand-in is hung up on early, nothing stays in data/tmp."""
    standin, bot, teaches, _ = env
    att = standin.add_stream(
        "liar.mp3", declared=1000, serves=300 * MiB, content_length=content_length
    )
    before = len(teaches.calls)
    with PeakRss() as rss:
        inter = await standin.invoke(GUILD, "teach", {"artist": "Liar", "song": att})
        reply = await inter.final(timeout=120)
    print(
        f"liar ({content_length=}): RSS +{rss.growth / MiB:.0f} MiB, "
        f"served {att.served / MiB:.1f} MiB"
    )
    assert reply.ephemeral and "too big" in reply.content, reply.content
    assert rss.growth < 50 * MiB, f"RSS grew {rss.growth / MiB:.0f} MiB"
    assert att.served < 32 * MiB, f"the stand-in still sent {att.served / MiB:.0f} MiB"
    assert len(teaches.calls) == before
    assert tmp_entries(bot) == []


async def test_big_upload_streams_without_stalling_the_loop(env, slow_disk) -> None:
    """A ~57 MB upload to a 190 MB/s disk is saved whole, in chunks written off the loop: the
    bot's stall watcher logs no stall (> 100 ms) while it downloads."""
    standin, bot, teaches, stalls = env
    size = 57 * 1000 * 1000
    att = standin.add_file("long.flac", bytes(range(256)) * (size // 256), "audio/flac")
    await asyncio.sleep(0.2)  # let the watcher see past building those bytes here
    before, started = len(teaches.calls), time.time()
    stalls.records.clear()
    bot.max_stall_s = 0.0
    with PeakRss() as rss:
        inter = await standin.invoke(  # a boosted server: Discord allows 100 MB uploads
            GUILD, "teach", {"artist": "Long", "song": att}, attachment_size_limit=100 * 2**20
        )
        reply = await inter.final(timeout=120)
    assert "recorded by the test" in reply.content, reply.content
    await asyncio.sleep(0.2)  # the watcher logs a stall once the loop runs again
    (got, _, _), longest = teaches.calls[before], bot.max_stall_s
    print(
        f"57 MB download: longest loop stall {longest * 1000:.0f} ms, "
        f"RSS +{rss.growth / MiB:.0f} MiB"
    )
    assert got == att.size
    # the reply needs no loop-heavy work after the download, so this window is the download's
    during = [r.getMessage() for r in stalls.records if r.created >= started]
    assert during == [], during
    assert rss.growth < 50 * MiB, f"RSS grew {rss.growth / MiB:.0f} MiB"
    assert tmp_entries(bot) == []


async def test_cdn_hosts_setting() -> None:
    """MIMI_CDN_HOSTS defaults to Discord's two CDN hosts; `host` means HTTPS on 443."""
    assert {"cdn.discordapp.com", "media.discordapp.net"} == DEFAULT_CDN_HOSTS
    env = {"MIMI_CDN_HOSTS": " CDN.example , 127.0.0.1:8080 ,"}
    hosts = Settings.load(environ=env, env_file=None).cdn_host_set
    assert hosts == {"cdn.example", "127.0.0.1:8080"}
    ok = "https://cdn.discordapp.com/attachments/1/2/a.mp3"
    assert from_cdn(ok, DEFAULT_CDN_HOSTS)
    assert from_cdn("https://media.discordapp.net:443/attachments/1/2/a.mp3", DEFAULT_CDN_HOSTS)
    for bad in (
        "http://cdn.discordapp.com/attachments/1/2/a.mp3",  # not HTTPS
        "https://cdn.discordapp.com:8443/a.mp3",
        "https://cdn.discordapp.com.evil.example/a.mp3",
        "https://evil.example/cdn.discordapp.com/a.mp3",
        "https://user@cdn.discordapp.com/a.mp3",
        "file:///etc/passwd",
        "not a url",
    ):
        assert not from_cdn(bad, DEFAULT_CDN_HOSTS), bad
    assert from_cdn("http://127.0.0.1:8080/a", hosts) and not from_cdn(
        "http://127.0.0.1:8081/a", hosts
    )


async def test_only_a_self_hosted_api_adds_its_host() -> None:
    """Against discord.com only MIMI_CDN_HOSTS count; a Discord-compatible server set with
    DISCORD_API_BASE serves its own attachments, so its host:port is allowed too."""
    import discord

    route = discord.http.Route
    old = route.BASE
    try:
        route.BASE = "https://discord.com/api/v10"
        assert cdn_hosts() == DEFAULT_CDN_HOSTS
        route.BASE = "http://127.0.0.1:5555/api/v10"
        assert cdn_hosts() == DEFAULT_CDN_HOSTS | {"127.0.0.1:5555"}
    finally:
        route.BASE = old
