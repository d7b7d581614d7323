"""Pictures for replies: a log-mel spectrogram with per-window guesses, and a confusion matrix."""

from __future__ import annotations

import colorsys
import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from bot import text
from model_store import features
from model_store.features import HOP_LENGTH, SAMPLE_RATE

Colour = tuple[int, int, int]  # BGR, as OpenCV draws

# Dark theme, close to Discord's own.
BG: Colour = (56, 51, 49)
PANEL: Colour = (74, 69, 66)
TEXT: Colour = (236, 236, 236)
DIM: Colour = (170, 166, 163)
DARK: Colour = (24, 22, 21)
ACCENT: Colour = (242, 101, 88)  # Discord blurple, for confusion cells
UNSURE_COLOUR: Colour = (150, 150, 150)
UNSURE_NAMES = frozenset({"", "?", "not sure", "unsure", "unknown"})

# Tableau 10 without its grey (kept for "not sure"), plus a lime; RGB hex.
_PALETTE_HEX = "4E79A7F28E2BE1575976B7B259A14FEDC948B07AA1FF9DA79C755FB5D33D"
_PALETTE = [
    tuple(int(_PALETTE_HEX[i + k : i + k + 2], 16) for k in (4, 2, 0)) for i in range(0, 60, 6)
]
# Typographic punctuation with an obvious ASCII stand-in (NFKC already turns '…' into '...').
_PUNCTUATION = str.maketrans({
    "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-", "\u2212": "-",
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201c": '"', "\u201d": '"', "\u201e": '"',
    "\u00b7": "-", "\u2022": "-", "\u00d7": "x",
})  # fmt: skip
_INVISIBLE = frozenset({"Mn", "Me", "Cf", "Cc"})  # marks, format and control characters

PAD = 16  # outer margin; the spectrogram's plot spans x in [AXIS_LEFT, width - PAD)
AXIS_LEFT = 48
TITLE_HEIGHT = 36
SPEC_HEIGHT = 240
STRIP_GAP = 6  # between the spectrogram and the strip of guesses
STRIP_HEIGHT = 28
PX_PER_SECOND = 40
MIN_PLOT_WIDTH = 480
LEGEND_ROW, SWATCH, MAX_LEGEND_ROWS = 22, 14, 4
TICK_STEPS = (0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600)
FREQ_TICKS_HZ = (500, 1000, 2000, 4000)
PNG_PARAMS = [cv2.IMWRITE_PNG_COMPRESSION, 6]


@dataclass(frozen=True)
class Window:
    """One analysis window's prediction: its time span in seconds, artist and probability."""

    start: float
    end: float
    artist: str
    probability: float


def is_unsure(artist: object) -> bool:
    """Whether `artist` is the "not sure"/unknown label rather than a real artist."""
    return str(artist).strip().casefold() in UNSURE_NAMES


def artist_colours(artists: Sequence[str]) -> dict[str, Colour]:
    """Stable, distinct BGR colours by class index; "not sure"/unknown gets grey."""
    colours: dict[str, Colour] = {}
    for i, artist in enumerate(artists):
        if artist in colours:
            continue
        if is_unsure(artist):
            colours[artist] = UNSURE_COLOUR
        elif i < len(_PALETTE):
            colours[artist] = _PALETTE[i]  # type: ignore[assignment]
        else:  # golden-ratio hue steps, alternating bright and muted
            k = i - len(_PALETTE)
            sat, val = (0.7, 0.95) if k % 2 == 0 else (0.5, 0.75)
            r, g, b = colorsys.hsv_to_rgb((0.72 + k * 0.618033988749895) % 1.0, sat, val)
            colours[artist] = (round(b * 255), round(g * 255), round(r * 255))
    return colours


def _num(value: object, default: float = math.nan) -> float:
    """`value` as a float, or `default` where it is not a number."""
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return default


def _px(scale: float) -> int:
    """Font size in pixels for a legacy OpenCV-style scale (0.45 -> 14 px)."""
    return max(8, round(scale * text.PX_PER_SCALE))


def _width(label: str, scale: float, bold: bool = False) -> int:
    """Pixel width of `label` drawn at `scale`."""
    return text.width(label, _px(scale), bold)


def _fit(label: object, max_px: int, scale: float, bold: bool = False) -> str:
    """`label` cut with '…' so it is at most `max_px` wide; every script kept as it is."""
    return text.fit(str(label), max(0, max_px), _px(scale), bold)


def _put(img: np.ndarray, label: str, x: float, y: float, scale: float = 0.45, colour=TEXT) -> None:
    """Draw `label` with its baseline at (x, y)."""
    text.draw(img, label, x, y, _px(scale), colour)


def _title(img: np.ndarray, title: str) -> None:
    """Draw `title` across the top of `img`, cut to fit."""
    label = _fit(title, img.shape[1] - 2 * PAD, 0.65, bold=True)
    text.draw(img, label, PAD, PAD + 20, _px(0.65), TEXT, bold=True)


def _png(img: np.ndarray) -> bytes:
    """`img` encoded as PNG bytes."""
    return cv2.imencode(".png", img, PNG_PARAMS)[1].tobytes()


def _mel_image(mel: np.ndarray, width: int, height: int) -> np.ndarray:
    """The (frames, mels) log-mel as a (height, width, 3) image, low frequencies at the bottom."""
    arr = np.asarray(mel, dtype=np.float32)
    if arr.size == 0:
        return np.full((height, width, 3), DARK, np.uint8)
    sample = arr[:: max(1, arr.shape[0] // 4000)]  # percentiles from <= ~4000 frames
    finite = sample[np.isfinite(sample)]
    finite = finite if finite.size else arr[np.isfinite(arr)]
    lo, hi = np.percentile(finite, [1, 99]) if finite.size else (0.0, 0.0)
    arr = np.where(np.isfinite(arr), arr, np.float32(lo))  # NaN and inf draw as the minimum
    img = np.ascontiguousarray(arr.T[::-1])
    interp = cv2.INTER_AREA if img.shape[1] > width else cv2.INTER_LINEAR
    img = cv2.resize(img, (width, img.shape[0]), interpolation=interp)
    img = cv2.resize(img, (width, height), interpolation=cv2.INTER_LINEAR)
    gain = 255.0 / (hi - lo) if hi - lo > 1e-6 else 0.0
    grey = np.clip((img - lo) * gain, 0, 255).astype(np.uint8)
    return cv2.applyColorMap(grey, cv2.COLORMAP_MAGMA)


def _tick_label(t: float, step: float, extent: float) -> str:
    """Tick label in seconds ("5s", "0.5s"), or m:ss for clips of two minutes or more."""
    if extent >= 120:
        return f"{round(t) // 60}:{round(t) % 60:02d}"
    return f"{t:.1f}s" if step < 1 else f"{round(t)}s"


def _window_colour(colour: Colour, probability: float) -> Colour:
    """`colour` blended toward dark as `probability` falls, so confidence shows."""
    a = 0.25 + 0.75 * min(1.0, max(0.0, probability if math.isfinite(probability) else 0.0))
    return tuple(round(d + (c - d) * a) for c, d in zip(colour, DARK, strict=True))  # type: ignore[return-value]


def _legend_items(windows: list[Window], colours: dict[str, Colour], artists: Sequence[str],
                  right: int) -> list[tuple[int, int, Colour | None, str]]:  # fmt: skip
    """(x, row, colour, label) per predicted artist, most windows first, flowed into rows."""
    counts: dict[str, int] = {}
    for w in windows:
        counts[w.artist] = counts.get(w.artist, 0) + 1
    rank = {a: i for i, a in enumerate(artists)}
    names = sorted(counts, key=lambda a: (-counts[a], rank.get(a, len(rank)), str(a)))
    items: list[tuple[int, int, Colour | None, str]] = []
    x, row = AXIS_LEFT, 0
    for k, name in enumerate(names):
        label = f"{_fit(name, 230, 0.45)}  {counts[name] / len(windows):.0%}"
        w = SWATCH + 8 + _width(label, 0.45) + 24
        if x + w > right and x > AXIS_LEFT:
            x, row = AXIS_LEFT, row + 1
        if row == MAX_LEGEND_ROWS:
            items.append((AXIS_LEFT, row, None, f"+{len(names) - k} more"))
            break
        items.append((x, row, colours.get(name, UNSURE_COLOUR), label))
        x += w
    return items


def spectrogram_png(
    mel: np.ndarray,
    windows: Sequence[Window],
    artists: Sequence[str],
    *,
    title: str = "",
    seconds_per_frame: float = HOP_LENGTH / SAMPLE_RATE,
    max_width: int = 1200,
) -> bytes:
    """PNG of the log-mel with a strip of per-window guesses, a time axis and a legend."""
    mel = np.asarray(mel)
    mel = mel.reshape(1, -1) if mel.ndim < 2 else mel.reshape(-1, max(mel.shape[-1], 1))
    frames, n_mels = mel.shape
    wins = [Window(_num(w.start), _num(w.end), w.artist, _num(w.probability, 0.0)) for w in windows]
    wins = [w for w in wins if math.isfinite(w.start) and math.isfinite(w.end)]
    extent = frames * _num(seconds_per_frame, 0.0)
    if not (math.isfinite(extent) and extent > 0):
        extent = max([w.end for w in wins if w.end < 1e7] + [1.0])
    cap = max(int(max_width), MIN_PLOT_WIDTH + AXIS_LEFT + PAD)
    width = int(min(cap, max(MIN_PLOT_WIDTH, extent * PX_PER_SECOND) + AXIS_LEFT + PAD))
    x0, plot_w = AXIS_LEFT, width - AXIS_LEFT - PAD
    colours = artist_colours(artists)
    items = _legend_items(wins, colours, artists, width - PAD)

    spec_y = PAD + (TITLE_HEIGHT if title else 0)
    strip_y = spec_y + SPEC_HEIGHT + STRIP_GAP
    axis_y = strip_y + STRIP_HEIGHT
    legend_y = axis_y + 34
    height = legend_y + (items[-1][1] + 1 if items else 1) * LEGEND_ROW + 12
    img = np.full((height, width, 3), BG, np.uint8)
    if title:
        _title(img, title)
    img[spec_y : spec_y + SPEC_HEIGHT, x0 : x0 + plot_w] = _mel_image(mel, plot_w, SPEC_HEIGHT)

    # Frequency axis: where 0.5, 1, 2 and 4 kHz fall among the mel bands (Nyquist at the top).
    _put(img, "kHz", 8, spec_y + 10, 0.38, DIM)
    for hz in FREQ_TICKS_HZ:
        band = features.hz_to_mel(hz) / features.hz_to_mel(SAMPLE_RATE / 2) * (n_mels + 1) - 1
        y = round(spec_y + SPEC_HEIGHT - (band + 0.5) * SPEC_HEIGHT / n_mels)
        if spec_y + 8 <= y <= spec_y + SPEC_HEIGHT - 4:
            label = f"{hz / 1000:g}"
            cv2.line(img, (x0 - 5, y), (x0 - 1, y), DIM, 1)
            _put(img, label, x0 - 8 - _width(label, 0.38), y + 4, 0.38, DIM)

    # Strip of per-window guesses; the most confident window wins where windows overlap.
    img[strip_y : strip_y + STRIP_HEIGHT, x0 : x0 + plot_w] = PANEL
    for w in sorted(wins, key=lambda w: w.probability if math.isfinite(w.probability) else 0):
        a, b = sorted((w.start, w.end))
        if a >= extent or b <= 0:
            continue
        xa = x0 + round(max(a, 0.0) / extent * plot_w)
        xb = max(xa + 1, x0 + round(min(b, extent) / extent * plot_w))
        colour = _window_colour(colours.get(w.artist, UNSURE_COLOUR), w.probability)
        img[strip_y : strip_y + STRIP_HEIGHT, xa : min(xb, x0 + plot_w)] = colour

    # Time axis with a round step: at most ~12 ticks, with room for their labels.
    cv2.line(img, (x0, axis_y), (x0 + plot_w - 1, axis_y), DIM, 1)
    label_px = _width(_tick_label(extent, 1, extent) + "00", 0.4)
    steps = [s for s in TICK_STEPS if extent / s <= 12 and s / extent * plot_w >= label_px]
    step = float(steps[0] if steps else TICK_STEPS[-1])
    for k in range(int(extent / step + 1e-9) + 1):
        x = min(x0 + round(k * step / extent * plot_w), x0 + plot_w - 1)
        label = _tick_label(k * step, step, extent)
        cv2.line(img, (x, axis_y), (x, axis_y + 5), DIM, 1)
        lw = _width(label, 0.4)
        _put(img, label, min(max(x - lw // 2, x0 - 6), width - lw - 2), axis_y + 20, 0.4, DIM)

    if not items:
        _put(img, "no predictions", AXIS_LEFT, legend_y + 15, 0.45, DIM)
    for x, row, colour, label in items:
        y = legend_y + row * LEGEND_ROW
        if colour is not None:
            cv2.rectangle(img, (x, y + 2), (x + SWATCH, y + 2 + SWATCH), colour, -1)
        _put(img, label, x + SWATCH + 8 if colour else x, y + 15, 0.45, TEXT if colour else DIM)
    return _png(img)


def _square(matrix: Sequence[Sequence[int]], n: int) -> np.ndarray:
    """`matrix` as an n x n non-negative float array, padded or cut as needed."""
    rows = [[_num(v, 0.0) for v in list(r)[:n]] for r in list(matrix)[:n]]
    out = np.array([r + [0.0] * (n - len(r)) for r in rows] + [[0.0] * n] * (n - len(rows)))
    return np.clip(np.nan_to_num(out.reshape(n, n), nan=0.0, posinf=0.0, neginf=0.0), 0, None)


def confusion_png(
    matrix: Sequence[Sequence[int]], labels: Sequence[str], *, title: str = ""
) -> bytes:
    """PNG of a confusion matrix: rows true artist, numbered columns predicted, row-normalised."""
    n = max(len(labels), len(matrix))
    m = _square(matrix, n)
    row_sums, total = m.sum(axis=1), m.sum()
    names = [_fit(labels[i] if i < len(labels) else f"#{i + 1}", 220, 0.45) for i in range(n)]
    cell = min(64, max(30, 600 // max(n, 1)))
    num_px = _width(f"{n}.", 0.45)
    grid_x = PAD + num_px + 8 + max([_width(s, 0.45) for s in names] + [60]) + 12
    sums_x = grid_x + n * cell + 12
    width = max(sums_x + max(_width(str(int(row_sums.max(initial=0))), 0.4), 16) + PAD, 420)
    info_y = PAD + (TITLE_HEIGHT if title else 0)
    head_y = info_y + 26  # "predicted" caption, then the column numbers
    grid_y = head_y + 44
    img = np.full((grid_y + max(n, 1) * cell + PAD + 4, width, 3), BG, np.uint8)
    if title:
        _title(img, title)
    if total > 0:
        hits = np.trace(m)
        _put(img, f"accuracy {hits / total:.0%}  ({int(hits)}/{int(total)})", PAD, info_y + 16, 0.5)
    else:
        _put(img, "no data yet", PAD, info_y + 16, 0.5, DIM)
    if n == 0:
        return _png(img)

    _put(img, "true artist", PAD, head_y + 36, 0.42, DIM)
    _put(img, "predicted", grid_x, head_y + 12, 0.42, DIM)
    _put(img, "n", sums_x, head_y + 36, 0.42, DIM)
    for j in range(n):
        number = str(j + 1)
        _put(img, number, grid_x + j * cell + (cell - _width(number, 0.42)) // 2, head_y + 36, 0.42)
    norm = np.divide(m, row_sums[:, None], out=np.zeros_like(m), where=row_sums[:, None] > 0)
    empty, full = np.array(PANEL, np.float64), np.array(ACCENT, np.float64)
    for i in range(n):
        y, mid = grid_y + i * cell, grid_y + i * cell + cell // 2
        _put(img, f"{i + 1}.", PAD + num_px - _width(f"{i + 1}.", 0.45), mid + 5, 0.45, DIM)
        _put(img, names[i], PAD + num_px + 8, mid + 5, 0.45)
        _put(img, str(int(row_sums[i])), sums_x, mid + 5, 0.4, DIM)
        for j in range(n):
            x, colour = grid_x + j * cell, empty + (full - empty) * norm[i, j]
            cv2.rectangle(img, (x + 1, y + 1), (x + cell - 2, y + cell - 2), colour.tolist(), -1)
            if i == j:
                cv2.rectangle(img, (x, y), (x + cell - 1, y + cell - 1), DIM, 1)
            luma = 0.114 * colour[0] + 0.587 * colour[1] + 0.299 * colour[2]
            ink = DIM if m[i, j] == 0 else TEXT if luma < 140 else DARK  # light text on dark cells
            count, scale = str(int(m[i, j])), 0.45
            while scale > 0.25 and _width(count, scale) > cell - 6:
                scale -= 0.05
            _put(
                img,
                count,
                x + (cell - _width(count, scale)) // 2,
                mid + round(scale * 10),
                scale,
                ink,
            )
    return _png(img)
