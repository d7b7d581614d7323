"""`mimi backup` / `mimi restore`: the data dir in one verified tar, consistent while the bot
runs: DB snapshot first, then exactly its songs' cache files, then the immutable model versions
(CURRENT read once). `manifest.json` has every member's sha256 and size, and its own checksum.

Restore trusts nothing in the archive: a first pass reads only the tar headers and the manifest
(written last) and checks names, types, sizes and totals; a second pass extracts into staging
folders inside each target folder (so that every rename stays on one file system, even when
data/, data/cache and data/models are separate Docker volumes); the staged database is then
opened and migrated with the real `Store` and compared with a freshly created one. Only then are
the cache and model folders' *contents* swapped (never the folders, which may be mount points)
and the database copied in; a failure at any step puts back what was there."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
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
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from bot.cache import AUDIO_FILE, EMBEDDING, SongCache
from bot.config import Settings
from bot.errors import MimiError
from bot.health import running_bot_pid
from bot.migrations import MIGRATIONS
from bot.owner import owner_alive, process_token
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
MAX_BYTES = 256 << 30  # default ceiling on what one restore may write (`--max-bytes`)
MAX_EXPANSION, EXPANSION_FLOOR = 16, 256 << 20  # a compressed archive expands at most 16×
MAX_MEMBERS, MAX_MANIFEST = 1_000_000, 64 << 20
COMPOSE_BACKUPS = Path("/backups")  # where docker-compose.yml mounts ./backups
GUILD_LIMIT = 2**63  # Discord snowflakes, and SQLite's INTEGER
_GUILD = r"(?:0|[1-9][0-9]{0,18})"
_ALLOWED = re.compile(
    rf"{re.escape(DB_MEMBER)}|{re.escape(MANIFEST)}"
    rf"|models/(?P<mguild>{_GUILD})/(?:{CURRENT_FILE}|v\d{{4,}}/[^/]+(?:/[^/]+)*)"
    rf"|cache/(?P<cguild>{_GUILD})/(?P<key>[0-9a-f]{{64}})"
    rf"/(?:{re.escape(AUDIO_FILE)}|{EMBEDDING}\.v[^/]+\.npy)"
)
_TAR_DAMAGE = (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile, lzma.LZMAError)
_COMPRESSED = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00")

# Leftovers of a killed restore: `.restore-<token>` (staging) in data/, cache/ and models/, and
# `.replaced-<token>` (the old contents) in cache/ and models/; of a killed backup,
# `.<archive name>.<token>.partial` beside the archive. A token is '<pid>_<start ticks>-<random>'
# (bot.owner.process_token), so a reused pid never passes for the owner; the owner also holds a
# flock on its folder, which works across pid namespaces (a `docker compose run` container).
_TOKEN = r"(?P<pid>\d+)_(?P<start>\d+|x)-[0-9a-f]{8}"
_LEFTOVER = re.compile(rf"\.(?:restore|replaced)-(?P<token>{_TOKEN})")
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


def _hold(folder: Path) -> int:
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


def _alive(match: re.Match, lock: Path | None) -> bool:
    """Whether the owner of a token (a `_TOKEN` match) still runs."""
    start = match["start"].replace("x", "?")
    return owner_alive(f"{match['pid']}:{start}") or (lock is not None and _locked(lock))


def _entries(folder: Path) -> list[str]:
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


def _targets(settings: Settings) -> tuple[Path, Path]:
    """The folders whose contents a restore replaces."""
    return settings.cache_dir, settings.models_dir


def sweep_leftovers(settings: Settings) -> list[str]:
    """Tidy what killed restores left in the data dir: an install that never committed is
    rolled back (the old cache and models put back), a committed one finished; a restore whose
    owner still runs is never touched. The names removed."""
    data, removed = settings.data_dir, []
    tokens: dict[str, re.Match] = {}
    for folder in (data, *_targets(settings)):
        for name in _entries(folder):
            if m := _LEFTOVER.fullmatch(name):
                tokens.setdefault(m["token"], m)
            elif (m := _LEGACY.fullmatch(name)) and not owner_alive(f"{m['pid']}:?"):
                _sweep_legacy(settings, name)
                removed.append(name)
    for token, m in tokens.items():
        staging = data / f".restore-{token}"
        if _alive(m, staging if staging.is_dir() else None):
            continue
        committed = not staging.is_dir() or (staging / COMMITTED).exists()
        try:
            _finish(settings, token, rollback=not committed)
        except OSError:  # a read-only disk, say: left for the next sweep
            continue
        removed.append(f".restore-{token}")
    return removed


def _sweep_legacy(settings: Settings, name: str) -> None:
    """A leftover of the restore before tokens: `.replaced-<pid>-<hex>-<models|cache>` in
    data/ holds the old folder (put back if the folder is missing); anything else goes."""
    path = settings.data_dir / name
    for folder in _targets(settings):
        old = name.startswith(".replaced-") and name.endswith(f"-{folder.name}")
        if old and not folder.exists() and path.is_dir():
            with contextlib.suppress(OSError):
                os.rename(path, folder)
            return  # put back, or kept for the next try: never deleted
    _remove(path)


def _finish(settings: Settings, token: str, *, rollback: bool) -> None:
    """End a restore's folder swap: roll it back (put the old contents back) or not, then
    delete its staging and set-aside folders, the data dir's staging last."""
    for folder in _targets(settings):
        aside, stage = folder / f".replaced-{token}", folder / f".restore-{token}"
        if rollback and aside.is_dir():
            _roll_back(folder, stage, aside)
        _remove(aside)
        _remove(stage)
    _remove(settings.data_dir / f".restore-{token}")


def _roll_back(folder: Path, stage: Path, aside: Path) -> None:
    """Undo `_swap_in` at whatever step it stopped: the new entries (all of `folder` once the
    phase says "in") go back to `stage`, the old ones come back from `aside`."""
    ours = {stage.name, aside.name}
    with contextlib.suppress(OSError):
        if (aside / PHASE_FILE).read_text() == "in":
            stage.mkdir(exist_ok=True)
            for name in _entries(folder):
                if name not in ours:
                    os.rename(folder / name, stage / name)
    for name in _entries(aside):
        if name != PHASE_FILE and not (folder / name).exists():
            os.rename(aside / name, folder / name)


def _phase(aside: Path, phase: str) -> None:
    """Record how far `_swap_in` got, durably, before its next step."""
    tmp = aside / f"{PHASE_FILE}.tmp"
    with tmp.open("w") as f:
        f.write(phase)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, aside / PHASE_FILE)


def _swap_in(folder: Path, stage: Path, aside: Path) -> None:
    """Replace `folder`'s contents by `stage`'s: every old entry moves into `aside`, then every
    staged one moves in. All three are on one file system; `folder` itself never moves (it may
    be a mount point: renaming it fails with EBUSY)."""
    aside.mkdir()
    _phase(aside, "aside")
    for name in _entries(folder):
        if name not in (stage.name, aside.name):
            os.rename(folder / name, aside / name)
    _phase(aside, "in")
    for name in _entries(stage):
        os.rename(stage / name, folder / name)


def sweep_partials(folder: Path) -> list[str]:
    """Delete the temporary folders that killed backups left in `folder` (never a running
    backup's); the names removed."""
    removed = []
    for name in _entries(folder):
        path = folder / name
        if m := _PARTIAL.fullmatch(name):
            if _alive(m, path):
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


# --- backup ----------------------------------------------------------------------------------


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
    sweep_partials(target.parent)
    work = target.parent / f".{target.name}.{new_token()}.partial"
    try:
        work.mkdir()
    except OSError as err:
        if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise not_writable(target.parent, err) from None
        raise MimiError(f"Could not write the backup {target}: {err.strerror or err}.") from None
    lock = _hold(work)
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
        os.close(lock)
    return dict(
        archive=str(target), bytes=target.stat().st_size, guilds=counts["guilds"],
        songs=counts["songs"], model_versions=versions, skipped_songs=skipped,
        seconds=round(time.perf_counter() - started, 3),
    )  # fmt: skip


# --- restore: reading the archive -------------------------------------------------------------


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


# --- restore: checking the database -------------------------------------------------------


async def expected_schema() -> dict:
    """The schema this mimi creates: a fresh database made by Store.open, described."""
    with tempfile.TemporaryDirectory(prefix="mimi-schema-") as tmp:
        store = await Store.open(Path(tmp) / "fresh.sqlite3")
        try:
            return await store.describe_schema()
        finally:
            await store.close()


def schema_difference(expected: dict, actual: dict) -> str | None:
    """How `actual` differs from `expected` (describe_schema), in words; None if it does not."""
    want = {(t, n): tbl for t, n, tbl in expected["objects"]}
    have = {(t, n): tbl for t, n, tbl in actual["objects"]}
    tables_first = lambda key: (key[0] != "table", key)  # noqa: E731
    if extra := sorted(set(have) - set(want), key=tables_first):
        return f"it has an unexpected {extra[0][0]} {extra[0][1]!r}"
    if missing := sorted(set(want) - set(have), key=tables_first):
        return f"it lacks the {missing[0][0]} {missing[0][1]!r}"
    for key in sorted(want):
        if want[key] != have[key]:
            return f"the {key[0]} {key[1]!r} belongs to table {have[key]!r}"
    for table, spec in sorted(expected["tables"].items()):
        got = actual["tables"][table]
        cols = {c[1]: c for c in spec["columns"]}
        gcols = {c[1]: c for c in got["columns"]}
        for col in cols:
            if col not in gcols:
                return f"table {table!r} lacks the column {col!r}"
        for col in gcols:
            if col not in cols:
                return f"table {table!r} has an unexpected column {col!r}"
        if spec["columns"] != got["columns"]:
            return f"the columns of table {table!r} differ"
        if spec["indexes"] != got["indexes"]:
            return f"the indexes of table {table!r} differ"
        if spec["foreign_keys"] != got["foreign_keys"]:
            return f"the foreign keys of table {table!r} differ"
    return None


async def _check_database(archive: Path, db: Path, cache_stage: Path) -> None:
    """The staged database is sound, has exactly this mimi's schema once migrated (the real
    Store code), holds no trigger or view, breaks no foreign key, stores only valid server ids
    and song keys, and every song's audio is staged."""
    where = f"The database in {archive}"
    try:
        info = await Store.peek(db)
    except (sqlite3.Error, OSError) as err:
        raise MimiError(f"{where} is not a mimi database ({err}).") from None
    if info["integrity"] != "ok":
        raise MimiError(f"{where} is damaged: {info['integrity']}.")
    version = info["schema_version"]
    if version > len(MIGRATIONS):
        raise MimiError(
            f"{archive} comes from a newer mimi (schema v{version}, this "
            f"mimi knows v{len(MIGRATIONS)}); upgrade mimi first."
        )
    if version < 0:
        raise MimiError(f"{where} has an invalid schema version (v{version}); refusing it.")
    for kind, name in info["objects"]:
        if kind in ("trigger", "view"):
            raise MimiError(
                f"{where} holds a {kind} ({name!r}), which a mimi database never has; refusing it.",
                code="hostile_database",
            )
    if version == 0 and info["objects"]:
        raise MimiError(
            f"{where} says schema v0 but already holds tables; refusing it.",
            code="hostile_database",
        )
    expected = await expected_schema()
    try:
        store = await Store.open(db)  # migrates an older backup, exactly as mimi would
    except (sqlite3.Error, RuntimeError) as err:
        raise MimiError(f"{where} does not match its schema v{version} ({err}).") from None
    try:
        problem = schema_difference(expected, await store.describe_schema())
        broken = await store.foreign_key_violations()
        guilds = await store.guild_id_values()
        keys = await store.song_keys()
    finally:
        await store.close()
    if problem:
        raise MimiError(f"{where} is not a mimi database: {problem}.", code="hostile_database")
    for table, value in guilds:
        if type(value) is not int or not 0 <= value < GUILD_LIMIT:
            raise MimiError(
                f"{where} holds an invalid server id {value!r} in {table}; refusing it.",
                code="hostile_database",
            )
    if broken:
        table, rowid, parent, _ = broken[0]
        raise MimiError(
            f"{where} is inconsistent: {len(broken)} row(s) point at rows that do not exist "
            f"(first: {table} row {rowid} → {parent}); refusing it.",
            code="hostile_database",
        )
    cache = SongCache(cache_stage)
    for guild, key in keys:
        try:
            folder = cache.song_dir(guild, key)
        except ValueError:
            raise MimiError(
                f"{where} holds a song with an invalid key {key!r}; refusing it.",
                code="hostile_database",
            ) from None
        if not (folder / AUDIO_FILE).is_file():
            raise MimiError(f"{archive} is inconsistent: a song of server {guild} lacks audio.")


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
    for folder in _targets(settings):
        if folder.is_dir() and any(not _LEFTOVER.fullmatch(n) for n in _entries(folder)):
            return f"{folder} already holds files"
    return None


# --- restore: installing ----------------------------------------------------------------------


async def _install(settings: Settings, token: str, staged_db: Path) -> None:
    """Swap the staged cache and models in (old contents set aside in the same folder), then
    copy the database in: through SQLite into the live file (safe for a running bot's
    connections), or by a hard link when there was none. On failure everything goes back."""
    db, fresh = settings.db_path, not settings.db_path.exists()
    try:
        for folder in _targets(settings):
            _swap_in(folder, folder / f".restore-{token}", folder / f".replaced-{token}")
        if fresh:
            os.link(staged_db, db)  # fails if a database appeared meanwhile
        else:
            async with _opened(db) as live:
                await live.restore_from(staged_db)
        with (staged_db.parent / COMMITTED).open("w") as mark:  # a sweep now finishes it
            os.fsync(mark.fileno())
    except BaseException:
        if fresh:
            for suffix in ("", "-wal", "-shm", "-journal"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(f"{db}{suffix}")
        _finish(settings, token, rollback=True)
        raise
    _finish(settings, token, rollback=False)


def _live_restore(settings: Settings) -> int | None:
    """The pid of another restore still running on this data dir, if any."""
    for name in _entries(settings.data_dir):
        m = _LEFTOVER.fullmatch(name)
        if m and name.startswith(".restore-") and _alive(m, settings.data_dir / name):
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
    cache_dir, models_dir = _targets(settings)
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
            lock = _hold(stages[""])
            stages["cache"].mkdir()
            stages["models"].mkdir()
            f.seek(0)
            await asyncio.to_thread(_extract, archive, f, order, manifest, stages)
        await _check_database(archive, stages[""] / DB_MEMBER, stages["cache"])
        running = running_bot_pid(settings)
        await _install(settings, token, stages[""] / DB_MEMBER)
    except BaseException as err:
        _finish(settings, token, rollback=True)  # (already done if the install failed)
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
