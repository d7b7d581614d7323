"""The Keras model: features, the pretrained front-end, the per-server head, evaluation, storage."""

import os
import sys

# Quiet TensorFlow's C++ start-up chatter in worker processes, which inherit this at spawn.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# TensorFlow turns its oneDNN kernels on by default only on CPUs with AVX-512 VNNI; on AVX2-only
# machines (many home servers) musicnn runs 2x faster with them on (measured, issue 11).
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")


def quiet_tensorflow_import() -> None:
    """Import TensorFlow and Keras with their native start-up messages on stderr silenced."""
    if "tensorflow" in sys.modules:
        return
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import keras  # noqa: F401
        import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
