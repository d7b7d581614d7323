"""Baselines for our model: the original from-scratch CNN recipe, and mel-band statistics."""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

import numpy as np

from model_store.evaluate import Method, Predictor
from model_store.features import (
    DEFAULT_CLIP_SECONDS,
    HOP_LENGTH,
    N_MELS,
    SAMPLE_RATE,
    frames_for,
)
from model_store.head import class_weights

FRAMES_PER_SECOND = SAMPLE_RATE / HOP_LENGTH  # 62.5
CLIP_FRAMES = frames_for(DEFAULT_CLIP_SECONDS)  # 625: the scratch CNN's input height
N_STATS = 2 * N_MELS  # per-band mean and standard deviation


@dataclass(frozen=True)
class MelSong:
    """One song's whole log-mel spectrogram and its clips, with its artist as class label."""

    song_id: int
    artist: str
    mel: np.ndarray  # (frames, N_MELS) log-mel of the whole song, float16 or float32
    clips: tuple[tuple[float, float], ...]  # (start_s, end_s) of each clip


@dataclass(frozen=True)
class ScratchConfig:
    """Hyper-parameters of the from-scratch CNN (the original recipe) and its training budget."""

    learning_rate: float = 1e-3
    batch_size: int = 32
    max_epochs: int = 60
    epochs_without_validation: int = 20  # fixed epoch count when no songs can be held out
    patience: int = 8
    max_seconds: float = 200.0  # wall-clock training budget
    dropout: float = 0.25  # after each conv block; the dense layer uses 0.5
    seed: int = 0


def clip_span(song: MelSong, start_s: float, end_s: float) -> np.ndarray:
    """The (frames, N_MELS) log-mel frames of one clip, as far as the song reaches."""
    start = max(0, round(start_s * FRAMES_PER_SECOND))
    return song.mel[start : start + frames_for(end_s - start_s)]


def _fit_length(span: np.ndarray, frames: int) -> np.ndarray:
    """Crop or zero-pad (silence) a clip's frames to exactly `frames` rows."""
    if len(span) >= frames:
        return span[:frames]
    pad = np.zeros((frames - len(span), span.shape[1]), span.dtype)
    return np.concatenate([span, pad])


def clip_images(song: MelSong, frames: int = CLIP_FRAMES, dtype=np.float32) -> np.ndarray:
    """The song's clips as CNN input images (n_clips, frames, N_MELS, 1)."""
    images = np.zeros((len(song.clips), frames, N_MELS, 1), dtype)
    for i, (start_s, end_s) in enumerate(song.clips):
        images[i, :, :, 0] = _fit_length(clip_span(song, start_s, end_s), frames)
    return images


def _half_images(song: MelSong) -> np.ndarray:
    """Clip images in float16: half the memory; the model computes in float32."""
    return clip_images(song, dtype=np.float16)


def melstats_features(song: MelSong) -> np.ndarray:
    """Per clip, the mean and standard deviation over time of each mel band (n_clips, 192)."""
    feats = np.zeros((len(song.clips), N_STATS), np.float32)
    for i, (start_s, end_s) in enumerate(song.clips):
        span = clip_span(song, start_s, end_s).astype(np.float32)
        if len(span):
            feats[i, :N_MELS] = span.mean(axis=0)
            feats[i, N_MELS:] = span.std(axis=0)
    return feats


def _stack(
    songs: Sequence[MelSong], artists: Sequence[str], featurise
) -> tuple[np.ndarray, np.ndarray]:
    """Examples of all clips of `songs` and their integer artist labels."""
    index = {a: i for i, a in enumerate(artists)}
    xs = [featurise(s) for s in songs]
    ys = [np.full(len(x), index[s.artist]) for s, x in zip(songs, xs, strict=True)]
    return np.concatenate(xs), np.concatenate(ys)


def _log_probs(probs: np.ndarray) -> np.ndarray:
    """Normalised log-probabilities from softmax outputs, floored to stay finite."""
    p = np.clip(probs.astype(np.float64), 1e-7, 1.0)
    return np.log(p / p.sum(axis=-1, keepdims=True))


def softmax_predictor(model, featurise, n_classes: int, batch_size: int) -> Predictor:
    """A predictor giving, per test song, per-clip log-probabilities from a softmax model."""

    def predict(songs: Sequence[MelSong]) -> list[np.ndarray]:
        xs = [featurise(s) for s in songs]
        sizes = np.cumsum([0] + [len(x) for x in xs])
        if sizes[-1] == 0:
            return [np.zeros((0, n_classes)) for _ in songs]
        probs = model.predict(np.concatenate(xs), batch_size=batch_size, verbose=0)
        logp = _log_probs(probs)
        return [logp[a:b] for a, b in pairwise(sizes)]

    return predict


def build_scratch_model(
    input_shape: tuple[int, ...], n_classes: int, config: ScratchConfig | None = None
):
    """Small VGG-ish CNN on a log-mel clip image: 4 conv blocks -> time mean -> dense -> softmax."""
    import keras
    from keras import layers

    config = config or ScratchConfig()
    inputs = keras.Input(shape=input_shape, name="mel")
    # Momentum 0.9: the moving statistics settle within the few steps a small server allows.
    x = layers.BatchNormalization(momentum=0.9, name="input_norm")(inputs)
    for filters, pool in ((16, 3), (32, 3), (64, 2), (64, 2)):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization(momentum=0.9)(x)
        x = layers.Activation("relu")(x)
        x = layers.MaxPooling2D(pool)(x)
        x = layers.Dropout(config.dropout)(x)
    # Average over time only: invariant to when a sound occurs, not to its pitch band.
    x = layers.AveragePooling2D((x.shape[1], 1), name="time_mean")(x)
    x = layers.Flatten()(x)
    x = layers.Dense(64, activation="relu")(x)
    x = layers.Dropout(0.5)(x)
    outputs = layers.Dense(n_classes, activation="softmax", name="artist")(x)
    return keras.Model(inputs, outputs, name="mimi_scratch")


def time_budget(max_seconds: float):
    """A Keras callback stopping training once `max_seconds` of wall-clock time have passed."""
    import keras

    class TimeBudget(keras.callbacks.Callback):
        def on_train_begin(self, logs: dict | None = None) -> None:
            self.started = time.perf_counter()
            self.exceeded = False

        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            if time.perf_counter() - self.started > max_seconds:
                self.exceeded = True
                self.model.stop_training = True

    return TimeBudget()


def split_validation(
    songs: Sequence[MelSong], artists: Sequence[str], seed: int = 0
) -> tuple[list[MelSong], list[MelSong]]:
    """Hold out one song per artist when every artist has at least 3 songs with clips, else none."""
    by_artist: dict[str, list[MelSong]] = {a: [] for a in artists}
    for song in songs:
        if song.clips:
            by_artist[song.artist].append(song)
    if any(len(s) < 3 for s in by_artist.values()):
        return list(songs), []
    rng = random.Random(seed)
    held = {id(rng.choice(s)) for s in by_artist.values()}
    return [s for s in songs if id(s) not in held], [s for s in songs if id(s) in held]


def train_scratch(
    songs: Sequence[MelSong], artists: Sequence[str], config: ScratchConfig | None = None
):
    """Train the from-scratch CNN; early-stop on held-out songs' loss within the time budget."""
    import keras

    config = config or ScratchConfig()
    keras.utils.set_random_seed(config.seed)
    train, val = split_validation(songs, artists, config.seed)
    n = len(artists)
    x, y = _stack(train, artists, _half_images)
    model = build_scratch_model(x.shape[1:], n, config)
    model.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate),
        loss="categorical_crossentropy",
        metrics=["accuracy"],
    )
    budget = time_budget(config.max_seconds)
    callbacks = [budget]
    validation = None
    epochs = min(config.max_epochs, config.epochs_without_validation)
    if val:
        vx, vy = _stack(val, artists, _half_images)
        validation = (vx, keras.utils.to_categorical(vy, n))
        epochs = config.max_epochs
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor="val_loss", patience=config.patience, restore_best_weights=True
            )
        )
    t0 = time.perf_counter()
    history = model.fit(
        x, keras.utils.to_categorical(y, n), validation_data=validation, epochs=epochs,
        batch_size=config.batch_size, class_weight=class_weights(y, n), shuffle=True,
        verbose=0, callbacks=callbacks,
    )  # fmt: skip
    info = {
        "epochs": len(history.history["loss"]),
        "examples": len(x),
        "validation_songs": len(val),
        "seconds": round(time.perf_counter() - t0, 2),
        "budget_exceeded": budget.exceeded,
    }
    return model, info


def scratch_method(config: ScratchConfig | None = None) -> Method:
    """Baseline (b): the original recipe, a small CNN trained from scratch on 10-s mel clips."""
    config = config or ScratchConfig()

    def method(songs: Sequence[MelSong], artists: Sequence[str]) -> Predictor:
        model, _ = train_scratch(songs, artists, config)
        return softmax_predictor(model, _half_images, len(artists), 64)

    return method


def build_melstats_model(n_features: int, n_classes: int, l2: float = 1e-3):
    """Standardisation -> one softmax layer: multinomial logistic regression."""
    import keras
    from keras import layers

    inputs = keras.Input(shape=(n_features,), name="melstats")
    x = layers.Normalization(name="norm")(inputs)
    outputs = layers.Dense(
        n_classes, activation="softmax", kernel_regularizer=keras.regularizers.L2(l2),
        name="artist",
    )(x)  # fmt: skip
    return keras.Model(inputs, outputs, name="mimi_melstats")


def melstats_method(
    l2: float = 1e-3, epochs: int = 200, seed: int = 0, learning_rate: float = 1e-2,
    batch_size: int = 512,
) -> Method:  # fmt: skip
    """Baseline (c): per-band mel mean/std of each clip -> class-weighted logistic regression."""

    def method(songs: Sequence[MelSong], artists: Sequence[str]) -> Predictor:
        import keras

        keras.utils.set_random_seed(seed)
        x, y = _stack(songs, artists, melstats_features)
        model = build_melstats_model(x.shape[1], len(artists), l2)
        model.get_layer("norm").adapt(x)
        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate), loss="sparse_categorical_crossentropy"
        )
        model.fit(
            x, y, epochs=epochs, batch_size=batch_size, shuffle=True, verbose=0,
            class_weight=class_weights(y, len(artists)),
        )  # fmt: skip
        return softmax_predictor(model, melstats_features, len(artists), 1024)

    return method
