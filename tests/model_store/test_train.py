"""Training on real (synthetic) audio through the real front-end: learns, splits honestly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from model_store import features
from model_store.embed import embed_mel, frontend
from model_store.errors import TooFewArtists
from model_store.features import usable_clips
from model_store.head import SongEmbeddings
from model_store.train import holdout_split, song_count_note, train_head_model
from tests.audio_factory import synth

VOICES = {"Low Drone": 0, "High Chime": 4, "Mid Pulse": 2}


def make_song(weights: Path, song_id: int, artist: str, seed: int, seconds: float = 21.0):
    """Synthesise a song in the artist's voice and embed it with the real musicnn front-end."""
    audio = synth(seconds, rate=features.SAMPLE_RATE, voice=VOICES[artist], seed=seed)
    mel = features.log_mel(audio)
    clips = usable_clips(audio, len(mel), 10.0, 10.0)
    return SongEmbeddings(song_id, artist, embed_mel(frontend(weights), mel), clips)


@pytest.fixture(scope="module")
def library(frontend_weights: Path) -> list[SongEmbeddings]:
    """Three synthetic artists with four songs each."""
    return [
        make_song(frontend_weights, 10 * v + i, artist, seed=100 * v + i)
        for artist, v in VOICES.items()
        for i in range(4)
    ]


def test_split_holds_out_whole_songs_per_artist(library: list[SongEmbeddings]) -> None:
    """No song is on both sides; every artist keeps training songs and loses at least one."""
    train, val = holdout_split(library, seed=0)
    assert not {s.song_id for s in train} & {s.song_id for s in val}
    assert len(train) + len(val) == len(library)
    for artist in VOICES:
        assert sum(s.artist == artist for s in val) == 1
        assert sum(s.artist == artist for s in train) == 3


def test_training_learns_the_artists(library: list[SongEmbeddings], frontend_weights: Path) -> None:
    """The trained model names held-out songs right and reports honest held-out metrics."""
    epochs: list[int] = []
    result = train_head_model(library, progress=lambda e, n, acc: epochs.append(e))
    assert result.artists == sorted(VOICES, key=str.casefold)
    m = result.metrics
    assert m["measurable"] and m["val_songs"] == 3 and m["train_songs"] == 9
    assert m["song_accuracy"] == 1.0 and m["clip_accuracy"] >= 0.8
    assert epochs and epochs == sorted(epochs)
    fresh = [make_song(frontend_weights, 900 + v, a, seed=999 + v) for a, v in VOICES.items()]
    from model_store.head import HeadConfig
    from model_store.train import predict_clips

    guesses = [
        result.artists[int(c.mean(0).argmax())]
        for c in predict_clips(result.model, fresh, HeadConfig())
    ]
    assert guesses == [s.artist for s in fresh]


def test_one_song_artist_trains_but_is_not_measurable(library: list[SongEmbeddings]) -> None:
    """With an artist of one song, all songs train and accuracy says what is missing."""
    songs = [s for s in library if s.artist != "Mid Pulse"] + [
        next(s for s in library if s.artist == "Mid Pulse")
    ]
    result = train_head_model(songs)
    assert result.metrics["measurable"] is False and result.metrics["song_accuracy"] is None
    assert result.metrics["needs_more_songs"] == {"Mid Pulse": 1}
    assert "one more song of Mid Pulse (+1)" in song_count_note(result.metrics)


def test_one_artist_is_refused(library: list[SongEmbeddings]) -> None:
    """Training needs at least two artists, and says so."""
    with pytest.raises(TooFewArtists, match="at least 2 artists"):
        train_head_model([s for s in library if s.artist == "Low Drone"])


def test_training_is_deterministic(library: list[SongEmbeddings]) -> None:
    """Fixed seeds: the same songs give the same weights."""
    a = train_head_model(library).model.get_layer("artist").get_weights()[0]
    b = train_head_model(library).model.get_layer("artist").get_weights()[0]
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
