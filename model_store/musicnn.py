"""Keras 3 port of musicnn's MSD_musicnn and MTT_musicnn networks (Pons & Serra, 2019).

Used to convert the checkpoints, export the ONNX front-end and check it (model_store.lean is
what inference runs). Both networks share one graph and run side by side on the same patches."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
from keras import layers

from model_store.features import FRONTEND_VERSION, N_MELS, PATCH_FRAMES, WEIGHTS_FILENAME
from model_store.spec import (
    BACKEND_UNITS,
    BN_EPSILON,
    MIDEND_FILTERS,
    MIDEND_LAYERS,
    N_FEATURES,
    N_TAGS,
    NETWORKS,
    TEMPORAL_FILTERS,
    TEMPORAL_LENGTHS,
    TIMBRAL_FILTERS,
    TIMBRAL_WIDTHS,
    in_batches,
    output_name,
)


def _bn(name: str) -> layers.BatchNormalization:
    """A TF1-compatible batch normalisation layer (epsilon 1e-3, last axis)."""
    return layers.BatchNormalization(axis=-1, epsilon=BN_EPSILON, name=name)


def _same_pad(kernel: int) -> tuple[int, int]:
    """TensorFlow's 'same' padding split: the extra frame of an even kernel goes after."""
    return (kernel - 1) // 2, kernel // 2


def _max_over_mels(x: keras.KerasTensor, name: str) -> keras.KerasTensor:
    """Max-pool (batch, time, mels, ch) over all mel positions to (batch, time, ch)."""
    _, frames, mels, channels = x.shape
    y = layers.MaxPooling2D((1, mels), name=f"{name}_pool")(x)
    return layers.Reshape((frames, channels), name=f"{name}_squeeze")(y)


def _timbral(x: keras.KerasTensor, width: int) -> keras.KerasTensor:
    """Conv (7 frames x `width` mels) + ReLU + BN, then max over the remaining mel positions."""
    name = f"timbral_7x{width}"
    y = layers.Conv2D(TIMBRAL_FILTERS, (7, width), activation="relu", name=name)(x)
    y = _bn(f"{name}_bn")(y)
    return _max_over_mels(y, name)


def _temporal(x: keras.KerasTensor, length: int) -> keras.KerasTensor:
    """Conv (`length` frames x 1 mel), 'same' in time + ReLU + BN, then max over mel bands."""
    name = f"temporal_{length}x1"
    y = layers.ZeroPadding2D((_same_pad(length), (0, 0)), name=f"{name}_pad")(x)
    y = layers.Conv2D(TEMPORAL_FILTERS, (length, 1), activation="relu", name=name)(y)
    y = _bn(f"{name}_bn")(y)
    return _max_over_mels(y, name)


def build_network(network: str) -> keras.Model:
    """Build one musicnn graph mapping (batch, 187, 96) log-mel patches to a dict of outputs."""
    inputs = keras.Input((PATCH_FRAMES, N_MELS), dtype="float32", name="logmel")
    x = layers.Reshape((PATCH_FRAMES, N_MELS, 1), name="expand")(inputs)
    x = _bn("input_bn")(x)

    # Front-end: timbral (time x mel) and temporal (time x 1) filters, max-pooled over mels.
    padded = layers.ZeroPadding2D(((3, 3), (0, 0)), name="timbral_pad")(x)
    branches = [_timbral(padded, w) for w in TIMBRAL_WIDTHS]
    branches += [_temporal(x, n) for n in TEMPORAL_LENGTHS]
    front = layers.Concatenate(axis=-1, name="frontend")(branches)  # (batch, 187, 561)

    # Mid-end: 7-frame convolutions spanning all features, residual after the first.
    mid = [front]
    h = front
    for i in range(1, MIDEND_LAYERS + 1):
        y = layers.ZeroPadding1D((3, 3), name=f"midend_{i}_pad")(h)
        y = layers.Conv1D(MIDEND_FILTERS, 7, activation="relu", name=f"midend_{i}")(y)
        y = _bn(f"midend_{i}_bn")(y)
        h = y if i == 1 else layers.Add(name=f"midend_{i}_res")([y, h])
        mid.append(h)
    features = layers.Concatenate(axis=-1, name="midend")(mid)  # (batch, 187, 753)

    # Back-end: temporal max & mean pools, interleaved [max0, mean0, max1, ...] as in TF1.
    max_pool = layers.GlobalMaxPooling1D(name="max_pool")(features)
    mean_pool = layers.GlobalAveragePooling1D(name="mean_pool")(features)
    columns = [
        layers.Reshape((N_FEATURES, 1), name=f"{name}_col")(pool)
        for name, pool in (("max_pool", max_pool), ("mean_pool", mean_pool))
    ]
    pairs = layers.Concatenate(axis=-1, name="max_mean_pairs")(columns)  # (batch, 753, 2)
    pooled = layers.Reshape((2 * N_FEATURES,), name="interleave")(pairs)
    y = _bn("backend_bn")(pooled)
    y = layers.Dense(BACKEND_UNITS, activation="relu", name="penultimate_dense")(y)
    penultimate = _bn("penultimate_bn")(y)
    logits = layers.Dense(N_TAGS, name="logits")(penultimate)
    taggram = layers.Activation("sigmoid", name="taggram")(logits)
    outputs = {
        "penultimate": penultimate,
        "mean_pool": mean_pool,
        "max_pool": max_pool,
        "logits": logits,
        "taggram": taggram,
    }
    return keras.Model(inputs, outputs, name=f"{network}_musicnn")


def build_frontend() -> keras.Model:
    """Both networks side by side on the same patches, outputs keyed by `output_name`."""
    inputs = keras.Input((PATCH_FRAMES, N_MELS), dtype="float32", name="logmel")
    outputs = {}
    for network in NETWORKS:
        for name, tensor in build_network(network)(inputs).items():
            outputs[output_name(network, name)] = tensor
    return keras.Model(inputs, outputs, name=f"musicnn_frontend_v{FRONTEND_VERSION}")


def default_weights_path() -> Path:
    """Where setup puts the converted weights (the MIMI_FRONTEND_WEIGHTS default)."""
    return Path("pretrained") / WEIGHTS_FILENAME


def load_frontend(weights_path: str | Path) -> keras.Model:
    """Build the network and load converted weights (a `.weights.h5` from model_store.convert)."""
    path = Path(weights_path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; run `python -m model_store.convert`")
    model = build_frontend()
    try:
        model.load_weights(str(path))
    except (ValueError, KeyError) as err:
        raise ValueError(
            f"{path} does not hold the front-end v{FRONTEND_VERSION} weights (MSD + MTT musicnn); "
            f"run `python -m model_store.convert --out {path}`: {err}"
        ) from None
    return model


def embed_patches(
    model: keras.Model, patches: np.ndarray, batch_size: int = 64
) -> dict[str, np.ndarray]:
    """Run (n, 187, 96) patches through both networks; float32 arrays keyed by OUTPUT_NAMES.

    Every call runs fixed-shape batches (the last one padded), so Keras never re-traces."""
    return in_batches(lambda b: _call(model, b), patches, batch_size, pad_single=False)


def _call(model: keras.Model, batch: np.ndarray) -> dict:
    """One inference call of the front-end, compiled once per input shape and reused."""
    fn = getattr(model, "_mimi_infer", None)
    if fn is None:
        import tensorflow as tf

        fn = tf.function(lambda t: model(t, training=False), reduce_retracing=True)
        model._mimi_infer = fn
    return fn(batch)
