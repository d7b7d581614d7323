"""The ONNX front-end: made byte-stably from the Keras port, agreeing with it, TF-free to run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from model_store import features
from model_store.convert import export_lean, sha256_of
from model_store.embed import patch_starts, patches_of
from model_store.features import N_MELS, PATCH_FRAMES
from model_store.lean import Frontend, frontend_model_path
from model_store.spec import OUTPUT_DIMS, OUTPUT_NAMES
from tests.audio_factory import synth

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT.parent / "shared/pretrained/musicnn_msd_reference.npz"
POOLS = ("max_pool", "mean_pool", "mtt_max_pool", "mtt_mean_pool")
PENULTIMATE = ("penultimate", "mtt_penultimate")


@pytest.fixture(scope="module")
def keras_model(frontend_weights: Path):
    """The Keras port (the reference the export must agree with)."""
    from model_store.musicnn import load_frontend

    return load_frontend(frontend_weights)


@pytest.fixture(scope="module")
def lean(frontend_weights: Path) -> Frontend:
    """The ONNX export that setup wrote beside the weights."""
    return Frontend(frontend_model_path(frontend_weights))


def real_patches() -> np.ndarray:
    """Patches of a real (synthesised, 16 kHz) 30-second song's log-mel."""
    audio = np.concatenate([synth(15, rate=features.SAMPLE_RATE, voice=v, seed=v) for v in (1, 3)])
    mel = features.log_mel(audio)
    return patches_of(mel, patch_starts(len(mel)))


def reference_patches() -> np.ndarray:
    """The 17 patches the original TF1 network's outputs were recorded on."""
    if not REFERENCE.is_file():
        pytest.skip(f"reference patches not found at {REFERENCE}")
    with np.load(REFERENCE) as data:
        return data["patches"]


def assert_agrees(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    """Penultimate layers within 1e-4 absolute, pools within 1e-3 relative, tags close."""
    for name in PENULTIMATE:
        assert np.abs(got[name] - want[name]).max() <= 1e-4, name
    for name in POOLS:
        rel = np.abs(got[name] - want[name]) / np.maximum(np.abs(want[name]), 1.0)
        assert rel.max() <= 1e-3, name
    for name in ("taggram", "mtt_taggram"):
        assert np.abs(got[name] - want[name]).max() <= 1e-4, name


@pytest.mark.parametrize("source", [reference_patches, real_patches])
def test_agrees_with_the_keras_port(source, keras_model, lean: Frontend) -> None:
    """On the reference patches and on real audio the export computes what Keras computes."""
    from model_store.musicnn import embed_patches

    patches = source()
    assert_agrees(lean.embed(patches), embed_patches(keras_model, patches))


def test_export_is_byte_stable(frontend_weights: Path, tmp_path: Path) -> None:
    """Exporting again gives the very bytes setup wrote (reproducible, nothing to check in)."""
    again = export_lean(frontend_weights, tmp_path / "again.onnx")
    assert sha256_of(again) == sha256_of(frontend_model_path(frontend_weights))


def test_fixed_batches_give_the_same_answer(frontend_weights: Path, lean: Frontend) -> None:
    """Any number of patches runs in fixed-shape batches; the batch size changes nothing."""
    patches = real_patches()[:7]
    small = Frontend(frontend_model_path(frontend_weights), batch_size=3)
    a, b = lean.embed(patches), small.embed(patches)
    for name in OUTPUT_NAMES:
        assert a[name].shape == (7, OUTPUT_DIMS[name])
        assert np.abs(a[name] - b[name]).max() <= 1e-5 * max(1.0, float(np.abs(a[name]).max()))
    one = lean.embed(patches[:1])
    assert np.abs(one["penultimate"] - a["penultimate"][:1]).max() <= 1e-5


def test_empty_malformed_and_missing(lean: Frontend, tmp_path: Path) -> None:
    """No patches give empty outputs; wrong shapes, missing or foreign files are refused."""
    empty = lean.embed(np.zeros((0, PATCH_FRAMES, N_MELS), np.float32))
    assert {k: v.shape for k, v in empty.items()} == {k: (0, d) for k, d in OUTPUT_DIMS.items()}
    with pytest.raises(ValueError, match="patches"):
        lean.embed(np.zeros((2, N_MELS, PATCH_FRAMES), np.float32))
    with pytest.raises(FileNotFoundError, match=r"model_store\.convert"):
        Frontend(tmp_path / "none.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model" * 100)
    with pytest.raises(ValueError, match="not the musicnn ONNX export"):
        Frontend(junk)


def test_model_paths_sit_beside_the_weights() -> None:
    """The export's name follows the weights file's."""
    assert frontend_model_path(Path("/p/musicnn_msd_mtt_v2.weights.h5")) == Path(
        "/p/musicnn_msd_mtt_v2.onnx"
    )


INFER_WITHOUT_TF = r"""
import json, sys
import numpy as np
from model_store.embed import embed_mel, frontend
from model_store.predict import guess_mel
from bot.guess_job import guess_file
from bot.worker import warm_up
from bot.ingest import ingest_file
emb = embed_mel(frontend(__import__("pathlib").Path(sys.argv[1])), np.ones((400, 96), np.float32))
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras"))
print(json.dumps({"shape": list(emb.shape), "heavy": heavy}))
"""


def test_inference_modules_never_import_tensorflow(frontend_weights: Path) -> None:
    """Reading, guessing and embedding load neither TensorFlow nor Keras."""
    out = subprocess.run(
        [sys.executable, "-c", INFER_WITHOUT_TF, str(frontend_weights)],
        capture_output=True, text=True, check=True, cwd=ROOT, timeout=120,
    )  # fmt: skip
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"shape": [2, 400], "heavy": []}
