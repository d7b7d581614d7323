"""Guessing: windows across a clip -> per-window probabilities -> mean log-prob -> top artists."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from model_store.calibrate import log_softmax
from model_store.embed import PARTS
from model_store.features import HOP_LENGTH, PATCH_FRAMES, SAMPLE_RATE, frames_for
from model_store.spec import LABELS, NETWORKS, output_name

WINDOW_FRAMES = frames_for(10.0)  # a window is one training clip: 10 s


def covered_seconds(spans: Sequence[tuple[float, float]], extent: float) -> float:
    """Seconds of [0, extent] inside at least one (start, end) span: how much was heard."""
    total, reach = 0.0, 0.0
    for a, b in sorted((max(0.0, min(s)), min(extent, max(s))) for s in spans):
        a = max(a, reach)
        if b > a:
            total, reach = total + b - a, b
    return total


def window_starts(n_frames: int, window: int, max_windows: int) -> list[int]:
    """Start frames of at most `max_windows` windows spread evenly across the clip."""
    if n_frames <= window:
        return [0]
    tiles = list(range(0, n_frames - window + 1, window))
    if len(tiles) <= max_windows:
        return tiles
    return sorted({round(float(s)) for s in np.linspace(0, n_frames - window, max_windows)})


def _musicnn_window_probs(
    mel: np.ndarray, starts: Sequence[int], window: int, head, frontend, parts: Sequence[str]
) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
    """(windows x artists) probabilities, each network's mean taggram and the patch features
    (for the open-set score), from the pretrained front-end."""
    spans, patches = [], []
    for s in starts:
        end = min(len(mel), s + window)
        offsets = list(range(s, end - PATCH_FRAMES + 1, PATCH_FRAMES)) or [
            max(0, end - PATCH_FRAMES)
        ]
        spans.append((len(patches), len(patches) + len(offsets)))
        patches += [mel[o : o + PATCH_FRAMES] for o in offsets]
    x = np.stack(patches).astype(np.float32)
    if x.shape[1] < PATCH_FRAMES:  # shorter than a patch: pad with silence's log-mel (zeros)
        x = np.pad(x, ((0, 0), (0, PATCH_FRAMES - x.shape[1]), (0, 0)))
    out = frontend.embed(x)
    feats = np.concatenate([out[p] for p in PARTS if p in parts], axis=1)
    rows = np.stack([feats[a:b].mean(axis=0) for a, b in spans])
    probs = head.probabilities(rows.astype(np.float32))
    taggrams = {n: out[output_name(n, "taggram")].mean(axis=0) for n in NETWORKS}
    return probs, taggrams, feats


def _scratch_window_probs(mel: np.ndarray, starts: Sequence[int], window: int, model) -> np.ndarray:
    """(windows x artists) probabilities from the from-scratch CNN on 10 s mel images."""
    images = np.zeros((len(starts), window, mel.shape[1], 1), np.float32)
    for i, s in enumerate(starts):
        span = mel[s : s + window]
        images[i, : len(span), :, 0] = span
    return np.asarray(model(images, training=False))


def guess_mel(
    mel: np.ndarray,
    model,
    kind: str,
    artists: Sequence[str],
    frontend=None,
    *,
    parts: Sequence[str] = ("penultimate",),
    top_k: int = 3,
    unsure_below: float = 0.5,
    max_windows: int = 10,
) -> dict:
    """Top-k artists, a per-window timeline and (with musicnn) the clip's top tags and its
    patch features (`features`, for the open-set score)."""
    mel = np.nan_to_num(np.asarray(mel, dtype=np.float32))
    starts = window_starts(len(mel), WINDOW_FRAMES, max_windows)
    tags: list[dict] = []
    feats = None
    if kind == "scratch":
        probs = _scratch_window_probs(mel, starts, WINDOW_FRAMES, model)
    else:
        probs, taggrams, feats = _musicnn_window_probs(
            mel, starts, WINDOW_FRAMES, model, frontend, parts
        )
        tags = top_tags(taggrams)
    result = summarise(probs, starts, len(mel), artists, top_k=top_k, unsure_below=unsure_below)
    result["tags"] = tags
    result["features"] = feats
    result["window_probs"] = probs.astype(np.float32)  # for a caller that masks artists later
    result["window_starts"] = list(starts)
    result["frames"] = len(mel)
    return result


def summarise(
    probs: np.ndarray,
    starts: Sequence[int],
    n_frames: int,
    artists: Sequence[str],
    *,
    top_k: int = 3,
    unsure_below: float = 0.5,
    temperature: float = 1.0,
) -> dict:
    """Top-k artists (mean log-prob over windows, under the model's calibration temperature)
    and the per-window timeline from (windows x artists) probabilities; artists whose column
    is all zero (masked out) are never named."""
    probs = np.asarray(probs, dtype=np.float64)
    present = probs.max(axis=0) > 0
    logp = np.where(present, np.log(np.clip(probs, 1e-7, 1.0)) / temperature, -np.inf)
    probs = np.exp(log_softmax(logp))  # each window's probabilities, calibrated
    mean = np.where(present, logp.mean(axis=0), -np.inf)
    overall = np.exp(log_softmax(mean))
    order = [i for i in np.argsort(-overall) if present[i]][:top_k]
    seconds_per_frame = HOP_LENGTH / SAMPLE_RATE
    windows = [
        {
            "start": round(s * seconds_per_frame, 2),
            "end": round(min(n_frames, s + WINDOW_FRAMES) * seconds_per_frame, 2),
            "artist": artists[int(p.argmax())],
            "probability": round(float(p.max()), 4),
        }
        for s, p in zip(starts, probs, strict=True)
    ]
    top = [{"artist": artists[i], "probability": round(float(overall[i]), 4)} for i in order]
    spans = [(w["start"], w["end"]) for w in windows]
    return {
        "top": top,
        "windows": windows,
        "unsure": bool(top[0]["probability"] < unsure_below),
        "heard_seconds": round(covered_seconds(spans, n_frames * seconds_per_frame), 2),
    }


def top_tags(taggrams: dict[str, np.ndarray], k: int = 3, floor: float = 0.1) -> list[dict]:
    """The strongest tags of a clip over both networks' vocabularies ("sounds like: piano,
    ambient, 80s"), above a small floor; a tag both networks know counts once, at its best."""
    best: dict[str, tuple[float, str]] = {}
    for network, taggram in taggrams.items():
        for label, value in zip(LABELS[network], taggram, strict=True):
            key = label.casefold()
            if value >= floor and value > best.get(key, (-1.0, ""))[0]:
                best[key] = (float(value), label)
    ranked = sorted(best.values(), key=lambda t: -t[0])[:k]
    return [{"tag": label, "score": round(score, 3)} for score, label in ranked]
