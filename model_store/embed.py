"""Song embeddings from the pretrained musicnn front-end, on a fixed grid of 3-second patches."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

from model_store.features import HOP_LENGTH, N_MELS, PATCH_FRAMES, SAMPLE_RATE

EMBED_DTYPE = np.float16  # cached precision; values are O(1..100)
PATCH_SECONDS = PATCH_FRAMES * HOP_LENGTH / SAMPLE_RATE  # 2.992 s
# What each patch's embedding holds, in order: MSD_musicnn's 200-d penultimate layer, then
# MTT_musicnn's (front-end v1 cached MSD's max/mean pools instead, which no head ever used).
PARTS = {"penultimate": 200, "mtt_penultimate": 200}


def patch_starts(n_frames: int, hop: int = PATCH_FRAMES) -> list[int]:
    """Start frames of the whole patches that fit in `n_frames` frames."""
    return list(range(0, n_frames - PATCH_FRAMES + 1, hop)) if n_frames >= PATCH_FRAMES else []


def patches_of(mel: np.ndarray, starts: Sequence[int]) -> np.ndarray:
    """Stack the (PATCH_FRAMES, N_MELS) float32 patches starting at `starts` in a log-mel."""
    out = np.empty((len(starts), PATCH_FRAMES, N_MELS), np.float32)
    for i, s in enumerate(starts):
        out[i] = mel[s : s + PATCH_FRAMES]
    return out


@lru_cache(maxsize=4)
def frontend(weights_path: Path, threads: int = 1):
    """The pretrained front-end's ONNX export (beside the Keras weights at `weights_path`),
    loaded once per process and thread count (workers keep it warm)."""
    from model_store.lean import Frontend, frontend_model_path

    lean = frontend_model_path(weights_path)
    if not lean.is_file():
        raise FileNotFoundError(
            f"the pretrained musicnn front-end is not set up ({lean} is missing): run "
            f"`make setup` or `python -m model_store.convert --out {weights_path}`"
        )
    return Frontend(lean, threads=threads)


def embed_mel(model, mel: np.ndarray) -> np.ndarray:
    """(n_patches, 400) embeddings of every non-overlapping patch of a song, in EMBED_DTYPE."""
    out = model.embed(patches_of(mel, patch_starts(len(mel))))
    return np.concatenate([out[k] for k in PARTS], axis=1).astype(EMBED_DTYPE)


def unit(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length, as float32 (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def select(embeddings: np.ndarray, parts: Sequence[str] = ("penultimate",)) -> np.ndarray:
    """The columns of `parts` from full embeddings, as float32."""
    cols, offset = [], 0
    for name, width in PARTS.items():
        if name in parts:
            cols.append(embeddings[:, offset : offset + width])
        offset += width
    return np.concatenate(cols, axis=1).astype(np.float32)


def patches_in(start_s: float, end_s: float, n_patches: int) -> np.ndarray:
    """Indices of the grid patches whose centre lies in [start_s, end_s)."""
    centres = (np.arange(n_patches) + 0.5) * PATCH_SECONDS
    return np.flatnonzero((centres >= start_s) & (centres < end_s))
