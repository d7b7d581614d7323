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


F_SP = 200.0 / 3  # Slaney mel scale: linear below 1 kHz (3 mels per 200 Hz), log above
MIN_LOG_HZ = 1000.0
LOG_STEP = np.log(6.4) / 27.0
STFT_CHUNK = 4096  # frames per FFT call: bounds the temporaries of a 20-minute song


def hz_to_mel(hz):
    """Hz to Slaney mels (librosa's default scale), for scalars or arrays."""
    f = np.asarray(hz, dtype=np.float64)
    mels = f / F_SP
    log = MIN_LOG_HZ / F_SP + np.log(np.maximum(f, MIN_LOG_HZ) / MIN_LOG_HZ) / LOG_STEP
    out = np.where(f >= MIN_LOG_HZ, log, mels)
    return float(out) if out.ndim == 0 else out


def mel_to_hz(mels):
    """Slaney mels back to Hz, for scalars or arrays."""
    m = np.asarray(mels, dtype=np.float64)
    min_log_mel = MIN_LOG_HZ / F_SP
    log = MIN_LOG_HZ * np.exp(LOG_STEP * (np.maximum(m, min_log_mel) - min_log_mel))
    out = np.where(m >= min_log_mel, log, F_SP * m)
    return float(out) if out.ndim == 0 else out


@lru_cache(maxsize=1)
def mel_basis() -> np.ndarray:
    """The (N_MELS, 1 + N_FFT/2) Slaney-normalised mel filter bank (librosa's defaults),
    computed with NumPy alone: librosa's import costs a process ~140 MB."""
    fft_hz = np.linspace(0, SAMPLE_RATE / 2, 1 + N_FFT // 2)
    mel_hz = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(SAMPLE_RATE / 2), N_MELS + 2))
    widths = np.diff(mel_hz)
    ramps = np.subtract.outer(mel_hz, fft_hz)
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_hz[2:] - mel_hz[:-2]))[:, None]
    return weights.astype(np.float32)


@lru_cache(maxsize=1)
def _window() -> np.ndarray:
    """The periodic Hann window of N_FFT samples (scipy's 'hann', fftbins=True)."""
    return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)).astype(np.float32)


def log_mel(audio: np.ndarray) -> np.ndarray:
    """Log-mel spectrogram (frames, N_MELS) of mono float32 audio at SAMPLE_RATE, in float32:
    librosa's centred, zero-padded STFT (as musicnn's front-end was trained on), in NumPy."""
    y = np.ascontiguousarray(audio, dtype=np.float32)
    if y.ndim != 1:
        raise ValueError("log_mel expects mono audio")
    padded = np.pad(y, N_FFT // 2)
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP_LENGTH]
    basis, window = mel_basis(), _window()
    out = np.empty((len(frames), N_MELS), np.float32)
    for start in range(0, len(frames), STFT_CHUNK):
        spec = np.fft.rfft(frames[start : start + STFT_CHUNK] * window, axis=1)
        power = (spec.real**2 + spec.imag**2).astype(np.float32)
        out[start : start + STFT_CHUNK] = np.log10(1.0 + LOG_SCALE * (power @ basis.T))
    return out


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


def usable_clips(
    audio: np.ndarray, n_frames: int, clip_seconds: float, hop_seconds: float
) -> tuple[tuple[float, float], ...]:
    """(start, end) seconds of every whole clip whose level is above the silence floor."""
    seconds_per_frame = HOP_LENGTH / SAMPLE_RATE
    clip_samples = round(clip_seconds * SAMPLE_RATE)
    out = []
    for start_frame in clip_starts(n_frames, clip_seconds, hop_seconds):
        start = start_frame * HOP_LENGTH
        if rms_dbfs(audio[start : start + clip_samples]) >= SILENCE_DBFS:
            begin = round(start_frame * seconds_per_frame, 4)
            out.append((begin, round(begin + clip_seconds, 4)))
    return tuple(out)
