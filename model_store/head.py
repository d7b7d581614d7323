"""The per-server classifier: a small Keras head on musicnn embeddings."""

from __future__ import annotations

import io
import json
import math
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from model_store.calibrate import log_softmax
from model_store.embed import patches_in, select, unit

HEAD_FILE = "head.npz"  # the head's weights for NumPy inference, beside model.keras
Progress = Callable[[int, int, float | None], None]  # epoch, of epochs, validation accuracy
CHUNK_EPOCHS = 10  # epochs per compiled training call (and per progress report)


@dataclass(frozen=True)
class SongEmbeddings:
    """One song's patch embeddings and its clips, with its artist as class label."""

    song_id: int
    artist: str
    patches: np.ndarray  # (n_patches, 400) embeddings from model_store.embed
    clips: tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class HeadConfig:
    """Hyper-parameters of the head; the defaults are the ones measured best on the dev set."""

    parts: tuple[str, ...] = ("penultimate", "mtt_penultimate")  # MSD + MTT musicnn
    level: str = "clip"  # "clip": one example per clip (mean of its patches); "patch": per patch
    scale: float = 10.0  # softmax temperature of the centroid-initialised (imprinted) layer
    dropout: float = 0.0
    l2: float = 0.0
    learning_rate: float = 1e-3
    batch_size: int = 128
    max_epochs: int = 200
    patience: int = 30  # epochs without training-loss improvement before stopping
    seed: int = 0


@dataclass(frozen=True)
class HeadWeights:
    """The trained head as plain arrays: unit-normalise, then a dense softmax (no Keras)."""

    kernel: np.ndarray  # (features, artists)
    bias: np.ndarray  # (artists,)

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """(rows, artists) probabilities of (rows, features) embeddings, as Keras computes."""
        return np.exp(log_softmax(unit(x) @ self.kernel + self.bias)).astype(np.float32)

    @classmethod
    def of(cls, model) -> HeadWeights:
        """The weights of a Keras head built by `build_model`."""
        kernel, bias = model.get_layer("artist").get_weights()
        return cls(np.asarray(kernel, np.float32), np.asarray(bias, np.float32))

    def save(self, path: Path) -> None:
        """Write to an .npz (no pickles)."""
        with open(path, "wb") as f:
            np.savez(f, kernel=self.kernel, bias=self.bias)

    @classmethod
    def load(cls, path: Path) -> HeadWeights:
        """Read an .npz written by `save`."""
        with np.load(path, allow_pickle=False) as z:
            return cls(z["kernel"].astype(np.float32), z["bias"].astype(np.float32))

    @classmethod
    def from_keras_file(cls, path: Path) -> HeadWeights:
        """Read a saved head's `.keras` file without Keras (zip + HDF5), for versions published
        before head.npz existed; ValueError when it is not a head made by `build_model`."""
        import h5py

        try:
            with zipfile.ZipFile(path) as z:
                config = json.loads(z.read("config.json"))
                layers = config["config"]["layers"]
                names = [layer["config"]["name"] for layer in layers]
                dense = [layer for layer in layers if layer["class_name"] == "Dense"]
                with h5py.File(io.BytesIO(z.read("model.weights.h5")), "r") as h5:
                    kernel, bias = (np.asarray(h5[f"layers/dense/vars/{i}"]) for i in (0, 1))
        except (OSError, KeyError, ValueError, zipfile.BadZipFile) as err:
            raise ValueError(f"{path} is not a readable head model: {err}") from None
        if names[:2] != ["embedding", "norm"] or len(dense) != 1:
            raise ValueError(f"{path} is not a head made by build_model (layers {names})")
        if dense[0]["config"].get("activation") != "softmax" or kernel.shape[1:] != bias.shape:
            raise ValueError(f"{path}: unexpected head output layer")
        return cls(kernel.astype(np.float32), bias.astype(np.float32))


def examples(song: SongEmbeddings, config: HeadConfig) -> tuple[np.ndarray, np.ndarray]:
    """(features, group) rows of one song: group is the clip index each row belongs to."""
    feats = select(song.patches, config.parts)
    rows, groups = [], []
    for i, (start, end) in enumerate(song.clips):
        idx = patches_in(start, end, len(feats))
        if len(idx) == 0:
            continue
        if config.level == "patch":
            rows.append(feats[idx])
            groups.extend([i] * len(idx))
        else:
            rows.append(feats[idx].mean(axis=0, keepdims=True))
            groups.append(i)
    if not rows:
        return np.zeros((0, feats.shape[1]), np.float32), np.zeros(0, int)
    return np.concatenate(rows).astype(np.float32), np.asarray(groups)


def stack(
    songs: Sequence[SongEmbeddings], artists: Sequence[str], config: HeadConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Training matrix and integer labels for a list of songs."""
    index = {a: i for i, a in enumerate(artists)}
    xs, ys = [], []
    for song in songs:
        x, _ = examples(song, config)
        xs.append(x)
        ys.append(np.full(len(x), index[song.artist]))
    return np.concatenate(xs), np.concatenate(ys)


def build_model(input_shape: tuple[int, ...], n_classes: int, config: HeadConfig | None = None):
    """L2 normalisation -> dropout -> dense softmax over the artists."""
    import keras
    from keras import layers

    config = config or HeadConfig()
    reg = keras.regularizers.L2(config.l2) if config.l2 else None
    inputs = keras.Input(shape=input_shape, name="embedding")
    x = layers.UnitNormalization(name="norm")(inputs)
    x = layers.Dropout(config.dropout)(x)
    outputs = layers.Dense(n_classes, activation="softmax", kernel_regularizer=reg, name="artist")
    return keras.Model(inputs, outputs(x), name="mimi_head")


def imprint(model, x: np.ndarray, y: np.ndarray, scale: float) -> None:
    """Start the output layer at the artists' mean directions (a nearest-centroid classifier)."""
    z = unit(x)
    n = model.get_layer("artist").units
    centroids = np.zeros((n, z.shape[1]), np.float32)
    for k in range(n):
        if (y == k).any():
            centroids[k] = z[y == k].mean(axis=0)
    model.get_layer("artist").set_weights([scale * unit(centroids).T, np.zeros(n, np.float32)])


def class_weights(labels: np.ndarray, n_classes: int) -> dict[int, float]:
    """Inverse-frequency weights so an artist with 30 songs does not drown one with 3."""
    counts = np.bincount(labels, minlength=n_classes).astype(float)
    return {i: (len(labels) / (n_classes * c) if c else 0.0) for i, c in enumerate(counts)}


def fit(
    train: Sequence[SongEmbeddings],
    val: Sequence[SongEmbeddings],
    artists: Sequence[str],
    config: HeadConfig,
    progress: Progress | None = None,
):
    """Train a head on `train`; `val` songs are scored as it goes, for progress reports only.

    Epochs run in chunks of CHUNK_EPOCHS inside one compiled loop (10x faster than plain
    `fit` on small data); early stopping watches the training loss per chunk and restores the
    best weights.
    """
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(config.seed)
    x, y = stack(train, artists, config)
    weights = class_weights(y, len(artists))
    w = np.array([weights[int(k)] for k in y], np.float32)
    model = build_model(x.shape[1:], len(artists), config)
    imprint(model, x, y, config.scale)
    steps = math.ceil(len(x) / config.batch_size)
    chunks = max(1, math.ceil(config.max_epochs / CHUNK_EPOCHS))
    model.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        steps_per_execution=steps * CHUNK_EPOCHS,
    )
    data = (
        tf.data.Dataset.from_tensor_slices((x, y, w))
        .shuffle(len(x), seed=config.seed, reshuffle_each_iteration=True)
        .batch(config.batch_size)
        .repeat()
    )
    callbacks = [
        keras.callbacks.EarlyStopping(
            monitor="loss",
            patience=max(1, config.patience // CHUNK_EPOCHS),
            min_delta=1e-4,
            restore_best_weights=True,
        )
    ]
    if progress is not None:
        callbacks.append(progress_callback(progress, chunks * CHUNK_EPOCHS))
    history = model.fit(
        data,
        epochs=chunks,
        steps_per_epoch=steps * CHUNK_EPOCHS,
        validation_data=stack(val, artists, config) if val else None,
        shuffle=False,  # the dataset reshuffles itself every pass
        verbose=0,
        callbacks=callbacks,
    )
    epochs = len(history.history["loss"]) * CHUNK_EPOCHS
    return model, {"epochs": epochs, "examples": len(x)}


def progress_callback(progress: Progress, total: int):
    """A Keras callback reporting (epoch, total, val accuracy) after each chunk of epochs."""
    import keras

    class ProgressCallback(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            acc = (logs or {}).get("val_accuracy")
            progress((epoch + 1) * CHUNK_EPOCHS, total, None if acc is None else float(acc))

    return ProgressCallback()


def song_log_probs(
    model, songs: Sequence[SongEmbeddings], config: HeadConfig
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per song: (per-clip mean log-probabilities (n_clips, n_classes), song mean log-prob)."""
    xs = [examples(s, config) for s in songs]
    sizes = [len(x) for x, _ in xs]
    allx = np.concatenate([x for x, _ in xs]) if xs else np.zeros((0, 1), np.float32)
    probs = model.predict(allx, batch_size=1024, verbose=0) if len(allx) else allx
    logp = np.log(np.clip(probs, 1e-7, 1.0))
    out, offset = [], 0
    for (_, groups), n in zip(xs, sizes, strict=True):
        part, offset = logp[offset : offset + n], offset + n
        clips = np.stack([part[groups == g].mean(axis=0) for g in np.unique(groups)])
        out.append((clips, clips.mean(axis=0)))
    return out


def n_val_songs(n_songs: int, fraction: float) -> int:
    """How many of an artist's songs to hold out: none below 2 songs, else at least 1."""
    return 0 if n_songs < 2 else max(1, min(n_songs - 1, math.floor(n_songs * fraction + 0.5)))
