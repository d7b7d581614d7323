"""The baselines: clip extraction, mel statistics + logistic regression, the from-scratch CNN."""

from __future__ import annotations

import time

import numpy as np
import pytest

pytest.importorskip("keras")

from model_store.baselines import (
    CLIP_FRAMES,
    MelSong,
    ScratchConfig,
    build_scratch_model,
    clip_images,
    melstats_features,
    melstats_method,
    scratch_method,
    train_scratch,
)
from model_store.features import N_MELS

ARTISTS = ("bass", "mid", "treble")
BANDS = {"bass": (5, 20), "mid": (40, 55), "treble": (75, 90)}  # where each artist's energy sits
BEATS = {"bass": 1.0, "mid": 2.5, "treble": 5.0}  # modulation rate of that energy, Hz


def fake_song(song_id: int, artist: str, rng: np.random.Generator, clips: int = 3) -> MelSong:
    """A song whose energy sits in its artist's mel bands, pulsing at its artist's rate."""
    frames = clips * CLIP_FRAMES
    mel = rng.random((frames, N_MELS)).astype(np.float32)
    t = np.arange(frames) / 62.5
    lo, hi = BANDS[artist]
    pulse = 0.5 + 0.5 * np.sin(2 * np.pi * BEATS[artist] * t + rng.uniform(0, 2 * np.pi))
    mel[:, lo:hi] += (2.0 + rng.uniform(0, 1)) * pulse[:, None]
    spans = tuple((k * 10.0, k * 10.0 + 10.0) for k in range(clips))
    return MelSong(song_id, artist, mel.astype(np.float16), spans)


def dataset(per_artist: int, seed: int, clips: int = 3) -> list[MelSong]:
    """`per_artist` songs of each artist, interleaved."""
    rng = np.random.default_rng(seed)
    return [
        fake_song(i * len(ARTISTS) + k, a, rng, clips)
        for i in range(per_artist)
        for k, a in enumerate(ARTISTS)
    ]


def song_accuracy(songs: list[MelSong], logps: list[np.ndarray]) -> float:
    """Fraction of songs whose mean clip log-probability names their artist."""
    hits = [
        ARTISTS[int(lp.mean(axis=0).argmax())] == s.artist
        for s, lp in zip(songs, logps, strict=True)
    ]
    return float(np.mean(hits))


@pytest.fixture(scope="module")
def scratch_run() -> tuple[list[MelSong], list[np.ndarray]]:
    """The scratch CNN trained once on a tiny budget; its predictions on held-out songs."""
    train, test = dataset(4, seed=1), dataset(2, seed=2)
    config = ScratchConfig(max_epochs=8, max_seconds=20, batch_size=8, patience=8)
    predictor = scratch_method(config)(train, ARTISTS)
    return test, predictor(test)


def test_clip_images_cut_the_right_frames() -> None:
    """Clip i starts at round(start_s * 62.5) frames and is zero-padded past the song's end."""
    rng = np.random.default_rng(0)
    mel = rng.random((650, N_MELS)).astype(np.float16)
    song = MelSong(1, "x", mel, ((1.0, 11.0), (0.0, 10.0)))
    images = clip_images(song)
    assert images.shape == (2, CLIP_FRAMES, N_MELS, 1) and images.dtype == np.float32
    np.testing.assert_array_equal(images[0, : 650 - 62, :, 0], mel[62:].astype(np.float32))
    assert not images[0, 650 - 62 :].any()
    np.testing.assert_array_equal(images[1, :, :, 0], mel[:CLIP_FRAMES].astype(np.float32))


def test_melstats_features_are_band_mean_and_std() -> None:
    """Each clip's 192 features are its 96 bands' means over time, then their deviations."""
    rng = np.random.default_rng(0)
    mel = rng.random((1300, N_MELS)).astype(np.float32)
    song = MelSong(1, "x", mel, ((0.0, 10.0), (10.0, 20.0)))
    feats = melstats_features(song)
    assert feats.shape == (2, 2 * N_MELS)
    second = mel[CLIP_FRAMES : 2 * CLIP_FRAMES]
    np.testing.assert_allclose(feats[1, :N_MELS], second.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(feats[1, N_MELS:], second.std(axis=0), rtol=1e-4)


def test_melstats_learns_separable_artists() -> None:
    """Logistic regression on mel statistics names every held-out song and nearly every clip."""
    train, test = dataset(3, seed=3), dataset(2, seed=4)
    logps = melstats_method(epochs=100)(train, ARTISTS)(test)
    assert song_accuracy(test, logps) == 1.0
    clips = [
        (ARTISTS[i] == s.artist)
        for s, lp in zip(test, logps, strict=True)
        for i in lp.argmax(axis=1)
    ]
    assert np.mean(clips) >= 0.9


def test_predictors_give_clip_log_probabilities(scratch_run) -> None:
    """Both predictors give one normalised log-probability row per clip, none for clipless songs."""
    train = dataset(2, seed=5)
    test = [*dataset(1, seed=6, clips=2), MelSong(99, "bass", np.zeros((10, N_MELS)), ())]
    outputs = {"melstats": melstats_method(epochs=5)(train, ARTISTS)(test)}
    outputs["scratch"] = scratch_run[1]
    for name, logps in outputs.items():
        songs = test if name == "melstats" else scratch_run[0]
        assert len(logps) == len(songs), name
        for song, lp in zip(songs, logps, strict=True):
            assert lp.shape == (len(song.clips), len(ARTISTS)), name
            if len(lp):
                assert np.all(lp <= 0)
                np.testing.assert_allclose(np.logaddexp.reduce(lp, axis=1), 0.0, atol=1e-6)


def test_scratch_cnn_learns_above_chance(scratch_run) -> None:
    """On a tiny budget the from-scratch CNN still names held-out songs well above chance (1/3)."""
    test, logps = scratch_run
    assert song_accuracy(test, logps) >= 0.8


def test_scratch_model_shape_and_size() -> None:
    """The scratch CNN maps a 10-s clip image to a softmax over 5 artists with < 300k weights."""
    model = build_scratch_model((CLIP_FRAMES, N_MELS, 1), 5)
    assert model.output_shape == (None, 5)
    assert model.layers[-1].activation.__name__ == "softmax"
    assert model.count_params() < 300_000


def test_time_budget_stops_training() -> None:
    """A 1-second budget ends a 1000-epoch run after a few epochs at most."""
    songs = dataset(3, seed=7, clips=2)
    t0 = time.perf_counter()
    _, info = train_scratch(songs, ARTISTS, ScratchConfig(max_epochs=1000, max_seconds=1.0))
    assert info["budget_exceeded"] and info["epochs"] < 1000
    assert info["validation_songs"] == len(ARTISTS)
    assert time.perf_counter() - t0 < 30
