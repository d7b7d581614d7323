"""Versioned, recomputable per-song feature stages: log-mel from audio, embeddings from log-mel."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from model_store import features


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


def stages_with_embeddings(weights: Path, threads: int = 1) -> dict[str, Stage]:
    """The log-mel stage plus musicnn patch embeddings from the front-end set up beside
    `weights` (its ONNX export), run with `threads` threads."""

    def compute(mel: np.ndarray) -> np.ndarray:
        from model_store.embed import embed_mel, frontend

        return embed_mel(frontend(weights, threads), mel.astype(np.float32))

    version = f"f{features.FEATURE_VERSION}m{features.FRONTEND_VERSION}"
    return {**DEFAULT_STAGES, EMBEDDING: Stage(EMBEDDING, version, LOGMEL.name, compute)}
