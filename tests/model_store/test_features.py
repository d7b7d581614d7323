"""Feature parameters: musicnn's log-mel, reproduced exactly; clip framing."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from model_store import features

REFERENCE = Path(__file__).resolve().parents[3] / "shared/pretrained/musicnn_msd_reference.npz"


@pytest.mark.skipif(not REFERENCE.is_file(), reason="../shared/pretrained reference not present")
def test_log_mel_matches_musicnn_reference() -> None:
    """Our log-mel equals the original musicnn pre-processing on the reference audio."""
    ref = np.load(REFERENCE)
    for audio, want in zip(ref["audio_16k"], ref["logmel_of_audio"], strict=True):
        got = features.log_mel(audio)
        assert got.shape[1] == features.N_MELS
        np.testing.assert_allclose(got[: want.shape[0]], want, atol=1e-4)


def test_clip_framing() -> None:
    """10 s clips are 625 frames; starts step by the hop and never run past the song."""
    assert features.frames_for(10.0) == 625
    assert features.clip_starts(625 * 3 + 10, 10.0, 10.0) == [0, 625, 1250]
    assert features.clip_starts(624, 10.0, 10.0) == []
    assert features.clip_starts(1250, 10.0, 5.0) == [0, 312, 624]


def test_rms_dbfs() -> None:
    """Full-scale square wave is 0 dBFS; digital silence is minus infinity."""
    assert features.rms_dbfs(np.ones(100, np.float32)) == pytest.approx(0.0)
    assert features.rms_dbfs(np.zeros(100, np.float32)) == float("-inf")


@pytest.mark.parametrize("samples", [1, 511, 513, 16000 * 7 + 123, 16000 * 60])
def test_numpy_log_mel_equals_librosa(samples: int) -> None:
    """The NumPy STFT and Slaney filter bank give librosa's log-mel, at every length."""
    import librosa

    y = np.random.default_rng(samples).standard_normal(samples).astype(np.float32) * 0.2
    basis = librosa.filters.mel(sr=features.SAMPLE_RATE, n_fft=features.N_FFT, n_mels=96)
    np.testing.assert_allclose(features.mel_basis(), basis, atol=1e-8)
    with warnings.catch_warnings():  # librosa warns that short inputs are shorter than n_fft
        warnings.simplefilter("ignore", UserWarning)
        spec = np.abs(librosa.stft(y, n_fft=features.N_FFT, hop_length=features.HOP_LENGTH)) ** 2
    want = np.log10(1.0 + features.LOG_SCALE * (basis @ spec)).T
    got = features.log_mel(y)
    assert got.shape == want.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, want, atol=1e-5)
    for hz in (0.0, 440.0, 1000.0, 7999.0):
        assert features.hz_to_mel(hz) == pytest.approx(librosa.hz_to_mel(hz))
        assert features.mel_to_hz(features.hz_to_mel(hz)) == pytest.approx(hz, abs=1e-9)
