"""Shared by backup and restore: the archive's names and manifest checksum, the tokens and
flocks that mark a running backup's or restore's folders, the swap of a folder's contents with
its rollback, and the sweeps that tidy what a killed backup or restore left behind.

Leftovers of a killed restore: `.restore-<token>` (staging) in data/, cache/ and models/, and
`.replaced-<token>` (the old contents) in cache/ and models/; of a killed backup,
`.<archive name>.<token>.partial` beside the archive. A token is '<pid>_<start ticks>-<random>'
(bot.owner.process_token), so a reused pid never passes for the owner; the owner also holds a
flock on its folder, which works across pid namespaces (a `docker compose run` container)."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import secrets
import shutil
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

from bot.config import Settings
from bot.errors import MimiError
from bot.owner import owner_alive, process_token
from bot.store import Store
from model_store.durable import atomic_write

FORMAT, FORMAT_VERSION = "mimi-backup", 1
MANIFEST, DB_MEMBER = "manifest.json", "mimi.sqlite3"

_TOKEN = r"(?P<pid>\d+)_(?P<start>\d+|x)-[0-9a-f]{8}"
LEFTOVER = re.compile(rf"\.(?:restore|replaced)-(?P<token>{_TOKEN})")
_LEGACY = re.compile(r"\.(?:restore|replaced)-(?P<pid>\d+)-[0-9a-f]{8}(?:-(?:models|cache))?")
_PARTIAL = re.compile(rf"\..+\.(?P<token>{_TOKEN})\.partial")
_LEGACY_PARTIAL = re.compile(r"\..+\.[a-z0-9_]{8}\.partial")  # before tokens: kept a day
PHASE_FILE, COMMITTED = ".mimi-restore-phase", "COMMITTED"


def manifest_digest(manifest: dict) -> str:
    """sha256 of the manifest's canonical JSON without its own checksum field."""
    body = {k: v for k, v in manifest.items() if k != "manifest_sha256"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# --- tokens, locks and leftovers -----------------------------------------------------------


def new_token() -> str:
    """This process's token for the folders of one backup or restore."""
    return f"{process_token().replace(':', '_').replace('?', 'x')}-{secrets.token_hex(4)}"


def hold(folder: Path) -> int:
    """flock `folder` for as long as the returned descriptor is open (liveness across
    containers; the pid in the token is the first check)."""
    fd = os.open(folder, os.O_RDONLY)
    with contextlib.suppress(OSError):  # a file system without flock: the pid check remains
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return fd


def _locked(folder: Path) -> bool:
    """True if a live process holds `folder`'s flock."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)
    return False


def alive(match: re.Match, lock: Path | None) -> bool:
    """Whether the owner of a token (a `_TOKEN` match) still runs."""
    start = match["start"].replace("x", "?")
    return owner_alive(f"{match['pid']}:{start}") or (lock is not None and _locked(lock))


def entries(folder: Path) -> list[str]:
    """Names in `folder`, [] when it is missing or unreadable."""
    try:
        return sorted(os.listdir(folder))
    except OSError:
        return []


def _remove(path: Path) -> None:
    """Delete a file or folder tree, whatever it is; nothing if it is gone."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def targets(settings: Settings) -> tuple[Path, Path]:
    """The folders whose contents a restore replaces."""
    return settings.cache_dir, settings.models_dir


def sweep_leftovers(settings: Settings) -> list[str]:
    """Tidy what killed restores left in the data dir: an install that never committed is
    rolled back (the old cache and models put back), a committed one finished; a restore whose
    owner still runs is never touched. The names removed."""
    data, removed = settings.data_dir, []
    tokens: dict[str, re.Match] = {}
    for folder in (data, *targets(settings)):
        for name in entries(folder):
            if m := LEFTOVER.fullmatch(name):
                tokens.setdefault(m["token"], m)
            elif (m := _LEGACY.fullmatch(name)) and not owner_alive(f"{m['pid']}:?"):
                _sweep_legacy(settings, name)
                removed.append(name)
    for token, m in tokens.items():
        staging = data / f".restore-{token}"
        if alive(m, staging if staging.is_dir() else None):
            continue
        committed = not staging.is_dir() or (staging / COMMITTED).exists()
        try:
            finish(settings, token, rollback=not committed)
        except OSError:  # a read-only disk, say: left for the next sweep
            continue
        removed.append(f".restore-{token}")
    return removed


def _sweep_legacy(settings: Settings, name: str) -> None:
    """A leftover of the restore before tokens: `.replaced-<pid>-<hex>-<models|cache>` in
    data/ holds the old folder (put back if the folder is missing); anything else goes."""
    path = settings.data_dir / name
    for folder in targets(settings):
        old = name.startswith(".replaced-") and name.endswith(f"-{folder.name}")
        if old and not folder.exists() and path.is_dir():
            with contextlib.suppress(OSError):
                os.rename(path, folder)
            return  # put back, or kept for the next try: never deleted
    _remove(path)


def finish(settings: Settings, token: str, *, rollback: bool) -> None:
    """End a restore's folder swap: roll it back (put the old contents back) or not, then
    delete its staging and set-aside folders, the data dir's staging last."""
    for folder in targets(settings):
        aside, stage = folder / f".replaced-{token}", folder / f".restore-{token}"
        if rollback and aside.is_dir():
            _roll_back(folder, stage, aside)
        _remove(aside)
        _remove(stage)
    _remove(settings.data_dir / f".restore-{token}")


def _roll_back(folder: Path, stage: Path, aside: Path) -> None:
    """Undo `swap_in` at whatever step it stopped: the new entries (all of `folder` once the
    phase says "in") go back to `stage`, the old ones come back from `aside`."""
    ours = {stage.name, aside.name}
    with contextlib.suppress(OSError):
        if (aside / PHASE_FILE).read_text() == "in":
            stage.mkdir(exist_ok=True)
            for name in entries(folder):
                if name not in ours:
                    os.rename(folder / name, stage / name)
    for name in entries(aside):
        if name != PHASE_FILE and not (folder / name).exists():
            os.rename(aside / name, folder / name)


def _phase(aside: Path, phase: str) -> None:
    """Record how far `swap_in` got, durably, before its next step."""
    atomic_write(aside / PHASE_FILE, lambda tmp: tmp.write_text(phase))


def swap_in(folder: Path, stage: Path, aside: Path) -> None:
    """Replace `folder`'s contents by `stage`'s: every old entry moves into `aside`, then every
    staged one moves in. All three are on one file system; `folder` itself never moves (it may
    be a mount point: renaming it fails with EBUSY)."""
    aside.mkdir()
    _phase(aside, "aside")
    for name in entries(folder):
        if name not in (stage.name, aside.name):
            os.rename(folder / name, aside / name)
    _phase(aside, "in")
    for name in entries(stage):
        os.rename(stage / name, folder / name)


def sweep_partials(folder: Path) -> list[str]:
    """Delete the temporary folders that killed backups left in `folder` (never a running
    backup's); the names removed."""
    removed = []
    for name in entries(folder):
        path = folder / name
        if m := _PARTIAL.fullmatch(name):
            if alive(m, path):
                continue
        elif _LEGACY_PARTIAL.fullmatch(name):
            with contextlib.suppress(OSError):
                if time.time() - path.stat().st_mtime < 86400:
                    continue
        else:
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
            removed.append(name)
    return removed


@contextlib.asynccontextmanager
async def opened(path: Path) -> AsyncIterator[Store]:
    """Store.open (errors as a user-facing message), closed on the way out."""
    try:
        store = await Store.open(path)
    except (sqlite3.Error, RuntimeError) as err:
        raise MimiError(f"Could not open the database {path}: {err}.") from None
    try:
        yield store
    finally:
        await store.close()
