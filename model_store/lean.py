"""The musicnn front-end in ONNX Runtime: inference without TensorFlow, in fixed-shape batches.

`python -m model_store.convert` writes the ONNX graph (model_store.onnx_graph) beside the Keras
weights; this module only reads that file (no Keras, no TensorFlow), so a worker that reads
uploads and answers guesses starts in under a second and holds a few hundred MB."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from model_store.spec import OUTPUT_NAMES, in_batches

LEAN_SUFFIX = ".onnx"
# Patches per call. Every call has this shape (the last batch padded), so ONNX Runtime's arena
# settles at one size and never grows: ~370 MiB peak per process at 4, ~230 at 2, ~660 at 8,
# while batches above 4 are no faster on a CPU core (measured on this repo's 2-core machine).
DEFAULT_BATCH = 4


def frontend_model_path(weights: str | Path) -> Path:
    """Where the ONNX export of the Keras weights at `weights` lives: beside them."""
    path = Path(weights)
    name = path.name.removesuffix(".weights.h5").removesuffix(".h5")
    return path.with_name(name + LEAN_SUFFIX)


class Frontend:
    """Both musicnn networks in one ONNX Runtime session with a fixed batch shape."""

    def __init__(self, path: str | Path, batch_size: int = DEFAULT_BATCH, threads: int = 1) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path} not found; run `python -m model_store.convert`")
        if batch_size < 1 or threads < 1:
            raise ValueError("batch_size and threads must be positive")
        self.batch_size = batch_size
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        # No pre-planned memory pattern: it holds every intermediate at once (664 vs 373 MiB
        # peak at batch 4), for no speed (bench/runtimes.py).
        options.enable_mem_pattern = False
        options.log_severity_level = 3  # errors only
        try:
            self._session = ort.InferenceSession(
                str(self.path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as err:  # ORT raises its own exception types for a bad file
            raise ValueError(f"{self.path} is not the musicnn ONNX export: {err}") from None
        inputs = self._session.get_inputs()
        outputs = {o.name for o in self._session.get_outputs()}
        if len(inputs) != 1 or outputs != set(OUTPUT_NAMES):
            raise ValueError(f"{self.path} has outputs {sorted(outputs)}, not {OUTPUT_NAMES}")
        self._input = inputs[0].name
        self._lock = threading.Lock()  # one session call at a time keeps the arena one size

    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """Outputs of exactly `batch_size` patches."""
        with self._lock:
            values = self._session.run(list(OUTPUT_NAMES), {self._input: batch})
        return dict(zip(OUTPUT_NAMES, values, strict=True))

    def embed(self, patches: np.ndarray) -> dict[str, np.ndarray]:
        """Run (n, 187, 96) patches through both networks; float32 arrays keyed by OUTPUT_NAMES."""
        return in_batches(self.run, patches, self.batch_size)
