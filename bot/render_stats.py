"""The /stats picture: per artist "recognised k of m held-out songs", and the confusion matrix
with artist names on both axes, hits and mistakes in different colours, model version and date."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from bot import i18n
from bot.render import (
    BG,
    DIM,
    HIT,
    MISS,
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
    ink_for,
    num,
    png,
    put,
    swatch,
    width,
)

ROW = 88
MAX_LABEL = 360  # px for an artist's name beside the grid (and above it, turned)
MAX_CELL, MIN_CELL = 110, 34


@dataclass(frozen=True)
class StatsView:
    """What the picture shows: artists, their held-out confusion matrix, which model."""

    labels: tuple[str, ...]
    matrix: tuple[tuple[int, ...], ...]
    model_version: int | None = None
    trained_on: str = ""  # the model's date, as the reader writes dates


def square(matrix: Sequence[Sequence[object]], n: int) -> np.ndarray:
    """`matrix` as an n x n non-negative integer array, padded or cut as needed."""
    rows = [[num(v, 0.0) for v in list(r)[:n]] for r in list(matrix)[:n]]
    out = np.array([r + [0.0] * (n - len(r)) for r in rows] + [[0.0] * n] * (n - len(rows)))
    out = np.nan_to_num(out.reshape(n, n), nan=0.0, posinf=0.0, neginf=0.0)
    return np.clip(out, 0, None).round().astype(int)


def _turned(img: np.ndarray, label: str, x: int, bottom: int, px: int, colour: Colour) -> None:
    """Draw `label` reading upwards, its start at (x, bottom) and its height `px`."""
    length = width(label, px) + px
    tmp = np.full((round(px * 1.5), length, 3), BG, np.uint8)
    put(tmp, label, 0, px, px, colour)
    turned = np.rot90(tmp, 1)
    top = bottom - turned.shape[0]
    y0 = max(0, top)
    img[y0:bottom, x : x + turned.shape[1]] = turned[y0 - top :]


def _recognised(img: np.ndarray, y: int, names: list[str], m: np.ndarray,
                colours: Mapping[str, Colour], locale: str) -> int:  # fmt: skip
    """Per artist: swatch, name and "recognised k of m" over a hit/miss bar; the next y."""
    bar_x, bar_end = PAD + 48, WIDTH - PAD
    for i, name in enumerate(names):
        hits, total = int(m[i, i]), int(m[i].sum())
        words = (i18n.t(locale, "picture.recognised", k=hits, n=total) if total
                 else i18n.t(locale, "picture.no_held_out"))  # fmt: skip
        words_w = width(words, SMALL_PX)
        swatch(img, PAD, y + 8, 32, colours.get(name, UNSURE_COLOUR))
        put(img, fit(name, bar_end - bar_x - words_w - 40), bar_x, y + 36)
        put(img, words, bar_end - words_w, y + 35, SMALL_PX, DIM)
        top, bottom = y + 52, y + 68
        cv2.rectangle(img, (bar_x, top), (bar_end, bottom), PANEL, -1)
        if total:
            split = bar_x + round(hits / total * (bar_end - bar_x))
            if split > bar_x:
                cv2.rectangle(img, (bar_x, top), (split, bottom), HIT, -1)
            if split < bar_end:
                cv2.rectangle(img, (split, top), (bar_end, bottom), MISS, -1)
        y += ROW
    return y


def _grid(img: np.ndarray, y: int, names: list[str], m: np.ndarray, locale: str) -> int:
    """The confusion matrix with names on both axes; returns the next y."""
    n = len(names)
    label_w = min(MAX_LABEL, max(width(s, SMALL_PX) for s in names) + 16)
    cell = max(MIN_CELL, min(MAX_CELL, (WIDTH - 2 * PAD - label_w) // max(n, 1)))
    shown = [fit(s, MAX_LABEL - 16, SMALL_PX) for s in names]
    head = min(MAX_LABEL, max(width(s, SMALL_PX) for s in shown) + 24)
    grid_x = PAD + label_w
    put(img, i18n.t(locale, "picture.guessed_as"), grid_x, y + SMALL_PX, SMALL_PX, DIM)
    grid_y = y + SMALL_PX + 16 + head
    for j, label in enumerate(shown):
        x = grid_x + j * cell + (cell - round(SMALL_PX * 1.5)) // 2
        _turned(img, label, x, grid_y - 8, SMALL_PX, TEXT)
    put(img, fit(i18n.t(locale, "picture.true_artist"), label_w - 8, SMALL_PX), PAD,
        grid_y - 16, SMALL_PX, DIM)  # fmt: skip
    rows = m.sum(axis=1)
    count_px = SMALL_PX
    while count_px > 14 and width(str(int(m.max(initial=0))), count_px) > cell - 8:
        count_px -= 2
    for i in range(n):
        cy = grid_y + i * cell
        put(img, shown[i], grid_x - 16 - width(shown[i], SMALL_PX), cy + cell // 2 + 11,
            SMALL_PX)  # fmt: skip
        for j in range(n):
            cx = grid_x + j * cell
            share = m[i, j] / rows[i] if rows[i] else 0.0
            base = HIT if i == j else MISS
            colour = PANEL if m[i, j] == 0 else blend(PANEL, base, 0.35 + 0.65 * share)
            cv2.rectangle(img, (cx + 2, cy + 2), (cx + cell - 3, cy + cell - 3), colour, -1)
            if i == j:
                cv2.rectangle(img, (cx, cy), (cx + cell - 1, cy + cell - 1), DIM, 2)
            label = str(int(m[i, j]))
            ink = DIM if m[i, j] == 0 else ink_for(colour)
            put(img, label, cx + (cell - width(label, count_px)) // 2,
                cy + cell // 2 + count_px // 3, count_px, ink)  # fmt: skip
    return grid_y + n * cell + 20


def stats_png(view: StatsView, colours: Mapping[str, Colour] | None = None, *,
              locale: str = "en") -> bytes:  # fmt: skip
    """The stats picture as PNG; `colours` maps the server's artists to their colours."""
    n = max(len(view.labels), len(view.matrix))
    names = [view.labels[i] if i < len(view.labels) else f"#{i + 1}" for i in range(n)]
    m = square(view.matrix, n)
    colours = {**artist_colours(names), **(colours or {})}
    img = canvas(6000)  # cut to the content's height at the end
    put(img, fit(i18n.t(locale, "picture.stats_title"), WIDTH - 2 * PAD, TITLE_PX, True), PAD,
        PAD + TITLE_PX, TITLE_PX, TEXT, bold=True)  # fmt: skip
    y = PAD + TITLE_PX + 14
    parts = []
    if view.model_version is not None:
        parts.append(i18n.t(locale, "picture.model", version=str(view.model_version)))
    if view.trained_on:
        parts.append(view.trained_on)
    total, hits = int(m.sum()), int(np.trace(m)) if n else 0
    parts.append(i18n.t(locale, "picture.overall", k=hits, n=total) if total
                 else i18n.t(locale, "picture.no_held_out"))  # fmt: skip
    put(img, fit(" · ".join(parts), WIDTH - 2 * PAD, SMALL_PX), PAD, y + SMALL_PX, SMALL_PX, DIM)
    y += SMALL_PX + 24
    if n == 0:
        return png(img[: y + PAD])
    y = _recognised(img, y, names, m, colours, locale) + 30
    y = _grid(img, y, names, m, locale)
    legend = [(HIT, i18n.t(locale, "picture.hit")), (MISS, i18n.t(locale, "picture.miss"))]
    x = PAD
    for colour, label in legend:
        swatch(img, x, y + 4, 32, colour)
        put(img, label, x + 44, y + 32, SMALL_PX)
        x += 44 + width(label, SMALL_PX) + 48
    return png(img[: y + 48 + PAD])
