"""Feature parameters (one place) and the log-mel computation shared by training and inference."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

# Bump FEATURE_VERSION whenever anything below changes the numbers a model sees.
FEATURE_VERSION = 1
# Bump FRONTEND_VERSION whenever the musicnn port's architecture or converted weights change.
# v1: MSD_musicnn alone; v2: MSD_musicnn + MTT_musicnn side by side (issue 11).
FRONTEND_VERSION = 2
# Models made with these front-end versions can still be served: v2 computes v1's MSD outputs
# unchanged (same weights, same graph), so an old model answers until its retrain lands.
SERVES_FRONTENDS = (1, 2)
WEIGHTS_FILENAME = f"musicnn_msd_mtt_v{FRONTEND_VERSION}.weights.h5"
SAMPLE_RATE = 16_000  # Hz, the pretrained musicnn front-end's rate
N_FFT = 512
HOP_LENGTH = 256  # samples per frame: 62.5 frames per second
N_MELS = 96
LOG_SCALE = 10_000.0  # log10(1 + LOG_SCALE * mel), as musicnn does
PATCH_FRAMES = 187  # musicnn's 3-second input patch
MEL_DTYPE = np.float16  # cached log-mel precision (values lie in ~[0, 8])

DEFAULT_CLIP_SECONDS = 10.0  # the original recipe's clip length
DEFAULT_CLIP_HOP_SECONDS = 10.0  # non-overlapping clips by default
SILENCE_DBFS = -60.0  # a clip whose RMS is below this carries no usable signal


def frames_for(seconds: float) -> int:
    """Number of log-mel frames covering `seconds` of audio."""
    return round(seconds * SAMPLE_RATE / HOP_LENGTH)


@lru_cache(maxsize=1)
def mel_basis() -> np.ndarray:
    """The (N_MELS, 1 + N_FFT/2) mel filter bank, librosa's defaults (Slaney)."""
    import librosa

    return librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS).astype(np.float32)


def log_mel(audio: np.ndarray) -> np.ndarray:
    """Log-mel spectrogram (frames, N_MELS) of mono float32 audio at SAMPLE_RATE, in float32."""
    import librosa

    y = np.ascontiguousarray(audio, dtype=np.float32)
    if y.ndim != 1:
        raise ValueError("log_mel expects mono audio")
    spec = np.abs(librosa.stft(y, n_fft=N_FFT, hop_length=HOP_LENGTH)) ** 2
    mel = mel_basis() @ spec
    return np.log10(1.0 + LOG_SCALE * mel).T.astype(np.float32, copy=False)


def clip_starts(n_frames: int, clip_seconds: float, hop_seconds: float) -> list[int]:
    """Start frames of every whole clip that fits in a song of `n_frames` frames."""
    clip, hop = frames_for(clip_seconds), max(1, frames_for(hop_seconds))
    return list(range(0, n_frames - clip + 1, hop)) if n_frames >= clip else []


def rms_dbfs(audio: np.ndarray) -> float:
    """Root-mean-square level of float audio in dB relative to full scale."""
    if audio.size == 0:
        return float("-inf")
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))
    return 20.0 * np.log10(rms) if rms > 0 else float("-inf")
