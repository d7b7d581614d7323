"""The per-server classifier: a small Keras head on musicnn embeddings."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from model_store.embed import patches_in, select

Progress = Callable[[int, int, float | None], None]  # epoch, of epochs, validation accuracy


@dataclass(frozen=True)
class SongEmbeddings:
    """One song's patch embeddings and its clips, with its artist as class label."""

    song_id: int
    artist: str
    patches: np.ndarray  # (n_patches, 1706) full embeddings from model_store.embed
    clips: tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class HeadConfig:
    """Hyper-parameters of the head; the defaults are the ones measured best on the dev set."""

    parts: tuple[str, ...] = ("penultimate",)
    level: str = "clip"  # "clip": one example per clip (mean of its patches); "patch": per patch
    hidden: int = 0  # 0: a linear (logistic-regression) head
    dropout: float = 0.3
    l2: float = 1e-3
    learning_rate: float = 3e-3
    batch_size: int = 128
    max_epochs: int = 300
    patience: int = 30
    seed: int = 0
    extra: dict = field(default_factory=dict)


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
    """Normalisation -> dropout -> [dense ReLU -> dropout] -> softmax over the artists."""
    import keras
    from keras import layers

    config = config or HeadConfig()
    reg = keras.regularizers.L2(config.l2)
    inputs = keras.Input(shape=input_shape, name="embedding")
    x = layers.Normalization(name="norm")(inputs)
    x = layers.Dropout(config.dropout)(x)
    if config.hidden:
        x = layers.Dense(config.hidden, activation="relu", kernel_regularizer=reg)(x)
        x = layers.Dropout(config.dropout)(x)
    outputs = layers.Dense(n_classes, activation="softmax", kernel_regularizer=reg, name="artist")(
        x
    )
    return keras.Model(inputs, outputs, name="mimi_head")


def class_weights(labels: np.ndarray, n_classes: int) -> dict[int, float]:
    """Inverse-frequency weights so an artist with 30 songs does not drown one with 3."""
    counts = np.bincount(labels, minlength=n_classes).astype(float)
    return {i: (len(labels) / (n_classes * c) if c else 0.0) for i, c in enumerate(counts)}


def fit(
    train: Sequence[SongEmbeddings], val: Sequence[SongEmbeddings], artists: Sequence[str],
    config: HeadConfig, progress: Progress | None = None,
):  # fmt: skip
    """Train a head; early-stop on held-out songs' loss (or training loss without any)."""
    import keras

    keras.utils.set_random_seed(config.seed)
    x, y = stack(train, artists, config)
    model = build_model(x.shape[1:], len(artists), config)
    model.get_layer("norm").adapt(x)
    model.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    validation = stack(val, artists, config) if val else None
    monitor = "val_loss" if validation else "loss"
    callbacks = [
        keras.callbacks.EarlyStopping(
            monitor=monitor, patience=config.patience, restore_best_weights=True
        )
    ]
    if progress is not None:
        callbacks.append(progress_callback(progress, config.max_epochs))
    history = model.fit(
        x, y, validation_data=validation, epochs=config.max_epochs,
        batch_size=config.batch_size, class_weight=class_weights(y, len(artists)),
        shuffle=True, verbose=0, callbacks=callbacks,
    )  # fmt: skip
    return model, {"epochs": len(history.history["loss"]), "examples": len(x)}


def progress_callback(progress: Progress, total: int):
    """A Keras callback reporting (epoch, total, val accuracy) after each epoch."""
    import keras

    class ProgressCallback(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            acc = (logs or {}).get("val_accuracy")
            progress(epoch + 1, total, None if acc is None else float(acc))

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


def softmax(logp: np.ndarray) -> np.ndarray:
    """Probabilities from (unnormalised) log-probabilities along the last axis."""
    z = np.exp(logp - logp.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def n_val_songs(n_songs: int, fraction: float) -> int:
    """How many of an artist's songs to hold out: none below 2 songs, else at least 1."""
    return 0 if n_songs < 2 else max(1, min(n_songs - 1, math.floor(n_songs * fraction + 0.5)))
