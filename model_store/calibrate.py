"""Honest confidence: a softmax temperature fitted on held-out songs, and calibration error."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# The temperature measured on the dev set (bench/train_eval.py, held-out songs at 2-5 songs per
# artist); a server's own held-out songs move it away from this in proportion to their number.
PRIOR_TEMPERATURE = 0.75
# A server where some artist has a single song has no held-out songs; measured at 1 song each.
UNVALIDATED_TEMPERATURE = 1.15
PRIOR_SONGS = 8.0  # the prior weighs as much as this many held-out songs
PRIOR_SPREAD = 0.5  # standard deviation of log(temperature) under the prior
TEMPERATURES = np.exp(np.linspace(np.log(0.05), np.log(20.0), 241))
ECE_BINS = 10


def song_logits(clip_logps: np.ndarray) -> np.ndarray:
    """A song's (or clip's) class scores: the mean log-probability over its windows."""
    return np.asarray(clip_logps, dtype=np.float64).mean(axis=0)


def log_softmax(z: np.ndarray) -> np.ndarray:
    """Log-softmax along the last axis."""
    z = np.asarray(z, dtype=np.float64)
    m = z.max(axis=-1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=-1, keepdims=True))


def temper(clip_logps: np.ndarray, temperature: float) -> np.ndarray:
    """Per-window log-probabilities under a temperature (argmax unchanged)."""
    return log_softmax(np.asarray(clip_logps, dtype=np.float64) / temperature)


def fit_temperature(
    song_scores: Sequence[np.ndarray],
    labels: Sequence[int],
    *,
    prior: float = PRIOR_TEMPERATURE,
    prior_songs: float = PRIOR_SONGS,
) -> float:
    """The temperature minimising held-out songs' negative log-likelihood, shrunk to the prior.

    With no held-out songs the prior itself; each song pulls as much as 1/prior_songs of it."""
    if not len(song_scores):
        return float(prior)
    z = np.stack([np.asarray(s, dtype=np.float64) for s in song_scores])
    y = np.asarray(labels, dtype=int)
    best, best_loss = prior, np.inf
    for t in TEMPERATURES:
        nll = -log_softmax(z / t)[np.arange(len(y)), y].mean()
        penalty = prior_songs / len(y) * (np.log(t / prior) / PRIOR_SPREAD) ** 2 / 2
        if nll + penalty < best_loss:
            best, best_loss = float(t), nll + penalty
    return round(best, 4)


def expected_calibration_error(
    confidences: Sequence[float], correct: Sequence[bool], bins: int = ECE_BINS
) -> float | None:
    """Mean |accuracy - confidence| over equal-width confidence bins, weighted by bin size."""
    conf = np.asarray(confidences, dtype=float)
    hit = np.asarray(correct, dtype=float)
    if not len(conf):
        return None
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            total += inside.sum() * abs(hit[inside].mean() - conf[inside].mean())
    return round(float(total / len(conf)), 4)


def reliability(labels: Sequence[int], clip_logps: Sequence[np.ndarray]) -> dict:
    """Song-level top-1 confidence against accuracy: ECE, mean confidence and accuracy."""
    conf, hits = [], []
    for label, clips in zip(labels, clip_logps, strict=True):
        p = np.exp(log_softmax(song_logits(clips)))
        conf.append(float(p.max()))
        hits.append(int(p.argmax()) == label)
    return {
        "ece": expected_calibration_error(conf, hits),
        "mean_confidence": round(float(np.mean(conf)), 4) if conf else None,
        "accuracy": round(float(np.mean(hits)), 4) if hits else None,
    }
