"""Turn one upload into features and usable clips (in a worker, from bytes), then cache them."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bot.audio import DecodeLimits, decode_bytes, read_upload
from bot.cache import SongCache
from bot.config import Settings
from bot.errors import AudioRejected, MimiError
from bot.i18n import Msg
from bot.sniff import require_regular
from model_store import features
from model_store.lean import frontend_model_path
from model_store.stages import EMBEDDING, LOGMEL, stages_with_embeddings


@dataclass(frozen=True)
class IngestConfig:
    """Everything a worker process needs to ingest a file; plain data, picklable."""

    cache_dir: Path
    limits: DecodeLimits
    clip_seconds: float
    clip_hop_seconds: float
    weights: Path | None = None  # musicnn weights; None skips the embedding stage
    ffmpeg: str = ""
    owner: str | None = None  # the process that records the songs (claims their cache folders)
    threads: int = 1  # front-end threads per call

    @classmethod
    def from_settings(cls, settings: Settings) -> IngestConfig:
        """The ingest configuration implied by the settings (songs must hold one whole clip)."""
        limits = DecodeLimits(
            max_bytes=settings.max_upload_bytes,
            max_seconds=settings.max_song_seconds,
            min_seconds=settings.clip_seconds,
            timeout_s=settings.decode_timeout_s,
        )
        return cls(
            settings.cache_dir,
            limits,
            settings.clip_seconds,
            settings.clip_hop_seconds,
            settings.frontend_weights,
            settings.ffmpeg,
            threads=settings.infer_threads,
        )

    @property
    def reading(self) -> ReadConfig:
        """The part a worker needs (no paths on this machine's data disk)."""
        return ReadConfig(
            self.limits, self.clip_seconds, self.clip_hop_seconds, self.weights, self.ffmpeg,
            self.threads,
        )  # fmt: skip


@dataclass(frozen=True)
class ReadConfig:
    """What a worker needs to read an upload: limits, clip grid, the front-end (installed with
    mimi on every worker), the decoder; plain data, picklable."""

    limits: DecodeLimits
    clip_seconds: float
    clip_hop_seconds: float
    weights: Path | None = None  # musicnn weights; None skips the embedding stage
    ffmpeg: str = ""
    threads: int = 1


@dataclass(frozen=True)
class SongFeatures:
    """A decoded upload as a worker returns it: identity, length, clips and the arrays."""

    audio_sha256: str
    seconds: float
    format: str
    clips: tuple[tuple[float, float], ...]
    samples: np.ndarray  # int16 mono at features.SAMPLE_RATE
    mel: np.ndarray  # (frames, mels) in features.MEL_DTYPE
    embedding: np.ndarray | None  # musicnn patch embeddings, or None without weights


@dataclass(frozen=True)
class Ingested:
    """A decoded, cached song: its identity, length and usable clips as (start, end) seconds."""

    audio_sha256: str
    file_sha256: str
    seconds: float
    format: str
    clips: tuple[tuple[float, float], ...]


def missing_weights(weights: Path, *, show_path: bool = False) -> MimiError:
    """The one setup error for absent musicnn weights (not any song's fault)."""
    where = f" at {weights}" if show_path else ""
    return MimiError(
        f"Setup is incomplete: the pretrained musicnn weights are missing{where}; run "
        "`make setup` (or `python -m model_store.convert`) or set MIMI_FRONTEND_WEIGHTS.",
        code="setup",
    )


def check_setup(weights: Path | None, *, show_path: bool = False) -> None:
    """Raise the setup error when the musicnn front-end (its ONNX export beside the
    configured weights) is missing."""
    if weights is None:
        return
    if not Path(weights).is_file():
        raise missing_weights(weights, show_path=show_path)
    if not frontend_model_path(weights).is_file():
        raise missing_weights(frontend_model_path(weights), show_path=show_path)


def check_upload(path: Path, config: IngestConfig) -> None:
    """Before any work on an upload: mimi itself is set up and `path` is a regular file."""
    check_setup(config.weights)
    require_regular(path)


def song_cache(config: IngestConfig) -> SongCache:
    """The song cache with every stage this configuration computes."""
    if config.weights is None:
        return SongCache(config.cache_dir, owner=config.owner)
    stages = stages_with_embeddings(config.weights, config.threads)
    return SongCache(config.cache_dir, stages, config.owner)


def read_song(data: bytes, config: ReadConfig) -> SongFeatures:
    """Worker job: decode an upload's bytes, validate it, compute its log-mel, usable clips
    and (with weights) musicnn embeddings; plain data back, nothing written."""
    decoded = decode_bytes(data, config.limits, config.ffmpeg)
    audio = decoded.as_float()
    mel = features.log_mel(audio).astype(features.MEL_DTYPE)
    clips = features.usable_clips(audio, len(mel), config.clip_seconds, config.clip_hop_seconds)
    if not clips:
        raise AudioRejected(Msg("audio.all_quiet"), code="silent")
    embedding = None
    if config.weights is not None:  # computed once, at teach time, from the cached precision
        embedding = stages_with_embeddings(config.weights, config.threads)[EMBEDDING].compute(mel)
    key = hashlib.sha256(decoded.samples.tobytes()).hexdigest()
    samples = decoded.samples
    return SongFeatures(key, decoded.seconds, decoded.format, clips, samples, mel, embedding)


def store_song(cache: SongCache, guild_id: int, song: SongFeatures, file_sha256: str) -> Ingested:
    """Write a read song's audio copy and feature stages to the cache (claimed by the cache's
    owner until recorded); a folder this call created is removed again if a write fails.
    `file_sha256` is the upload's own hash, as the duplicate check computed it."""
    key = song.audio_sha256
    fresh = not cache.song_dir(guild_id, key).exists()
    try:
        cache.save_audio(guild_id, key, song.samples)
        cache.put(guild_id, key, LOGMEL.name, song.mel)
        if song.embedding is not None and EMBEDDING in cache.stages:
            cache.put(guild_id, key, EMBEDDING, song.embedding)
    except BaseException:
        if fresh:  # (a folder that existed before belongs to a stored song: keep it)
            cache.drop(guild_id, key)
        raise
    return Ingested(key, file_sha256, song.seconds, song.format, song.clips)


def ingest_file(path: Path, guild_id: int, config: IngestConfig) -> Ingested:
    """Read, decode and cache one upload in this process (`read_song` + `store_song`)."""
    data = read_upload(path, config.limits)
    song = read_song(data, config.reading)
    return store_song(song_cache(config), guild_id, song, hashlib.sha256(data).hexdigest())
