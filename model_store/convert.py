"""Convert musicnn 0.1.0's MSD_musicnn and MTT_musicnn TF1 checkpoints (pinned wheel) to Keras."""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import warnings
import zipfile
from pathlib import Path

import numpy as np

from model_store.lean import frontend_model_path
from model_store.musicnn import build_frontend, default_weights_path
from model_store.spec import N_PARAMS, NETWORK_PARAMS, NETWORKS

WHEEL_NAME = "musicnn-0.1.0-py3-none-any.whl"
WHEEL_REQUIREMENT = "musicnn==0.1.0"
WHEEL_SHA256 = "f38a4890c648c1ddbb141c5d96d2b0a8cfcd36746002d896989f7b88beb65cfa"
# Files `.index`, `.data-00000-of-00001` with an empty base name; both share one graph (models.py).
CHECKPOINT_DIRS = {"msd": "musicnn/MSD_musicnn/", "mtt": "musicnn/MTT_musicnn/"}

# Keras layer -> TF1 variable scope. TF1 numbered scopes in graph-construction order (models.py):
# input BN, timbral 7x38 / 7x67, temporal 128 / 64 / 32, mid-end 1-3, back-end BN, dense, BN, dense.
LAYER_SCOPES: dict[str, str] = {
    "input_bn": "batch_normalization",
    "timbral_7x38": "conv2d",
    "timbral_7x38_bn": "batch_normalization_1",
    "timbral_7x67": "conv2d_1",
    "timbral_7x67_bn": "batch_normalization_2",
    "temporal_128x1": "conv2d_2",
    "temporal_128x1_bn": "batch_normalization_3",
    "temporal_64x1": "conv2d_3",
    "temporal_64x1_bn": "batch_normalization_4",
    "temporal_32x1": "conv2d_4",
    "temporal_32x1_bn": "batch_normalization_5",
    "midend_1": "conv2d_5",
    "midend_1_bn": "batch_normalization_6",
    "midend_2": "conv2d_6",
    "midend_2_bn": "batch_normalization_7",
    "midend_3": "conv2d_7",
    "midend_3_bn": "batch_normalization_8",
    "backend_bn": "batch_normalization_9",
    "penultimate_dense": "dense",
    "penultimate_bn": "batch_normalization_10",
    "logits": "dense_1",
}
# Keras weight order per layer type (BatchNormalization: gamma, beta, moving mean, variance).
_BN_VARS = ("gamma", "beta", "moving_mean", "moving_variance")
_KERNEL_VARS = ("kernel", "bias")
_IGNORED = ("beta1_power", "beta2_power")  # Adam state; per-variable slots end in /Adam, /Adam_1


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_wheel(path: Path) -> None:
    """Raise ValueError unless `path` is the pinned musicnn 0.1.0 wheel."""
    actual = sha256_of(path)
    if actual != WHEEL_SHA256:
        raise ValueError(f"{path}: sha256 {actual} != pinned {WHEEL_SHA256}; refusing to use it")


def fetch_wheel(dest_dir: str | Path) -> Path:
    """Download the pinned musicnn wheel into `dest_dir` (unless present) and verify its sha256."""
    dest = Path(dest_dir)
    wheel = dest / WHEEL_NAME
    if not wheel.is_file():
        dest.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
        cmd += [WHEEL_REQUIREMENT, "-d", str(dest)]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        if not wheel.is_file():
            raise FileNotFoundError(f"pip download did not produce {wheel}")
    verify_wheel(wheel)
    return wheel


def read_checkpoint(wheel_path: str | Path, checkpoint_dir: str) -> dict[str, np.ndarray]:
    """Model variables (no optimiser state) of one of the wheel's checkpoints, by TF name."""
    import tensorflow as tf

    with tempfile.TemporaryDirectory(prefix="musicnn-ckpt-") as tmp:
        tmpdir = Path(tmp)
        with zipfile.ZipFile(wheel_path) as zf:
            members = [n for n in zf.namelist() if n.startswith(checkpoint_dir)]
            if not any(n.endswith("/.index") for n in members):
                raise ValueError(f"{wheel_path} holds no {checkpoint_dir}.index")
            zf.extractall(tmpdir, members)
        # The checkpoint prefix is the directory itself: the files' base name is empty.
        reader = tf.compat.v1.train.NewCheckpointReader(str(tmpdir / checkpoint_dir) + "/")
        names = sorted(reader.get_variable_to_shape_map())
        return {
            n: np.asarray(reader.get_tensor(n), dtype=np.float32)
            for n in names
            if n not in _IGNORED and "/Adam" not in n
        }


def _layer_weights(layer: object, scope: str, variables: dict[str, np.ndarray]) -> list:
    """The checkpoint arrays for one Keras layer, reshaped to that layer's weight shapes."""
    var_names = _BN_VARS if "batch_normalization" in scope else _KERNEL_VARS
    arrays = [variables.pop(f"{scope}/{v}") for v in var_names]
    targets = [tuple(w.shape) for w in layer.weights]
    out = []
    for name, array, target in zip(var_names, arrays, targets, strict=True):
        if array.shape != target:
            # Only TF's (7, C, 1, F) mid-end kernels differ: the unit axis 2 becomes Conv1D's.
            if not (array.ndim == 4 and array.shape[2] == 1 and array.size == np.prod(target)):
                raise ValueError(f"{scope}/{name}: {array.shape} cannot become {target}")
            array = array[:, :, 0, :]
        out.append(array)
    return out


def convert(wheel_path: str | Path, out_path: str | Path) -> Path:
    """Convert both checkpoints of the wheel to one Keras `.weights.h5` file (atomic write)."""
    wheel, out = Path(wheel_path), Path(out_path)
    if not out.name.endswith(".weights.h5"):
        raise ValueError(f"{out}: Keras weights files must end in .weights.h5")
    verify_wheel(wheel)
    model = build_frontend()
    for network in NETWORKS:
        _load_network(
            model.get_layer(f"{network}_musicnn"), read_checkpoint(wheel, CHECKPOINT_DIRS[network])
        )
    if model.count_params() != N_PARAMS:
        raise ValueError(f"{model.count_params()} parameters, expected {N_PARAMS}")
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".tmp-", suffix=".weights.h5", dir=out.parent)
    os.close(fd)
    try:
        with warnings.catch_warnings():  # Keras 3 + NumPy 2 noise from reading TF variables
            warnings.filterwarnings("ignore", "__array__ implementation", DeprecationWarning)
            model.save_weights(tmp_name, overwrite=True)
        os.chmod(tmp_name, 0o644)  # mkstemp creates 0600
        os.replace(tmp_name, out)
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
    return out


def export_lean(weights_path: str | Path, out_path: str | Path | None = None) -> Path:
    """Write the ONNX front-end (model_store.onnx_graph) built from the Keras weights at
    `weights_path`, beside them by default; byte-stable, atomic."""
    from model_store.musicnn import load_frontend
    from model_store.onnx_graph import frontend_onnx

    out = Path(out_path) if out_path is not None else frontend_model_path(weights_path)
    model = load_frontend(weights_path)
    weights = {
        net: {
            name: [np.asarray(w, np.float32) for w in layer.get_weights()]
            for name in LAYER_SCOPES
            for layer in [model.get_layer(f"{net}_musicnn").get_layer(name)]
        }
        for net in NETWORKS
    }
    data = frontend_onnx(weights)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".tmp-{os.getpid()}-{out.name}")
    try:
        tmp.write_bytes(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def _load_network(net, variables: dict[str, np.ndarray]) -> None:
    """Set one network's layers from its checkpoint; every variable and layer must be used."""
    for layer_name, scope in LAYER_SCOPES.items():
        layer = net.get_layer(layer_name)
        layer.set_weights(_layer_weights(layer, scope, variables))
    if variables:
        raise ValueError(f"{net.name}: unmapped checkpoint variables: {sorted(variables)}")
    unmapped = [lay.name for lay in net.layers if lay.weights and lay.name not in LAYER_SCOPES]
    if unmapped or net.count_params() != NETWORK_PARAMS:
        raise ValueError(f"{net.name}: layers without weights {unmapped}; {net.count_params()}")


def main(argv: list[str] | None = None) -> int:
    """Command line: fetch the pinned wheel and write the converted weights."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=default_weights_path(), help="*.weights.h5")
    parser.add_argument("--wheel-dir", type=Path, default=None, help="where to cache the wheel")
    parser.add_argument(
        "--force", action="store_true", help="convert and export even if the files exist"
    )
    args = parser.parse_args(argv)
    out, lean = args.out, frontend_model_path(args.out)
    wrote = []
    if args.force or not out.is_file():
        if args.wheel_dir is not None:
            convert(fetch_wheel(args.wheel_dir), out)
        else:
            with tempfile.TemporaryDirectory(prefix="musicnn-wheel-") as tmp:
                convert(fetch_wheel(tmp), out)
        wrote.append(out)
    if args.force or wrote or not lean.is_file():
        from model_store import quiet_tensorflow_import

        quiet_tensorflow_import()
        wrote.append(export_lean(out, lean))
    for path in wrote:
        print(f"wrote {path} ({path.stat().st_size} bytes, sha256 {sha256_of(path)})")
    if not wrote:
        print(f"{out} and {lean} exist (--force to redo them)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
