"""Training a server's model: hold out whole songs, early-stop on them, report, refit on all."""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from model_store.calibrate import (
    PRIOR_TEMPERATURE,
    UNVALIDATED_TEMPERATURE,
    fit_temperature,
    reliability,
    song_logits,
    temper,
)
from model_store.errors import TooFewArtists
from model_store.evaluate import score
from model_store.head import HeadConfig, Progress, SongEmbeddings, fit, n_val_songs, song_log_probs
from model_store.openset import (
    PRIOR_THRESHOLD,
    UNVALIDATED_THRESHOLD,
    Reference,
    build_reference,
    fit_threshold,
    known_scores,
)

VAL_FRACTION = 0.2


@dataclass
class TrainResult:
    """A trained head, its artists in class order, honest metrics and wall time; musicnn heads
    also carry the reference their open-set score compares clips with."""

    model: object
    artists: list[str]
    metrics: dict
    seconds: float
    reference: Reference | None = None


def artist_order(songs: Sequence[SongEmbeddings]) -> list[str]:
    """Class order: artists sorted case-insensitively (stable across retrains)."""
    return sorted({s.artist for s in songs}, key=lambda a: (a.casefold(), a))


def holdout_split(
    songs: Sequence[SongEmbeddings], fraction: float = VAL_FRACTION, seed: int = 0
) -> tuple[list[SongEmbeddings], list[SongEmbeddings]]:
    """Hold out whole songs per artist; nothing when any artist has fewer than 2 songs."""
    by_artist: dict[str, list[SongEmbeddings]] = {}
    for song in songs:
        by_artist.setdefault(song.artist, []).append(song)
    if any(len(group) < 2 for group in by_artist.values()):
        return list(songs), []
    rng = random.Random(seed)
    train, val = [], []
    for artist in sorted(by_artist):
        group = sorted(by_artist[artist], key=lambda s: s.song_id)
        rng.shuffle(group)
        held = n_val_songs(len(group), fraction)
        val += group[:held]
        train += group[held:]
    return train, val


def missing_for_validation(songs: Sequence[SongEmbeddings]) -> dict[str, int]:
    """Artists with fewer than 2 songs and how many more each needs for honest accuracy."""
    counts: dict[str, int] = {}
    for song in songs:
        counts[song.artist] = counts.get(song.artist, 0) + 1
    return {a: 2 - n for a, n in sorted(counts.items()) if n < 2}


def usable_songs(songs: Sequence) -> tuple[list, list[str]]:
    """Songs that have clips and their artists in class order; at least 2 artists, or refuse."""
    kept = [s for s in songs if len(s.clips)]
    artists = artist_order(kept)
    if len(artists) < 2:
        raise TooFewArtists()
    return kept, artists


def unmeasurable(songs: Sequence) -> dict:
    """Metrics of a model trained on every song: no accuracy, and what would make it measurable."""
    return {
        "measurable": False,
        "clip_accuracy": None,
        "song_accuracy": None,
        "macro_f1": None,
        "confusion": None,
        "needs_more_songs": missing_for_validation(songs),
    }


def train_head_model(
    songs: Sequence[SongEmbeddings],
    config: HeadConfig | None = None,
    progress: Progress | None = None,
) -> TrainResult:
    """Train on a guild's songs: measure on held-out songs, then train on every song."""
    config = config or HeadConfig()
    started = time.perf_counter()
    songs, artists = usable_songs(songs)
    train, val = holdout_split(songs, seed=config.seed)
    metrics: dict = {"train_songs": len(train), "val_songs": len(val)}
    if val:
        # Measure the procedure honestly on songs it never saw, then train it on every song.
        held_out_model, _ = fit(train, val, artists, config, progress)
        index = {a: i for i, a in enumerate(artists)}
        clips = [c for c, _ in song_log_probs(held_out_model, val, config)]
        metrics.update(score([index[s.artist] for s in val], clips, len(artists)))
        metrics["held_out"] = held_out_records(val, clips, artists)
        metrics["measurable"] = True
        metrics.update(honesty(train, val, clips, artists, config))
        model, info = fit(songs, [], artists, config, None)
    else:
        model, info = fit(songs, [], artists, config, progress)
        metrics.update(unmeasurable(songs))
        metrics.update(honesty(songs, [], [], artists, config))
    reference = build_reference(songs, config.parts, [str(s.song_id) for s in songs])
    metrics["epochs"] = info["epochs"]
    metrics["artists"] = artists
    metrics["head"] = {"parts": list(config.parts), "level": config.level}
    seconds = round(time.perf_counter() - started, 2)
    return TrainResult(model, artists, metrics, seconds, reference)


def honesty(
    train: Sequence[SongEmbeddings],
    val: Sequence[SongEmbeddings],
    clips: Sequence[np.ndarray],
    artists: Sequence[str],
    config: HeadConfig,
) -> dict:
    """Calibration (a temperature) and the open-set threshold, fitted on held-out songs (with
    none: the dev-set priors)."""
    labels = [artists.index(s.artist) for s in val]
    prior_t = PRIOR_TEMPERATURE if val else UNVALIDATED_TEMPERATURE
    temperature = fit_temperature([song_logits(c) for c in clips], labels, prior=prior_t)
    calibration: dict = {"temperature": temperature, "songs": len(val)}
    if val:
        calibration.update(reliability(labels, [temper(c, temperature) for c in clips]))
    reference = build_reference(train, config.parts, [str(s.song_id) for s in train])
    predicted = [artists[int(song_logits(c).argmax())] for c in clips]
    scores = known_scores(reference, val, predicted, config.parts)
    right = [x for x, p, s in zip(scores, predicted, val, strict=True) if p == s.artist]
    return {
        "calibration": calibration,
        "open_set": {
            "threshold": fit_threshold(
                right, prior=PRIOR_THRESHOLD if val else UNVALIDATED_THRESHOLD
            ),
            "songs": len(right),
        },
    }


def held_out_records(
    songs: Sequence, clip_logps: Sequence[np.ndarray], artists: Sequence[str]
) -> list[dict]:
    """Per held-out song: its id, artist, the artist predicted and clip hits (so the figures
    can be recomputed without a song that is later forgotten)."""
    out = []
    for song, clips in zip(songs, clip_logps, strict=True):
        truth = artists.index(song.artist)
        out.append(
            {
                "song_id": song.song_id,
                "artist": song.artist,
                "predicted": artists[int(clips.mean(axis=0).argmax())],
                "clip_hits": int((clips.argmax(axis=1) == truth).sum()),
                "clips": len(clips),
            }
        )
    return out


def song_count_note(metrics: dict) -> str:
    """A sentence on how much more to teach before accuracy can be measured, or ''."""
    missing = metrics.get("needs_more_songs") or {}
    if not missing:
        return ""
    names = ", ".join(f"{a} (+{n})" for a, n in missing.items())
    return f"Accuracy is not yet measurable: teach at least one more song of {names}."


def predict_clips(model, songs: Sequence[SongEmbeddings], config: HeadConfig) -> list[np.ndarray]:
    """Per-clip log-probabilities for each song."""
    return [c for c, _ in song_log_probs(model, songs, config)]


def train_scratch_model(songs: Sequence, seed: int = 0) -> TrainResult:
    """The original recipe as a server model: a from-scratch CNN on 10 s mel clips."""
    from model_store.baselines import ScratchConfig, train_scratch

    started = time.perf_counter()
    songs, artists = usable_songs(songs)
    train, val = holdout_split(songs, seed=seed)
    model, info = train_scratch(train, artists, ScratchConfig(seed=seed))
    metrics: dict = {"train_songs": len(train), "val_songs": len(val), "epochs": info["epochs"]}
    if val:
        index = {a: i for i, a in enumerate(artists)}
        clips = _scratch_predictor(model, len(artists))(val)
        metrics.update(score([index[s.artist] for s in val], clips, len(artists)))
        metrics["held_out"] = held_out_records(val, clips, artists)
        metrics["measurable"] = True
    else:
        metrics.update(unmeasurable(songs))
    metrics["artists"] = artists
    return TrainResult(model, artists, metrics, round(time.perf_counter() - started, 2))


def _scratch_predictor(model, n_classes: int):
    """Per-clip log-probabilities of MelSongs under a scratch CNN."""
    from model_store.baselines import clip_images, softmax_predictor

    return softmax_predictor(model, clip_images, n_classes, 32)


def musicnn_method(config: HeadConfig | None = None):
    """The production training procedure as an evaluation Method (see model_store.evaluate)."""
    config = config or HeadConfig()

    def method(train: Sequence[SongEmbeddings], artists: Sequence[str]):
        return HeadPredictor(train_head_model(train, config), artists, config)

    return method


class HeadPredictor:
    """A trained head as an evaluation predictor: calibrated per-clip log-probabilities in the
    evaluation's artist order, plus the open-set score and threshold it answers with."""

    def __init__(self, result: TrainResult, artists: Sequence[str], config: HeadConfig) -> None:
        self.result, self.config, self.artists = result, config, list(artists)
        self.order = [result.artists.index(a) for a in artists]
        self.temperature = float(result.metrics["calibration"]["temperature"])
        self.threshold = float(result.metrics["open_set"]["threshold"])

    def __call__(self, test: Sequence[SongEmbeddings]) -> list[np.ndarray]:
        """Per test song: (clips x artists) log-probabilities under the fitted temperature."""
        clips = predict_clips(self.result.model, test, self.config)
        return [temper(c, self.temperature)[:, self.order] for c in clips]

    def known_scores(
        self, test: Sequence[SongEmbeddings], clips: Sequence[np.ndarray]
    ) -> list[float]:
        """Per test song: how much it sounds like the artist the head named for it (`clips`:
        this predictor's answers for `test`), the open-set score."""
        named = [self.artists[int(song_logits(c).argmax())] for c in clips]
        return known_scores(self.result.reference, test, named, self.config.parts)
