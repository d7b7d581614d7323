"""Evaluation: song-level splits never leak, few-shot splits are exact, metrics are right."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pytest

from model_store.evaluate import (
    auroc,
    cross_validate,
    fewshot_splits,
    kfold_splits,
    macro_f1,
    open_set_validate,
    score,
)

ARTISTS = ["a"] * 7 + ["b"] * 3 + ["c"] * 5


def test_kfold_tests_every_song_once_and_never_on_both_sides() -> None:
    """Each song is tested in exactly one fold and never trained on in that fold."""
    splits = kfold_splits(ARTISTS, folds=3, seed=1)
    tested = sorted(i for s in splits for i in s.test)
    assert tested == list(range(len(ARTISTS)))
    for split in splits:
        assert not set(split.train) & set(split.test)
        assert sorted(split.train + split.test) == list(range(len(ARTISTS)))
        assert {ARTISTS[i] for i in split.test} == {"a", "b", "c"}  # stratified per artist


def test_fewshot_takes_exactly_n_training_songs_per_artist() -> None:
    """Few-shot splits train on N songs of every artist and test on all the others."""
    for split in fewshot_splits(ARTISTS, train_songs=2, repeats=4, seed=3):
        assert sorted(ARTISTS[i] for i in split.train) == ["a", "a", "b", "b", "c", "c"]
        assert len(split.test) == len(ARTISTS) - 6
    with pytest.raises(ValueError, match="b"):
        fewshot_splits(ARTISTS, train_songs=3, repeats=1)


def test_macro_f1_and_song_vote() -> None:
    """Song accuracy uses the mean log-probability over clips; macro-F1 matches a hand count."""
    confident_a = np.log(np.array([[0.9, 0.1], [0.9, 0.1]]))
    mixed = np.log(np.array([[0.6, 0.4], [0.1, 0.9], [0.2, 0.8]]))  # 1 of 3 clips says a
    result = score([0, 0], [confident_a, mixed], 2)
    assert result["clip_accuracy"] == pytest.approx(3 / 5)
    assert result["song_accuracy"] == pytest.approx(0.5)
    assert result["confusion"] == [[1, 1], [0, 0]]
    assert macro_f1(np.array([[3, 1], [1, 3]])) == pytest.approx(0.75)


def test_cross_validate_refuses_leaky_methods_nothing() -> None:
    """cross_validate hands the method only training songs and scores the held-out ones."""
    seen: list[set[int]] = []

    def method(train, artists):
        seen.append(set(train))
        return lambda test: [np.log(np.eye(3)[[artists.index(ARTISTS[t])]] + 1e-9) for t in test]

    result = cross_validate(list(range(len(ARTISTS))), ARTISTS, kfold_splits(ARTISTS, 5), method)
    assert result["song_accuracy"] == 1.0 and result["folds"] == 5
    assert all(len(s) < len(ARTISTS) for s in seen)


def test_auroc_counts_pairs_and_ties() -> None:
    """AUROC is the share of (known, unknown) pairs ranked right, ties counting half."""
    assert auroc([0.9, 0.8], [0.1, 0.2]) == 1.0
    assert auroc([0.1], [0.9]) == 0.0
    assert auroc([0.5, 0.9], [0.5]) == pytest.approx(0.75)
    assert auroc([], [0.3]) is None


class OracleScorer:
    """A method whose predictor names the right artist and scores every taught artist's song
    0.9, any other 0.1 (with a threshold of 0.5); it records what it was trained on."""

    trained: ClassVar[list[set[str]]] = []

    def __init__(self, train, artists) -> None:
        self.artists = list(artists)
        self.trained.append({ARTISTS[t] for t in train})
        self.threshold = 0.5

    def __call__(self, test) -> list[np.ndarray]:
        """Per-clip log-probs: a taught artist's songs are named; others get the first artist."""
        rows = [self.artists.index(ARTISTS[t]) if ARTISTS[t] in self.artists else 0 for t in test]
        return [np.log(np.eye(len(self.artists))[[r]] + 1e-9) for r in rows]

    def known_scores(self, test, clips) -> list[float]:
        """0.9 for taught artists' songs, 0.1 for the others."""
        return [0.9 if ARTISTS[t] in self.artists else 0.1 for t in test]


def test_leave_one_artist_out_never_trains_on_the_unknown_artist() -> None:
    """Each artist in turn is left out of training and plays the unknown; a perfect scorer gets
    AUROC 1, rejects every unknown song and keeps every correct answer."""
    OracleScorer.trained = []
    songs = list(range(len(ARTISTS)))
    splits = kfold_splits(ARTISTS, 3, seed=0)
    result = open_set_validate(songs, ARTISTS, splits, OracleScorer)
    assert result["trainings"] == 3 * 3 and len(OracleScorer.trained) == 9
    assert all(len(t) == 2 for t in OracleScorer.trained)
    assert result["unknown_songs"] == 3 * len(ARTISTS)  # every song plays unknown once per split
    assert (result["auroc"], result["unknown_rejected"], result["known_kept"]) == (1.0, 1.0, 1.0)
    assert result["protocol"] == "leave one artist out" and result["threshold"] == 0.5


def test_a_plain_classifier_is_judged_by_its_top_probability() -> None:
    """A predictor without an open-set score is judged by the top probability against 0.5:
    a confident classifier keeps every answer and rejects no unknown song."""

    def method(train, artists):
        return OracleScorer.__call__.__get__(OracleScorer(train, artists))

    unknown = [i for i, a in enumerate(ARTISTS) if a == "c"]
    known = [i for i, a in enumerate(ARTISTS) if a != "c"]
    splits = kfold_splits([ARTISTS[i] for i in known], 2, seed=0)
    result = open_set_validate(known, [ARTISTS[i] for i in known], splits, method, unknown)
    assert result["protocol"] == "unknown folder" and result["threshold"] == 0.5
    assert result["unknown_rejected"] == 0.0 and result["known_kept"] == 1.0
