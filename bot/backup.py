"""`mimi backup` / `mimi restore`: the data dir in one verified tar, consistent while the bot
runs: DB snapshot first, then exactly its songs' cache files, then the immutable model versions
(CURRENT read once). `manifest.json` has every member's sha256 and size, and its own checksum."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gzip
import hashlib
import io
import json
import lzma
import os
import re
import secrets
import shutil
import sqlite3
import tarfile
import tempfile
import time
import zlib
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from bot.cache import AUDIO_FILE, EMBEDDING
from bot.config import Settings
from bot.errors import MimiError
from bot.health import running_bot_pid
from bot.migrations import MIGRATIONS
from bot.store import Song, Store
from model_store.registry import (
    CURRENT_FILE,
    META_FILE,
    ModelMeta,
    read_current,
    version_dir_name,
    version_of,
)

FORMAT, FORMAT_VERSION = "mimi-backup", 1
MANIFEST, DB_MEMBER = "manifest.json", "mimi.sqlite3"
_ALLOWED = re.compile(
    rf"{re.escape(DB_MEMBER)}|{re.escape(MANIFEST)}"
    rf"|models/\d+/(?:{CURRENT_FILE}|v\d{{4,}}/[^/]+(?:/[^/]+)*)"
    rf"|cache/\d+/[0-9A-Za-z]+/[^/.][^/]*"
)
_TAR_DAMAGE = (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile, lzma.LZMAError)


def manifest_digest(manifest: dict) -> str:
    """sha256 of the manifest's canonical JSON without its own checksum field."""
    body = {k: v for k, v in manifest.items() if k != "manifest_sha256"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


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
    vanished = []
    for song in songs:
        folder = cache_dir / str(song.guild_id) / song.audio_sha256
        prefix = f"cache/{song.guild_id}/{song.audio_sha256}"
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

    def listing() -> list[str]:  # every file, relative; [] once the folder is gone
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
    with tmp.open("rb") as f:
        os.fsync(f.fileno())
    try:
        os.link(tmp, target)  # atomic, and fails if the name exists
    except FileExistsError:
        raise exists from None
    except OSError:  # a file system without hard links (FAT): check, then rename
        if target.exists():
            raise exists from None
        os.replace(tmp, target)
    fd = os.open(target.parent, os.O_RDONLY)  # make the new name durable
    os.fsync(fd)
    os.close(fd)


@contextlib.asynccontextmanager
async def _opened(path: Path) -> AsyncIterator[Store]:
    """Store.open (errors as a user-facing message), closed on the way out."""
    try:
        store = await Store.open(path)
    except (sqlite3.Error, RuntimeError) as err:
        raise MimiError(f"Could not open the database {path}: {err}.") from None
    try:
        yield store
    finally:
        await store.close()


async def create_backup(settings: Settings, out: Path) -> dict:
    """Write a consistent archive of the database, model store and song audio to `out`; its
    archive, bytes, guilds, songs, model_versions, skipped_songs and seconds."""
    started = time.perf_counter()
    if not settings.db_path.is_file():
        raise MimiError(f"There is no database at {settings.db_path}: nothing to back up.")
    target = _target(out)
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
    try:
        async with _opened(settings.db_path) as live:
            await live.backup_to(work / "snapshot.sqlite3")
        mode, members = "w:gz" if target.name.endswith((".gz", ".tgz")) else "w", {}
        with tarfile.open(work / "archive", mode, format=tarfile.PAX_FORMAT) as tar:
            add = functools.partial(_add, tar, members)
            async with _opened(work / "snapshot.sqlite3") as snapshot:
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
    return dict(
        archive=str(target), bytes=target.stat().st_size, guilds=counts["guilds"],
        songs=counts["songs"], model_versions=versions, skipped_songs=skipped,
        seconds=round(time.perf_counter() - started, 3),
    )  # fmt: skip


def _member_name(member: tarfile.TarInfo, archive: Path) -> str:
    """The member's safe relative name; MimiError for anything a mimi backup never holds."""
    raw = member.name
    path = PurePosixPath(raw)
    if path.is_absolute() or ".." in path.parts or "\\" in raw or not raw.strip("/."):
        raise MimiError(f"{archive} holds an unsafe path {raw!r}; refusing it.")
    if not member.isreg():
        kind = "a link" if member.issym() or member.islnk() else "a non-file entry"
        raise MimiError(f"{archive} holds {kind} ({raw!r}), which a mimi backup never has.")
    name = "/".join(p for p in path.parts if p != ".")
    if not _ALLOWED.fullmatch(name):
        raise MimiError(f"{archive} holds {raw!r}, which a mimi backup never has.")
    return name


def _verify(archive: Path, staging: Path) -> dict:
    """Extract into `staging` (names and types checked) and check every member against the
    manifest; the manifest."""
    found: dict[str, dict] = {}
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                name = _member_name(member, archive)
                if name in found:
                    raise MimiError(f"{archive} holds {name} twice; refusing it.")
                (staging / name).parent.mkdir(parents=True, exist_ok=True)
                sha, size, src = hashlib.sha256(), 0, tar.extractfile(member)
                with src, (staging / name).open("wb") as out:  # type: ignore[union-attr]
                    while block := src.read(1 << 20):  # type: ignore[union-attr]
                        sha.update(block)
                        size += out.write(block)
                found[name] = {"sha256": sha.hexdigest(), "size": size}
    except _TAR_DAMAGE as err:
        if not found:
            raise MimiError(f"{archive} is not a mimi backup (not a tar archive).") from None
        raise MimiError(f"{archive} is damaged or truncated ({err}).") from None
    if MANIFEST not in found:
        what = "is incomplete (truncated?)" if found else "is not a mimi backup"
        raise MimiError(f"{archive} {what}: it has no {MANIFEST}.")
    manifest: dict = {}
    with contextlib.suppress(ValueError):
        if found.pop(MANIFEST)["size"] <= 64 << 20:  # a sane size
            manifest = json.loads((staging / MANIFEST).read_text("utf-8"))
    manifest = manifest if isinstance(manifest, dict) else {}
    members = manifest.get("members")
    digest = manifest.get("manifest_sha256") if isinstance(members, dict) else None
    if manifest.get("format") != FORMAT or digest != manifest_digest(manifest):
        raise MimiError(f"{archive} is damaged: its {MANIFEST} is unreadable or altered.")
    if not isinstance(manifest.get("format_version"), int) or manifest["format_version"] > 1:
        raise MimiError(f"{archive} was written by a newer mimi (backup format too new).")
    for name in sorted(set(found) | set(members)):
        if name not in members:
            raise MimiError(f"{archive} is damaged: {name} is not in its manifest.")
        if name not in found:
            raise MimiError(f"{archive} is incomplete: {name} is missing.")
        if found[name] != members[name]:
            raise MimiError(f"{archive} is damaged: {name} does not match its checksum.")
    if DB_MEMBER not in found:
        raise MimiError(f"{archive} holds no database.")
    return manifest


async def _check_database(archive: Path, staging: Path) -> None:
    """The extracted database is sound, not newer than this mimi, and has every song's audio."""
    try:
        info = await Store.inspect(staging / DB_MEMBER, integrity=True)
    except sqlite3.Error as err:
        raise MimiError(f"The database in {archive} is not a mimi database ({err}).") from None
    if info["integrity"] != "ok":
        raise MimiError(f"The database in {archive} is damaged: {info['integrity']}.")
    if info["schema_version"] > len(MIGRATIONS):
        raise MimiError(
            f"{archive} comes from a newer mimi (schema v{info['schema_version']}, this "
            f"mimi knows v{len(MIGRATIONS)}); upgrade mimi first."
        )
    for guild, key in info["song_keys"]:
        if not (staging / "cache" / str(guild) / key / AUDIO_FILE).is_file():
            raise MimiError(f"{archive} is inconsistent: a song of server {guild} lacks audio.")


async def _describe_existing(settings: Settings) -> str | None:
    """What a restore would replace ('data/mimi.sqlite3 already holds ...'), None if nothing."""
    db = settings.db_path
    if db.exists():
        try:
            info = await Store.inspect(db)
        except (sqlite3.Error, OSError) as err:
            return f"{db} exists but cannot be read ({err})"
        songs, guilds = info["songs"], info["guilds"]
        if songs or guilds:
            s1, s2 = "s" * (songs != 1), "s" * (guilds != 1)
            return f"{db} already holds {songs} song{s1} in {guilds} server{s2}"
    for folder in (settings.models_dir, settings.cache_dir):
        if folder.is_dir() and any(folder.iterdir()):
            return f"{folder} already holds files"
    return None


async def _install(settings: Settings, staging: Path, token: str) -> None:
    """Swap the staged models and cache in (old ones kept aside), then copy the database into
    the live file; on failure the old folders are put back. Then delete the old folders."""
    data, moved = settings.data_dir, []
    async with _opened(settings.db_path) as live:
        try:
            for name in ("models", "cache"):
                aside = data / f".replaced-{token}-{name}"
                if (data / name).exists():
                    os.rename(data / name, aside)
                moved.append((data / name, aside))
                if (staging / name).is_dir():
                    os.rename(staging / name, data / name)
                else:
                    (data / name).mkdir()
            await live.restore_from(staging / DB_MEMBER)
        except BaseException:
            for path, aside in moved:  # put the old files back: nothing changed
                shutil.rmtree(path, ignore_errors=True)
                if aside.exists():
                    os.rename(aside, path)
            raise
    for _, aside in moved:
        shutil.rmtree(aside, ignore_errors=True)


async def restore_backup(settings: Settings, archive: Path, *, force: bool = False) -> dict:
    """Verify `archive`, then install it as this data dir's database, models and cache; its
    archive, guilds, songs, model_versions, schema_version, what it replaced, a running bot's
    pid (which must restart) and seconds."""
    started = time.perf_counter()
    if not archive.is_file():
        what = "is not a file" if archive.exists() else "does not exist"
        raise MimiError(f"The backup {archive} {what}.")
    existing = await _describe_existing(settings)
    if existing and not force:
        raise MimiError(
            f"{existing}; restore replaces it: re-run with --force (stop the bot first)."
        )
    data, created = settings.data_dir, not settings.data_dir.exists()
    token = f"{os.getpid()}-{secrets.token_hex(4)}"
    staging = data / f".restore-{token}"
    try:
        staging.mkdir(parents=True)
        manifest = await asyncio.to_thread(_verify, archive, staging)
        await _check_database(archive, staging)
        running = running_bot_pid(settings)
        await _install(settings, staging, token)
    except BaseException as err:
        if created:
            shutil.rmtree(data, ignore_errors=True)
        if isinstance(err, OSError):  # no space, no permission, ...
            raise MimiError(f"Could not restore {archive}: {err.strerror or err}.") from None
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    async with _opened(settings.db_path) as store:  # migrates what an older backup lacks
        verdict = await store.integrity_check()
        counts, schema = await store.counts(), await store.schema_version()
    if verdict != "ok":
        raise MimiError(f"The restored database failed its integrity check: {verdict}.")
    return dict(
        archive=str(archive), guilds=counts["guilds"], songs=counts["songs"],
        model_versions=sum(n.endswith(f"/{META_FILE}") for n in manifest["members"]),
        schema_version=schema,
        replaced=existing, running_pid=running, seconds=round(time.perf_counter() - started, 3),
    )  # fmt: skip
