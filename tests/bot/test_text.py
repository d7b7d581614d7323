"""Names in every script are drawn as themselves in mimi's pictures, never as '?' or boxes."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from bot import text
from bot.render import BG, SMALL_PX, TEXT
from bot.render_guess import GuessView, Window, guess_png
from bot.render_stats import MAX_LABEL, StatsView, stats_png
from tests.bot import pictures
from tests.bot.pictures import found

NAMES = ["嵐", "ユニゾン・スクエア・ガーデン", "방탄소년단", "Мумий Тролль", "Björk", "Σωκράτης"]
MIXED = ["AAA × 嵐 feat. Björk", "فيروز", "שלמה ארצי", "Fairuz فيروز 2024"]
NO_GLYPH = "\U000f0001"  # a private-use code point no font here draws
PX = 14  # the legend's font size

needs_fonts = pytest.mark.skipif(
    text.missing_fonts() is not None, reason=text.missing_fonts() or ""
)


def ink(label: str, px: int = PX) -> np.ndarray:
    """`label` drawn alone at the legend's old size, cropped to its ink."""
    return pictures.ink(label, px)


@needs_fonts
@pytest.mark.parametrize("name", NAMES)
def test_each_script_comes_from_a_font_that_has_it(name: str) -> None:
    """Every character of the name has a real glyph in the font chosen for it, and the drawing
    differs from the missing-glyph boxes of as many characters."""
    for run, path in text.runs(name):
        face = next(f for f in text.chain() if f.path == path)
        assert all(ord(ch) in face.covers for ch in run), (run, path.name)
    boxes = NO_GLYPH * len(name.replace(" ", ""))
    drawn, tofu = ink(name), ink(boxes)
    assert drawn.shape != tofu.shape or np.abs(drawn.astype(int) - tofu).mean() > 10


@needs_fonts
@pytest.mark.parametrize("name", NAMES)
def test_guess_picture_and_legend_show_the_name(name: str) -> None:
    """The guess picture's top rows and legend hold the name as its glyphs, not boxes or '?'."""
    mel = np.random.default_rng(1).uniform(0, 4, (1300, 96)).astype(np.float32)
    windows = (Window(0.0, 10.0, name, 0.9), Window(10.0, 20.0, "Other", 0.6))
    png = guess_png(mel, GuessView(((name, 0.7), ("Other", 0.3)), windows))
    assert found(png, name, 34) > 0.9  # a top-guess row
    assert found(png, name, SMALL_PX) > 0.9  # the legend
    assert found(png, "?" * len(name), SMALL_PX) < found(png, name, SMALL_PX) - 0.05


@needs_fonts
@pytest.mark.parametrize("name", NAMES)
def test_stats_picture_shows_the_name(name: str) -> None:
    """The stats picture's per-artist row and its matrix row label are the name itself."""
    png = stats_png(StatsView((name, "Other"), ((3, 1), (0, 2))))
    label = text.fit(name, MAX_LABEL - 16, SMALL_PX)  # a long name is cut there with "…"
    assert found(png, name, 34) > 0.9 and found(png, label, SMALL_PX) > 0.9


@needs_fonts
@pytest.mark.parametrize("name", MIXED)
def test_mixed_and_right_to_left_names_keep_the_layout(name: str) -> None:
    """Mixed scripts and Arabic/Hebrew draw without error, within their measured width, and
    long ones are cut with an ellipsis."""
    img = np.full((40, 600, 3), BG, np.uint8)
    text.draw(img, name, 10, 28, PX, TEXT)
    grey = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    xs = np.nonzero((grey > grey.min() + 40).any(axis=0))[0]
    assert len(xs) and xs.max() <= 10 + text.width(name, PX) + PX
    cut = text.fit(name * 5, 120, PX)
    assert cut.endswith("…") and text.width(cut, PX) <= 120


@needs_fonts
def test_no_character_is_dropped() -> None:
    """A character no font covers is still drawn (as the first font's box), never skipped."""
    assert "".join(run for run, _ in text.runs(f"A{NO_GLYPH}嵐")) == f"A{NO_GLYPH}嵐"
    assert text.width(f"A{NO_GLYPH}B", PX) > text.width("AB", PX)


def test_without_fonts_it_says_so_and_still_draws(monkeypatch, tmp_path) -> None:
    """No font installed: one clear sentence for the log and `mimi health`, and pictures still
    render (Pillow's own font) instead of crashing."""
    monkeypatch.setattr(text, "FONT_ROOTS", (tmp_path,))
    for cached in (text._index, text.chain):
        cached.cache_clear()
    try:
        assert "fonts-noto-cjk" in (text.missing_fonts() or "")
        png = stats_png(StatsView(("嵐", "Björk"), ((1, 0), (0, 1))))
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
    finally:
        for cached in (text._index, text.chain):
            cached.cache_clear()


@pytest.mark.skipif(not text.chain(False), reason="no fonts installed")
def test_emoji_variation_selectors_draw_no_box() -> None:
    """The pencil with variation selector 16 (as in the correction button) draws exactly like
    the bare pencil: the selector joins the pencil's run instead of drawing a box."""
    assert [run for run, _ in text.runs("✏️ It was…")] == ["✏️", " It was…"]
    plain, selected = (np.full((80, 200, 3), BG, np.uint8) for _ in range(2))
    text.draw(plain, "✏ x", 10, 50, 40, TEXT)
    text.draw(selected, "✏️ x", 10, 50, 40, TEXT)
    assert np.array_equal(plain, selected)
