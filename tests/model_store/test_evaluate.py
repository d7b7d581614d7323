"""Evaluation: song-level splits never leak, few-shot splits are exact, metrics are right."""

from __future__ import annotations

import numpy as np
import pytest

from model_store.evaluate import cross_validate, fewshot_splits, kfold_splits, macro_f1, score

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
