"""Liveness: the bot writes a heartbeat file; `mimi health` checks it and the database."""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from bot.config import Settings
from bot.migrations import MIGRATIONS
from bot.store import Store
from model_store.durable import pid_alive

HEARTBEAT_FILE = "health.json"
HEARTBEAT_EVERY_S = 15.0  # how often a running bot rewrites its heartbeat
MISSED_BEATS = 4  # a heartbeat older than this many intervals (+ slack) means a stuck bot
GATEWAY_GRACE_S = 120.0  # a gateway reconnect shorter than this is not a failure


@dataclass(frozen=True)
class Check:
    """One line of the health report."""

    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class Report:
    """Every check; healthy only if all passed."""

    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        """True when every check passed."""
        return all(c.ok for c in self.checks)

    def as_dict(self) -> dict:
        """The stable JSON shape of `mimi health --json`."""
        return {"ok": self.ok, "checks": [asdict(c) for c in self.checks]}


def heartbeat_path(settings: Settings) -> Path:
    """Where the running bot keeps its heartbeat."""
    return settings.data_dir / HEARTBEAT_FILE


def write_heartbeat(path: Path, beat: dict) -> None:
    """Replace the heartbeat file atomically (readers never see half a file)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(beat, ensure_ascii=False))
    os.replace(tmp, path)


def read_heartbeat(path: Path) -> dict | None:
    """The last heartbeat, or None when there is none (or it is unreadable)."""
    try:
        beat = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return beat if isinstance(beat, dict) else None


def stale_after(beat: dict) -> float:
    """Seconds after which this heartbeat counts as missing."""
    interval = float(beat.get("interval_s") or HEARTBEAT_EVERY_S)
    return MISSED_BEATS * interval + 5.0


def running_bot_pid(settings: Settings, now: float | None = None) -> int | None:
    """The pid of a bot serving this data folder right now, or None."""
    beat = read_heartbeat(heartbeat_path(settings))
    if beat is None or beat.get("state") != "running" or not pid_alive(beat.get("pid")):
        return None
    age = (time.time() if now is None else now) - float(beat.get("written_at", 0))
    return int(beat["pid"]) if age <= stale_after(beat) else None


async def check(settings: Settings, now: float | None = None) -> Report:
    """Database reachable, bot alive and current, worker pools alive, gateway connected."""
    now = time.time() if now is None else now
    checks, path = [await _database(settings.db_path)], heartbeat_path(settings)
    checks.append(_fonts())
    beat = read_heartbeat(path)
    bot = _bot(beat, now, path)
    checks.append(bot)
    if bot.ok and beat is not None:
        checks += _pools(beat)
        checks.append(_gateway(beat, now))
        if not (beat.get("database") or {}).get("ok", False):
            error = (beat.get("database") or {}).get("error", "unknown error")
            checks.append(Check("bot database", False, f"the bot cannot use the database: {error}"))
    return Report(tuple(checks))


async def _database(path: Path) -> Check:
    """The database file opens read-only and answers a query."""
    try:
        info = await Store.inspect(path, read_only=True)
    except Exception as err:  # any failure to open or query is the answer itself
        return Check("database", False, f"unreachable at {path}: {err}")
    version, songs = info["schema_version"], info["songs"]
    if version > len(MIGRATIONS):
        return Check("database", False, f"schema v{version} is newer than this mimi")
    return Check("database", True, f"schema v{version}, {songs} songs")


def _fonts() -> Check:
    """Fonts for names in every script; missing ones are reported, not fatal (pictures still
    draw, with boxes for what no font covers)."""
    from bot import text

    missing = text.missing_fonts()
    faces = ", ".join(f.path.stem for f in text.chain()) or "none"
    return Check("fonts", True, f"warning: {missing}" if missing else faces)


def _bot(beat: dict | None, now: float, path: Path) -> Check:
    """The bot process exists and wrote its heartbeat recently."""
    if beat is None:
        return Check("bot", False, f"no heartbeat at {path}: the bot is not running")
    pid, age = beat.get("pid"), now - float(beat.get("written_at", 0))
    if beat.get("state") == "waiting" and pid_alive(pid):  # `mimi run` with no DISCORD_TOKEN
        return Check("bot", False, str(beat.get("detail") or "the bot is waiting to start"))
    if beat.get("state") != "running":
        return Check("bot", False, f"the bot stopped {age:.0f} s ago")
    if not pid_alive(pid):
        return Check("bot", False, f"bot process {pid} is gone (last heartbeat {age:.0f} s ago)")
    if age > stale_after(beat):
        return Check("bot", False, f"no heartbeat for {age:.0f} s: the bot is stuck")
    uptime = now - float(beat.get("started_at", now))
    return Check("bot", True, f"pid {pid}, up {_duration(uptime)}")


def _pools(beat: dict) -> list[Check]:
    """One check per worker pool: not broken, every worker process alive."""
    checks = []
    for name, pool in sorted((beat.get("pools") or {}).items()):
        pids = [p for p in pool.get("pids", []) if isinstance(p, int)]
        dead = [p for p in pids if not pid_alive(p)]
        if pool.get("state") == "broken" or dead:
            detail = f"worker {dead[0]} is gone" if dead else "the pool is broken"
            checks.append(Check(f"{name} workers", False, detail))
        else:
            state = pool.get("state", "ok")
            checks.append(Check(f"{name} workers", True, f"{state}, pids {pids or '-'}"))
    return checks


def _gateway(beat: dict, now: float) -> Check:
    """Connected to Discord's gateway, or only briefly reconnecting."""
    gateway = beat.get("gateway") or {}
    if gateway.get("connected"):
        latency = gateway.get("latency_ms")
        shown = f"{latency:.0f} ms" if isinstance(latency, int | float) else "n/a"
        guilds = gateway.get("guilds", 0)
        return Check("gateway", True, f"connected, latency {shown}, {guilds} servers")
    down_for = now - float(gateway.get("down_since") or now)
    if down_for <= GATEWAY_GRACE_S:
        return Check("gateway", True, f"reconnecting for {down_for:.0f} s")
    return Check("gateway", False, f"disconnected from Discord for {_duration(down_for)}")


def _duration(seconds: float) -> str:
    """12 s, 5 min, 3.2 h."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
