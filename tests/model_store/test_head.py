"""The per-server head: grouping patches into clips, balancing, and learning separable artists."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("keras")

from model_store.embed import PARTS, PATCH_SECONDS, patches_in, select
from model_store.head import (
    CHUNK_EPOCHS,
    HeadConfig,
    HeadWeights,
    SongEmbeddings,
    class_weights,
    examples,
    fit,
    n_val_songs,
    song_log_probs,
)

WIDTH = sum(PARTS.values())


def fake_song(song_id: int, artist: int, rng: np.random.Generator, n: int = 12) -> SongEmbeddings:
    """A song whose patch embeddings cluster around its artist's centre."""
    centre = np.zeros(WIDTH, np.float32)
    centre[artist * 10 : artist * 10 + 10] = 3.0
    patches = centre + rng.standard_normal((n, WIDTH)).astype(np.float32)
    clips = tuple((k * 10.0, k * 10.0 + 10.0) for k in range(int(n * PATCH_SECONDS // 10)))
    return SongEmbeddings(song_id, f"artist{artist}", patches.astype(np.float16), clips)


def test_patches_group_into_their_clips() -> None:
    """Clip-level rows average the patches centred in each clip; patch level keeps them all."""
    rng = np.random.default_rng(0)
    song = fake_song(1, 0, rng)
    x, groups = examples(song, HeadConfig(level="clip"))
    assert x.shape == (len(song.clips), WIDTH) and list(groups) == [0, 1, 2]
    first = select(song.patches, tuple(PARTS))[patches_in(0.0, 10.0, len(song.patches))].mean(
        axis=0
    )
    np.testing.assert_allclose(x[0], first, rtol=1e-6)
    xp, gp = examples(song, HeadConfig(level="patch"))
    assert len(xp) == sum(len(patches_in(s, e, 12)) for s, e in song.clips) and gp[0] == 0


def test_class_weights_balance_artists() -> None:
    """An artist with 10x the examples gets 1/10 the weight."""
    w = class_weights(np.array([0] * 30 + [1] * 3), 2)
    assert w[0] * 30 == pytest.approx(w[1] * 3)


@pytest.mark.parametrize(("songs", "held"), [(1, 0), (2, 1), (5, 1), (10, 2), (30, 6)])
def test_validation_songs_per_artist(songs: int, held: int) -> None:
    """Artists with one song are not held out; others keep at least one training song."""
    assert n_val_songs(songs, 0.2) == held


def test_head_learns_separable_artists() -> None:
    """A head trained on three artists' songs names held-out songs correctly, with progress."""
    rng = np.random.default_rng(1)
    train = [fake_song(i, i % 3, rng) for i in range(9)]
    val = [fake_song(100 + i, i, rng) for i in range(3)]
    test = [fake_song(200 + i, i, rng) for i in range(3)]
    artists = ["artist0", "artist1", "artist2"]
    epochs: list[int] = []
    model, info = fit(
        train,
        val,
        artists,
        HeadConfig(max_epochs=40, patience=5),
        progress=lambda e, n, acc: epochs.append(e),
    )
    assert epochs[0] == CHUNK_EPOCHS and info["epochs"] == epochs[-1] <= 40
    predicted = [int(song.argmax()) for _, song in song_log_probs(model, test, HeadConfig())]
    assert predicted == [0, 1, 2]


def test_numpy_head_computes_what_keras_computes(tmp_path) -> None:
    """HeadWeights (NumPy) gives the Keras head's probabilities, from the model or its file."""
    import keras

    rng = np.random.default_rng(2)
    train = [fake_song(i, i % 3, rng) for i in range(6)]
    model, _ = fit(train, [], [f"artist{i}" for i in range(3)], HeadConfig(max_epochs=10))
    x = rng.normal(size=(20, 400)).astype(np.float32)
    want = model.predict(x, verbose=0)
    head = HeadWeights.of(model)
    np.testing.assert_allclose(head.probabilities(x), want, atol=1e-6)
    model.save(tmp_path / "model.keras")
    from_file = HeadWeights.from_keras_file(tmp_path / "model.keras")
    np.testing.assert_array_equal(from_file.kernel, head.kernel)
    head.save(tmp_path / "head.npz")
    np.testing.assert_array_equal(HeadWeights.load(tmp_path / "head.npz").bias, head.bias)
    other = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    other.save(tmp_path / "other.keras")
    (tmp_path / "junk.keras").write_bytes(b"PK not really")
    for bad in ("other.keras", "junk.keras", "missing.keras"):
        with pytest.raises(ValueError):
            HeadWeights.from_keras_file(tmp_path / bad)
