"""What the musicnn front-end computes, without Keras: networks, outputs and tag vocabularies."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from model_store.features import N_MELS, PATCH_FRAMES

# musicnn/configuration.py MSD_LABELS, same order as the 50 logits.
MSD_LABELS: tuple[str, ...] = (
    "rock", "pop", "alternative", "indie", "electronic", "female vocalists", "dance", "00s",
    "alternative rock", "jazz", "beautiful", "metal", "chillout", "male vocalists",
    "classic rock", "soul", "indie rock", "Mellow", "electronica", "80s", "folk", "90s", "chill",
    "instrumental", "punk", "oldies", "blues", "hard rock", "ambient", "acoustic",
    "experimental", "female vocalist", "guitar", "Hip-Hop", "70s", "party", "country",
    "easy listening", "sexy", "catchy", "funk", "electro", "heavy metal", "Progressive rock",
    "60s", "rnb", "indie pop", "sad", "House", "happy",
)  # fmt: skip
# musicnn/configuration.py MTT_LABELS (MagnaTagATune), same order as MTT_musicnn's 50 logits.
MTT_LABELS: tuple[str, ...] = (
    "guitar", "classical", "slow", "techno", "strings", "drums", "electronic", "rock", "fast",
    "piano", "ambient", "beat", "violin", "vocal", "synth", "female", "indian", "opera", "male",
    "singing", "vocals", "no vocals", "harpsichord", "loud", "quiet", "flute", "woman",
    "male vocal", "no vocal", "pop", "soft", "sitar", "solo", "man", "classic", "choir", "voice",
    "new age", "dance", "male voice", "female vocal", "beats", "harp", "cello", "no voice",
    "weird", "country", "metal", "female voice", "choral",
)  # fmt: skip
NETWORKS = ("msd", "mtt")  # the first network's outputs keep their plain names
LABELS = {"msd": MSD_LABELS, "mtt": MTT_LABELS}

BN_EPSILON = 1e-3  # tf.compat.v1.layers.batch_normalization's default
TIMBRAL_FILTERS = 204  # int(1.6 * 128)
TEMPORAL_FILTERS = 51  # int(1.6 * 32)
TIMBRAL_WIDTHS = (38, 67)  # int(0.4 * 96), int(0.7 * 96) mel bands
TEMPORAL_LENGTHS = (128, 64, 32)  # frames
MIDEND_FILTERS = 64
MIDEND_LAYERS = 3
BACKEND_UNITS = 200
N_TAGS = len(MSD_LABELS)
N_FEATURES = len(TIMBRAL_WIDTHS) * TIMBRAL_FILTERS + len(TEMPORAL_LENGTHS) * TEMPORAL_FILTERS
N_FEATURES += MIDEND_LAYERS * MIDEND_FILTERS  # 561 front-end + 192 mid-end = 753 per pool
NETWORK_DIMS = {
    "penultimate": BACKEND_UNITS,
    "mean_pool": N_FEATURES,
    "max_pool": N_FEATURES,
    "logits": N_TAGS,
    "taggram": N_TAGS,
}


def output_name(network: str, name: str) -> str:
    """The front-end's key for one network's output: 'penultimate', 'mtt_penultimate', ..."""
    return name if network == NETWORKS[0] else f"{network}_{name}"


OUTPUT_DIMS = {output_name(n, k): d for n in NETWORKS for k, d in NETWORK_DIMS.items()}
OUTPUT_NAMES = tuple(OUTPUT_DIMS)
NETWORK_PARAMS = 792_079  # one network: trainable + batch-norm moving statistics
N_PARAMS = len(NETWORKS) * NETWORK_PARAMS


def in_batches(
    run: Callable[[np.ndarray], dict], patches: np.ndarray, size: int, *, pad_single: bool = True
) -> dict[str, np.ndarray]:
    """Run (n, 187, 96) patches through `run` in batches of exactly `size` (the last one padded
    with zeros, unless it is the only one and `pad_single` is off); float32 outputs keyed by
    OUTPUT_NAMES, cut back to n rows."""
    x = np.asarray(patches, dtype=np.float32)
    if x.ndim != 3 or x.shape[1:] != (PATCH_FRAMES, N_MELS):
        raise ValueError(f"expected (n, {PATCH_FRAMES}, {N_MELS}) patches, got {x.shape}")
    if size < 1:
        raise ValueError("batch_size must be positive")
    parts: dict[str, list[np.ndarray]] = {k: [] for k in OUTPUT_NAMES}
    for start in range(0, len(x), size):
        batch = x[start : start + size]
        n = len(batch)
        if n < size and (pad_single or len(x) > size):  # one shape for every call
            batch = np.concatenate([batch, np.zeros((size - n, PATCH_FRAMES, N_MELS), x.dtype)])
        out = run(np.ascontiguousarray(batch))
        for k in OUTPUT_NAMES:
            parts[k].append(np.asarray(out[k], dtype=np.float32)[:n])
    return {
        k: np.concatenate(v) if v else np.zeros((0, OUTPUT_DIMS[k]), np.float32)
        for k, v in parts.items()
    }
