"""Durable file writes (one place for fsync and write-then-rename) and whether the process
that writes a file still runs; used by the model store and the bot's cache, backups, restores."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


def fsync_path(path: Path) -> None:
    """fsync a file, or a folder's entries (POSIX only for folders)."""
    if os.name == "posix" or not path.is_dir():
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Write through `write(tmp)` beside `path`, fsync, then rename over it (readers see the
    old file or the new one, never half of one)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        fsync_path(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def pid_alive(pid: object) -> bool:
    """True if a process with this id may still run (ours or another user's; always assumed
    off POSIX, where signal 0 is not a probe)."""
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    if os.name != "posix":
        return True
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except OSError:  # EPERM: it exists, as another user
        return True
    return True
