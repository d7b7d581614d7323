"""The /stats picture: per-artist "recognised k of m", names on both axes, hits and mistakes."""

from __future__ import annotations

import warnings

import cv2
import numpy as np
import pytest

from bot import text
from bot.render import DIM, HIT, MISS, SMALL_PX, TITLE_PX
from bot.render_stats import StatsView, square, stats_png
from tests.bot.pictures import decode, found

needs_fonts = pytest.mark.skipif(text.missing_fonts() is not None, reason="no Noto fonts")


def _view(matrix, labels, version=3, day="Dec 2, 2026") -> StatsView:
    return StatsView(tuple(labels), tuple(tuple(r) for r in matrix), version, day)


def _cells(img: np.ndarray, colour) -> int:
    """How many separate cell-sized regions are drawn in a hue near `colour`."""
    hsv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV).astype(int)
    want = cv2.cvtColor(np.uint8([[colour]]), cv2.COLOR_BGR2HSV)[0, 0].astype(int)
    mask = ((np.abs(hsv[..., 0] - want[0]) <= 6) & (hsv[..., 1] > 120)).astype(np.uint8)
    count, _, stats, _ = cv2.connectedComponentsWithStats(mask)
    return sum(1 for i in range(1, count) if stats[i, cv2.CC_STAT_AREA] > 2000
               and stats[i, cv2.CC_STAT_WIDTH] < 160)  # fmt: skip


@needs_fonts
def test_says_per_artist_how_many_held_out_songs_were_recognised() -> None:
    """Each artist's row says "recognised k of m held-out songs", and the header the model's
    version, its date and the overall count."""
    png = stats_png(_view([[4, 1], [0, 5]], ["Maxstack", "Crystan"]))
    assert found(png, "recognised 4 of 5 held-out songs", SMALL_PX, colour=DIM) > 0.9
    assert found(png, "recognised 5 of 5 held-out songs", SMALL_PX, colour=DIM) > 0.9
    assert found(png, "model v3 · Dec 2, 2026 · 9 of 10 held-out songs right", SMALL_PX,
                 colour=DIM) > 0.9  # fmt: skip


@needs_fonts
def test_names_on_both_axes() -> None:
    """Artist names label the rows and (reading upwards) the columns; no numbers instead."""
    png = stats_png(_view([[3, 1], [0, 2]], ["Maxstack", "嵐"]))
    for name in ("Maxstack", "嵐"):
        assert found(png, name, SMALL_PX) > 0.9
        assert found(png, name, SMALL_PX, turned=True) > 0.9


def test_hits_and_mistakes_have_different_colours() -> None:
    """Diagonal cells are drawn in the hit colour, mistakes in another; empty cells in neither."""
    img = decode(stats_png(_view([[4, 1, 0], [0, 5, 0], [2, 0, 3]], ["A", "B", "C"])))
    assert _cells(img, HIT) >= 3 and _cells(img, MISS) >= 2
    only_hits = decode(stats_png(_view(np.diag([4, 2, 3]).tolist(), ["A", "B", "C"])))
    assert _cells(only_hits, MISS) == 0


@needs_fonts
def test_japanese_picture() -> None:
    """With the ja locale the title and the per-artist lines are Japanese."""
    png = stats_png(_view([[4, 1], [0, 5]], ["嵐", "AAA"], day="2026年12月2日"), locale="ja")
    assert found(png, "アーティストごとの聞き分け", TITLE_PX, bold=True) > 0.9
    assert found(png, "テスト曲5曲中4曲を正解", SMALL_PX, colour=DIM) > 0.9


def test_empty_inputs() -> None:
    """No artists, and rows without any examples, render without dividing by zero."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        decode(stats_png(_view([], [])))
        decode(stats_png(_view([[0, 0], [0, 0]], ["A", "B"], version=None, day="")))
        decode(stats_png(_view([[3, 1], [0, 0]], ["A", "B"])))


def test_twenty_labels_and_ragged_input() -> None:
    """20 odd labels still fit 1200 px; a ragged matrix is padded, not an error."""
    labels = [f"Björk 久石譲 محمد {i}" for i in range(20)]
    img = decode(stats_png(_view((np.eye(20, dtype=int) * 50 + 1).tolist(), labels)))
    assert img.shape[1] == 1200 and img.shape[0] < 3600
    decode(stats_png(_view([[1, 2, 3], [4]], ["A", "B"])))
    assert square([[1, 2, 3], [4]], 2).tolist() == [[1, 2], [4, 0]]
