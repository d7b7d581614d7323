"""The Keras 3 port of musicnn reproduces the original TF1 MSD network; MTT runs beside it."""

from __future__ import annotations

import ast
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow", reason="the musicnn port and its converter need TensorFlow")

import h5py

from model_store.convert import (
    CHECKPOINT_DIRS,
    LAYER_SCOPES,
    WHEEL_NAME,
    convert,
    fetch_wheel,
    read_checkpoint,
    sha256_of,
)
from model_store.features import N_MELS, PATCH_FRAMES
from model_store.musicnn import embed_patches, load_frontend
from model_store.spec import (
    MSD_LABELS,
    MTT_LABELS,
    N_PARAMS,
    NETWORK_DIMS,
    NETWORK_PARAMS,
    OUTPUT_DIMS,
    OUTPUT_NAMES,
)

REFERENCE = Path(__file__).resolve().parents[3] / "shared/pretrained/musicnn_msd_reference.npz"


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The pinned musicnn wheel, cached under $MIMI_WHEEL_CACHE when set."""
    cache = os.environ.get("MIMI_WHEEL_CACHE")
    return fetch_wheel(Path(cache) if cache else tmp_path_factory.mktemp("wheel"))


@pytest.fixture(scope="session")
def weights(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Weights converted once per session."""
    return convert(wheel, tmp_path_factory.mktemp("weights") / "msd.weights.h5")


@pytest.fixture(scope="session")
def model(weights: Path):
    """The Keras port with converted weights."""
    return load_frontend(weights)


@pytest.fixture(scope="session")
def reference() -> dict[str, np.ndarray]:
    """Outputs of the original TF1 graph on 17 patches."""
    if not REFERENCE.is_file():
        pytest.skip(f"reference outputs of the original TF1 network not found at {REFERENCE}")
    with np.load(REFERENCE) as data:
        return {k: data[k] for k in data.files}


@pytest.fixture(scope="session")
def patches() -> np.ndarray:
    """17 input patches: the reference ones if present, else seeded synthetic log-mels."""
    if REFERENCE.is_file():
        with np.load(REFERENCE) as data:
            return data["patches"]
    return np.random.default_rng(0).uniform(0, 5, (17, PATCH_FRAMES, N_MELS)).astype(np.float32)


@pytest.fixture(scope="session")
def port_outputs(model, reference: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The port's outputs on the reference patches."""
    return embed_patches(model, reference["patches"])


@pytest.mark.parametrize("name", NETWORK_DIMS)
def test_matches_original_tf1_network(
    name: str, port_outputs: dict[str, np.ndarray], reference: dict[str, np.ndarray]
) -> None:
    """Each output agrees with the original TF1 graph to 1e-3 of its magnitude."""
    ref, got = reference[name], port_outputs[name]
    assert got.shape == ref.shape == (len(reference["patches"]), OUTPUT_DIMS[name])
    assert np.isfinite(got).all()
    diff = float(np.abs(got - ref).max())
    assert diff <= 1e-3 * max(1.0, float(np.abs(ref).max())), f"{name}: max |diff| {diff}"


def test_mtt_network_runs_beside_msd(port_outputs: dict[str, np.ndarray]) -> None:
    """MTT's outputs are finite, shaped like MSD's, and differ from them (another network)."""
    for name, dim in NETWORK_DIMS.items():
        mtt = port_outputs[f"mtt_{name}"]
        assert mtt.shape == (len(port_outputs[name]), dim) and np.isfinite(mtt).all()
        assert np.abs(mtt - port_outputs[name]).max() > 1e-2, name
    taggram = port_outputs["mtt_taggram"]
    assert ((taggram > 0) & (taggram < 1)).all()


def test_each_network_holds_its_own_checkpoint(wheel: Path, model) -> None:
    """The MSD and MTT sub-networks carry exactly their checkpoint's tag layer."""
    for network, folder in CHECKPOINT_DIRS.items():
        variables = read_checkpoint(wheel, folder)
        kernel, bias = model.get_layer(f"{network}_musicnn").get_layer("logits").get_weights()
        np.testing.assert_array_equal(kernel, variables[f"{LAYER_SCOPES['logits']}/kernel"])
        np.testing.assert_array_equal(bias, variables[f"{LAYER_SCOPES['logits']}/bias"])


def test_batch_size_does_not_change_outputs(model, patches: np.ndarray) -> None:
    """Batch sizes 1, 5 and 17 give the same outputs (no cross-sample leakage, inference BN)."""
    runs = [embed_patches(model, patches, batch_size=b) for b in (17, 1, 5)]
    for name in OUTPUT_NAMES:
        scale = max(1.0, float(np.abs(runs[0][name]).max()))
        for other in runs[1:]:
            assert np.abs(other[name] - runs[0][name]).max() <= 1e-5 * scale, name


def test_empty_and_malformed_input(model) -> None:
    """No patches give empty arrays of the right width; a wrongly shaped input is refused."""
    out = embed_patches(model, np.zeros((0, PATCH_FRAMES, N_MELS), np.float32))
    assert {k: v.shape for k, v in out.items()} == {k: (0, d) for k, d in OUTPUT_DIMS.items()}
    with pytest.raises(ValueError):
        embed_patches(model, np.zeros((2, N_MELS, PATCH_FRAMES), np.float32))


def test_parameter_count(model) -> None:
    """The port holds exactly the two checkpoints' 2 x 792,079 model parameters."""
    assert model.count_params() == N_PARAMS == 2 * NETWORK_PARAMS == 2 * 792_079


def _h5_arrays(path: Path) -> dict[str, np.ndarray]:
    """Every dataset of an HDF5 file, by path."""
    arrays: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as fh:
        fh.visititems(
            lambda k, v: arrays.setdefault(k, v[()]) if isinstance(v, h5py.Dataset) else None
        )
    return arrays


def test_conversion_is_reproducible(wheel: Path, weights: Path, tmp_path: Path) -> None:
    """Converting the pinned wheel twice yields identical weights (and an identical file)."""
    again = convert(wheel, tmp_path / "again.weights.h5")
    first, second = _h5_arrays(weights), _h5_arrays(again)
    assert first.keys() == second.keys() and len(first) > 0
    for key in first:
        np.testing.assert_array_equal(first[key], second[key], err_msg=key)
    assert sha256_of(weights) == sha256_of(again)


def test_labels_match_wheel_configuration(wheel: Path) -> None:
    """MSD_LABELS and MTT_LABELS equal musicnn/configuration.py's lists (read, not imported)."""
    with zipfile.ZipFile(wheel) as zf:
        tree = ast.parse(zf.read("musicnn/configuration.py"))
    assigned = {
        t.id: node.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        for t in node.targets
        if isinstance(t, ast.Name)
    }
    assert tuple(ast.literal_eval(assigned["MSD_LABELS"])) == MSD_LABELS
    assert tuple(ast.literal_eval(assigned["MTT_LABELS"])) == MTT_LABELS
    assert len(MSD_LABELS) == len(MTT_LABELS) == 50


def test_fetch_refuses_tampered_wheel(tmp_path: Path) -> None:
    """A cached wheel whose sha256 differs from the pin is refused, not used."""
    (tmp_path / WHEEL_NAME).write_bytes(b"not the musicnn wheel")
    with pytest.raises(ValueError, match="sha256"):
        fetch_wheel(tmp_path)
