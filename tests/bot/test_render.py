"""Rendering of the /guess spectrogram and the confusion matrix to PNG."""

from __future__ import annotations

import time
import warnings

import cv2
import numpy as np
import pytest

from bot.render import (
    AXIS_LEFT,
    MIN_PLOT_WIDTH,
    PAD,
    SPEC_HEIGHT,
    STRIP_GAP,
    STRIP_HEIGHT,
    UNSURE_COLOUR,
    Window,
    artist_colours,
    confusion_png,
    spectrogram_png,
)

FPS = 62.5  # log-mel frames per second
ODD_NAMES = [
    "Björk",
    "🎵🔥 DJ Emoji 🔥🎵",
    "محمد عبده",  # right-to-left
    "久石譲",
    "x" * 64,
    "Zalgo t̷̢͎e̸͉̓x̴͓̊t̵̰̾",
    "zero\u200bwidth\u200djoin",
    "",
]


def _decode(png: bytes) -> np.ndarray:
    """The PNG decoded to a BGR image (fails the test if it does not decode)."""
    img = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None and img.ndim == 3
    return img


def _band_mel(seconds: float) -> np.ndarray:
    """A float16 log-mel that is bright in the lowest 12 mel bands and dim above."""
    mel = np.full((round(seconds * FPS), 96), 1.0, np.float32)
    mel[:, :12] = 7.0
    return mel.astype(np.float16)


def _plot_x(t: float, width: int, extent: float) -> int:
    """Image column of time `t` seconds in a spectrogram of `extent` seconds."""
    return AXIS_LEFT + round(t / extent * (width - AXIS_LEFT - PAD))


def test_spectrogram_decodes_with_sane_size_and_low_frequencies_at_bottom() -> None:
    """The PNG decodes, is 480..1200 px wide, and a low-mel band is drawn near the bottom."""
    img = _decode(spectrogram_png(_band_mel(10.0), [], ["A"]))
    h, w = img.shape[:2]
    assert MIN_PLOT_WIDTH <= w <= 1200
    assert SPEC_HEIGHT + STRIP_HEIGHT < h < 600
    spec = cv2.cvtColor(img[PAD : PAD + SPEC_HEIGHT, AXIS_LEFT : w - PAD], cv2.COLOR_BGR2GRAY)
    assert spec.std() > 20  # not a uniform block
    assert spec[-15:].mean() > spec[:15].mean() + 100


def test_spectrogram_width_follows_duration_within_bounds() -> None:
    """Longer clips get wider pictures, never past max_width nor under the minimum."""
    short = _decode(spectrogram_png(_band_mel(2.0), [], ["A"])).shape[1]
    medium = _decode(spectrogram_png(_band_mel(20.0), [], ["A"])).shape[1]
    long = _decode(spectrogram_png(_band_mel(300.0), [], ["A"])).shape[1]
    capped = _decode(spectrogram_png(_band_mel(300.0), [], ["A"], max_width=800)).shape[1]
    assert MIN_PLOT_WIDTH <= short < medium < long == 1200
    assert capped == 800


def test_title_moves_content_down() -> None:
    """A title adds height above the spectrogram rather than overwriting it."""
    plain = _decode(spectrogram_png(_band_mel(5.0), [], ["A"]))
    titled = _decode(spectrogram_png(_band_mel(5.0), [], ["A"], title="Guess: A (93%)"))
    assert titled.shape[0] > plain.shape[0]
    assert titled.shape[1] == plain.shape[1]


def test_strip_shows_each_windows_artist_colour() -> None:
    """Confident windows fill the strip with their artist's colour, distinct per artist."""
    artists = ["Alpha", "Beta", "Gamma"]
    colours = artist_colours(artists)
    windows = [Window(0.0, 5.0, "Alpha", 0.99), Window(5.0, 10.0, "Gamma", 0.97)]
    img = _decode(spectrogram_png(_band_mel(10.0), windows, artists))
    y = PAD + SPEC_HEIGHT + STRIP_GAP + STRIP_HEIGHT // 2
    width = img.shape[1]
    first = img[y, _plot_x(2.5, width, 10.0)].astype(int)
    second = img[y, _plot_x(7.5, width, 10.0)].astype(int)
    assert np.abs(first - np.array(colours["Alpha"])).max() <= 12
    assert np.abs(second - np.array(colours["Gamma"])).max() <= 12
    assert np.abs(first - second).max() > 40


def test_low_probability_window_is_darker() -> None:
    """The same artist's colour is dimmer for an unsure window, so confidence shows."""
    windows = [Window(0.0, 5.0, "Alpha", 0.99), Window(5.0, 10.0, "Alpha", 0.1)]
    img = _decode(spectrogram_png(_band_mel(10.0), windows, ["Alpha"]))
    y = PAD + SPEC_HEIGHT + STRIP_GAP + STRIP_HEIGHT // 2
    sure = img[y, _plot_x(2.5, img.shape[1], 10.0)].astype(int).sum()
    unsure = img[y, _plot_x(7.5, img.shape[1], 10.0)].astype(int).sum()
    assert unsure < sure * 0.6


def test_artist_colours_distinct_and_stable() -> None:
    """20 artists get 20 clearly different colours, the same on every call; "not sure" is grey."""
    artists = [f"artist {i}" for i in range(20)]
    first = artist_colours(artists)
    assert first == artist_colours(list(artists))
    values = list(first.values())
    assert len(set(values)) == 20
    gaps = [np.abs(np.subtract(a, b)).sum() for i, a in enumerate(values) for b in values[i + 1 :]]
    assert min(gaps) > 30
    assert UNSURE_COLOUR not in values
    assert artist_colours(["A", "not sure"])["not sure"] == UNSURE_COLOUR
    assert artist_colours(["A", "B"])["A"] == first["artist 0"]  # by class index, not name


@pytest.mark.parametrize(
    "mel",
    [
        np.zeros((1, 96), np.float16),  # a single frame
        np.zeros((0, 96), np.float32),  # no frames at all
        np.full((300, 96), np.nan, np.float32),  # nothing finite
        np.zeros(96, np.float32),  # one frame given as a vector
    ],
)
def test_odd_mels_do_not_raise(mel: np.ndarray) -> None:
    """Degenerate mels still render a picture."""
    windows = [Window(0.0, 3.0, "A", 0.5), Window(float("nan"), 1.0, "A", float("nan"))]
    assert _decode(spectrogram_png(mel, windows, ["A"], title="odd")).shape[1] >= MIN_PLOT_WIDTH


def test_odd_names_and_empty_windows_do_not_raise() -> None:
    """Emoji, RTL, CJK, combining marks, 64-char and empty names, and no windows all render."""
    windows = [Window(i * 2.0, i * 2.0 + 2.0, n, 0.9) for i, n in enumerate(ODD_NAMES)]
    windows.append(Window(1.0, 2.0, "never heard of them", 0.5))
    _decode(spectrogram_png(_band_mel(16.0), windows, ODD_NAMES, title="🎵 " + ODD_NAMES[2]))
    _decode(spectrogram_png(_band_mel(16.0), [], ODD_NAMES, title=ODD_NAMES[4] * 3))
    _decode(spectrogram_png(_band_mel(16.0), [], []))


def test_nans_are_drawn_as_the_minimum() -> None:
    """NaN frames render like the quietest values instead of breaking the normalisation."""
    rng = np.random.default_rng(1)
    mel = rng.uniform(2.0, 6.0, (625, 96)).astype(np.float32)
    mel[:312] = np.nan
    img = _decode(spectrogram_png(mel, [], ["A"]))
    spec = cv2.cvtColor(
        img[PAD : PAD + SPEC_HEIGHT, AXIS_LEFT : img.shape[1] - PAD], cv2.COLOR_BGR2GRAY
    )
    half = spec.shape[1] // 2
    assert spec[:, : half - 10].mean() < 10 < spec[:, half + 10 :].mean()


def test_twenty_minute_clip_is_fast_and_small() -> None:
    """A 20-minute log-mel (75,000 frames) with 120 windows renders in < 1 s and < 1 MB."""
    rng = np.random.default_rng(0)
    mel = rng.normal(4.0, 1.5, (75_000, 96)).astype(np.float16)
    artists = [f"artist {i}" for i in range(20)]
    windows = [Window(i * 10.0, i * 10.0 + 10.0, artists[i % 20], 0.8) for i in range(120)]
    start = time.perf_counter()
    png = spectrogram_png(mel, windows, artists, title="long")
    elapsed = time.perf_counter() - start
    assert elapsed < 1.0
    assert len(png) < 1_000_000
    assert _decode(png).shape[1] == 1200


def _saturated_blobs(img: np.ndarray) -> np.ndarray:
    """Centroids (x, y) of the strongly coloured regions of a confusion picture."""
    sat = cv2.cvtColor(img, cv2.COLOR_BGR2HSV)[:, :, 1]
    count, _, stats, centroids = cv2.connectedComponentsWithStats((sat > 120).astype(np.uint8))
    big = [i for i in range(1, count) if stats[i, cv2.CC_STAT_AREA] > 100]
    return centroids[big]


def test_confusion_diagonal_cells_stand_out() -> None:
    """A diagonal matrix shades exactly the N diagonal cells, lying along the diagonal."""
    n = 5
    img = _decode(confusion_png(np.diag([10, 3, 7, 1, 4]).tolist(), list("ABCDE"), title="x"))
    blobs = _saturated_blobs(img)
    assert len(blobs) == n
    order = np.argsort(blobs[:, 0])
    xs, ys = blobs[order, 0], blobs[order, 1]
    assert np.all(np.diff(xs) > 10) and np.all(np.diff(ys) > 10)
    assert np.ptp(np.diff(xs)) < 3 and np.ptp(np.diff(ys)) < 3  # evenly spaced: the diagonal


def test_confusion_empty_inputs() -> None:
    """No artists, and rows without any examples, render without dividing by zero."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _decode(confusion_png([], [], title="nothing yet"))
        _decode(confusion_png([[0, 0], [0, 0]], ["A", "B"]))
        img = _decode(confusion_png([[3, 1], [0, 0]], ["A", "B"]))
    assert len(_saturated_blobs(img)) == 1  # only the row that has data is shaded


def test_confusion_twenty_labels_and_ragged_input() -> None:
    """20 odd labels give a readable-size picture; a ragged matrix is padded, not an error."""
    labels = [ODD_NAMES[i % len(ODD_NAMES)] + f" {i}" for i in range(20)]
    matrix = (np.eye(20, dtype=int) * 50 + 1).tolist()
    img = _decode(confusion_png(matrix, labels, title="20 artists"))
    assert 600 <= img.shape[1] <= 1400 and 600 <= img.shape[0] <= 1400
    assert len(_saturated_blobs(img)) == 20
    _decode(confusion_png([[1, 2, 3], [4]], ["A", "B"]))
