"""Guessing a clip: the model's files read by the bot, the worker's part with its model cache."""

from __future__ import annotations

import contextlib
import hashlib
import io
import tempfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bot.audio import DecodeLimits, decode_bytes, read_upload
from bot.errors import MimiError, model_errors
from bot.i18n import Msg
from bot.ingest import IngestConfig
from bot.train_job import MODEL_FILE
from model_store import features
from model_store.durable import atomic_write
from model_store.head import HEAD_FILE, HeadWeights
from model_store.openset import REFERENCE_FILE, Reference, best_matches
from model_store.registry import ModelRegistry

MODEL_CACHE_SIZE = 8  # parsed guild models a warm worker keeps


@dataclass(frozen=True)
class ClipSettings:
    """What a worker needs to guess a clip: decoding limits, the front-end, output knobs."""

    limits: DecodeLimits
    ffmpeg: str
    weights: Path | None  # installed with mimi on every worker, like ffmpeg
    threads: int
    top_k: int = 3
    unsure_below: float = 0.5
    max_windows: int = 10


@dataclass(frozen=True)
class ModelFiles:
    """A guild's served model as a worker gets it: what it is and its files as bytes."""

    guild_id: int
    version: int
    kind: str
    artists: tuple[str, ...]
    parts: tuple[str, ...]
    frontend_version: int | None
    files: dict[str, bytes]  # head.npz (or model.keras for scratch) and reference.npz
    digest: str  # of the files: the worker's cache key


@dataclass(frozen=True)
class GuessConfig:
    """A guess as the bot configures it: where models live, decoding limits, output knobs."""

    models_dir: Path
    ingest: IngestConfig
    top_k: int = 3
    unsure_below: float = 0.5
    max_windows: int = 10

    @property
    def clip(self) -> ClipSettings:
        """The part a worker needs (no paths on this machine's data disk)."""
        i = self.ingest
        limits = DecodeLimits(i.limits.max_bytes, i.limits.max_seconds, min_guess_seconds(),
                              i.limits.timeout_s)  # fmt: skip
        return ClipSettings(limits, i.ffmpeg, i.weights, i.threads, self.top_k,
                            self.unsure_below, self.max_windows)  # fmt: skip


def min_guess_seconds() -> float:
    """The shortest clip worth guessing: one musicnn patch (3 s)."""
    return features.PATCH_FRAMES * features.HOP_LENGTH / features.SAMPLE_RATE


def model_files(registry: ModelRegistry, guild_id: int) -> ModelFiles:
    """The guild's current, compatible model read for a worker (NoModel when there is none)."""
    with model_errors():
        meta = registry.require_current(guild_id)
    folder = registry.folder(guild_id, meta.version)
    if meta.kind == "scratch":
        files = {MODEL_FILE: (folder / MODEL_FILE).read_bytes()}
    else:
        upgrade_head(folder)
        files = {HEAD_FILE: (folder / HEAD_FILE).read_bytes()}
    if (folder / REFERENCE_FILE).is_file():  # (models made before the open-set have none)
        files[REFERENCE_FILE] = (folder / REFERENCE_FILE).read_bytes()
    digest = hashlib.blake2b(digest_size=16)
    for name, data in files.items():
        digest.update(name.encode() + b"\0" + data)
    parts = tuple(meta.metrics.get("head", {}).get("parts", ("penultimate",)))
    return ModelFiles(guild_id, meta.version, meta.kind, tuple(meta.artists), parts,
                      meta.frontend_version, files, digest.hexdigest())  # fmt: skip


def upgrade_head(folder: Path) -> None:
    """Give a version published before head.npz existed its NumPy head, read from its
    model.keras without Keras (once; a read-only folder is left as it is)."""
    path = folder / HEAD_FILE
    if path.is_file():
        return
    try:
        head = HeadWeights.from_keras_file(folder / MODEL_FILE)
    except (ValueError, OSError):
        raise MimiError(Msg("model.unreadable"), code="model_unreadable") from None
    with contextlib.suppress(OSError):
        atomic_write(path, head.save)


# --- in the worker: the front-end and recent guild models stay loaded ---------------------

_MODELS: OrderedDict[tuple[int, int, str], tuple] = OrderedDict()


def _parsed(model: ModelFiles) -> tuple:
    """The model's head and open-set reference (None for models made before it existed),
    from a small per-process LRU keyed by the files' digest."""
    key = (model.guild_id, model.version, model.digest)
    if key in _MODELS:
        _MODELS.move_to_end(key)
        return _MODELS[key]
    if model.kind == "scratch":
        head = _load_scratch(model.files[MODEL_FILE])
    else:
        head = HeadWeights.load(io.BytesIO(model.files[HEAD_FILE]))
    ref = model.files.get(REFERENCE_FILE)
    reference = Reference.load(io.BytesIO(ref)) if ref is not None else None
    _MODELS[key] = head, reference
    while len(_MODELS) > MODEL_CACHE_SIZE:
        _MODELS.popitem(last=False)
    return _MODELS[key]


def _load_scratch(data: bytes):
    """The from-scratch CNN baseline (`--kind scratch`): the one kind of model that needs
    Keras to answer, so TensorFlow is imported only when such a model is guessed with."""
    from model_store import quiet_tensorflow_import

    quiet_tensorflow_import()
    import keras

    with tempfile.TemporaryDirectory(prefix="mimi-model-") as tmp:
        path = Path(tmp) / MODEL_FILE
        path.write_bytes(data)
        try:
            return keras.models.load_model(path)
        except Exception:
            raise MimiError(Msg("model.unreadable"), code="model_unreadable") from None


def guess_clip(data: bytes, model: ModelFiles, settings: ClipSettings) -> dict:
    """Worker job: decode a clip's bytes and name its likeliest artists with `model`."""
    from model_store.predict import guess_mel

    decoded = decode_bytes(data, settings.limits, settings.ffmpeg)
    mel = features.log_mel(decoded.as_float())
    frontend = None
    if model.frontend_version is not None:
        from model_store.embed import frontend as load_frontend

        frontend = load_frontend(settings.weights, settings.threads)
    head, reference = _parsed(model)
    result = guess_mel(
        mel,
        head,
        model.kind,
        list(model.artists),
        frontend,
        parts=model.parts,
        top_k=settings.top_k,
        unsure_below=settings.unsure_below,
        max_windows=settings.max_windows,
    )
    patch_feats = result.pop("features")
    if reference is not None and patch_feats is not None:  # judged in the parent, after forgets
        result["matches"] = best_matches(reference, patch_feats)
        result["reference_keys"] = list(reference.keys)
        result["reference_artists"] = list(reference.artists)
    result["model_version"] = model.version
    result["artists"] = list(model.artists)  # class order of the model that answered
    result["seconds"] = round(decoded.seconds, 2)
    result["mel"] = mel.astype(np.float16)
    return result


def guess_file(path: Path, guild_id: int, config: GuessConfig) -> dict:
    """Guess the clip at `path` in this process (read, `guess_clip`)."""
    model, clip = model_files(ModelRegistry(config.models_dir), guild_id), config.clip
    return guess_clip(read_upload(path, clip.limits), model, clip)
