"""`mimi health`: a real bot's heartbeat, real worker processes, a real database file."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path

import pytest
import pytest_asyncio

from bot.client import MimiBot
from bot.config import Settings
from bot.health import check, heartbeat_path, running_bot_pid, write_heartbeat
from bot.store import Store
from tests.discord_standin import DiscordStandIn, running_bot
from tests.mimi_process import cli, mimi_env

pytestmark = pytest.mark.asyncio(loop_scope="module")
BEAT_S = 0.2


async def mimi_health(settings: Settings) -> tuple[int, dict]:
    """Run the real `mimi health --json` in its own process, as Docker's HEALTHCHECK does."""
    code, out, _ = await cli(
        mimi_env(settings.data_dir, settings.frontend_weights), "health", "--json"
    )
    return code, json.loads(out)


def failing(report: dict) -> dict[str, str]:
    """name -> detail of every failed check."""
    return {c["name"]: c["detail"] for c in report["checks"] if not c["ok"]}


async def next_beats(settings: Settings, n: int = 3) -> dict:
    """Wait for `n` fresh heartbeats and return the last."""
    await asyncio.sleep(BEAT_S * n + 0.1)
    return json.loads(heartbeat_path(settings).read_text())


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def env(tmp_path_factory: pytest.TempPathFactory, frontend_weights: Path):
    """One running bot writing a heartbeat every 0.2 s."""
    data = tmp_path_factory.mktemp("health") / "data"
    settings = Settings.load(
        environ={}, env_file=None, data_dir=data, frontend_weights=frontend_weights
    )
    async with DiscordStandIn() as standin:
        standin.add_guild(8001)
        bot = MimiBot(settings, guild_ready_timeout=0.1, heartbeat_every_s=BEAT_S)
        async with running_bot(standin, bot, timeout=60):
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:  # the guessing and reading workers are warm
                beat = await next_beats(settings, 1)
                if all(beat["pools"][n]["pids"] for n in ("reading", "guessing")):
                    break
            yield standin, bot, settings


async def test_healthy_bot_passes(env) -> None:
    """With the bot connected, workers up and the database reachable, health exits 0."""
    _, _, settings = env
    code, report = await mimi_health(settings)
    assert code == 0, report
    names = {c["name"] for c in report["checks"]}
    assert {"database", "bot", "gateway", "reading workers", "guessing workers"} <= names
    assert "training workers" in names
    assert running_bot_pid(settings) == os.getpid()


async def test_idle_bot_holds_no_tensorflow(env) -> None:
    """One audio worker serves reading and guessing without TensorFlow; no training worker
    runs before a training is needed."""
    _, bot, _ = env
    (audio,) = bot.audio_pool.pids()
    libraries = Path(f"/proc/{audio}/maps").read_text()
    assert "onnxruntime" in libraries and "tensorflow" not in libraries
    assert bot.training.worker_pids() == [] and bot.training.heal() == "idle"


async def test_unreachable_database_fails(env) -> None:
    """Health exits 1 while the running bot's database file is gone, 0 once it is back."""
    _, _, settings = env
    db, aside = settings.db_path, settings.db_path.with_suffix(".aside")
    db.rename(aside)
    try:
        code, report = await mimi_health(settings)
        assert code == 1 and "unreachable" in failing(report)["database"]
    finally:
        aside.replace(db)
    code, report = await mimi_health(settings)
    assert code == 0, report


async def test_corrupt_database_fails(tmp_path: Path) -> None:
    """A database file that is not SQLite fails the database check with SQLite's reason."""
    settings = Settings.load(environ={}, env_file=None, data_dir=tmp_path / "data")
    settings.data_dir.mkdir()
    settings.db_path.write_bytes(b"this is not a database" * 200)
    code, report = await mimi_health(settings)
    assert code == 1 and "not a database" in failing(report)["database"]


async def test_worker_killed_while_idle_is_replaced(env) -> None:
    """A guessing worker killed with SIGKILL is replaced by the heartbeat; health passes again."""
    _, bot, settings = env
    (victim,) = bot.audio_pool.pids()
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        beat = await next_beats(settings, 1)
        pids = beat["pools"]["guessing"]["pids"]
        if pids and victim not in pids and beat["pools"]["guessing"]["state"] == "ok":
            break
    else:
        pytest.fail(f"guessing pool not replaced: {beat['pools']}")
    code, report = await mimi_health(settings)
    assert code == 0, report


async def test_gateway_down_too_long_fails(env) -> None:
    """A gateway that has been down past the grace period fails; a fresh drop does not."""
    _, bot, settings = env
    bot._gateway_down_since = time.time() - 600
    try:
        beat = await next_beats(settings, 2)
        report = await check(settings)
        assert beat["gateway"]["connected"] is False
        assert "disconnected from Discord" in failing(report.as_dict())["gateway"]
        bot._gateway_down_since = time.time() - 5
        await next_beats(settings, 2)
        assert (await check(settings)).ok
    finally:
        bot._gateway_down_since = None


async def test_stale_stopped_or_dead_heartbeat_fails(tmp_path: Path) -> None:
    """No heartbeat, a stopped bot, a dead pid and a stuck (old) heartbeat each fail."""
    settings = Settings.load(environ={}, env_file=None, data_dir=tmp_path / "data")
    await (await Store.open(settings.db_path)).close()
    assert "not running" in failing((await check(settings)).as_dict())["bot"]
    path, now = heartbeat_path(settings), time.time()
    fresh = {"state": "running", "pid": os.getpid(), "written_at": now, "interval_s": 1.0}
    cases = {
        "stopped": {**fresh, "state": "stopped"},
        "is gone": {**fresh, "pid": 2**22 + 12345},
        "stuck": {**fresh, "written_at": now - 3600},
    }
    for expected, beat in cases.items():
        write_heartbeat(path, beat)
        assert expected in failing((await check(settings)).as_dict())["bot"]
        assert running_bot_pid(settings) is None


async def test_closed_bot_reports_stopped(tmp_path: Path, frontend_weights: Path) -> None:
    """After the bot closes, its last heartbeat says stopped and health fails."""
    settings = Settings.load(
        environ={}, env_file=None, data_dir=tmp_path / "data", frontend_weights=frontend_weights
    )
    async with DiscordStandIn() as standin:
        standin.add_guild(8002)
        bot = MimiBot(settings, guild_ready_timeout=0.1, heartbeat_every_s=BEAT_S)
        async with running_bot(standin, bot, timeout=60):
            await next_beats(settings, 1)
            assert running_bot_pid(settings) == os.getpid()
    report = await check(settings)
    assert "stopped" in failing(report.as_dict())["bot"]
