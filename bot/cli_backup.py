"""`mimi backup | restore`: the whole data dir to and from one verified archive."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from bot.backup import create_backup, not_writable
from bot.config import Settings
from bot.restore import MAX_BYTES, restore_backup

BACKUP_FIELDS = ("archive", "bytes", "guilds", "songs", "model_versions", "skipped_songs")
RESTORE_FIELDS = ("archive", "guilds", "songs", "model_versions", "schema_version")

Emit = Callable[[argparse.Namespace, dict, Sequence[str]], None]


def add_commands(sub, common) -> None:
    """Register `backup` and `restore` on the `mimi` sub-parser."""
    p = sub.add_parser(
        "backup",
        parents=[common],
        help="archive the database, models and song audio (safe while the bot runs)",
    )
    p.add_argument(
        "out",
        metavar="OUT",
        help="archive file to create (.tar, or .tar.gz/.tgz to compress), or a folder (DIR/)",
    )
    p = sub.add_parser("restore", parents=[common], help="verify a backup and install it")
    p.add_argument("archive", type=Path, metavar="IN", help="a file written by `mimi backup`")
    p.add_argument(
        "--force", action="store_true", help="replace an existing database, models and cache"
    )
    p.add_argument(
        "--max-bytes",
        type=byte_count,
        default=MAX_BYTES,
        metavar="N",
        help="refuse an archive that would write more than N bytes (K/M/G/T suffixes; "
        f"default {MAX_BYTES >> 30}G)",
    )


def byte_count(text: str) -> int:
    """'5000', '512M', '2G' -> bytes (binary units)."""
    units = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    number, unit = text.strip().upper().rstrip("IB"), ""
    if number[-1:] in units:
        number, unit = number[:-1], number[-1]
    try:
        value = int(float(number) * units[unit])
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"not a size: {text!r}")
    return value


def _size(n: int) -> str:
    """A byte count for people."""
    return f"{n / 1e6:.1f} MB" if n >= 100_000 else f"{n / 1e3:.1f} kB"


def backup(args: argparse.Namespace, settings: Settings, emit: Emit) -> int:
    """Write a consistent archive of the data dir."""
    out = Path(args.out)
    if args.out.endswith(("/", os.sep)):  # "backups/": a folder, created if missing
        try:
            out.mkdir(parents=True, exist_ok=True)
        except PermissionError as err:
            raise not_writable(out.parent if not out.exists() else out, err) from None
    r = asyncio.run(create_backup(settings, out))
    lines = [
        f"Backed up {r['songs']} songs of {r['guilds']} servers and {r['model_versions']} model "
        f"versions to {r['archive']} ({_size(r['bytes'])}, {r['seconds']:.1f} s)."
    ]
    lines += [
        f"  left out song #{s['song_id']} of server {s['guild']} ({s['filename']}): "
        "it was forgotten while the backup ran"
        for s in r["skipped_songs"]
    ]
    emit(args, {k: r[k] for k in BACKUP_FIELDS}, lines)
    return 0


def restore(args: argparse.Namespace, settings: Settings, emit: Emit) -> int:
    """Verify an archive and install it into the data dir."""
    r = asyncio.run(
        restore_backup(settings, args.archive, force=args.force, max_bytes=args.max_bytes)
    )
    lines = [
        f"Restored {r['songs']} songs of {r['guilds']} servers and {r['model_versions']} model "
        f"versions from {r['archive']} (schema v{r['schema_version']}, {r['seconds']:.1f} s)."
    ]
    if r["replaced"]:
        lines.append(f"  It replaced what was there ({r['replaced']}).")
    emit(args, {k: r[k] for k in RESTORE_FIELDS}, lines)
    if r["running_pid"] is not None:  # on stderr, so that --json output stays one document
        print(
            f"mimi: warning: a mimi bot (pid {r['running_pid']}) is running on "
            f"{settings.data_dir}; restart it so it reloads the restored models.",
            file=sys.stderr,
        )
    return 0


HANDLERS: dict[str, Callable[[argparse.Namespace, Settings, Emit], int]] = {
    "backup": backup,
    "restore": restore,
}
