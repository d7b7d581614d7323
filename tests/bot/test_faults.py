"""Faults: kill -9 mid-training, dying workers, 429s, gateway drops, a full or read-only disk.

Everything is real: the bot runs as `python -m bot run` (or in-process MimiBot) against the
loopback Discord stand-in, processes are killed with real signals, and disk faults come from
the kernel (a full tmpfs, a read-only remount; without mount rights, RLIMIT_FSIZE and chmod).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import pickle
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from bot.client import MimiBot
from bot.config import Settings
from bot.errors import DISK_FULL, READ_ONLY, StorageError, storage_error
from bot.guess_job import guess_clip, guess_file
from bot.inference import guess_config
from bot.service import Mimi
from bot.store import Store
from bot.training import INTERRUPTED, WORKER_DIED, TrainingEvent
from model_store.registry import ModelRegistry
from tests.audio_factory import encode
from tests.bot.helpers import (
    Recorder,
    brief,
    can_mount,
    invoke_teach,
    kill_workers,
    mount,
    unmount,
)
from tests.discord_standin import DiscordStandIn, running_bot
from tests.mimi_process import cli, mimi_env

pytestmark = pytest.mark.asyncio(loop_scope="module")
HOME, FAULTS = 7301, 7302  # guilds: the taught one, and one whose disk goes bad
MANAGE_GUILD = 1 << 5
ARTISTS = {"Alpha": 0, "Beta": 3}  # artist -> synthetic voice


# --- helpers ---------------------------------------------------------------------------------


async def until(check: Callable[[], object], what: str, timeout: float = 120) -> object:
    """Poll `check` (plain or async) every 50 ms until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {what} after {timeout} s")
        await asyncio.sleep(0.05)


def group_pids(pgid: int) -> list[int]:
    """Live (non-zombie) processes of process group `pgid`."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError):
                state, _ppid, pgrp = (entry / "stat").read_text().rsplit(")", 1)[1].split()[:3]
                if int(pgrp) == pgid and state != "Z":
                    pids.append(int(entry.name))
    return pids


def describe(pids: list[int]) -> list[str]:
    """pid: command line, for failure messages."""
    out = []
    for pid in pids:
        with contextlib.suppress(OSError):
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            out.append(f"{pid}: {cmd[:160]}")
    return out


def tail(path: Path, n: int = 40) -> str:
    """The last lines of a log file."""
    return "\n".join(path.read_text(errors="replace").splitlines()[-n:]) if path.exists() else ""


async def start_bot(env: dict[str, str], log: Path) -> asyncio.subprocess.Process:
    """`python -m bot run` in its own session, so its group is the bot plus every worker."""
    with log.open("ab") as out:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "run", cwd=Path(env["MIMI_DATA_DIR"]).parent,
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip


def kill_group(proc: asyncio.subprocess.Process) -> None:
    """SIGKILL the bot and all of its workers at once (as `kill -9` of a container does)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def chmod_forbids_writes(scratch: Path) -> bool:
    """Whether a folder chmod-ed 0555 refuses this process a new file (not so for root)."""
    probe = scratch / "chmod-probe"
    probe.mkdir()
    probe.chmod(0o555)
    try:
        (probe / "x").touch()
    except PermissionError:
        return True
    else:
        (probe / "x").unlink()
        return False
    finally:
        probe.chmod(0o755)
        probe.rmdir()


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A fresh tmpfs of `size` mounted on `path` for the duration."""
    path.mkdir(parents=True, exist_ok=True)
    done = mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path))
    assert done.returncode == 0, done.stderr
    try:
        yield path
    finally:
        unmount(path)


def remount(path: Path, mode: str) -> None:
    """Remount the tmpfs on `path` read-only ("ro") or writable ("rw")."""
    done = mount("-o", f"remount,{mode}", str(path))
    assert done.returncode == 0, done.stderr


@contextlib.contextmanager
def filled(folder: Path) -> Iterator[Path]:
    """Fill the file system holding `folder` to the last byte; free it again afterwards."""
    filler = folder / ".filler"
    try:
        with filler.open("wb", buffering=0) as f:
            for size in (1 << 20, 1 << 12, 1):
                block = b"\0" * size
                with contextlib.suppress(OSError):
                    while True:
                        f.write(block)
        assert os.statvfs(folder).f_bavail == 0
        yield filler
    finally:
        filler.unlink(missing_ok=True)


def files_under(root: Path) -> list[str]:
    """Every file and folder below `root` (fillers aside), relative: what a failure must keep."""
    if not root.is_dir():
        return []
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.name != ".filler")


async def saved(mimi: Mimi) -> tuple:
    """What a failed teach must leave as it was: songs, cache files, SQLite's verdict."""
    songs = await mimi.store.all_songs()
    return songs, files_under(mimi.settings.cache_dir), await mimi.store.integrity_check()


async def refused(teaching, code: str) -> StorageError:
    """The StorageError a teach raised; it must carry `code` and its fixed message."""
    with pytest.raises(StorageError) as err:
        await teaching
    assert err.value.code == code, err.value
    assert err.value.message == {"disk_full": DISK_FULL, "read_only": READ_ONLY}[code]
    return err.value


def local_settings(data: Path, weights: Path) -> Settings:
    """Settings for an in-process service on `data`, free of the environment and .env."""
    return Settings.load(environ={}, env_file=None, data_dir=data, frontend_weights=weights)


# --- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def audio(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """<artist>/<song>.mp3 (2 artists x 2 songs of 12 s), later songs and a clip to guess."""
    root = tmp_path_factory.mktemp("faults-audio")
    for artist, voice in ARTISTS.items():
        (root / "songs" / artist).mkdir(parents=True)
        for i in range(2):
            encode(root / "songs" / artist / f"{artist}{i}.mp3", "mp3", 12, voice=voice, seed=i)
    for i in range(3):  # later songs of Alpha, never in the prepared data
        encode(root / f"late{i}.mp3", "mp3", 12, voice=0, seed=10 + i)
    encode(root / "clip.ogg", "ogg", 8, voice=0, seed=50)
    return root


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory, audio: Path, frontend_weights: Path) -> Path:
    """A data folder made with the real CLI: 2 artists x 2 songs imported, model v1 trained."""
    data = tmp_path_factory.mktemp("faults-prepared") / "data"
    env = mimi_env(data, frontend_weights)
    for args in (("import", str(audio / "songs")), ("train",)):
        done = subprocess.run(
            [sys.executable, "-m", "bot", *args, "--guild", str(HOME)],
            cwd=data.parent, env=env, capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
    return data


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def env(tmp_path_factory: pytest.TempPathFactory, prepared: Path, frontend_weights: Path):
    """The real MimiBot in-process on a copy of the prepared data (model v1), on the stand-in."""
    data = tmp_path_factory.mktemp("faults-bot") / "data"
    shutil.copytree(prepared, data)
    settings = Settings.load(
        environ={}, env_file=None, data_dir=data, frontend_weights=frontend_weights,
        teach_cooldown_s=0.0, guess_cooldown_s=0.0, train_quiet_s=3600.0,
    )  # fmt: skip
    async with DiscordStandIn() as standin:
        standin.add_guild(HOME)
        standin.add_guild(FAULTS)
        bot = MimiBot(settings, guild_ready_timeout=0.1)
        async with running_bot(standin, bot, timeout=60):
            yield standin, bot


async def guess(standin: DiscordStandIn, audio: Path, **kw):
    """Invoke /guess with the Alpha clip; the interaction."""
    att = standin.add_file("clip.ogg", (audio / "clip.ogg").read_bytes(), "audio/ogg")
    return await standin.invoke(kw.pop("guild", HOME), "guess", {"clip": att}, **kw)


# --- 1. kill -9 of the whole bot mid-training --------------------------------------------------


async def test_kill_9_mid_training_loses_nothing_and_restart_retrains(
    prepared: Path, audio: Path, frontend_weights: Path, tmp_path: Path
) -> None:
    """kill -9 of bot + workers mid-training: data and v1 intact; a restart retrains, stays up."""
    data = tmp_path / "data"
    shutil.copytree(prepared, data)
    env = mimi_env(data, frontend_weights)
    code, _, err = await cli(env, "teach", "--guild", str(HOME), "--artist", "Alpha",
                             str(audio / "late0.mp3"))  # fmt: skip
    assert code == 0, err  # taught while the bot was down: the model is now stale
    settings = local_settings(data, frontend_weights)
    registry = ModelRegistry(settings.models_dir)
    store = await Store.open(settings.db_path)
    bots: list[asyncio.subprocess.Process] = []
    try:
        songs = await store.songs(HOME)
        late = next(s.id for s in songs if s.filename == "late0.mp3")
        cli_run = (await store.runs(HOME))[0]
        assert len(songs) == 5 and cli_run["model_version"] == 1
        async with DiscordStandIn() as standin:
            standin.add_guild(HOME)
            env.update(DISCORD_TOKEN="test-token", DISCORD_API_BASE=standin.api_base,
                       DISCORD_GATEWAY_URL=standin.gateway_url, MIMI_TRAIN_QUIET_S="0")  # fmt: skip
            log = tmp_path / "bot.log"
            bots.append(await start_bot(env, log))

            async def training_started() -> dict | None:
                if bots[0].returncode is not None:
                    pytest.fail(f"the bot exited ({bots[0].returncode}):\n{tail(log)}")
                runs = [r for r in await store.runs(HOME) if r["id"] > cli_run["id"]]
                if any(r["status"] != "running" for r in runs):
                    pytest.fail(f"a training finished before the kill could land: {runs}")
                return runs[0] if runs else None

            try:
                killed = await until(training_started, "training run", timeout=180)
            finally:
                kill_group(bots[0])  # the moment the run is recorded 'running'
            await bots[0].wait()
            await until(lambda: not group_pids(bots[0].pid), "end of the killed workers", 30)

            # Nothing was lost, and nothing half-written is served.
            assert await store.songs(HOME) == songs
            assert await store.integrity_check() == "ok"
            assert (await store.runs(HOME))[0] == killed  # still 'running', as kill -9 leaves it
            gdir = registry.guild_dir(HOME)
            assert (gdir / "CURRENT").read_text().strip() == "1"
            half = gdir / "v0002"  # as an interrupted prune or copy might leave one
            half.mkdir()
            (half / "model.keras").write_bytes(b"PK\x03\x04 half a model")
            leftover = gdir / f".tmp-v0002-{bots[0].pid}-0badf00d"  # a publisher killed mid-write
            leftover.mkdir()
            (leftover / "model.keras").write_bytes(b"PK\x03\x04 half a model")
            assert registry.current(HOME).version == 1
            assert [m.version for m in registry.versions(HOME)] == [1]
            config = guess_config(settings)
            answer = await asyncio.to_thread(guess_file, audio / "clip.ogg", HOME, config)
            assert answer["model_version"] == 1 and answer["top"][0]["artist"] == "Alpha"

            # Restart: the killed run is closed as interrupted; the stale guild retrains.
            bots.append(await start_bot(env, log))

            async def retrained() -> dict | None:
                if bots[1].returncode is not None:
                    pytest.fail(f"the restarted bot exited ({bots[1].returncode}):\n{tail(log)}")
                runs = {r["id"]: r for r in await store.runs(HOME)}
                newer = [r for i, r in runs.items() if i > killed["id"]]
                if any(r["status"] == "failed" for r in newer):
                    pytest.fail(f"the retraining failed: {newer}\n{tail(log)}")
                return next((r for r in newer if r["status"] == "succeeded"), None)

            fresh = await until(retrained, "retraining after the restart", timeout=240)
            closed = next(r for r in await store.runs(HOME) if r["id"] == killed["id"])
            assert closed["status"] == "failed" and closed["error"] == INTERRUPTED
            current = registry.current(HOME)
            assert current.version == fresh["model_version"] >= 2
            assert (registry.folder(HOME, current.version) / "model.keras").is_file()
            assert late in current.snapshot["Alpha"] and len(current.snapshot["Alpha"]) == 3
            assert not leftover.exists()  # the next publish swept the dead publisher's folder
            assert await store.integrity_check() == "ok"

            code, out, err = await cli(env, "health")
            assert code == 0, f"{out}{err}\n{tail(log)}"

            bots[1].send_signal(signal.SIGTERM)
            try:
                code = await asyncio.wait_for(bots[1].wait(), 60)
            except TimeoutError:
                pytest.fail(f"the bot did not stop within 60 s of SIGTERM:\n{tail(log)}")
            assert code == 0, f"SIGTERM: exit code {code}\n{tail(log)}"
            with contextlib.suppress(TimeoutError):
                await until(lambda: not group_pids(bots[1].pid), "end of the workers", 15)
            left = group_pids(bots[1].pid)
            assert not left, f"processes left after SIGTERM: {describe(left)}"
    finally:
        for proc in bots:
            kill_group(proc)
        await store.close()


# --- 4. a rate-limited followup --------------------------------------------------------------


async def test_rate_limited_guess_answer_is_retried_once(env, audio: Path) -> None:
    """The /guess answer hit by a 429 is retried by discord.py and arrives exactly once."""
    standin, bot = env
    await bot.training.wait_idle(HOME)
    standin.fail_next("POST", r"^/webhooks/\d+/[^/]+$", 429, retry_after=0.2)
    inter = await guess(standin, audio)
    answer = await inter.final(timeout=120)
    assert answer.embeds[0]["title"] == "Sounds like Alpha" and not answer.ephemeral
    await asyncio.sleep(0.5)  # room for a duplicate to show up, were there one
    webhook = f"/webhooks/{standin.app_id}/{inter.token}"
    posts = [r.status for r in standin.requests if r.method == "POST" and r.path == webhook]
    assert posts == [429, 200]  # the answer, refused once, then accepted
    assert len(inter.messages) == 1


# --- 2. the guessing worker dies mid-guess ---------------------------------------------------


async def test_guess_worker_killed_mid_guess_gets_private_error_then_recovers(
    env, audio: Path
) -> None:
    """A guessing worker SIGKILLed with a guess queued: a private error, then guessing works."""
    standin, bot = env
    pool = bot.audio_pool
    (victim,) = await until(pool.pids, "guessing worker")

    def guess_queued() -> bool:  # (a peek inside the executor: the job went to the worker)
        return any(w.fn is guess_clip for w in pool._pool._pending_work_items.values())

    os.kill(victim, signal.SIGSTOP)  # it can take the job but never finish it
    try:
        inter = await guess(standin, audio)
        assert (await inter.deferred(timeout=30)).type == 5
        await until(guess_queued, "guess queued to the worker", 60)
        await asyncio.sleep(0.3)
    finally:
        os.kill(victim, signal.SIGKILL)
    reply = await inter.final(timeout=60)
    assert reply.ephemeral and "audio worker crashed" in reply.content
    assert inter.original_deleted  # the public "thinking…" is gone
    again = await (await guess(standin, audio)).final(timeout=120)
    assert again.embeds[0]["title"] == "Sounds like Alpha"
    assert pool.pids() and victim not in pool.pids()


# --- 3. the training worker dies mid-epoch ---------------------------------------------------


async def test_training_worker_killed_old_model_answers_during_retry(env, audio: Path) -> None:
    """Training worker killed mid-epoch: run failed, retried; v1 answers /guess meanwhile."""
    standin, bot = env
    recorder, killed = Recorder(), []

    def kill_first_attempt(event: TrainingEvent) -> None:
        if event.kind == "progress" and event.attempt == 1 and not killed:
            killed.extend(kill_workers(bot.training))

    recorder.hooks.append(kill_first_attempt)
    bot.training.subscribe(recorder)
    stopped: list[int] = []
    try:
        retrain = await standin.invoke(HOME, "retrain", permissions=MANAGE_GUILD)
        assert "Retraining now" in (await retrain.final(timeout=30)).content
        await recorder.wait_for(lambda e: e.kind == "started" and e.attempt == 2, timeout=180)
        fresh = await until(
            lambda: [p for p in bot.training.worker_pids() if p not in killed], "retry worker"
        )
        for pid in fresh:  # hold the retry mid-way, so the guess below surely overlaps it
            os.kill(pid, signal.SIGSTOP)
            stopped.append(pid)
        answer = await (await guess(standin, audio)).final(timeout=120)
        assert "model v1" in answer.embeds[0]["footer"]["text"]
        assert answer.embeds[0]["title"] == "Sounds like Alpha"
        assert bot.training.status(HOME).state == "running"
    finally:
        for pid in stopped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        recorder.hooks.clear()
    await recorder.wait_for(lambda e: e.kind == "finished", timeout=180)
    assert killed and recorder.kinds() == ["started", "started", "finished"]
    assert brief((await bot.mimi.store.runs(HOME))[:2]) == [
        ("succeeded", "retrain (retry)", 2, None),
        ("failed", "retrain", None, WORKER_DIED),
    ]
    news = await standin.wait_for_message(lambda m: (m.content or "").startswith("Model v2 ready"))
    assert news.channel_id == standin.default_channel_id(HOME)
    after = await (await guess(standin, audio)).final(timeout=120)
    assert "model v2" in after.embeds[0]["footer"]["text"]


# --- 5. the gateway drops ---------------------------------------------------------------------


async def test_gateway_drop_resumes_without_identify(env, audio: Path) -> None:
    """A closed and a cut gateway are RESUMEd (never a new IDENTIFY); /guess works after each."""
    standin, _ = env
    identifies, resumes = standin.identifies, standin.resumes
    for n, abrupt in enumerate((False, True), start=1):
        await standin.drop_gateway(abrupt=abrupt)
        await standin.wait_resumed(resumes + n, timeout=60)
        answer = await (await guess(standin, audio)).final(timeout=120)
        assert answer.embeds[0]["title"] == "Sounds like Alpha"
    assert standin.identifies == identifies


# --- 6. a full or read-only disk while teaching ----------------------------------------------


async def test_teach_on_a_full_or_read_only_disk_answers_privately(env, audio: Path) -> None:
    """/teach on a full or read-only disk: a private, specific answer and nothing stored."""
    if not can_mount():
        pytest.skip("needs tmpfs mounts (root); the service-level tests cover the rest")
    standin, bot = env
    cache, downloads = bot.settings.cache_dir / str(FAULTS), bot.settings.data_dir / "tmp"

    async def teach_faults(i: int):
        name = f"late{i}.mp3"
        inter = await invoke_teach(standin, FAULTS, name, (audio / name).read_bytes(), "Alpha")
        return inter, await inter.final(timeout=120)

    with tmpfs(cache, "2m"):  # this guild's song folders, on a disk of their own
        with filled(cache):
            inter, reply = await teach_faults(0)
            assert reply.ephemeral and reply.content == DISK_FULL
            assert inter.original_deleted
            assert files_under(cache) == [] and await bot.mimi.store.songs(FAULTS) == []
        inter, reply = await teach_faults(0)  # space is back
        assert "Learned **Alpha**" in reply.content and not reply.ephemeral
        stored = files_under(cache)
        remount(cache, "ro")
        try:
            inter, reply = await teach_faults(1)
            assert reply.ephemeral and reply.content == READ_ONLY
        finally:
            remount(cache, "rw")
        assert files_under(cache) == stored and len(await bot.mimi.store.songs(FAULTS)) == 1
        with tmpfs(downloads, "1m"), filled(downloads):  # the upload cannot even be saved
            inter, reply = await teach_faults(2)
            assert reply.ephemeral and reply.content == DISK_FULL
            assert files_under(downloads) == []
        assert files_under(cache) == stored and len(await bot.mimi.store.songs(FAULTS)) == 1
        await bot.mimi.forget_artist(FAULTS, "Alpha")
    assert await bot.mimi.store.integrity_check() == "ok"


async def test_disk_full_while_teaching_saves_nothing(
    tmp_path: Path, audio: Path, frontend_weights: Path
) -> None:
    """A full disk under the cache or the database: disk_full, nothing half-stored, then OK."""
    if not can_mount():
        pytest.skip("needs tmpfs mounts (root); the RLIMIT_FSIZE test covers a full disk")
    data = tmp_path / "data"
    late = [audio / f"late{i}.mp3" for i in range(2)]
    with tmpfs(data, "4m"), tmpfs(data / "cache", "16m"):  # database and cache: two disks
        async with await Mimi.open(local_settings(data, frontend_weights)) as mimi:
            for artist in ARTISTS:
                await mimi.teach(1, artist, audio / "songs" / artist / f"{artist}0.mp3")
            before = await saved(mimi)
            with filled(data / "cache"):  # the song's audio and features cannot be written
                err = await refused(mimi.teach(1, "Alpha", late[0]), "disk_full")
                assert isinstance(err.__cause__, OSError) and err.__cause__.errno == errno.ENOSPC
                assert await saved(mimi) == before
            with filled(data):  # the cache can be written, the database (its WAL) cannot
                err = await refused(mimi.teach(1, "Alpha", late[0]), "disk_full")
                assert getattr(err.__cause__, "sqlite_errorname", None) == "SQLITE_FULL"
                assert await saved(mimi) == before  # (the song's new cache folder was removed)
            song = await mimi.teach(1, "Alpha", late[0])  # space is back: the same connection
            songs, _, integrity = await saved(mimi)
            assert songs == [*before[0], song] and integrity == "ok"
            assert mimi.cache.has(1, song.audio_sha256, "embedding")


async def test_file_size_limit_while_teaching_cli(
    tmp_path: Path, prepared: Path, audio: Path, frontend_weights: Path
) -> None:
    """`mimi teach` past RLIMIT_FSIZE (EFBIG): the disk_full message, exit 1, nothing stored."""
    data = tmp_path / "data"
    shutil.copytree(prepared, data)
    settings = local_settings(data, frontend_weights)
    async with await Mimi.open(settings) as mimi:
        before = await saved(mimi)

    def limit_file_size() -> None:  # in the child: files may not grow past 64 KiB
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write then fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 << 10, 64 << 10))

    args = ("teach", "--guild", str(HOME), "--artist", "Alpha", str(audio / "late1.mp3"))
    code, out, err = await cli(mimi_env(data, frontend_weights), *args, preexec=limit_file_size)
    assert code == 1 and f"mimi: late1.mp3: {DISK_FULL}" in err, (out, err)
    async with await Mimi.open(settings) as mimi:
        assert await saved(mimi) == before
        song = await mimi.teach(HOME, "Alpha", audio / "late1.mp3")  # no limit: it works
        assert (await saved(mimi))[0] == [*before[0], song]


async def test_read_only_data_folder_while_teaching(
    tmp_path: Path, audio: Path, frontend_weights: Path
) -> None:
    """A read-only cache, database or data folder: read_only, nothing half-stored, then OK."""
    data = tmp_path / "data"
    settings = local_settings(data, frontend_weights)
    late = audio / "late0.mp3"
    if not can_mount():
        if not chmod_forbids_writes(tmp_path):
            pytest.skip("neither a read-only remount nor chmod can forbid writes here (root?)")
        async with await Mimi.open(settings) as mimi:  # the non-root fallback: chmod 0555
            await mimi.teach(1, "Alpha", audio / "songs" / "Alpha" / "Alpha0.mp3")
            before, guild_cache = await saved(mimi), settings.cache_dir / "1"
            guild_cache.chmod(0o555)
            try:
                await refused(mimi.teach(1, "Alpha", late), "read_only")
            finally:
                guild_cache.chmod(0o755)
            assert await saved(mimi) == before
            await mimi.teach(1, "Alpha", late)
        return
    with tmpfs(data, "8m"), tmpfs(data / "cache", "16m"):
        async with await Mimi.open(settings) as mimi:
            for artist in ARTISTS:
                await mimi.teach(1, artist, audio / "songs" / artist / f"{artist}0.mp3")
            before = await saved(mimi)
            remount(data / "cache", "ro")  # EROFS from the first mkdir
            try:
                err = await refused(mimi.teach(1, "Alpha", late), "read_only")
                assert isinstance(err.__cause__, OSError) and err.__cause__.errno == errno.EROFS
            finally:
                remount(data / "cache", "rw")
            assert await saved(mimi) == before

        # The database's disk goes read-only under a bot killed with its database open (its
        # -wal/-shm stay, so SQLite can still read): teaching writes the cache, then fails on
        # the database with "attempt to write a readonly database"; `mimi teach` says so too.
        crash = "import os, sqlite3, sys; c = sqlite3.connect(sys.argv[1]); " \
            "c.execute('SELECT COUNT(*) FROM songs').fetchone(); os._exit(0)"  # fmt: skip
        subprocess.run([sys.executable, "-c", crash, str(settings.db_path)], check=True)
        assert Path(f"{settings.db_path}-shm").exists()
        remount(data, "ro")
        try:
            async with await Mimi.open(settings) as mimi:
                err = await refused(mimi.teach(1, "Alpha", late), "read_only")
                assert getattr(err.__cause__, "sqlite_errorname", "").startswith("SQLITE_READONLY")
                assert await saved(mimi) == before  # (the song's new cache folder was removed)
            args = ("teach", "--guild", "1", "--artist", "Alpha", str(late))
            code, out, err = await cli(mimi_env(data, frontend_weights), *args)
            assert code == 1 and f"mimi: late0.mp3: {READ_ONLY}" in err, (out, err)
        finally:
            remount(data, "rw")
        async with await Mimi.open(settings) as mimi:
            assert await saved(mimi) == before  # (and the database closes cleanly)

        remount(data, "ro")  # cleanly closed: SQLite cannot even open it
        try:
            with pytest.raises(StorageError) as err:
                await Mimi.open(settings)
            assert (err.value.code, err.value.message) == ("read_only", READ_ONLY)
        finally:
            remount(data, "rw")

        async with await Mimi.open(settings) as mimi:  # writable again: teaching works
            song = await mimi.teach(1, "Alpha", late)
            songs, _, integrity = await saved(mimi)
            assert songs == [*before[0], song] and integrity == "ok"


async def test_storage_error_mapping() -> None:
    """Kernel and SQLite write errors map to disk_full / read_only; other errors are left alone."""
    full = OSError(errno.ENOSPC, "No space left on device")
    assert pickle.loads(pickle.dumps(full)).errno == errno.ENOSPC  # as a worker sends it back
    assert storage_error(full).code == "disk_full"
    assert storage_error(OSError(errno.EDQUOT, "Disk quota exceeded")).code == "disk_full"
    assert storage_error(OSError(errno.EFBIG, "File too large")).code == "disk_full"
    assert storage_error(OSError(errno.EROFS, "Read-only file system")).code == "read_only"
    db = sqlite3.connect(":memory:", isolation_level=None)  # as the store runs it
    db.execute("CREATE TABLE t (x)")
    db.execute("PRAGMA query_only = 1")
    with pytest.raises(sqlite3.OperationalError) as ro:
        db.execute("INSERT INTO t VALUES (1)")
    assert storage_error(ro.value).code == "read_only"
    with pytest.raises(sqlite3.OperationalError) as masked:
        try:
            db.execute("INSERT INTO t VALUES (1)")
        except sqlite3.OperationalError:
            db.execute("ROLLBACK")  # "no transaction is active": SQLite's error hides behind it
    assert "cannot rollback" in str(masked.value)
    assert storage_error(masked.value).code == "read_only"
    outside = PermissionError(errno.EACCES, "Permission denied", "/usr/bin/ffmpeg")
    assert storage_error(outside, Path("/srv/mimi")) is None  # not the data folder's fault
    inside = PermissionError(errno.EACCES, "Permission denied", "/srv/mimi/cache/1")
    assert storage_error(inside, Path("/srv/mimi")).code == "read_only"
    assert storage_error(OSError(errno.ENOENT, "No such file or directory")) is None
