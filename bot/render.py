"""What mimi's pictures share: the dark theme, artist colours, text at a readable size, PNG.

Both pictures are 1200 px wide and laid out for how Discord shows them in a chat (about 400 px
wide): text is at least 30 px tall at full size (10 px in the chat), and every label says in
words what it shows. Pure: arrays and names in, PNG bytes out.
"""

from __future__ import annotations

import colorsys
import math
from collections.abc import Sequence

import cv2
import numpy as np

from bot import text

Colour = tuple[int, int, int]  # BGR, as OpenCV draws

WIDTH = 1200
PAD = 40
# Dark theme, close to Discord's own.
BG: Colour = (56, 51, 49)
PANEL: Colour = (74, 69, 66)
TEXT: Colour = (236, 236, 236)
DIM: Colour = (176, 172, 169)
DARK: Colour = (24, 22, 21)
UNSURE_COLOUR: Colour = (150, 150, 150)
HIT: Colour = (115, 158, 0)  # Okabe-Ito bluish green
MISS: Colour = (0, 94, 213)  # Okabe-Ito vermillion
UNSURE_NAMES = frozenset({"", "?", "not sure", "unsure", "unknown"})
# Font sizes in px at full size (a third of that in the chat).
TITLE_PX, BODY_PX, SMALL_PX = 46, 34, 30

# Colour-blind-safe: Okabe-Ito (without black, and without the green and vermillion kept for
# right and wrong), then Paul Tol's "light" scheme (without its mint); RGB hex.
_PALETTE_HEX = (
    "E69F00" "56B4E9" "F0E442" "0072B2" "CC79A7"
    "77AADD" "EE8866" "EEDD88" "FFAABB" "99DDFF" "BBCC33" "AAAA00"
)  # fmt: skip
PALETTE: tuple[Colour, ...] = tuple(
    (int(_PALETTE_HEX[i + 4 : i + 6], 16), int(_PALETTE_HEX[i + 2 : i + 4], 16),
     int(_PALETTE_HEX[i : i + 2], 16))
    for i in range(0, len(_PALETTE_HEX), 6)
)  # fmt: skip
PNG_PARAMS = [cv2.IMWRITE_PNG_COMPRESSION, 6]


def is_unsure(artist: object) -> bool:
    """Whether `artist` is the "not sure"/unknown label rather than a real artist."""
    return str(artist).strip().casefold() in UNSURE_NAMES


def palette_colour(index: int) -> Colour:
    """The `index`-th artist colour: the safe palette first, then golden-ratio hues."""
    if index < len(PALETTE):
        return PALETTE[index]
    k = index - len(PALETTE)
    sat, val = (0.7, 0.95) if k % 2 == 0 else (0.5, 0.75)
    r, g, b = colorsys.hsv_to_rgb((0.72 + k * 0.618033988749895) % 1.0, sat, val)
    return round(b * 255), round(g * 255), round(r * 255)


def artist_colours(artists: Sequence[str]) -> dict[str, Colour]:
    """One colour per artist from its place in `artists` — give a server's artists in the order
    they were first taught, and each keeps its colour in every picture; unsure is grey."""
    colours: dict[str, Colour] = {}
    for artist in artists:
        if artist not in colours:
            colours[artist] = UNSURE_COLOUR if is_unsure(artist) else palette_colour(len(colours))
    return colours


def num(value: object, default: float = math.nan) -> float:
    """`value` as a float, or `default` where it is not a number."""
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return default


def put(img: np.ndarray, label: str, x: float, y: float, px: int = BODY_PX, colour=TEXT,
        bold: bool = False) -> None:  # fmt: skip
    """Draw `label` with its baseline at (x, y)."""
    text.draw(img, label, x, y, px, colour, bold)


def fit(label: object, max_px: int, px: int = BODY_PX, bold: bool = False) -> str:
    """`label` cut with '…' to at most `max_px` wide; every script kept as it is."""
    return text.fit(str(label), max(0, max_px), px, bold)


def width(label: str, px: int = BODY_PX, bold: bool = False) -> int:
    """Pixel width of `label`."""
    return text.width(label, px, bold)


def swatch(img: np.ndarray, x: int, y: int, size: int, colour: Colour) -> None:
    """A filled square of `colour` with its top-left corner at (x, y)."""
    cv2.rectangle(img, (x, y), (x + size - 1, y + size - 1), colour, -1)


def hatch(img: np.ndarray, x0: int, y0: int, x1: int, y1: int, step: int = 12) -> None:
    """Diagonal grey hatching over [x0, x1) x [y0, y1): "not heard"."""
    if x1 <= x0 or y1 <= y0:
        return
    region = img[y0:y1, x0:x1]
    region[:] = PANEL
    yy, xx = np.mgrid[0 : y1 - y0, 0 : x1 - x0]
    region[((xx + yy + x0 + y0) % step) < 3] = DIM


def blend(colour: Colour, towards: Colour, amount: float) -> Colour:
    """`colour` moved `amount` (0..1) of the way to `towards`."""
    a = min(1.0, max(0.0, amount if math.isfinite(amount) else 1.0))
    return tuple(round(c + (t - c) * a) for c, t in zip(colour, towards, strict=True))  # type: ignore[return-value]


def ink_for(colour: Sequence[float]) -> Colour:
    """Dark or light text, whichever reads on `colour`."""
    luma = 0.114 * colour[0] + 0.587 * colour[1] + 0.299 * colour[2]
    return DARK if luma >= 140 else TEXT


def canvas(height: int, width: int = WIDTH) -> np.ndarray:
    """A blank picture in the theme's background."""
    return np.full((max(1, height), width, 3), BG, np.uint8)


def png(img: np.ndarray) -> bytes:
    """`img` encoded as PNG bytes."""
    return cv2.imencode(".png", img, PNG_PARAMS)[1].tobytes()
