"""Feature parameters: musicnn's log-mel, reproduced exactly; clip framing."""

from __future__ import annotations

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
