"""`mimi eval`: cross-validated, song-level evaluation of a folder, touching no guild."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bot.audio import DecodeLimits, decode
from bot.errors import MimiError
from bot.service import import_plan
from model_store import features
from model_store.calibrate import reliability
from model_store.evaluate import cross_validate, fewshot_splits, kfold_splits, open_set_validate
from model_store.features import usable_clips

MODELS = ("musicnn", "scratch", "melstats")


@dataclass(frozen=True)
class EvalSong:
    """A song of the folder: log-mel, patch embeddings (musicnn only) and clips."""

    song_id: int
    artist: str
    mel: np.ndarray
    patches: np.ndarray | None
    clips: tuple[tuple[float, float], ...]


def load_folder(
    folder: Path,
    *,
    clip_seconds: float,
    limits: DecodeLimits,
    weights: Path | None,
    ffmpeg: str = "",
    progress: Callable[[Path], None] | None = None,
) -> tuple[list[EvalSong], list[dict]]:
    """Decode every `<artist>/<song>` file; returns the usable songs and the skipped files."""
    songs, skipped = [], []
    model = None
    if weights is not None:
        from model_store.embed import embed_mel, frontend

        model = frontend(weights)
    for i, (artist, path) in enumerate(import_plan(folder)):
        try:
            audio = decode(path, limits, ffmpeg).as_float()
        except MimiError as err:
            skipped.append({"file": str(path), **err.as_dict()})
        else:
            mel = features.log_mel(audio).astype(features.MEL_DTYPE)
            clips = usable_clips(audio, len(mel), clip_seconds, clip_seconds)
            patches = embed_mel(model, mel.astype(np.float32)) if model is not None else None
            if clips:
                songs.append(EvalSong(i, artist, mel, patches, clips))
        if progress:
            progress(path)
    return songs, skipped


def method_for(kind: str):
    """The training procedure to evaluate: ours, the original recipe, or mel statistics."""
    if kind == "musicnn":
        from model_store.train import musicnn_method

        return musicnn_method()
    if kind == "scratch":
        from model_store.baselines import scratch_method

        return scratch_method()
    if kind == "melstats":
        from model_store.baselines import melstats_method

        return melstats_method()
    raise ValueError(f"unknown model {kind!r}")


def evaluate_songs(
    songs: list[EvalSong],
    kind: str = "musicnn",
    *,
    folds: int = 5,
    train_songs: int | None = None,
    seed: int = 0,
    unknown: list[EvalSong] | None = None,
) -> dict:
    """K-fold by song (or few-shot with N training songs per artist) metrics for one method:
    accuracy, calibration (`ece`) and the open set (`open_set`: `unknown` songs against the
    test songs, or leave-one-artist-out without them)."""
    artists = [s.artist for s in songs]
    if len(set(artists)) < 2:
        raise MimiError("The folder needs songs by at least 2 artists to evaluate.")
    if train_songs is None:
        smallest = min(artists.count(a) for a in set(artists))
        if smallest < folds:
            raise MimiError(
                f"Every artist needs at least {folds} songs for {folds} folds "
                f"(one has {smallest}); use fewer --folds."
            )
        splits = kfold_splits(artists, folds, seed)
    else:
        try:
            splits = fewshot_splits(artists, train_songs, folds, seed)
        except ValueError as err:
            raise MimiError(f"Not enough songs for --train-songs {train_songs}: {err}.") from None
    method = method_for(kind)
    result = cross_validate(songs, artists, splits, method)
    result["calibration"] = reliability(result.pop("labels"), result.pop("song_clips"))
    result["ece"] = result["calibration"]["ece"]
    result["open_set"] = open_set_validate(songs, artists, splits, method, unknown)
    result["clips"] = sum(len(s.clips) for s in songs)
    result["model"] = kind
    result["train_songs_per_artist"] = train_songs
    return result
