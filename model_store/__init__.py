"""The Keras model: features, the pretrained front-end, the per-server head, evaluation, storage."""

import os

# Quiet TensorFlow's C++ start-up chatter (set before any TensorFlow import; users may override).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
