"""Calibration: a temperature fitted on held-out songs and the expected calibration error."""

from __future__ import annotations

import numpy as np
import pytest

from model_store.calibrate import (
    PRIOR_TEMPERATURE,
    expected_calibration_error,
    fit_temperature,
    log_softmax,
    reliability,
    temper,
)


def sampled(temperature: float, n: int, seed: int = 0) -> tuple[list[np.ndarray], list[int]]:
    """Class scores and labels drawn so that softmax(scores / temperature) is calibrated."""
    rng = np.random.default_rng(seed)
    scores = [rng.normal(0, 3, 5) for _ in range(n)]
    labels = [int(rng.choice(5, p=np.exp(log_softmax(s / temperature)))) for s in scores]
    return scores, labels


def test_recovers_the_temperature_of_calibrated_data() -> None:
    """With many held-out songs the fitted temperature is the one the data was drawn with."""
    for truth in (0.5, 2.0):
        scores, labels = sampled(truth, 3000)
        assert fit_temperature(scores, labels, prior_songs=0) == pytest.approx(truth, rel=0.12)


def test_few_songs_stay_near_the_prior() -> None:
    """No held-out song gives the prior; a handful moves it only part of the way."""
    assert fit_temperature([], []) == PRIOR_TEMPERATURE
    scores, labels = sampled(3.0, 3000)
    free = fit_temperature(scores, labels, prior_songs=0)
    few = fit_temperature(scores[:4], labels[:4])
    assert abs(np.log(few / PRIOR_TEMPERATURE)) < abs(np.log(free / PRIOR_TEMPERATURE))


def test_temper_keeps_the_answer_and_normalises() -> None:
    """A temperature changes confidence, never which artist wins; rows stay distributions."""
    logp = log_softmax(np.array([[2.0, 0.5, -1.0], [0.0, 3.0, 1.0]]))
    for t in (0.3, 1.0, 4.0):
        out = temper(logp, t)
        assert (out.argmax(axis=1) == logp.argmax(axis=1)).all()
        np.testing.assert_allclose(np.exp(out).sum(axis=1), 1.0)
    assert np.exp(temper(logp, 4.0)).max() < np.exp(logp).max() < np.exp(temper(logp, 0.3)).max()


def test_expected_calibration_error_by_hand() -> None:
    """ECE weighs each bin's |accuracy - confidence| by its share of songs."""
    assert expected_calibration_error([0.95, 0.95, 0.55, 0.55], [1, 1, 1, 0]) == pytest.approx(
        (2 * 0.05 + 2 * 0.05) / 4
    )
    assert expected_calibration_error([0.9] * 10, [0] * 10) == pytest.approx(0.9)
    assert expected_calibration_error([], []) is None


def test_reliability_of_overconfident_predictions_is_poor() -> None:
    """Songs shown at ~100% but right half the time have an ECE near 0.5."""
    clips = [np.log(np.array([[0.999, 0.001]])) for _ in range(10)]
    r = reliability([0, 1] * 5, clips)
    assert r["accuracy"] == 0.5 and r["ece"] == pytest.approx(0.5, abs=0.01)
