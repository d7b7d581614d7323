"""`mimi restore`: restore trusts nothing in the archive. A first pass reads only the tar
headers and the manifest (written last) and checks names, types, sizes and totals; a second pass
extracts into staging folders inside each target folder (so that every rename stays on one file
system, even when data/, data/cache and data/models are separate Docker volumes); the staged
database is then opened and migrated with the real `Store` and compared with a freshly created
one. Only then are the cache and model folders' *contents* swapped (never the folders, which may
be mount points) and the database copied in; a failure at any step puts back what was there."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import hashlib
import json
import lzma
import os
import re
import shutil
import sqlite3
import tarfile
import time
import zlib
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from bot.backup_files import (
    COMMITTED,
    DB_MEMBER,
    FORMAT,
    LEFTOVER,
    MANIFEST,
    alive,
    entries,
    finish,
    hold,
    manifest_digest,
    new_token,
    opened,
    swap_in,
    sweep_leftovers,
    targets,
)
from bot.cache import AUDIO_FILE, SongCache
from bot.config import Settings
from bot.errors import MimiError
from bot.health import running_bot_pid
from bot.restore_checks import GUILD_LIMIT, check_database
from bot.store import Store
from model_store.registry import CURRENT_FILE, META_FILE
from model_store.stages import EMBEDDING

MAX_BYTES = 256 << 30  # default ceiling on what one restore may write (`--max-bytes`)
MAX_EXPANSION, EXPANSION_FLOOR = 16, 256 << 20  # a compressed archive expands at most 16×
MAX_MEMBERS, MAX_MANIFEST = 1_000_000, 64 << 20
_GUILD = r"(?:0|[1-9][0-9]{0,18})"
_ALLOWED = re.compile(
    rf"{re.escape(DB_MEMBER)}|{re.escape(MANIFEST)}"
    rf"|models/(?P<mguild>{_GUILD})/(?:{CURRENT_FILE}|v\d{{4,}}/[^/]+(?:/[^/]+)*)"
    rf"|cache/(?P<cguild>{_GUILD})/(?P<key>[0-9a-f]{{64}})"
    rf"/(?:{re.escape(AUDIO_FILE)}|{EMBEDDING}\.v[^/]+\.npy)"
)
_TAR_DAMAGE = (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile, lzma.LZMAError)
_COMPRESSED = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00")


def _member_name(member: tarfile.TarInfo, archive: Path, root: Path) -> str:
    """The member's safe relative name; MimiError for anything a mimi backup never holds.
    tarfile's own "data" extraction filter (PEP 706) runs under mimi's stricter checks."""
    raw = member.name
    path = PurePosixPath(raw)
    if path.is_absolute() or ".." in path.parts or "\\" in raw or not raw.strip("/."):
        raise MimiError(f"{archive} holds an unsafe path {raw!r}; refusing it.")
    if member.issparse() or any(k.startswith("GNU.sparse") for k in member.pax_headers):
        raise MimiError(f"{archive} holds a sparse file ({raw!r}), which a mimi backup never has.")
    try:
        tarfile.data_filter(member, str(root))
    except (tarfile.AbsoluteLinkError, tarfile.LinkOutsideDestinationError):
        raise MimiError(
            f"{archive} holds a link ({raw!r}), which a mimi backup never has."
        ) from None
    except tarfile.SpecialFileError:
        raise MimiError(
            f"{archive} holds a non-file entry ({raw!r}), which a mimi backup never has."
        ) from None
    except tarfile.FilterError:
        raise MimiError(f"{archive} holds an unsafe path {raw!r}; refusing it.") from None
    if not member.isreg():
        kind = "a link" if member.issym() or member.islnk() else "a non-file entry"
        raise MimiError(f"{archive} holds {kind} ({raw!r}), which a mimi backup never has.")
    name = "/".join(p for p in path.parts if p != ".")
    m = _ALLOWED.fullmatch(name)
    if not m:
        raise MimiError(f"{archive} holds {raw!r}, which a mimi backup never has.")
    if int(m["mguild"] or m["cguild"] or 0) >= GUILD_LIMIT:
        raise MimiError(f"{archive} holds {raw!r}, whose server id is not a valid id.")
    return name


def _limit_text(n: int) -> str:
    """`n` bytes in GiB or MiB, for a message."""
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


def _scan(archive: Path, f: BinaryIO, root: Path, max_bytes: int) -> tuple[list, dict]:
    """First pass, writing nothing: every member's header checked (names, types, no sparse
    files), the declared sizes capped as they come (at `max_bytes`, at the file's own size for
    a plain tar, at 16× it for a compressed one), and the manifest read and checked. The
    members in order as (name, size), and the manifest."""
    size = os.fstat(f.fileno()).st_size
    compressed = f.read(6).startswith(_COMPRESSED)
    f.seek(0)
    cap = max(EXPANSION_FLOOR, MAX_EXPANSION * size) if compressed else size
    order: list[tuple[str, int]] = []
    seen: set[str] = set()
    total, text = 0, None
    try:
        with tarfile.open(fileobj=f, mode="r:*") as tar:
            for member in tar:  # reads headers; each member's data is skipped, never stored
                name = _member_name(member, archive, root)
                if name in seen:
                    raise MimiError(f"{archive} holds {name} twice; refusing it.")
                if len(seen) >= MAX_MEMBERS:
                    raise MimiError(f"{archive} holds more than {MAX_MEMBERS} files; refusing it.")
                seen.add(name)
                order.append((name, member.size))
                total += member.size
                if total > max_bytes:
                    raise MimiError(
                        f"{archive} would write more than {_limit_text(max_bytes)}, this "
                        "restore's limit; refusing it (raise it with --max-bytes).",
                        code="backup_too_large",
                    )
                if total > cap and not compressed:  # a plain tar holds every byte it lists
                    raise MimiError(
                        f"{archive} is damaged or truncated: its entries claim more bytes than "
                        "the file holds."
                    )
                if total > cap:
                    raise MimiError(
                        f"{archive} claims to expand to more than {MAX_EXPANSION}× its size; "
                        "refusing it (a mimi backup never does).",
                        code="backup_too_large",
                    )
                if name == MANIFEST and member.size <= MAX_MANIFEST:
                    text = tar.extractfile(member).read()  # type: ignore[union-attr]
    except _TAR_DAMAGE as err:
        if not seen:
            raise MimiError(f"{archive} is not a mimi backup (not a tar archive).") from None
        raise MimiError(f"{archive} is damaged or truncated ({err}).") from None
    if MANIFEST not in seen:
        what = "is incomplete (truncated?)" if seen else "is not a mimi backup"
        raise MimiError(f"{archive} {what}: it has no {MANIFEST}.")
    return order, _check_manifest(archive, text, order)


def _check_manifest(archive: Path, text: bytes | None, order: list[tuple[str, int]]) -> dict:
    """The manifest, checked against itself and against the members' headers."""
    manifest: dict = {}
    with contextlib.suppress(ValueError, TypeError):
        manifest = json.loads(text)  # type: ignore[arg-type]
    manifest = manifest if isinstance(manifest, dict) else {}
    members = manifest.get("members")
    digest = manifest.get("manifest_sha256") if isinstance(members, dict) else None
    if manifest.get("format") != FORMAT or digest != manifest_digest(manifest):
        raise MimiError(f"{archive} is damaged: its {MANIFEST} is unreadable or altered.")
    if not isinstance(manifest.get("format_version"), int) or manifest["format_version"] > 1:
        raise MimiError(f"{archive} was written by a newer mimi (backup format too new).")
    found = dict(order)
    del found[MANIFEST]
    for name in sorted(set(found) | set(members)):  # type: ignore[arg-type]
        if name not in members:  # type: ignore[operator]
            raise MimiError(f"{archive} is damaged: {name} is not in its manifest.")
        if name not in found:
            raise MimiError(f"{archive} is incomplete: {name} is missing.")
        info = members[name]  # type: ignore[index]
        if not isinstance(info, dict) or info.get("size") != found[name]:
            raise MimiError(f"{archive} is damaged: {name} does not match its manifest's size.")
    if DB_MEMBER not in found:
        raise MimiError(f"{archive} holds no database.")
    return manifest


def _check_space(archive: Path, order: list[tuple[str, int]], places: dict[str, Path]) -> None:
    """Refuse before writing when a target file system lacks the room the manifest says."""
    need: dict[int, list] = {}
    for name, size in order:
        place = places.get(name.split("/", 1)[0], places[""])
        probe = next(p for p in (place, *place.parents) if p.exists())
        entry = need.setdefault(os.stat(probe).st_dev, [0, probe])
        entry[0] += size + 4096  # a block of slack per file
    for want, probe in need.values():
        st = os.statvfs(probe)
        free = st.f_bavail * st.f_frsize
        if want > free:
            raise MimiError(
                f"Restoring {archive} needs {_limit_text(want)} on {probe}, but only "
                f"{_limit_text(free)} is free; nothing was changed.",
                code="disk_full",
            )


def _extract(
    archive: Path, f: BinaryIO, order: list, manifest: dict, stages: dict[str, Path]
) -> None:
    """Second pass: each member checked again (the file may have changed since the first),
    written to its staging folder at most at its declared size, and its sha256 compared."""
    expected: Iterator[tuple[str, int]] = iter(order)
    changed = MimiError(f"{archive} changed while it was being read; refusing it.")
    cache = SongCache(stages["cache"])
    try:
        with tarfile.open(fileobj=f, mode="r:*") as tar:
            for member in tar:
                name = _member_name(member, archive, stages[""])
                if next(expected, None) != (name, member.size):
                    raise changed
                if name == MANIFEST:
                    continue
                parts = name.split("/")
                if parts[0] == "cache":  # through the one function that builds cache paths
                    target = cache.song_dir(int(parts[1]), parts[2]) / parts[3]
                elif parts[0] == "models":
                    target = stages["models"].joinpath(*parts[1:])
                else:
                    target = stages[""] / name
                target.parent.mkdir(parents=True, exist_ok=True)
                info, sha = manifest["members"][name], hashlib.sha256()
                left = info["size"]
                src = tar.extractfile(member)
                with src, target.open("xb") as out:  # type: ignore[union-attr]
                    while block := src.read(min(1 << 20, left + 1)):  # type: ignore[union-attr]
                        left -= len(block)
                        if left < 0:
                            raise MimiError(f"{archive} is damaged: {name} is too long.")
                        sha.update(block)
                        out.write(block)
                if left or sha.hexdigest() != info["sha256"]:
                    raise MimiError(f"{archive} is damaged: {name} does not match its checksum.")
    except _TAR_DAMAGE as err:
        raise MimiError(f"{archive} is damaged or truncated ({err}).") from None
    if next(expected, None) is not None:
        raise changed


async def _describe_existing(settings: Settings) -> str | None:
    """What a restore would replace ('data/mimi.sqlite3 already holds ...'), None if nothing."""
    db = settings.db_path
    if db.exists():
        try:
            info = await Store.inspect(db)
        except (sqlite3.Error, OSError, ValueError) as err:
            return f"{db} exists but cannot be read ({err})"
        songs, guilds = info["songs"], info["guilds"]
        if songs or guilds:
            s1, s2 = "s" * (songs != 1), "s" * (guilds != 1)
            return f"{db} already holds {songs} song{s1} in {guilds} server{s2}"
    for folder in targets(settings):
        if folder.is_dir() and any(not LEFTOVER.fullmatch(n) for n in entries(folder)):
            return f"{folder} already holds files"
    return None


# --- restore: installing ----------------------------------------------------------------------


async def _install(settings: Settings, token: str, staged_db: Path) -> None:
    """Swap the staged cache and models in (old contents set aside in the same folder), then
    copy the database in: through SQLite into the live file (safe for a running bot's
    connections), or by a hard link when there was none. On failure everything goes back."""
    db, fresh = settings.db_path, not settings.db_path.exists()
    try:
        for folder in targets(settings):
            swap_in(folder, folder / f".restore-{token}", folder / f".replaced-{token}")
        if fresh:
            os.link(staged_db, db)  # fails if a database appeared meanwhile
        else:
            async with opened(db) as live:
                await live.restore_from(staged_db)
        with (staged_db.parent / COMMITTED).open("w") as mark:  # a sweep now finishes it
            os.fsync(mark.fileno())
    except BaseException:
        if fresh:
            for suffix in ("", "-wal", "-shm", "-journal"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(f"{db}{suffix}")
        finish(settings, token, rollback=True)
        raise
    finish(settings, token, rollback=False)


def _live_restore(settings: Settings) -> int | None:
    """The pid of another restore still running on this data dir, if any."""
    for name in entries(settings.data_dir):
        m = LEFTOVER.fullmatch(name)
        if m and name.startswith(".restore-") and alive(m, settings.data_dir / name):
            return int(m["pid"])
    return None


async def restore_backup(
    settings: Settings, archive: Path, *, force: bool = False, max_bytes: int = MAX_BYTES
) -> dict:
    """Verify `archive`, then install it as this data dir's database, models and cache; its
    archive, guilds, songs, model_versions, schema_version, what it replaced, a running bot's
    pid (which must restart) and seconds."""
    started = time.perf_counter()
    if not archive.is_file():
        what = "is not a file" if archive.exists() else "does not exist"
        raise MimiError(f"The backup {archive} {what}.")
    await asyncio.to_thread(sweep_leftovers, settings)
    if (other := _live_restore(settings)) is not None:
        raise MimiError(f"Another restore (pid {other}) is running on {settings.data_dir}.")
    existing = await _describe_existing(settings)
    if existing and not force:
        raise MimiError(
            f"{existing}; restore replaces it: re-run with --force (stop the bot first)."
        )
    data, token = settings.data_dir, new_token()
    cache_dir, models_dir = targets(settings)
    stages = {
        "": data / f".restore-{token}",
        "cache": cache_dir / f".restore-{token}",
        "models": models_dir / f".restore-{token}",
    }
    made: list[Path] = []  # folders this restore created: removed again on failure
    lock = None
    try:
        with archive.open("rb") as f:
            order, manifest = await asyncio.to_thread(_scan, archive, f, stages[""], max_bytes)
            places = {"": data, "cache": cache_dir, "models": models_dir}
            await asyncio.to_thread(_check_space, archive, order, places)
            for folder in (data, cache_dir, models_dir):
                if not folder.exists():
                    for p in reversed([folder, *folder.parents]):
                        if not p.exists():
                            p.mkdir()
                            made.append(p)
            stages[""].mkdir()
            lock = hold(stages[""])
            stages["cache"].mkdir()
            stages["models"].mkdir()
            f.seek(0)
            await asyncio.to_thread(_extract, archive, f, order, manifest, stages)
        await check_database(archive, stages[""] / DB_MEMBER, stages["cache"])
        running = running_bot_pid(settings)
        await _install(settings, token, stages[""] / DB_MEMBER)
    except BaseException as err:
        finish(settings, token, rollback=True)  # (already done if the install failed)
        for folder in reversed(made):
            shutil.rmtree(folder, ignore_errors=True)
        if isinstance(err, OSError):  # no space, no permission, ...
            raise MimiError(f"Could not restore {archive}: {err.strerror or err}.") from None
        if isinstance(err, sqlite3.Error):
            raise MimiError(f"Could not restore {archive}: {err}.") from None
        raise
    finally:
        if lock is not None:
            os.close(lock)
    async with opened(settings.db_path) as store:  # migrates what an older backup lacks
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
