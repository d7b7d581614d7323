"""Helpers shared by the bot tests: teaching synthetic artists, watching the training service,
driving the Discord stand-in, running the CLI in-process, and tmpfs mounts."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import signal
import subprocess
import uuid
from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path

from bot import cli
from bot.service import Mimi
from bot.training import TrainingEvent, TrainingService
from tests.audio_factory import encode
from tests.discord_standin import DiscordStandIn, Interaction

# --- teaching synthetic artists ---------------------------------------------------------------

DRONE_AND_CHIME = {"Drone": 0, "Chime": 4}  # artist -> synthetic voice
ALPHA_AND_BETA = {"Alpha": 0, "Beta": 3}


async def teach_voices(
    mimi: Mimi, folder: Path, voices: Mapping[str, int], *, guild: int, songs: int, seconds: float
) -> dict[str, list[int]]:
    """Teach `songs` real MP3s (seeds 0, 1, ...) of each artist's voice; their song ids."""
    folder.mkdir(parents=True, exist_ok=True)
    ids: dict[str, list[int]] = {}
    for artist, voice in voices.items():
        for i in range(songs):
            path = encode(folder / f"{artist}{i}.mp3", "mp3", seconds=seconds, voice=voice, seed=i)
            ids.setdefault(artist, []).append((await mimi.teach(guild, artist, path)).id)
    return ids


async def teach_drone_and_chime(mimi: Mimi, folder: Path, guild: int = 1, songs: int = 3) -> None:
    """Teach `songs` 21 s MP3s each of Drone (voice 0) and Chime (voice 4)."""
    await teach_voices(mimi, folder, DRONE_AND_CHIME, guild=guild, songs=songs, seconds=21)


async def teach_alpha_and_beta(mimi: Mimi, folder: Path, guild: int) -> None:
    """Teach two 12 s MP3s each of Alpha (voice 0) and Beta (voice 3)."""
    await teach_voices(mimi, folder, ALPHA_AND_BETA, guild=guild, songs=2, seconds=12)


# --- the training service ---------------------------------------------------------------------


class Recorder:
    """A listener that keeps every event, runs test hooks and can wait for an event."""

    def __init__(self) -> None:
        self.events: list[TrainingEvent] = []
        self.hooks: list[Callable[[TrainingEvent], None]] = []

    def __call__(self, event: TrainingEvent) -> None:
        self.events.append(event)
        for hook in self.hooks:
            hook(event)

    def kinds(self) -> list[str]:
        """Event kinds in order, without progress events."""
        return [e.kind for e in self.events if e.kind != "progress"]

    async def wait_for(self, pred: Callable[[TrainingEvent], bool], timeout: float = 120) -> None:
        """Wait until some event satisfies `pred`."""
        async with asyncio.timeout(timeout):
            while not any(pred(e) for e in self.events):
                await asyncio.sleep(0.02)


def kill_workers(svc: TrainingService) -> list[int]:
    """SIGKILL every worker process of the service's pool; their pids."""
    pids = svc.worker_pids()
    assert pids, "no worker process to kill"
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    return pids


def brief(runs: list[dict]) -> list[tuple]:
    """(status, reason, model version, error) of each run, newest first."""
    return [(r["status"], r["reason"], r["model_version"], r["error"]) for r in runs]


# --- the Discord stand-in ---------------------------------------------------------------------


async def invoke_teach(
    standin: DiscordStandIn, guild: int, name: str, data: bytes, artist: str, **kw: object
) -> Interaction:
    """Invoke /teach in `guild` with one attachment and return the interaction."""
    att = standin.add_file(name, data, "audio/mpeg")
    return await standin.invoke(guild, "teach", {"artist": artist, "song": att}, **kw)


# --- the CLI ----------------------------------------------------------------------------------


def run_mimi(*argv: str) -> tuple[int, str, str]:
    """Run `mimi ARGV` in this process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(list(argv))
    return code, out.getvalue(), err.getvalue()


# --- tmpfs mounts -----------------------------------------------------------------------------


def mount(*args: str) -> subprocess.CompletedProcess:
    """Run `mount ARGS`, never raising; the finished process."""
    return subprocess.run(["mount", *args], capture_output=True, text=True, check=False)


def unmount(path: Path) -> None:
    """umount `path`, lazily if something still holds it."""
    if subprocess.run(["umount", str(path)], capture_output=True, check=False).returncode:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


@cache
def can_mount() -> bool:
    """Whether this process may mount a tmpfs (root with CAP_SYS_ADMIN)."""
    probe = Path(f"/tmp/mimi-mount-probe-{uuid.uuid4().hex}")
    probe.mkdir()
    try:
        ok = mount("-t", "tmpfs", "-o", "size=64k", "tmpfs", str(probe)).returncode == 0
        if ok:
            unmount(probe)
        return ok
    finally:
        probe.rmdir()
