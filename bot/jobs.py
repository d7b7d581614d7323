"""Work done in worker processes: training a guild's model and guessing a clip."""

from __future__ import annotations

import contextlib
import os
import time
from collections import OrderedDict
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from bot.cache import EMBEDDING, LOGMEL, SongCache, stages_with_embeddings
from bot.config import Settings
from bot.errors import MimiError
from bot.i18n import Msg
from bot.ingest import IngestConfig
from model_store import features
from model_store.durable import atomic_write
from model_store.head import HEAD_FILE, HeadConfig, HeadWeights, SongEmbeddings
from model_store.openset import REFERENCE_FILE, Reference, best_matches
from model_store.registry import ModelMeta, ModelRegistry

MODEL_FILE = "model.keras"
KINDS = ("musicnn", "scratch")


@dataclass(frozen=True)
class SongRef:
    """A stored song as a worker needs it: id, artist, cache key and clips."""

    song_id: int
    artist: str
    key: str
    clips: tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class TrainJob:
    """Everything a worker needs to train and publish one guild's model."""

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


def _send(sink, guild_id: int, epoch: int, total: int, accuracy: float | None) -> None:
    """Report one epoch to the parent (a multiprocessing queue proxy), never failing training."""
    if sink is not None:
        with contextlib.suppress(Exception):  # the parent went away: keep training regardless
            sink.put((guild_id, epoch, total, accuracy))


def train_job(job: TrainJob, sink=None) -> dict:
    """Train a guild's model from its cached embeddings and publish it; returns meta as dict."""
    started = time.perf_counter()
    cache = SongCache(job.cache_dir, stages_with_embeddings(job.weights))

    def progress(epoch: int, total: int, accuracy: float | None) -> None:
        _send(sink, job.guild_id, epoch, total, accuracy)

    snapshot: dict[str, list[int]] = {}
    snapshot_keys: dict[str, list[str]] = {}
    for ref in job.songs:
        snapshot.setdefault(ref.artist, []).append(ref.song_id)
        snapshot_keys.setdefault(ref.artist, []).append(ref.key)
    if job.kind == "scratch":
        from model_store.baselines import MelSong
        from model_store.train import train_scratch_model

        mel_songs = [
            MelSong(r.song_id, r.artist, cache.get(job.guild_id, r.key, LOGMEL.name), r.clips)
            for r in job.songs
        ]
        result = train_scratch_model(mel_songs, seed=job.seed)
        frontend = None
    else:
        from model_store.train import train_head_model

        songs = [
            SongEmbeddings(r.song_id, r.artist, cache.get(job.guild_id, r.key, EMBEDDING), r.clips)
            for r in job.songs
        ]
        result = train_head_model(songs, HeadConfig(seed=job.seed), progress)
        frontend = features.FRONTEND_VERSION
    registry = ModelRegistry(job.models_dir, keep=job.keep)
    keys = {str(r.song_id): r.key for r in job.songs}

    def save(folder: Path) -> None:
        result.model.save(folder / MODEL_FILE)
        if job.kind != "scratch":  # what guessing runs, with NumPy alone
            HeadWeights.of(result.model).save(folder / HEAD_FILE)
        if result.reference is not None:  # keyed by audio key, so forgotten songs drop out
            ref = result.reference
            rekeyed = replace(ref, keys=tuple(keys[k] for k in ref.keys))
            rekeyed.save(folder / REFERENCE_FILE)

    meta = registry.publish(
        job.guild_id,
        save,
        kind=job.kind,
        artists=result.artists,
        feature_version=features.FEATURE_VERSION,
        frontend_version=frontend,
        metrics=result.metrics,
        train_seconds=round(time.perf_counter() - started, 2),
        snapshot=snapshot,
        snapshot_keys=snapshot_keys,
    )
    return meta.to_dict()


# --- guessing: a warm worker keeps the front-end and recent guild models loaded -------------

_MODELS: OrderedDict[tuple[str, int, int], object] = OrderedDict()
MODEL_CACHE_SIZE = 8


def _head(registry: ModelRegistry, guild_id: int, meta: ModelMeta) -> tuple:
    """The guild's current head and open-set reference (None for models made before it
    existed), from a small per-process LRU keyed by version."""
    key = (str(registry.root), guild_id, meta.version)
    if key in _MODELS:
        _MODELS.move_to_end(key)
        return _MODELS[key]
    folder = registry.folder(guild_id, meta.version)
    model = _load_scratch(folder) if meta.kind == "scratch" else head_weights(folder)
    reference = (
        Reference.load(folder / REFERENCE_FILE) if (folder / REFERENCE_FILE).is_file() else None
    )
    _MODELS[key] = model, reference
    while len(_MODELS) > MODEL_CACHE_SIZE:
        _MODELS.popitem(last=False)
    return model, reference


def head_weights(folder: Path) -> HeadWeights:
    """A version's head for NumPy inference; a version published before head.npz existed is
    upgraded in place from its model.keras (read without Keras) the first time it is used."""
    path = folder / HEAD_FILE
    if path.is_file():
        return HeadWeights.load(path)
    try:
        head = HeadWeights.from_keras_file(folder / MODEL_FILE)
    except ValueError:
        raise MimiError(Msg("model.unreadable"), code="model_unreadable") from None
    with contextlib.suppress(OSError):  # (a read-only or pruned folder: use it from memory)
        atomic_write(path, head.save)
    return head


def _load_scratch(folder: Path):
    """The from-scratch CNN baseline (`--kind scratch`): the one kind of model that needs
    Keras to answer, so TensorFlow is imported only when such a model is guessed with."""
    from model_store import quiet_tensorflow_import

    quiet_tensorflow_import()
    import keras

    return keras.models.load_model(folder / MODEL_FILE)


@dataclass(frozen=True)
class GuessConfig:
    """What a guess needs besides the file: where models live, decoding limits, output knobs."""

    models_dir: Path
    ingest: IngestConfig
    top_k: int = 3
    unsure_below: float = 0.5
    max_windows: int = 10


def guess_file(path: Path, guild_id: int, config: GuessConfig) -> dict:
    """Decode a clip and name its likeliest artists with the guild's current model."""
    from bot.audio import DecodeLimits, decode
    from model_store.predict import guess_mel

    registry = ModelRegistry(config.models_dir)
    meta = registry.require_current(guild_id)
    limits = config.ingest.limits
    decoded = decode(
        path,
        DecodeLimits(limits.max_bytes, limits.max_seconds, min_guess_seconds(), limits.timeout_s),
        config.ingest.ffmpeg,
    )
    mel = features.log_mel(decoded.as_float())
    frontend = None
    if meta.frontend_version is not None:
        from model_store.embed import frontend as load_frontend

        frontend = load_frontend(config.ingest.weights, config.ingest.threads)
    parts = tuple(meta.metrics.get("head", {}).get("parts", ("penultimate",)))
    head, reference = _head(registry, guild_id, meta)
    result = guess_mel(
        mel,
        head,
        meta.kind,
        meta.artists,
        frontend,
        parts=parts,
        top_k=config.top_k,
        unsure_below=config.unsure_below,
        max_windows=config.max_windows,
    )
    patch_feats = result.pop("features")
    if reference is not None and patch_feats is not None:  # judged in the parent, after forgets
        result["matches"] = best_matches(reference, patch_feats)
        result["reference_keys"] = list(reference.keys)
        result["reference_artists"] = list(reference.artists)
    result["model_version"] = meta.version
    result["artists"] = list(meta.artists)  # class order of the model that answered
    result["seconds"] = round(decoded.seconds, 2)
    result["mel"] = mel.astype(np.float16)
    return result


def min_guess_seconds() -> float:
    """The shortest clip worth guessing: one musicnn patch (3 s)."""
    return features.PATCH_FRAMES * features.HOP_LENGTH / features.SAMPLE_RATE


WORKER_NICENESS = 10  # workers yield the CPU to the bot's event loop on a small machine


def yield_cpu() -> None:
    """Lower this worker's CPU priority so the bot process stays responsive."""
    with contextlib.suppress(OSError):
        os.nice(WORKER_NICENESS)


def warm_up(weights: Path, threads: int = 1) -> None:
    """Worker initializer: lower priority and load the ONNX front-end (no TensorFlow)."""
    from model_store.embed import frontend
    from model_store.lean import frontend_model_path

    yield_cpu()
    if frontend_model_path(weights).is_file():
        frontend(weights, threads)
