"""Per-song files on disk: a compact audio copy plus versioned, recomputable feature stages."""

from __future__ import annotations

import io
import os
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from model_store import features

AUDIO_FILE = "audio.flac"


@dataclass(frozen=True)
class Stage:
    """A cached array computed from the stage before it (`upstream`; "audio" is the root)."""

    name: str
    version: str
    upstream: str
    compute: Callable[[np.ndarray], np.ndarray]

    @property
    def filename(self) -> str:
        """The file name holding this stage's current version."""
        return f"{self.name}.v{self.version}.npy"


def _logmel_from_audio(samples: np.ndarray) -> np.ndarray:
    """The log-mel stage: int16 audio -> (frames, mels) in the cached precision."""
    return features.log_mel(samples.astype(np.float32) / 32768.0).astype(features.MEL_DTYPE)


LOGMEL = Stage("logmel", str(features.FEATURE_VERSION), "audio", _logmel_from_audio)
DEFAULT_STAGES: dict[str, Stage] = {LOGMEL.name: LOGMEL}
EMBEDDING = "embedding"


def stages_with_embeddings(weights: Path) -> dict[str, Stage]:
    """The log-mel stage plus musicnn patch embeddings computed with the weights at `weights`."""

    def compute(mel: np.ndarray) -> np.ndarray:
        from model_store.embed import embed_mel, frontend

        return embed_mel(frontend(weights), mel.astype(np.float32))

    version = f"f{features.FEATURE_VERSION}m{features.FRONTEND_VERSION}"
    return {**DEFAULT_STAGES, EMBEDDING: Stage(EMBEDDING, version, LOGMEL.name, compute)}


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Write through `write(tmp)` beside `path`, fsync, then rename over it."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        with tmp.open("rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _save_npy(path: Path, array: np.ndarray) -> None:
    """np.save to exactly `path` (np.save itself would append '.npy')."""
    with path.open("wb") as f:
        np.save(f, array)


class SongCache:
    """Files for one song live in `root/<guild>/<audio sha256>/`; stages recompute when stale."""

    def __init__(self, root: Path, stages: dict[str, Stage] | None = None) -> None:
        self.root = root
        self.stages = dict(DEFAULT_STAGES if stages is None else stages)

    def song_dir(self, guild_id: int, key: str) -> Path:
        """The folder holding one song's files."""
        if not key.isalnum():
            raise ValueError(f"bad song key {key!r}")
        return self.root / str(int(guild_id)) / key

    def save_audio(self, guild_id: int, key: str, samples: np.ndarray) -> None:
        """Store the decoded int16 mono audio as lossless 16 kHz FLAC."""
        folder = self.song_dir(guild_id, key)
        folder.mkdir(parents=True, exist_ok=True)
        flac = io.BytesIO()  # encoded in memory: libsndfile would hide a write's errno
        sf.write(flac, samples, features.SAMPLE_RATE, format="FLAC", subtype="PCM_16")
        _atomic_write(folder / AUDIO_FILE, lambda p: p.write_bytes(flac.getvalue()))

    def load_audio(self, guild_id: int, key: str) -> np.ndarray:
        """The stored int16 mono audio."""
        data, _ = sf.read(self.song_dir(guild_id, key) / AUDIO_FILE, dtype="int16")
        return data

    def put(self, guild_id: int, key: str, stage: str, array: np.ndarray) -> None:
        """Store a stage's array for a song, replacing any older version of that stage."""
        spec = self.stages[stage]
        folder = self.song_dir(guild_id, key)
        folder.mkdir(parents=True, exist_ok=True)
        _atomic_write(folder / spec.filename, lambda p: _save_npy(p, array))
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

    def has(self, guild_id: int, key: str, stage: str) -> bool:
        """True if the stage's current version is on disk for this song."""
        name = AUDIO_FILE if stage == "audio" else self.stages[stage].filename
        return (self.song_dir(guild_id, key) / name).is_file()

    def drop(self, guild_id: int, key: str) -> None:
        """Delete every file of one song."""
        shutil.rmtree(self.song_dir(guild_id, key), ignore_errors=True)

    def sweep(self, alive: Iterable[tuple[int, str]], min_age_s: float = 3600.0) -> int:
        """Remove song folders no stored song owns (older than `min_age_s`); return how many."""
        keep = {(int(g), k) for g, k in alive}
        removed, now = 0, time.time()
        if not self.root.is_dir():
            return 0
        for guild_dir in self.root.iterdir():
            if not (guild_dir.is_dir() and guild_dir.name.lstrip("-").isdigit()):
                continue
            for song_dir in guild_dir.iterdir():
                stale = now - song_dir.stat().st_mtime >= min_age_s
                if (int(guild_dir.name), song_dir.name) not in keep and stale:
                    shutil.rmtree(song_dir, ignore_errors=True)
                    removed += 1
        return removed
