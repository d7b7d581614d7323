"""Training one guild's model: the job read from the cache, the worker's part, the publish."""

from __future__ import annotations

import contextlib
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from bot.cache import SongCache
from bot.config import Settings
from bot.errors import model_errors
from model_store import features
from model_store.head import HEAD_FILE, HeadConfig, HeadWeights, SongEmbeddings
from model_store.openset import REFERENCE_FILE
from model_store.registry import ModelMeta, ModelRegistry
from model_store.stages import EMBEDDING, LOGMEL, stages_with_embeddings

MODEL_FILE = "model.keras"


@dataclass(frozen=True)
class SongRef:
    """A stored song as training needs it: id, artist, cache key and clips."""

    song_id: int
    artist: str
    key: str
    clips: tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class SongData:
    """A song as a training worker gets it: its reference and its cached features."""

    ref: SongRef
    features: np.ndarray  # musicnn embeddings, or the log-mel (scratch models; stale embeddings)
    embed: bool = False  # `features` is the log-mel of a song whose embeddings are stale


@dataclass(frozen=True)
class TrainInput:
    """Everything a worker needs to train one guild's model: plain data, no paths."""

    guild_id: int
    songs: tuple[SongData, ...]
    kind: str = "musicnn"
    seed: int = 0
    weights: Path | None = None  # the front-end (installed with mimi), for stale embeddings


@dataclass(frozen=True)
class TrainedModel:
    """What a worker returns: the model's files as bytes and what its metadata says."""

    guild_id: int
    kind: str
    artists: list[str]
    metrics: dict
    train_seconds: float
    frontend_version: int | None
    files: dict[str, bytes]
    embeddings: dict[str, np.ndarray]  # recomputed for songs whose cached ones were stale


@dataclass(frozen=True)
class TrainJob:
    """One guild's training as the bot sees it: the songs and where features and models live."""

    guild_id: int
    songs: tuple[SongRef, ...]
    cache_dir: Path
    weights: Path
    models_dir: Path
    keep: int = 5
    kind: str = "musicnn"
    seed: int = 0

    @classmethod
    def for_guild(
        cls, settings: Settings, guild_id: int, songs: list[tuple], kind: str = "musicnn"
    ) -> TrainJob:
        """A job over `songs` rows from Store.training_songs, with paths from the settings."""
        return cls(
            guild_id=guild_id,
            songs=tuple(SongRef(*row) for row in songs),
            cache_dir=settings.cache_dir,
            weights=settings.frontend_weights,
            models_dir=settings.models_dir,
            keep=settings.models_keep,
            kind=kind,
        )

    def load(self) -> TrainInput:
        """The worker's input: each song's cached embeddings, or (scratch models, and songs
        whose embeddings are stale) its log-mel, which the worker embeds."""
        cache = self._cache()
        songs = []
        for r in self.songs:
            emb = None if self.kind == "scratch" else cache.cached(self.guild_id, r.key, EMBEDDING)
            if emb is not None:
                songs.append(SongData(r, emb))
            else:  # (the worker embeds the log-mel of a song with stale embeddings)
                mel = cache.get(self.guild_id, r.key, LOGMEL.name)
                songs.append(SongData(r, mel, embed=self.kind != "scratch"))
        return TrainInput(self.guild_id, tuple(songs), self.kind, self.seed, self.weights)

    def _cache(self) -> SongCache:
        """The song cache as training reads and refreshes it."""
        return SongCache(self.cache_dir, stages_with_embeddings(self.weights))

    def publish(self, trained: TrainedModel) -> ModelMeta:
        """Write a worker's model as the guild's next version, with the songs it learned."""
        snapshot: dict[str, list[int]] = {}
        snapshot_keys: dict[str, list[str]] = {}
        for ref in self.songs:
            snapshot.setdefault(ref.artist, []).append(ref.song_id)
            snapshot_keys.setdefault(ref.artist, []).append(ref.key)

        cache = self._cache()
        for key, emb in trained.embeddings.items():  # what the worker recomputed
            with contextlib.suppress(FileNotFoundError, ValueError):  # (forgotten meanwhile)
                if cache.song_dir(self.guild_id, key).is_dir():
                    cache.put(self.guild_id, key, EMBEDDING, emb)

        def write(folder: Path) -> None:
            for name, data in trained.files.items():
                (folder / name).write_bytes(data)

        return ModelRegistry(self.models_dir, keep=self.keep).publish(
            self.guild_id,
            write,
            kind=trained.kind,
            artists=trained.artists,
            feature_version=features.FEATURE_VERSION,
            frontend_version=trained.frontend_version,
            metrics=trained.metrics,
            train_seconds=trained.train_seconds,
            snapshot=snapshot,
            snapshot_keys=snapshot_keys,
        )


def _send(sink, guild_id: int, epoch: int, total: int, accuracy: float | None) -> None:
    """Report one epoch to the parent (a queue or its proxy), never failing training."""
    if sink is not None:
        with contextlib.suppress(Exception):  # the parent went away: keep training regardless
            sink.put((guild_id, epoch, total, accuracy))


def train_model(job: TrainInput, sink=None) -> TrainedModel:
    """Worker job: train a guild's model from its songs' features; its files as bytes."""
    started = time.perf_counter()

    def progress(epoch: int, total: int, accuracy: float | None) -> None:
        _send(sink, job.guild_id, epoch, total, accuracy)

    embeddings: dict[str, np.ndarray] = {}
    stale = [s for s in job.songs if s.embed]
    if stale:
        stage = stages_with_embeddings(job.weights)[EMBEDDING]
        embeddings = {s.ref.key: stage.compute(s.features) for s in stale}
    job_songs = [replace(s, features=embeddings[s.ref.key]) if s.embed else s for s in job.songs]
    with model_errors():
        if job.kind == "scratch":
            from model_store.baselines import MelSong
            from model_store.train import train_scratch_model

            mel_songs = [MelSong(s.ref.song_id, s.ref.artist, s.features, s.ref.clips)
                         for s in job_songs]  # fmt: skip
            result = train_scratch_model(mel_songs, seed=job.seed)
            frontend = None
        else:
            from model_store.train import train_head_model

            songs = [SongEmbeddings(s.ref.song_id, s.ref.artist, s.features, s.ref.clips)
                     for s in job_songs]  # fmt: skip
            result = train_head_model(songs, HeadConfig(seed=job.seed), progress)
            frontend = features.FRONTEND_VERSION
    keys = {str(s.ref.song_id): s.ref.key for s in job.songs}
    with tempfile.TemporaryDirectory(prefix="mimi-train-") as tmp:
        folder = Path(tmp)
        result.model.save(folder / MODEL_FILE)
        if job.kind != "scratch":  # what guessing runs, with NumPy alone
            HeadWeights.of(result.model).save(folder / HEAD_FILE)
        if result.reference is not None:  # keyed by audio key, so forgotten songs drop out
            ref = result.reference
            replace(ref, keys=tuple(keys[k] for k in ref.keys)).save(folder / REFERENCE_FILE)
        files = {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}
    seconds = round(time.perf_counter() - started, 2)
    return TrainedModel(job.guild_id, job.kind, result.artists, result.metrics, seconds,
                        frontend, files, embeddings)  # fmt: skip


def train_job(job: TrainJob, sink=None) -> dict:
    """Train and publish in this process (load, `train_model`, publish); the meta as a dict."""
    started = time.perf_counter()
    trained = train_model(job.load(), sink)
    seconds = round(time.perf_counter() - started, 2)
    return job.publish(replace(trained, train_seconds=seconds)).to_dict()
