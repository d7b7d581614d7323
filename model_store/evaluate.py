"""Honest evaluation: whole songs are held out (stratified per artist); clip and song metrics."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from model_store.calibrate import log_softmax, song_logits

# A method trains on songs and returns a predictor giving, per test song, per-clip log-probs.
Predictor = Callable[[Sequence], list[np.ndarray]]
Method = Callable[[Sequence, Sequence[str]], Predictor]


@dataclass(frozen=True)
class Split:
    """One train/test partition of song indices."""

    train: tuple[int, ...]
    test: tuple[int, ...]


def _by_artist(artists_of_songs: Sequence[str]) -> dict[str, list[int]]:
    """Song indices grouped by artist, in first-seen artist order."""
    groups: dict[str, list[int]] = {}
    for i, a in enumerate(artists_of_songs):
        groups.setdefault(a, []).append(i)
    return groups


def kfold_splits(artists_of_songs: Sequence[str], folds: int, seed: int = 0) -> list[Split]:
    """K folds by song, stratified per artist: each song is tested exactly once."""
    rng = random.Random(seed)
    fold_of: dict[int, int] = {}
    for songs in _by_artist(artists_of_songs).values():
        order = songs[:]
        rng.shuffle(order)
        offset = rng.randrange(folds)
        for j, s in enumerate(order):
            fold_of[s] = (j + offset) % folds
    every = range(len(artists_of_songs))
    return [
        Split(
            tuple(i for i in every if fold_of[i] != k), tuple(i for i in every if fold_of[i] == k)
        )
        for k in range(folds)
    ]


def fewshot_splits(
    artists_of_songs: Sequence[str], train_songs: int, repeats: int, seed: int = 0
) -> list[Split]:
    """`repeats` random splits with `train_songs` training songs per artist, the rest tested."""
    rng = random.Random(seed)
    groups = _by_artist(artists_of_songs)
    short = [a for a, s in groups.items() if len(s) <= train_songs]
    if short:
        raise ValueError(f"need more than {train_songs} songs for: {', '.join(short)}")
    splits = []
    for _ in range(repeats):
        train: list[int] = []
        for songs in groups.values():
            train += rng.sample(songs, train_songs)
        chosen = set(train)
        test = [i for i in range(len(artists_of_songs)) if i not in chosen]
        splits.append(Split(tuple(sorted(train)), tuple(test)))
    return splits


def macro_f1(confusion: np.ndarray) -> float:
    """Mean over classes of F1 from a (true x predicted) confusion matrix."""
    tp = np.diag(confusion).astype(float)
    precision = np.divide(
        tp, confusion.sum(axis=0), out=np.zeros_like(tp), where=confusion.sum(0) > 0
    )
    recall = np.divide(tp, confusion.sum(axis=1), out=np.zeros_like(tp), where=confusion.sum(1) > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    present = confusion.sum(axis=1) > 0
    return float(f1[present].mean()) if present.any() else 0.0


def score(labels: Sequence[int], clip_logps: Sequence[np.ndarray], n: int) -> dict:
    """Clip accuracy, song accuracy (mean log-prob over clips), macro-F1 and confusion by song."""
    confusion = np.zeros((n, n), int)
    clip_hits = clip_total = 0
    for label, clips in zip(labels, clip_logps, strict=True):
        clip_hits += int((clips.argmax(axis=1) == label).sum())
        clip_total += len(clips)
        confusion[label, int(clips.mean(axis=0).argmax())] += 1
    songs = int(confusion.sum())
    return {
        "clip_accuracy": clip_hits / clip_total if clip_total else None,
        "song_accuracy": float(np.trace(confusion) / songs) if songs else None,
        "macro_f1": macro_f1(confusion),
        "confusion": confusion.tolist(),
        "test_songs": songs,
        "test_clips": clip_total,
    }


def cross_validate(
    songs: Sequence, artists_of_songs: Sequence[str], splits: Sequence[Split], method: Method
) -> dict:
    """Train `method` on each split's songs and score its held-out songs; pooled metrics."""
    artists = sorted(set(artists_of_songs))
    index = {a: i for i, a in enumerate(artists)}
    labels: list[int] = []
    preds: list[np.ndarray] = []
    train_seconds = []
    for split in splits:
        assert not set(split.train) & set(split.test), "a song on both sides of a split"
        t0 = time.perf_counter()
        predictor = method([songs[i] for i in split.train], artists)
        train_seconds.append(time.perf_counter() - t0)
        preds += predictor([songs[i] for i in split.test])
        labels += [index[artists_of_songs[i]] for i in split.test]
    result = score(labels, preds, len(artists))
    result.update(
        labels=labels,  # per test song, with its per-clip log-probs: for calibration figures
        song_clips=preds,
        artists=artists,
        songs=len(songs),
        folds=len(splits),
        train_seconds=round(float(np.median(train_seconds)), 2) if train_seconds else 0.0,
    )
    return result


def song_confidence(clips: np.ndarray) -> float:
    """The top probability a member is shown for a song (softmax of its mean log-prob)."""
    return float(np.exp(log_softmax(song_logits(clips))).max())


def novelty_of(predictor: Predictor, test: Sequence, clips: list[np.ndarray]) -> tuple[list, float]:
    """Per test song a "known" score (higher: more like a taught artist) and the threshold
    below which the predictor answers "no one I know": its own (given the songs and the
    predictor's own answers for them, `clips`), else the top probability."""
    scorer = getattr(predictor, "known_scores", None)
    if scorer is not None:
        return list(scorer(test, clips)), float(predictor.threshold)
    return [song_confidence(c) for c in clips], UNSURE_BELOW


UNSURE_BELOW = 0.5  # MIMI_UNSURE_BELOW's default: the only open-set rule a plain classifier has


def auroc(positive: Sequence[float], negative: Sequence[float]) -> float | None:
    """P(a positive scores above a negative), ties counting half (Mann-Whitney)."""
    pos, neg = np.asarray(positive, float), np.asarray(negative, float)
    if not len(pos) or not len(neg):
        return None
    above = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(above / (len(pos) * len(neg)))


def open_set_validate(
    songs: Sequence,
    artists_of_songs: Sequence[str],
    splits: Sequence[Split],
    method: Method,
    unknown: Sequence | None = None,
) -> dict:
    """Known-versus-unknown songs: `unknown` songs (never taught) against each split's test
    songs, or without them leave-one-artist-out (each artist in turn is never taught)."""
    trials: list[tuple[list[int], list[int], Sequence]] = []
    for split in splits:
        if unknown is not None:
            trials.append((list(split.train), list(split.test), unknown))
            continue
        for held in sorted(set(artists_of_songs)):
            train = [i for i in split.train if artists_of_songs[i] != held]
            test = [i for i in split.test if artists_of_songs[i] != held]
            out = [songs[i] for i, a in enumerate(artists_of_songs) if a == held]
            trials.append((train, test, out))
    aurocs, thresholds = [], []
    kept = correct_known = rejected = n_unknown = 0
    for train, test, out in trials:
        artists = sorted({artists_of_songs[i] for i in train})
        if len(artists) < 2 or not test or not out:
            continue
        predictor = method([songs[i] for i in train], artists)
        clips = predictor([songs[i] for i in test])
        known, threshold = novelty_of(predictor, [songs[i] for i in test], clips)
        strange, _ = novelty_of(predictor, out, predictor(out))
        right = [
            int(c.mean(axis=0).argmax()) == artists.index(artists_of_songs[i])
            for i, c in zip(test, clips, strict=True)
        ]
        aurocs.append(auroc(known, strange))
        thresholds.append(threshold)
        kept += sum(1 for s, r in zip(known, right, strict=True) if r and s >= threshold)
        correct_known += sum(right)
        rejected += sum(1 for s in strange if s < threshold)
        n_unknown += len(strange)
    return {
        "auroc": round(float(np.mean(aurocs)), 4) if aurocs else None,
        "unknown_rejected": round(rejected / n_unknown, 4) if n_unknown else None,
        "known_kept": round(kept / correct_known, 4) if correct_known else None,
        "threshold": round(float(np.median(thresholds)), 4) if thresholds else None,
        "trainings": len(aurocs),
        "unknown_songs": n_unknown,
        "protocol": "unknown folder" if unknown is not None else "leave one artist out",
    }
