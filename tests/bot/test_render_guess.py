"""The /guess picture: verdict and bars that agree, per-window strip, "not heard", footer."""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest

from bot import i18n, text
from bot.render import DIM, PAD, PANEL, SMALL_PX, TITLE_PX, WIDTH, artist_colours
from bot.render_guess import (
    AXIS_LEFT,
    SPEC_HEIGHT,
    STRIP_GAP,
    STRIP_HEIGHT,
    GuessView,
    Window,
    guess_png,
    headline,
    strip_top,
    view_of,
)
from tests.bot.pictures import decode, found

FPS = 62.5  # log-mel frames per second
ODD_NAMES = ["Björk", "🎵🔥 DJ Emoji 🔥🎵", "محمد عبده", "久石譲", "x" * 64,
             "Zalgo t̷̢͎e̸͉̓x̴͓̊t̵̰̾", "zero\u200bwidth\u200djoin", ""]  # fmt: skip
needs_fonts = pytest.mark.skipif(text.missing_fonts() is not None, reason="no Noto fonts")


def _band_mel(seconds: float) -> np.ndarray:
    """A float16 log-mel that is bright in the lowest 12 mel bands and dim above."""
    mel = np.full((round(seconds * FPS), 96), 1.0, np.float32)
    mel[:, :12] = 7.0
    return mel.astype(np.float16)


def _x(t: float, extent: float) -> int:
    """Image column of time `t` seconds in a clip of `extent` seconds."""
    return AXIS_LEFT + round(t / extent * (WIDTH - PAD - AXIS_LEFT))


def _view(windows=(), top=(("A", 0.9),), verdict="known", **kw) -> GuessView:
    return GuessView(tuple(top), tuple(windows), verdict, **kw)


def test_picture_is_discord_sized_with_low_frequencies_at_the_bottom() -> None:
    """1200 px wide (sharp full size, readable at 400 px) and a low band drawn at the bottom."""
    view = _view()
    img = decode(guess_png(_band_mel(10.0), view))
    assert img.shape[1] == WIDTH and 700 < img.shape[0] < 1300
    spec_y = strip_top(view) - STRIP_GAP - SPEC_HEIGHT
    spec = cv2.cvtColor(img[spec_y : spec_y + SPEC_HEIGHT, AXIS_LEFT : WIDTH - PAD],
                        cv2.COLOR_BGR2GRAY)  # fmt: skip
    assert spec.std() > 20 and spec[-15:].mean() > spec[:15].mean() + 100


@needs_fonts
@pytest.mark.parametrize("verdict", ["known", "unsure", "unknown"])
def test_title_states_the_same_verdict_as_the_reply(verdict: str) -> None:
    """The title is the verdict (known, not sure, no one I know) with the top artist, and the
    bar's percentage is the song score that the reply shows, not a share of windows."""
    view = _view([Window(0, 10, "Maxstack", 0.99)], (("Maxstack", 0.81), ("Other", 0.1)), verdict)
    png = guess_png(_band_mel(10.0), view)
    title = headline("en", view)
    assert "Maxstack" in title and (verdict != "unsure" or title.startswith("Not sure"))
    assert found(png, title, TITLE_PX, bold=True) > 0.9
    assert found(png, "81%", 34) > 0.9 and found(png, "100%", 34) < 0.8


def test_strip_shows_each_windows_artist_colour_from_the_server() -> None:
    """Confident windows fill the strip with their artist's server colour."""
    colours = artist_colours(["Gamma", "Alpha"])  # the server's order, not the ranking
    windows = [Window(0.0, 5.0, "Alpha", 0.99), Window(5.0, 10.0, "Gamma", 0.97)]
    view = _view(windows, (("Alpha", 0.6), ("Gamma", 0.4)))
    img = decode(guess_png(_band_mel(10.0), view, colours))
    y = strip_top(view) + STRIP_HEIGHT // 2
    first, second = img[y, _x(2.5, 10.0)].astype(int), img[y, _x(7.5, 10.0)].astype(int)
    assert np.abs(first - np.array(colours["Alpha"])).max() <= 12
    assert np.abs(second - np.array(colours["Gamma"])).max() <= 12


def test_an_artist_keeps_its_colour_whatever_its_rank() -> None:
    """The same artist is drawn in the same colour whether it comes first or second."""
    colours = artist_colours(["嵐", "AAA"])
    swatch_y = PAD + TITLE_PX + 14 + 10 + SMALL_PX + 18 + 30  # the first row's swatch
    firsts = []
    for top in ((("嵐", 0.7), ("AAA", 0.3)), (("AAA", 0.7), ("嵐", 0.3))):
        img = decode(guess_png(_band_mel(10.0), _view([], top), colours))
        firsts.append(tuple(int(v) for v in img[swatch_y, PAD + 17]))
    assert firsts[0] == colours["嵐"] and firsts[1] == colours["AAA"]


def test_low_probability_window_is_darker() -> None:
    """The same artist's colour is dimmer for an unsure window, so confidence shows."""
    view = _view([Window(0.0, 5.0, "A", 0.99), Window(5.0, 10.0, "A", 0.1)])
    img = decode(guess_png(_band_mel(10.0), view))
    y = strip_top(view) + STRIP_HEIGHT // 2
    sure, unsure = (img[y, _x(t, 10.0)].astype(int).sum() for t in (2.5, 7.5))
    assert unsure < sure * 0.6


@needs_fonts
def test_windows_not_heard_are_hatched_and_the_footer_says_how_much_was_heard() -> None:
    """A 3:28 song heard in three 10-second windows: the gaps are hatched "not heard", the
    legend names it, and the footer says 30 s of 3 min 28 s."""
    windows = [Window(s, s + 10, "A", 0.9) for s in (0.0, 100.0, 198.0)]
    view = _view(windows, model_version=7)
    png = guess_png(_band_mel(208.0), view)
    img = decode(png)
    y = strip_top(view) + STRIP_HEIGHT // 2
    gap = img[y - 10 : y + 10, _x(40, 208) : _x(60, 208)].reshape(-1, 3)
    colours = {tuple(int(v) for v in px) for px in gap}
    assert PANEL in colours and DIM in colours  # the hatching
    assert found(png, i18n.t("en", "picture.not_heard"), SMALL_PX) > 0.9
    assert found(png, "Heard 30 s of 3 min 28 s · model v7", SMALL_PX, colour=DIM) > 0.9


def test_fully_heard_clip_has_no_not_heard_entry() -> None:
    """When the windows cover the clip, nothing is hatched."""
    view = _view([Window(0.0, 10.0, "A", 0.9)])
    img = decode(guess_png(_band_mel(10.0), view))
    strip = img[strip_top(view) : strip_top(view) + STRIP_HEIGHT, AXIS_LEFT : WIDTH - PAD]
    assert not (strip == np.array(DIM, np.uint8)).all(axis=-1).any()


@needs_fonts
def test_japanese_picture_speaks_japanese() -> None:
    """With the ja locale every label is Japanese, durations included (3分28秒)."""
    view = _view([Window(0, 10, "嵐", 0.9)], (("嵐", 0.9),))
    png = guess_png(_band_mel(208.0), view, locale="ja")
    assert found(png, "嵐 の曲みたいです", TITLE_PX, bold=True) > 0.9
    assert found(png, "3分28秒のうち10秒を聴きました", SMALL_PX, colour=DIM) > 0.9


def test_view_of_a_result_keeps_verdict_scores_and_windows() -> None:
    """The service's result dict becomes the picture's view without losing anything."""
    result = {"top": [{"artist": "A", "probability": 0.4}], "unsure": True, "unknown": False,
              "windows": [{"start": 0, "end": 10, "artist": "A", "probability": 0.4}],
              "model_version": 3}  # fmt: skip
    view = view_of(result, "clip.ogg")
    assert view.verdict == "unsure" and view.top == (("A", 0.4),) and view.model_version == 3
    assert view.windows == (Window(0, 10, "A", 0.4),) and view.filename == "clip.ogg"
    assert view_of({**result, "unknown": True}).verdict == "unknown"


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
    assert decode(guess_png(mel, _view(windows))).shape[1] == WIDTH


def test_odd_names_and_empty_windows_do_not_raise() -> None:
    """Emoji, RTL, CJK, combining marks, 64-char and empty names, and no windows all render."""
    windows = [Window(i * 2.0, i * 2.0 + 2.0, n, 0.9) for i, n in enumerate(ODD_NAMES)]
    top = tuple((n, 0.1) for n in ODD_NAMES[:3])
    decode(guess_png(_band_mel(16.0), _view(windows, top, filename="🎵 " + ODD_NAMES[2])))
    decode(guess_png(_band_mel(16.0), _view([], ((ODD_NAMES[4] * 3, 1.0),))))
    decode(guess_png(_band_mel(16.0), _view([], ())))


def test_nans_are_drawn_as_the_minimum() -> None:
    """NaN frames render like the quietest values instead of breaking the normalisation."""
    mel = np.random.default_rng(1).uniform(2.0, 6.0, (625, 96)).astype(np.float32)
    mel[:312] = np.nan
    view = _view()
    img = decode(guess_png(mel, view))
    spec_y = strip_top(view) - STRIP_GAP - SPEC_HEIGHT
    spec = cv2.cvtColor(img[spec_y : spec_y + SPEC_HEIGHT, AXIS_LEFT : WIDTH - PAD],
                        cv2.COLOR_BGR2GRAY)  # fmt: skip
    half = spec.shape[1] // 2
    assert spec[:, : half - 10].mean() < 10 < spec[:, half + 10 :].mean()


def test_twenty_minute_clip_is_fast_and_small() -> None:
    """A 20-minute log-mel (75,000 frames) with 120 windows renders in < 1.5 s and < 1 MB."""
    mel = np.random.default_rng(0).normal(4.0, 1.5, (75_000, 96)).astype(np.float16)
    artists = [f"artist {i}" for i in range(20)]
    windows = [Window(i * 10.0, i * 10.0 + 10.0, artists[i % 20], 0.8) for i in range(120)]
    start = time.perf_counter()
    png = guess_png(mel, _view(windows, ((artists[0], 0.5),)))
    assert time.perf_counter() - start < 1.5
    assert len(png) < 1_000_000 and decode(png).shape[1] == WIDTH
