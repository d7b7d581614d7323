"""The /guess picture: the verdict, the top guesses with bars, the spectrogram with a strip of
per-window guesses ("not heard" where mimi did not listen), a legend and the seconds heard."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import cv2
import numpy as np

from bot import i18n
from bot.render import (
    DARK,
    DIM,
    PAD,
    PANEL,
    SMALL_PX,
    TEXT,
    TITLE_PX,
    UNSURE_COLOUR,
    WIDTH,
    Colour,
    artist_colours,
    blend,
    canvas,
    fit,
    hatch,
    num,
    png,
    put,
    swatch,
    width,
)
from model_store import features
from model_store.features import HOP_LENGTH, SAMPLE_RATE
from model_store.predict import covered_seconds

AXIS_LEFT = PAD + 76  # room for the kHz labels; the plot spans [AXIS_LEFT, WIDTH - PAD)
SPEC_HEIGHT, STRIP_GAP, STRIP_HEIGHT = 300, 8, 52
ROW, BAR_HEIGHT, LEGEND_ROW = 60, 30, 50
TICK_STEPS = (0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600)
FREQ_TICKS_HZ = (500, 1000, 2000, 4000)
MAX_LEGEND = 6
VERDICTS = ("known", "unsure", "unknown")


@dataclass(frozen=True)
class Window:
    """One analysis window's prediction: its time span in seconds, artist and probability."""

    start: float
    end: float
    artist: str
    probability: float


@dataclass(frozen=True)
class GuessView:
    """What the picture shows: the verdict, (artist, song score) best first, the windows."""

    top: tuple[tuple[str, float], ...]
    windows: tuple[Window, ...] = ()
    verdict: str = "known"  # "known" | "unsure" | "unknown"
    filename: str = ""
    model_version: int | None = None


def headline(locale: str, view: GuessView) -> str:
    """The picture's title: the same verdict as the reply's."""
    best = view.top[0][0] if view.top else ""
    key = view.verdict if view.verdict in VERDICTS else "known"
    return i18n.t(locale, f"picture.{key}", artist=best)


def _mel_image(mel: np.ndarray, w: int, h: int) -> np.ndarray:
    """The (frames, mels) log-mel as an (h, w, 3) image, low frequencies at the bottom."""
    arr = np.asarray(mel, dtype=np.float32)
    if arr.size == 0:
        return np.full((h, w, 3), DARK, np.uint8)
    sample = arr[:: max(1, arr.shape[0] // 4000)]  # percentiles from <= ~4000 frames
    finite = sample[np.isfinite(sample)]
    finite = finite if finite.size else arr[np.isfinite(arr)]
    lo, hi = np.percentile(finite, [1, 99]) if finite.size else (0.0, 0.0)
    arr = np.where(np.isfinite(arr), arr, np.float32(lo))  # NaN and inf draw as the minimum
    img = np.ascontiguousarray(arr.T[::-1])
    interp = cv2.INTER_AREA if img.shape[1] > w else cv2.INTER_LINEAR
    img = cv2.resize(img, (w, img.shape[0]), interpolation=interp)
    img = cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR)
    gain = 255.0 / (hi - lo) if hi - lo > 1e-6 else 0.0
    grey = np.clip((img - lo) * gain, 0, 255).astype(np.uint8)
    return cv2.applyColorMap(grey, cv2.COLORMAP_MAGMA)


def _tick_label(t: float, extent: float) -> str:
    """Tick label: seconds ("5s", "0.5s"), or m:ss for clips of two minutes or more."""
    if extent >= 120:
        return f"{round(t) // 60}:{round(t) % 60:02d}"
    return f"{t:g}s"


def _top_rows(img: np.ndarray, y: int, view: GuessView, colours: Mapping[str, Colour],
              locale: str) -> int:  # fmt: skip
    """The top guesses as rows of swatch, name, bar and percentage; returns the next y."""
    put(img, i18n.t(locale, "picture.top_caption"), PAD, y + SMALL_PX, SMALL_PX, DIM)
    y += SMALL_PX + 18
    bar_x, pct_w = 600, width("100%") + 12
    bar_end = WIDTH - PAD - pct_w
    for artist, score in view.top[:3]:
        score = min(1.0, max(0.0, num(score, 0.0)))
        colour = colours.get(artist, UNSURE_COLOUR)
        if view.verdict != "known":
            colour = blend(colour, PANEL, 0.45)  # an unsure or unknown answer looks it
        mid = y + ROW // 2
        swatch(img, PAD, mid - 17, 34, colour)
        put(img, fit(artist, bar_x - PAD - 70), PAD + 52, mid + 12)
        cv2.rectangle(img, (bar_x, mid - BAR_HEIGHT // 2), (bar_end, mid + BAR_HEIGHT // 2),
                      PANEL, -1)  # fmt: skip
        filled = bar_x + round(score * (bar_end - bar_x))
        if filled > bar_x:
            cv2.rectangle(img, (bar_x, mid - BAR_HEIGHT // 2), (filled, mid + BAR_HEIGHT // 2),
                          colour, -1)  # fmt: skip
        label = i18n.percent(locale, score)
        put(img, label, WIDTH - PAD - width(label), mid + 12)
        y += ROW
    return y


def _legend(img: np.ndarray, y: int, items: list[tuple[Colour | None, str]]) -> int:
    """Swatches and labels flowed into rows (None: the "not heard" hatching); the next y."""
    x = PAD
    for colour, label in items:
        w = 36 + 12 + width(label, SMALL_PX) + 36
        if x + w > WIDTH - PAD and x > PAD:
            x, y = PAD, y + LEGEND_ROW
        if colour is None:
            hatch(img, x, y + 6, x + 36, y + 42)
        else:
            swatch(img, x, y + 6, 36, colour)
        put(img, fit(label, WIDTH - PAD - x - 48, SMALL_PX), x + 48, y + 36, SMALL_PX)
        x += w
    return y + LEGEND_ROW


def guess_png(
    mel: np.ndarray,
    view: GuessView,
    colours: Mapping[str, Colour] | None = None,
    *,
    locale: str = "en",
    seconds_per_frame: float = HOP_LENGTH / SAMPLE_RATE,
) -> bytes:
    """The guess picture as PNG; `colours` maps the server's artists to their colours."""
    mel = np.asarray(mel)
    mel = mel.reshape(1, -1) if mel.ndim < 2 else mel.reshape(-1, max(mel.shape[-1], 1))
    frames, n_mels = mel.shape
    wins = [Window(num(w.start), num(w.end), w.artist, num(w.probability, 0.0))
            for w in view.windows]  # fmt: skip
    wins = [w for w in wins if math.isfinite(w.start) and math.isfinite(w.end)]
    extent = frames * num(seconds_per_frame, 0.0)
    if not (math.isfinite(extent) and extent > 0):
        extent = max([w.end for w in wins if w.end < 1e7] + [1.0])
    names = [a for a, _ in view.top] + [w.artist for w in wins]
    colours = {**artist_colours(names), **(colours or {})}
    x0, plot_w = AXIS_LEFT, WIDTH - PAD - AXIS_LEFT

    counts: dict[str, int] = {}
    for w in wins:
        counts[w.artist] = counts.get(w.artist, 0) + 1
    shown = sorted(counts, key=lambda a: -counts[a])
    items: list[tuple[Colour | None, str]] = [(colours.get(a, UNSURE_COLOUR), a)
                                              for a in shown[:MAX_LEGEND]]  # fmt: skip
    if len(shown) > MAX_LEGEND:
        items.append((UNSURE_COLOUR, i18n.t(locale, "picture.more", n=len(shown) - MAX_LEGEND)))
    heard = covered_seconds([(w.start, w.end) for w in wins], extent)
    if heard < extent - 0.05:
        items.append((None, i18n.t(locale, "picture.not_heard")))

    img = canvas(4000)  # cut to the content's height at the end
    put(img, fit(headline(locale, view), WIDTH - 2 * PAD, TITLE_PX, True), PAD, PAD + TITLE_PX,
        TITLE_PX, TEXT, bold=True)  # fmt: skip
    y = PAD + TITLE_PX + 14
    if view.filename:
        put(img, fit(view.filename, WIDTH - 2 * PAD, SMALL_PX), PAD, y + SMALL_PX, SMALL_PX, DIM)
        y += SMALL_PX + 14
    y = _top_rows(img, y + 10, view, colours, locale) + 24

    spec_y = y
    img[spec_y : spec_y + SPEC_HEIGHT, x0 : x0 + plot_w] = _mel_image(mel, plot_w, SPEC_HEIGHT)
    put(img, "kHz", PAD, spec_y + SMALL_PX - 4, SMALL_PX - 6, DIM)
    for hz in FREQ_TICKS_HZ:  # where 0.5, 1, 2 and 4 kHz fall among the mel bands
        band = features.hz_to_mel(hz) / features.hz_to_mel(SAMPLE_RATE / 2) * (n_mels + 1) - 1
        ty = round(spec_y + SPEC_HEIGHT - (band + 0.5) * SPEC_HEIGHT / n_mels)
        if spec_y + 40 <= ty <= spec_y + SPEC_HEIGHT - 8:
            label = f"{hz / 1000:g}"
            cv2.line(img, (x0 - 8, ty), (x0 - 1, ty), DIM, 2)
            put(img, label, x0 - 14 - width(label, SMALL_PX - 6), ty + 9, SMALL_PX - 6, DIM)

    strip_y = spec_y + SPEC_HEIGHT + STRIP_GAP
    hatch(img, x0, strip_y, x0 + plot_w, strip_y + STRIP_HEIGHT)  # not heard, unless covered
    for w in sorted(wins, key=lambda w: w.probability if math.isfinite(w.probability) else 0):
        a, b = sorted((w.start, w.end))
        if a >= extent or b <= 0:
            continue
        xa = x0 + round(max(a, 0.0) / extent * plot_w)
        xb = min(max(xa + 1, x0 + round(min(b, extent) / extent * plot_w)), x0 + plot_w)
        sure = 0.25 + 0.75 * min(1.0, max(0.0, w.probability))
        colour = blend(colours.get(w.artist, UNSURE_COLOUR), DARK, 1 - sure)
        img[strip_y : strip_y + STRIP_HEIGHT, xa:xb] = colour

    axis_y = strip_y + STRIP_HEIGHT + 1  # (the 2 px axis line sits under the strip)
    cv2.line(img, (x0, axis_y), (x0 + plot_w - 1, axis_y), DIM, 2)
    label_px = width(_tick_label(extent, extent) + "00", SMALL_PX - 4)
    steps = [s for s in TICK_STEPS if extent / s <= 10 and s / extent * plot_w >= label_px]
    step = float(steps[0] if steps else TICK_STEPS[-1])
    for k in range(int(extent / step + 1e-9) + 1):
        x = min(x0 + round(k * step / extent * plot_w), x0 + plot_w - 1)
        label = _tick_label(k * step, extent)
        cv2.line(img, (x, axis_y), (x, axis_y + 8), DIM, 2)
        lw = width(label, SMALL_PX - 4)
        put(img, label, min(max(x - lw // 2, x0 - 10), WIDTH - lw - 4), axis_y + 38,
            SMALL_PX - 4, DIM)  # fmt: skip

    y = axis_y + 56
    put(img, i18n.t(locale, "picture.strip_caption"), PAD, y + SMALL_PX, SMALL_PX, DIM)
    y = _legend(img, y + SMALL_PX + 8, items) if items else y + SMALL_PX + 20
    footer = i18n.t(locale, "picture.heard", heard=i18n.Seconds(heard),
                    total=i18n.Seconds(extent))  # fmt: skip
    if view.model_version is not None:
        footer += " · " + i18n.t(locale, "picture.model", version=str(view.model_version))
    put(img, fit(footer, WIDTH - 2 * PAD, SMALL_PX), PAD, y + SMALL_PX + 4, SMALL_PX, DIM)
    return png(img[: y + SMALL_PX + 4 + PAD])


def strip_top(view: GuessView) -> int:
    """The y of the strip's top edge in `view`'s picture (for tests and the README)."""
    y = PAD + TITLE_PX + 14 + (SMALL_PX + 14 if view.filename else 0)
    y += 10 + SMALL_PX + 18 + ROW * min(3, len(view.top)) + 24
    return y + SPEC_HEIGHT + STRIP_GAP


def view_of(result: dict, filename: str = "") -> GuessView:
    """The picture's view of a guess result (the service's dict, as the CLI's JSON has it)."""
    verdict = "unknown" if result.get("unknown") else "unsure" if result.get("unsure") else "known"
    return GuessView(
        top=tuple((t["artist"], float(t["probability"])) for t in result.get("top", [])),
        windows=tuple(
            Window(w["start"], w["end"], w["artist"], w["probability"])
            for w in result.get("windows", [])
        ),
        verdict=verdict,
        filename=filename,
        model_version=result.get("model_version"),
    )
