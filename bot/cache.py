"""Per-song files on disk: a compact audio copy plus versioned, recomputable feature stages."""

from __future__ import annotations

import io
import operator
import re
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import soundfile as sf

from model_store import features
from model_store.durable import atomic_write
from model_store.stages import DEFAULT_STAGES, Stage

AUDIO_FILE = "audio.flac"
_SONG_KEY = re.compile(r"[0-9a-f]{64}")  # an audio sha256: the only song key
CLAIM_PREFIX = ".writing-"  # + the owner token of the process that will record the song


def _save_npy(path: Path, array: np.ndarray) -> None:
    """np.save to exactly `path` (np.save itself would append '.npy')."""
    with path.open("wb") as f:
        np.save(f, array)


class SongCache:
    """Files for one song live in `root/<guild>/<audio sha256>/`; stages recompute when stale."""

    def __init__(
        self, root: Path, stages: dict[str, Stage] | None = None, owner: str | None = None
    ) -> None:
        self.root = root
        self.stages = dict(DEFAULT_STAGES if stages is None else stages)
        self.owner = owner  # the process that will record the songs written here (claims)

    def song_dir(self, guild_id: int, key: str) -> Path:
        """The folder holding one song's files: the one place a cache path is built. The key
        must be a song's audio sha256 (64 lowercase hex), the guild a snowflake (0 <= id < 2**63);
        anything else (`../../x`, a text guild id from a hostile backup) is a ValueError."""
        if not isinstance(key, str) or not _SONG_KEY.fullmatch(key):
            raise ValueError(f"bad song key {key!r}")
        try:
            guild = operator.index(guild_id)  # an int (numpy's too), never a str or float
        except TypeError:
            guild = -1
        if not 0 <= guild < 2**63:
            raise ValueError(f"bad guild id {guild_id!r}")
        return self.root / str(guild) / key

    def save_audio(self, guild_id: int, key: str, samples: np.ndarray) -> None:
        """Store the decoded int16 mono audio as lossless 16 kHz FLAC."""
        folder = self.song_dir(guild_id, key)
        folder.mkdir(parents=True, exist_ok=True)
        if self.owner is not None:  # claimed until the song is recorded (see `sweep`)
            (folder / f"{CLAIM_PREFIX}{self.owner}").touch()
        flac = io.BytesIO()  # encoded in memory: libsndfile would hide a write's errno
        sf.write(flac, samples, features.SAMPLE_RATE, format="FLAC", subtype="PCM_16")
        atomic_write(folder / AUDIO_FILE, lambda p: p.write_bytes(flac.getvalue()))

    def load_audio(self, guild_id: int, key: str) -> np.ndarray:
        """The stored int16 mono audio."""
        data, _ = sf.read(self.song_dir(guild_id, key) / AUDIO_FILE, dtype="int16")
        return data

    def put(self, guild_id: int, key: str, stage: str, array: np.ndarray) -> None:
        """Store a stage's array for a song, replacing any older version of that stage."""
        spec = self.stages[stage]
        folder = self.song_dir(guild_id, key)
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write(folder / spec.filename, lambda p: _save_npy(p, array))
        for old in folder.glob(f"{spec.name}.v*.npy"):
            if old.name != spec.filename:
                old.unlink(missing_ok=True)

    def get(self, guild_id: int, key: str, stage: str) -> np.ndarray:
        """A stage's array for a song, recomputed from its upstream (and cached) when missing."""
        if stage == "audio":
            return self.load_audio(guild_id, key)
        spec = self.stages[stage]
        path = self.song_dir(guild_id, key) / spec.filename
        try:
            return np.load(path)
        except (FileNotFoundError, ValueError, EOFError):
            pass  # missing, stale version or damaged: recompute below
        array = spec.compute(self.get(guild_id, key, spec.upstream))
        self.put(guild_id, key, stage, array)
        return array

    def cached(self, guild_id: int, key: str, stage: str) -> np.ndarray | None:
        """A stage's current array if it is on disk and readable, else None (nothing computed)."""
        try:
            return np.load(self.song_dir(guild_id, key) / self.stages[stage].filename)
        except (FileNotFoundError, ValueError, EOFError):
            return None

    def has(self, guild_id: int, key: str, stage: str) -> bool:
        """True if the stage's current version is on disk for this song."""
        name = AUDIO_FILE if stage == "audio" else self.stages[stage].filename
        return (self.song_dir(guild_id, key) / name).is_file()

    def complete(self, guild_id: int, key: str) -> bool:
        """True if the song's audio and every stage's current version are on disk."""
        return all(self.has(guild_id, key, stage) for stage in ("audio", *self.stages))

    def release(self, guild_id: int, key: str) -> None:
        """Drop this process's claim on a song folder (its row is recorded, or it is gone)."""
        if self.owner is not None:
            (self.song_dir(guild_id, key) / f"{CLAIM_PREFIX}{self.owner}").unlink(missing_ok=True)

    def drop(self, guild_id: int, key: str) -> None:
        """Delete every file of one song."""
        shutil.rmtree(self.song_dir(guild_id, key), ignore_errors=True)

    def drop_guild(self, guild_id: int) -> None:
        """Delete every song file of one guild."""
        shutil.rmtree(self.song_dir(guild_id, "0" * 64).parent, ignore_errors=True)

    def sweep(self, alive: Iterable[tuple[int, str]], owner_alive: Callable[[str], bool]) -> int:
        """Remove song folders that no stored song owns and no live process is writing (a claim
        whose owner runs); stale claims on stored songs are dropped. How many folders went."""
        keep = {(int(g), k) for g, k in alive}
        removed = 0
        if not self.root.is_dir():
            return 0
        for guild_dir in self.root.iterdir():
            if not (guild_dir.is_dir() and guild_dir.name.lstrip("-").isdigit()):
                continue
            for song_dir in guild_dir.iterdir():
                claims = [p for p in song_dir.glob(f"{CLAIM_PREFIX}*") if p.is_file()]
                live = [p for p in claims if owner_alive(p.name[len(CLAIM_PREFIX) :])]
                if (int(guild_dir.name), song_dir.name) in keep:
                    for stale in set(claims) - set(live):
                        stale.unlink(missing_ok=True)
                elif not live:
                    shutil.rmtree(song_dir, ignore_errors=True)
                    removed += 1
        return removed


def sweep_tmp(folder: Path, owner_alive: Callable[[str], bool]) -> int:
    """Remove downloads in `folder` (data/tmp) except those of a live process (named
    '<owner token>.<anything>' by `tmp_prefix`); how many entries went."""
    removed = 0
    if not folder.is_dir():
        return 0
    for entry in folder.iterdir():
        owner = entry.name.split(".", 1)[0] if "." in entry.name else ""
        if owner and owner_alive(owner.replace("_", ":")):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed += 1
    return removed


def tmp_prefix(owner: str) -> str:
    """The name prefix of this process's downloads in data/tmp (kept by `sweep_tmp`)."""
    return owner.replace(":", "_") + "."
