"""Worker-process setup: lower priority, the front-end (audio) or TensorFlow (training)
loaded before the first call, and where a training worker sends its epoch reports."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from bot.train_job import TrainedModel, TrainInput, train_model

WORKER_NICENESS = 10  # workers yield the CPU to the bot's event loop on a small machine


def yield_cpu() -> None:
    """Lower this worker's CPU priority so the bot process stays responsive."""
    with contextlib.suppress(OSError):
        os.nice(WORKER_NICENESS)


def warm_up(weights: Path, threads: int = 1) -> None:
    """Worker initializer: lower priority and load the ONNX front-end (no TensorFlow)."""
    from model_store.embed import frontend
    from model_store.lean import frontend_model_path

    yield_cpu()
    if frontend_model_path(weights).is_file():
        frontend(weights, threads)


_PROGRESS = None  # in a local training worker: the parent's progress queue (training_setup)


def training_setup(progress) -> None:
    """Training pool initializer: keep the queue epoch reports go to (None on Dask: each job
    carries its own), lower priority and import TensorFlow (only training workers do)."""
    from model_store import quiet_tensorflow_import

    global _PROGRESS
    _PROGRESS = progress
    yield_cpu()
    quiet_tensorflow_import()


def run_training(job: TrainInput, sink=None) -> TrainedModel:
    """Worker task: train one guild's model, reporting epochs on `sink` or the inherited queue."""
    return train_model(job, sink if sink is not None else _PROGRESS)
