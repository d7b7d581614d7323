"""`mimi backup`: the data dir in one verified tar, consistent while the bot runs: DB
snapshot first, then exactly its songs' cache files, then the immutable model versions (CURRENT
read once). `manifest.json` has every member's sha256 and size, and its own checksum."""

from __future__ import annotations

import asyncio
import errno
import functools
import hashlib
import io
import json
import os
import shutil
import tarfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from bot.backup_files import (
    DB_MEMBER,
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    hold,
    manifest_digest,
    new_token,
    opened,
    sweep_partials,
)
from bot.cache import AUDIO_FILE, SongCache
from bot.config import Settings
from bot.errors import MimiError
from bot.store import Song
from model_store.durable import fsync_path
from model_store.registry import (
    CURRENT_FILE,
    META_FILE,
    ModelMeta,
    read_current,
    version_dir_name,
    version_of,
)
from model_store.stages import EMBEDDING

COMPOSE_BACKUPS = Path("/backups")  # where docker-compose.yml mounts ./backups


def _add(tar: tarfile.TarFile, members: dict, name: str, data: bytes, mtime=None) -> None:
    """Add a member to `tar`, recording its sha256 and size in `members` (for the manifest)."""
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o644, int(mtime or time.time())
    tar.addfile(info, io.BytesIO(data))
    members[name] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}


def _read_all(paths: list[tuple[str, Path]]) -> list[tuple[str, bytes, float]] | None:
    """(name, bytes, mtime) of every path, or None if one has vanished. (Cache and model files
    are replaced by rename or unlinked, never rewritten in place: each read sees one version.)"""
    out = []
    try:
        for name, path in paths:
            with path.open("rb") as f:
                out.append((name, f.read(), os.fstat(f.fileno()).st_mtime))
    except FileNotFoundError:
        return None
    return out


def _add_cache(add: Callable[..., None], cache_dir: Path, songs: list[Song]) -> list[Song]:
    """Archive audio.flac and embeddings of each song; the songs whose audio has vanished."""
    vanished, cache = [], SongCache(cache_dir)
    for song in songs:
        try:
            folder = cache.song_dir(song.guild_id, song.audio_sha256)
        except ValueError:
            raise MimiError(
                f"The database holds song #{song.id} of server {song.guild_id!r} with an invalid "
                f"key {song.audio_sha256!r}; it cannot be backed up.",
                code="invalid_key",
            ) from None
        prefix = f"cache/{folder.parent.name}/{folder.name}"
        audio = _read_all([(f"{prefix}/{AUDIO_FILE}", folder / AUDIO_FILE)])
        if audio is None:  # forgotten since the snapshot
            vanished.append(song)
            continue
        for p in sorted(folder.glob(f"{EMBEDDING}.*.npy")):  # one replaced meanwhile: skip it
            audio += _read_all([(f"{prefix}/{p.name}", p)]) or []
        for name, data, mtime in audio:
            add(name, data, mtime)
    return vanished


def _add_version(add: Callable[..., None], gdir: Path, version: int) -> bool:
    """Archive one published version; False if it is gone or incomplete (pruned mid-copy)."""
    vdir = gdir / version_dir_name(version)

    def listing() -> list[str]:
        """Every file, relative; [] once the folder is gone."""
        return sorted(
            Path(d, n).relative_to(vdir).as_posix() for d, _, ns in os.walk(vdir) for n in ns
        )

    listed = listing()
    files = _read_all([(n, vdir / n) for n in listed]) if META_FILE in listed else None
    if files is None or listing() != listed:  # being deleted under us
        return False
    try:
        meta = ModelMeta.from_dict(json.loads(next(d for n, d, _ in files if n == META_FILE)))
    except (ValueError, TypeError, KeyError, AttributeError):
        return False
    if meta.version != version:  # not what a publish writes
        return False
    for name, data, mtime in files:
        add(f"models/{gdir.name}/{vdir.name}/{name}", data, mtime)
    return True


def _add_models(add: Callable[..., None], models_dir: Path) -> int:
    """Archive every server's published versions and CURRENT; how many versions."""
    total = 0
    guilds = sorted(models_dir.iterdir()) if models_dir.is_dir() else []
    for gdir in (g for g in guilds if g.is_dir() and g.name.isdigit()):
        current, done, gone = read_current(gdir), set(), set()
        for _attempt in range(10):
            try:
                found = [version_of(n) for n in os.listdir(gdir)]
            except FileNotFoundError:  # the whole server was dropped meanwhile
                found = []
            for v in sorted(v for v in found if v is not None):
                if v not in done | gone:
                    (done if _add_version(add, gdir, v) else gone).add(v)
            if current is None or current in done:
                break
            current = read_current(gdir)  # the current version was pruned: CURRENT moved on
        else:
            current = None
        if current is not None:
            add(f"models/{gdir.name}/{CURRENT_FILE}", f"{current}\n".encode())
        total += len(done)
    return total


def not_writable(folder: Path, err: OSError) -> MimiError:
    """The message for a backup folder mimi may not write, saying exactly what to run."""
    if err.errno == errno.EROFS:
        return MimiError(
            f"Cannot write the backup: {folder} is on a read-only file system.",
            code="backup_folder_read_only",
        )
    uid, gid = os.getuid(), os.getgid()
    folder = folder.absolute()
    mounted = folder == COMPOSE_BACKUPS or COMPOSE_BACKUPS in folder.parents
    if mounted and Path("/.dockerenv").exists():  # in mimi's container: the fix is on the host
        fix = (
            f"on the Docker host run `sudo chown {uid}:{gid} ./backups` (the folder that "
            f"docker-compose.yml mounts at /backups)"
        )
    else:
        fix = f"run `sudo chown {uid}:{gid} {folder}`, or back up into a folder you own"
    return MimiError(
        f"mimi (uid {uid}) may not write to {folder}: {fix}.", code="backup_folder_not_writable"
    )


def _target(out: Path) -> Path:
    """The archive path: `out`, or a timestamped name inside it when it is a folder."""
    if out.is_dir():
        out = out / f"mimi-backup-{datetime.now():%Y%m%d-%H%M%S}.tar"
    if out.exists() or out.is_symlink():
        raise MimiError(f"{out} already exists; a backup never overwrites a file.")
    if not out.parent.is_dir():
        raise MimiError(f"The folder {out.parent} does not exist.")
    return out


def _publish(tmp: Path, target: Path) -> None:
    """fsync `tmp`, then give it its final name, never replacing a file that appeared there."""
    exists = MimiError(f"{target} already exists; a backup never overwrites a file.")
    fsync_path(tmp)
    try:
        os.link(tmp, target)  # atomic, and fails if the name exists
    except FileExistsError:
        raise exists from None
    except OSError:  # a file system without hard links (FAT): check, then rename
        if target.exists():
            raise exists from None
        os.replace(tmp, target)
    fsync_path(target.parent)  # make the new name durable


async def create_backup(settings: Settings, out: Path) -> dict:
    """Write a consistent archive of the database, model store and song audio to `out`; its
    archive, bytes, guilds, songs, model_versions, skipped_songs and seconds."""
    started = time.perf_counter()
    if not settings.db_path.is_file():
        raise MimiError(f"There is no database at {settings.db_path}: nothing to back up.")
    target = _target(out)
    sweep_partials(target.parent)
    work = target.parent / f".{target.name}.{new_token()}.partial"
    try:
        work.mkdir()
    except OSError as err:
        if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise not_writable(target.parent, err) from None
        raise MimiError(f"Could not write the backup {target}: {err.strerror or err}.") from None
    lock = hold(work)
    try:
        async with opened(settings.db_path) as live:
            await live.backup_to(work / "snapshot.sqlite3")
        mode, members = "w:gz" if target.name.endswith((".gz", ".tgz")) else "w", {}
        with tarfile.open(work / "archive", mode, format=tarfile.PAX_FORMAT) as tar:
            add = functools.partial(_add, tar, members)
            async with opened(work / "snapshot.sqlite3") as snapshot:
                songs = await snapshot.all_songs()
                gone = await asyncio.to_thread(_add_cache, add, settings.cache_dir, songs)
                for song in gone:  # forgotten since the snapshot: not in the backup either
                    await snapshot.forget_song(song.guild_id, song.id)
                counts, schema = await snapshot.counts(), await snapshot.schema_version()
                await snapshot.backup_to(work / DB_MEMBER)
            versions = await asyncio.to_thread(_add_models, add, settings.models_dir)
            add(DB_MEMBER, (work / DB_MEMBER).read_bytes())
            skipped = [dict(guild=s.guild_id, song_id=s.id, artist=s.artist, filename=s.filename)
                       for s in gone]  # fmt: skip
            manifest = dict(
                format=FORMAT, format_version=FORMAT_VERSION, schema_version=schema,
                created_at=datetime.now(UTC).isoformat(timespec="seconds"),
                counts={**counts, "model_versions": versions}, skipped_songs=skipped,
                members=dict(sorted(members.items())),
            )  # fmt: skip
            manifest["manifest_sha256"] = manifest_digest(manifest)
            add(MANIFEST, json.dumps(manifest, indent=1).encode("utf-8"))
        await asyncio.to_thread(_publish, work / "archive", target)
    except OSError as err:  # no space, no permission, ...
        raise MimiError(f"Could not write the backup {target}: {err.strerror or err}.") from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
        os.close(lock)
    return dict(
        archive=str(target), bytes=target.stat().st_size, guilds=counts["guilds"],
        songs=counts["songs"], model_versions=versions, skipped_songs=skipped,
        seconds=round(time.perf_counter() - started, 3),
    )  # fmt: skip
