"""Turn one uploaded file into cached audio + features and a list of usable clips (worker-safe)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bot.audio import DecodeLimits, decode
from bot.cache import EMBEDDING, LOGMEL, SongCache, stages_with_embeddings
from bot.config import Settings
from bot.errors import AudioRejected, MimiError
from bot.i18n import Msg
from bot.sniff import open_regular, require_regular
from model_store import features
from model_store.lean import frontend_model_path


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


@dataclass(frozen=True)
class Ingested:
    """A decoded, cached song: its identity, length and usable clips as (start, end) seconds."""

    audio_sha256: str
    file_sha256: str
    seconds: float
    format: str
    clips: tuple[tuple[float, float], ...]


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes, streamed."""
    digest = hashlib.sha256()
    with open_regular(path) as f:  # a FIFO or /dev/zero is refused, not hashed forever
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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


def usable_clips(
    audio: np.ndarray, n_frames: int, clip_seconds: float, hop_seconds: float
) -> tuple[tuple[float, float], ...]:
    """(start, end) seconds of every whole clip whose level is above the silence floor."""
    seconds_per_frame = features.HOP_LENGTH / features.SAMPLE_RATE
    clip_samples = round(clip_seconds * features.SAMPLE_RATE)
    out = []
    for start_frame in features.clip_starts(n_frames, clip_seconds, hop_seconds):
        start = start_frame * features.HOP_LENGTH
        if features.rms_dbfs(audio[start : start + clip_samples]) >= features.SILENCE_DBFS:
            begin = round(start_frame * seconds_per_frame, 4)
            out.append((begin, round(begin + clip_seconds, 4)))
    return tuple(out)


def song_cache(config: IngestConfig) -> SongCache:
    """The song cache with every stage this configuration computes."""
    if config.weights is None:
        return SongCache(config.cache_dir, owner=config.owner)
    stages = stages_with_embeddings(config.weights, config.threads)
    return SongCache(config.cache_dir, stages, config.owner)


def ingest_file(path: Path, guild_id: int, config: IngestConfig) -> Ingested:
    """Decode, validate, store the audio copy and log-mel, and list the song's usable clips."""
    decoded = decode(path, config.limits, config.ffmpeg)
    key = hashlib.sha256(decoded.samples.tobytes()).hexdigest()
    audio = decoded.as_float()
    mel = features.log_mel(audio)
    clips = usable_clips(audio, len(mel), config.clip_seconds, config.clip_hop_seconds)
    if not clips:
        raise AudioRejected(Msg("audio.all_quiet"), code="silent")
    cache = song_cache(config)
    fresh = not cache.song_dir(guild_id, key).exists()
    try:
        cache.save_audio(guild_id, key, decoded.samples)
        cache.put(guild_id, key, LOGMEL.name, mel.astype(features.MEL_DTYPE))
        if EMBEDDING in cache.stages:
            cache.get(guild_id, key, EMBEDDING)  # computed once, at teach time
    except BaseException:
        if fresh:  # (a folder that existed before belongs to a stored song: keep it)
            cache.drop(guild_id, key)
        raise
    return Ingested(key, file_sha256(path), decoded.seconds, decoded.format, clips)
