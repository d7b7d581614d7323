"""Versioned per-server model storage: root/<guild>/vNNNN/ folders plus a CURRENT pointer."""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import re
import secrets
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime
from pathlib import Path

from model_store import features
from model_store.durable import fsync_path, pid_alive
from model_store.errors import ModelIncompatible, NoModel, VersionNotFound

log = logging.getLogger(__name__)

META_FILE = "meta.json"
CURRENT_FILE = "CURRENT"
RETRAIN_HINT = "retrain it (`mimi train` or /retrain)"
_VERSION_DIR = re.compile(r"v(\d{4,})")
_TMP_DIR = re.compile(r"\.tmp-v\d+-(\d+)-[0-9a-f]+")


def version_dir_name(version: int) -> str:
    """The folder name of a published version: v0001."""
    return f"v{version:04d}"


def version_of(name: str) -> int | None:
    """The version a folder name stands for (v0001 -> 1), or None for any other name."""
    m = _VERSION_DIR.fullmatch(name)
    return int(m.group(1)) if m else None


def read_current(gdir: Path) -> int | None:
    """The version a server folder's CURRENT file names, or None (missing or unreadable)."""
    with contextlib.suppress(OSError, ValueError):
        return int((gdir / CURRENT_FILE).read_text("utf-8"))
    return None


@dataclass(frozen=True)
class ModelMeta:
    """What a published model version is, how it was made and from which songs."""

    version: int
    kind: str  # "musicnn-head", "scratch", ...
    artists: list[str]  # display names in class order
    feature_version: int
    frontend_version: int | None  # None when the model does not use the pretrained front-end
    metrics: dict  # free-form JSON
    train_seconds: float
    snapshot: dict[str, list[int]]  # artist -> song ids used
    created_at: str  # ISO-8601 UTC
    snapshot_keys: dict[str, list[str]] = field(default_factory=dict)  # artist -> audio keys

    def to_dict(self) -> dict:
        """JSON-ready form (a deep copy)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ModelMeta:
        """Parse and type-check `to_dict` output; TypeError/KeyError/ValueError when malformed."""
        d = json.loads(json.dumps(d))  # a deep, JSON-only copy (tuples become lists)
        d.setdefault("snapshot_keys", {})  # (not written before song keys were recorded)
        keys = d["snapshot_keys"]
        if not isinstance(keys, dict) or not all(
            isinstance(v, list) and all(isinstance(k, str) for k in v) for v in keys.values()
        ):
            raise TypeError("malformed model metadata")
        ids = [i for v in d["snapshot"].values() for i in (v if isinstance(v, list) else [v])]
        front = d["frontend_version"]
        if not (
            all(type(i) is int for i in [d["version"], d["feature_version"], *ids])
            and (front is None or type(front) is int)
            and isinstance(d["artists"], list)
            and all(isinstance(a, str) for a in [*d["artists"], d["kind"], d["created_at"]])
            and isinstance(d["metrics"], dict)
            and isinstance(d["train_seconds"], int | float)
        ):
            raise TypeError("malformed model metadata")
        d["train_seconds"] = float(d["train_seconds"])
        return cls(**{f.name: d[f.name] for f in fields(cls)})


def _frontend_version() -> int:
    """This mimi's front-end version."""
    return features.FRONTEND_VERSION


class ModelRegistry:
    """Each server's model versions live in `root/<guild>/vNNNN/`; `CURRENT` names the live one."""

    def __init__(self, root: Path, keep: int = 5) -> None:
        if keep < 1:
            raise ValueError("keep must be at least 1")
        self.root = Path(root)
        self.keep = keep

    def guild_dir(self, guild_id: int) -> Path:
        """The folder holding one server's model versions."""
        if type(guild_id) is not int or guild_id < 0:
            raise TypeError(f"guild id must be a non-negative int, got {guild_id!r}")
        return self.root / str(guild_id)

    def folder(self, guild_id: int, version: int) -> Path:
        """The folder of one model version (it may not exist)."""
        if type(version) is not int or version < 1:
            raise TypeError(f"model version must be a positive int, got {version!r}")
        return self.guild_dir(guild_id) / version_dir_name(version)

    def publish(
        self,
        guild_id: int,
        write: Callable[[Path], None],
        *,
        kind: str,
        artists: list[str],
        feature_version: int,
        frontend_version: int | None,
        metrics: dict,
        train_seconds: float,
        snapshot: dict[str, list[int]],
        snapshot_keys: dict[str, list[str]] | None = None,
    ) -> ModelMeta:
        """Write a new version through `write(folder)`, make it current and prune old ones."""
        gdir = self.guild_dir(guild_id)
        now = datetime.now(UTC).isoformat(timespec="seconds")
        meta = ModelMeta(0, kind, artists, feature_version, frontend_version, metrics,
                         train_seconds, snapshot, now, snapshot_keys or {})  # fmt: skip
        meta = ModelMeta.from_dict(meta.to_dict())  # type-check and copy before any work
        gdir.mkdir(parents=True, exist_ok=True)
        self._clean_temp(gdir)
        version = max(self._numbers(gdir), default=0) + 1
        tmp = gdir / f".tmp-v{version:04d}-{os.getpid()}-{secrets.token_hex(4)}"
        tmp.mkdir()
        try:
            write(tmp)
            while True:
                meta = replace(meta, version=version)
                (tmp / META_FILE).write_text(json.dumps(meta.to_dict(), indent=2), "utf-8")
                for dirpath, _, names in os.walk(tmp, topdown=False):
                    for path in [*(Path(dirpath) / n for n in names), Path(dirpath)]:
                        fsync_path(path)
                try:
                    os.rename(tmp, self.folder(guild_id, version))  # atomic publish
                    break
                except OSError as err:  # another publisher took this number: use the next one
                    if err.errno not in (errno.EEXIST, errno.ENOTEMPTY, errno.EISDIR):
                        raise
                    version = max([version, *self._numbers(gdir)]) + 1
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        self._write_current(gdir, version)
        self.prune(guild_id)
        return meta

    def current(self, guild_id: int) -> ModelMeta | None:
        """The live model version's metadata, or None when the server has no model."""
        gdir = self.guild_dir(guild_id)
        number = read_current(gdir)
        meta = self._read_meta(gdir, number) if number is not None else None
        if meta is not None:
            return meta
        complete = self._complete(gdir)
        if not complete:
            return None
        log.warning("guild %s: CURRENT unusable, using v%s", guild_id, complete[-1].version)
        return complete[-1]

    def require_current(
        self,
        guild_id: int,
        *,
        feature_version: int | None = None,
        frontend_version: int | None = None,
    ) -> ModelMeta:
        """The live model, checked against these versions (None: this mimi's own)."""
        meta = self.current(guild_id)
        if meta is None:
            raise NoModel()
        if frontend_version is None and meta.frontend_version is not None:
            frontend_version = _frontend_version()
        feature = features.FEATURE_VERSION if feature_version is None else feature_version
        self.check_compatible(meta, feature_version=feature, frontend_version=frontend_version)
        return meta

    def check_compatible(
        self, meta: ModelMeta, *, feature_version: int, frontend_version: int | None
    ) -> None:
        """Raise ModelIncompatible unless `meta` was built with these feature/front-end versions."""
        for what, theirs, ours in (
            ("feature", meta.feature_version, feature_version),
            ("front-end", meta.frontend_version, frontend_version),
        ):
            served = theirs is None or theirs in features.SERVES_FRONTENDS
            if what == "front-end" and ours == features.FRONTEND_VERSION and served:
                continue  # an older front-end's outputs are a subset of this one's
            if theirs is not None and theirs != ours:
                raise ModelIncompatible(
                    f"The current model (v{meta.version}) was trained with {what} version "
                    f"{theirs} but this mimi uses {'none' if ours is None else ours}; "
                    f"{RETRAIN_HINT}."
                )

    def meta(self, guild_id: int, version: int) -> ModelMeta | None:
        """One kept version's metadata, or None when it is gone or unreadable."""
        return self._read_meta(self.guild_dir(guild_id), version)

    def versions(self, guild_id: int) -> list[ModelMeta]:
        """Every complete version of a server's model, oldest first."""
        return self._complete(self.guild_dir(guild_id))

    def rollback(self, guild_id: int, version: int | None = None) -> ModelMeta:
        """Make a kept version current; None means the one before the current."""
        gdir = self.guild_dir(guild_id)
        complete = self._complete(gdir)
        kept = ", ".join(f"v{m.version}" for m in complete) or "none"
        if version is None:
            now = self.current(guild_id)
            if now is None:
                raise NoModel()
            found = [m for m in complete if m.version < now.version][-1:]
            missing = f"There is no model version before v{now.version} (kept: {kept})."
        else:
            found = [m for m in complete if m.version == version]
            missing = f"There is no model version v{version} (kept: {kept})."
        if not found:
            raise VersionNotFound(missing)
        self._write_current(gdir, found[0].version)
        return found[0]

    def prune(self, guild_id: int) -> list[int]:
        """Delete all but the newest `keep` versions, never the current one; the deleted ones."""
        numbers, now = self._numbers(self.guild_dir(guild_id)), self.current(guild_id)
        doomed = set(numbers) - set(numbers[-self.keep :]) - {now.version if now else 0}
        for n in sorted(doomed):
            shutil.rmtree(self.folder(guild_id, n), ignore_errors=True)
        return sorted(doomed)

    def drop_guild(self, guild_id: int) -> None:
        """Delete every model version of a server."""
        gdir = self.guild_dir(guild_id)
        if gdir.exists():
            trash = self.root / f".drop-{guild_id}-{os.getpid()}-{secrets.token_hex(4)}"
            os.rename(gdir, trash)  # atomic: readers see all versions or none
            shutil.rmtree(trash, ignore_errors=True)

    def _read_meta(self, gdir: Path, version: int) -> ModelMeta | None:
        """A version's metadata, or None when its folder or meta.json is missing or corrupt."""
        try:
            text = (gdir / version_dir_name(version) / META_FILE).read_text("utf-8")
            meta = ModelMeta.from_dict(json.loads(text))
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            return None
        return meta if meta.version == version else None

    def _numbers(self, gdir: Path) -> list[int]:
        """Version numbers of every vNNNN folder, complete or not, ascending."""
        found = (version_of(p.name) for p in gdir.glob("v*") if p.is_dir())
        return sorted(v for v in found if v is not None)

    def _complete(self, gdir: Path) -> list[ModelMeta]:
        """Metadata of every readable version, oldest first."""
        metas = (self._read_meta(gdir, n) for n in self._numbers(gdir))
        return [m for m in metas if m is not None]

    def _write_current(self, gdir: Path, version: int) -> None:
        """Atomically point CURRENT at `version` (temp file, fsync, replace)."""
        tmp = gdir / f".{CURRENT_FILE}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        try:
            tmp.write_text(f"{version}\n", "utf-8")
            fsync_path(tmp)
            os.replace(tmp, gdir / CURRENT_FILE)
        finally:
            tmp.unlink(missing_ok=True)
        fsync_path(gdir)

    def _clean_temp(self, gdir: Path) -> None:
        """Remove temp folders left by publishers that died (their pid no longer runs)."""
        for path in gdir.glob(".tmp-v*"):
            m = _TMP_DIR.fullmatch(path.name)
            if m and path.is_dir() and not pid_alive(int(m.group(1))):
                shutil.rmtree(path, ignore_errors=True)
