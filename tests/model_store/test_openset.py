"""The open set: best-match similarity to taught songs, the threshold, and the verdict."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from model_store.head import HeadConfig, SongEmbeddings
from model_store.openset import (
    KEEP_KNOWN,
    PRIOR_THRESHOLD,
    Reference,
    artist_similarity,
    best_matches,
    build_reference,
    fit_threshold,
    judge,
    known_scores,
)

WIDTH = 400
PARTS = HeadConfig().parts


def song(song_id: int, artist: str, centre: np.ndarray, rng: np.random.Generator) -> SongEmbeddings:
    """Eight patches scattered around a centre, one 10 s clip."""
    patches = centre + 0.3 * rng.standard_normal((8, WIDTH))
    return SongEmbeddings(song_id, artist, patches.astype(np.float16), ((0.0, 10.0),))


@pytest.fixture
def songs() -> list[SongEmbeddings]:
    """Two songs each of artists A and B, around two different directions."""
    rng = np.random.default_rng(0)
    centres = {a: rng.standard_normal(WIDTH) for a in "AB"}
    return [song(i, a, centres[a], rng) for i, a in enumerate("AABB")]


def test_reference_round_trips_without_pickles(songs, tmp_path: Path) -> None:
    """save/load keep rows (as float16), owners, keys and artists; nothing needs pickle."""
    ref = build_reference(songs, PARTS, ["k0", "k1", "k2", "k3"])
    ref.save(tmp_path / "r.npz")
    back = Reference.load(tmp_path / "r.npz")
    assert back.keys == ("k0", "k1", "k2", "k3") and back.artists == ("A", "A", "B", "B")
    np.testing.assert_array_equal(back.song_of_row, ref.song_of_row)
    np.testing.assert_allclose(back.patches, ref.patches, atol=1e-3)
    np.testing.assert_allclose(np.linalg.norm(back.patches, axis=1), 1.0, atol=1e-3)


def test_a_songs_own_patches_match_it_perfectly(songs) -> None:
    """Querying with a taught song's patches gives similarity 1 to that song, less to others."""
    ref = build_reference(songs, PARTS, ["k0", "k1", "k2", "k3"])
    m = best_matches(ref, songs[2].patches.astype(np.float32))
    assert m.shape == (8, 4) and np.allclose(m[:, 2], 1.0, atol=1e-3)
    assert artist_similarity(m, ref.artists, ref.keys, "B") == pytest.approx(1.0, abs=1e-3)
    assert artist_similarity(m, ref.artists, ref.keys, "A") < 0.5


def test_forgotten_songs_leave_the_similarity(songs) -> None:
    """Without the matching song's key among the live ones, only the artist's other song counts;
    with none of its songs live the similarity is the floor (-1)."""
    ref = build_reference(songs, PARTS, ["k0", "k1", "k2", "k3"])
    m = best_matches(ref, songs[2].patches.astype(np.float32))
    rest = artist_similarity(m, ref.artists, ref.keys, "B", frozenset({"k0", "k1", "k3"}))
    assert 0.3 < rest < 0.99
    assert artist_similarity(m, ref.artists, ref.keys, "B", frozenset({"k0"})) == -1.0


def test_threshold_keeps_most_correct_answers_and_shrinks_to_the_prior() -> None:
    """Many held-out scores: the (1 - KEEP_KNOWN) quantile; none: the prior; few: between."""
    scores = np.linspace(0.5, 1.0, 1000)
    assert fit_threshold(scores, prior_songs=0) == pytest.approx(
        np.quantile(scores, 1 - KEEP_KNOWN), abs=1e-3
    )
    assert fit_threshold([]) == PRIOR_THRESHOLD
    few = fit_threshold([0.95, 0.96])
    assert PRIOR_THRESHOLD < few < 0.95


def test_known_song_scores_above_a_stranger_and_judge_says_so(songs) -> None:
    """A new song of A scores as known; a song of an untaught direction scores below the
    threshold fitted on A's and B's own songs, and the verdict calls it unknown."""
    rng = np.random.default_rng(1)
    ref = build_reference(songs, PARTS, ["k0", "k1", "k2", "k3"])
    new_a = song(9, "A", songs[0].patches.astype(np.float32).mean(axis=0), rng)
    odd = song(10, "?", rng.standard_normal(WIDTH), rng)
    known, strange = known_scores(ref, [new_a, odd], ["A", "A"], PARTS)
    assert known > strange
    threshold = fit_threshold([known], prior=(known + strange) / 2, prior_songs=1)
    live = frozenset(ref.keys)
    m = best_matches(ref, odd.patches.astype(np.float32))
    verdict = judge(m, ref.artists, ref.keys, "A", live, {"threshold": threshold})
    assert verdict["unknown"] is True and verdict["known_score"] == pytest.approx(strange, abs=1e-3)
