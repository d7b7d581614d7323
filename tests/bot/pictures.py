"""Helpers for tests that look at mimi's pictures: decode them, find text drawn in them."""

from __future__ import annotations

import cv2
import numpy as np

from bot import text
from bot.render import BG, TEXT


def decode(png: bytes) -> np.ndarray:
    """The PNG decoded to a BGR image (fails the test if it does not decode)."""
    img = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None and img.ndim == 3
    return img


def ink(label: str, px: int, bold: bool = False, colour=TEXT) -> np.ndarray:
    """`label` drawn alone on the pictures' background, cropped to its ink."""
    img = np.full((px * 3, text.width(label, px, bold) + px * 2, 3), BG, np.uint8)
    text.draw(img, label, px, px * 2, px, colour, bold)
    grey = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    ys, xs = np.nonzero(np.abs(grey.astype(int) - int(grey[0, 0])) > 40)
    return img[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]


def found(picture: bytes | np.ndarray, label: str, px: int, *, bold: bool = False,
          colour=TEXT, turned: bool = False) -> float:  # fmt: skip
    """How well the best place in `picture` matches `label` drawn alone (1.0: exactly);
    `turned`: reading upwards, as the stats picture's column names are."""
    img = decode(picture) if isinstance(picture, bytes) else picture
    template = ink(label, px, bold, colour)
    if turned:
        template = np.ascontiguousarray(np.rot90(template, 1))
    return float(cv2.matchTemplate(img, template, cv2.TM_CCOEFF_NORMED).max())
