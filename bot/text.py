"""Text in pictures for every script: Pillow (FreeType + raqm) over a chain of Noto fonts.

Each character is drawn with the first font of the chain that has a glyph for it, so 嵐,
방탄소년단, Мумий Тролль and Björk all come out as themselves; a character no font has is drawn
as the first font's missing-glyph box, never as '?' and never dropped. Drawing goes onto the
BGR uint8 arrays OpenCV uses, blended through an alpha mask."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

FONT_ROOTS = (
    Path("/usr/share/fonts"),
    Path("/usr/local/share/fonts"),
    Path.home() / ".local/share/fonts",
    Path.home() / ".fonts",
)
# The fallback chain, by file name (Debian: fonts-noto-core, fonts-noto-cjk; the same files
# exist in every Noto distribution), then DejaVu as a last resort.
REGULAR = (
    "NotoSans-Regular.ttf",
    "NotoSansCJK-Regular.ttc",
    "NotoSansArabic-Regular.ttf",
    "NotoSansHebrew-Regular.ttf",
    "NotoSansThai-Regular.ttf",
    "NotoSansDevanagari-Regular.ttf",
    "NotoSansSymbols2-Regular.ttf",
    "DejaVuSans.ttf",
)
BOLD = tuple(name.replace("Regular", "Bold").replace("DejaVuSans.", "DejaVuSans-Bold.")
             for name in REGULAR)  # fmt: skip
PX_PER_SCALE = 30  # an OpenCV Hershey scale of 1.0 is about this many pixels of font size


@dataclass(frozen=True)
class Face:
    """One font file of the chain and the code points it covers."""

    path: Path
    covers: frozenset[int]


@lru_cache(maxsize=1)
def _index() -> dict[str, Path]:
    """Every font file under FONT_ROOTS by file name (first found wins)."""
    found: dict[str, Path] = {}
    for root in FONT_ROOTS:
        if root.is_dir():
            for path in sorted(root.rglob("*.tt[fc]")) + sorted(root.rglob("*.otf")):
                found.setdefault(path.name, path)
    return found


@lru_cache(maxsize=2)
def chain(bold: bool = False) -> tuple[Face, ...]:
    """The fonts found for the chain, with their coverage; empty when none is installed."""
    from fontTools.ttLib import TTFont

    faces = []
    index = _index()
    for name in BOLD if bold else REGULAR:
        path = index.get(name) or (index.get(name.replace("Bold", "Regular")) if bold else None)
        if path is None or any(f.path == path for f in faces):
            continue
        try:
            with TTFont(path, fontNumber=0, lazy=True) as font:
                covers = frozenset(font.getBestCmap() or {})
        except Exception as err:  # a damaged font file: skip it, say so
            log.warning("font %s unreadable (%s); skipped", path, err)
            continue
        faces.append(Face(path, covers))
    return tuple(faces)


def missing_fonts() -> str | None:
    """None when the fonts are set up, else one sentence saying what to install."""
    names = {f.path.name for f in chain()}
    if "NotoSans-Regular.ttf" in names and "NotoSansCJK-Regular.ttc" in names:
        return None
    return (
        "Noto fonts not found: names outside Latin will not render. Install fonts-noto-core "
        "and fonts-noto-cjk (scripts/setup.sh does, as root)."
    )


@lru_cache(maxsize=64)
def _font(path: Path, px: int):
    """A loaded FreeType font at `px` pixels (raqm layout where Pillow has it)."""
    from PIL import ImageFont

    return ImageFont.truetype(str(path), px, index=0)


def _default_font(px: int):
    """Pillow's built-in font, when no font file is installed at all."""
    from PIL import ImageFont

    return ImageFont.load_default(px)


_IGNORABLE = re.compile("[\u200c\u200d\ufe00-\ufe0f]")  # joiners, variation selectors


def runs(text: str, bold: bool = False) -> list[tuple[str, Path | None]]:
    """`text` split into runs, each with the first font of the chain that covers all of it."""
    faces = chain(bold)
    out: list[tuple[str, Path | None]] = []
    for ch in text:
        if out and _IGNORABLE.match(ch):  # a variation selector or joiner: shaped, never boxed
            out[-1] = (out[-1][0] + ch, out[-1][1])
            continue
        path = next((f.path for f in faces if ord(ch) in f.covers), None)
        if path is None and faces:
            path = faces[0].path  # its missing-glyph box: visible, never dropped
        if out and out[-1][1] == path:
            out[-1] = (out[-1][0] + ch, path)
        else:
            out.append((ch, path))
    return out


def _fonts_of(text: str, px: int, bold: bool) -> list[tuple[str, object]]:
    """(run, loaded font) pairs for `text`."""
    return [(run, _font(p, px) if p else _default_font(px)) for run, p in runs(text, bold)]


def width(text: str, px: int, bold: bool = False) -> int:
    """Pixel width of `text` at `px` pixels."""
    return round(sum(font.getlength(run) for run, font in _fonts_of(text, px, bold)))


def fit(text: str, max_px: int, px: int, bold: bool = False) -> str:
    """`text` cut with '…' so it is at most `max_px` wide (whole characters only)."""
    text = " ".join(str(text).split())
    if width(text, px, bold) <= max_px:
        return text
    lo, hi = 0, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if width(text[:mid].rstrip() + "…", px, bold) <= max_px:
            lo = mid
        else:
            hi = mid - 1
    return text[:lo].rstrip() + "…" if text[:lo].strip() else ""


def draw(
    img: np.ndarray,
    text: str,
    x: float,
    baseline: float,
    px: int,
    colour: Sequence[int],
    bold: bool = False,
) -> None:
    """Draw `text` on the BGR image with its baseline at (x, baseline), blending anti-aliased."""
    from PIL import Image, ImageDraw

    pieces = _fonts_of(text, px, bold)
    if not pieces:
        return
    ascent = max(font.getmetrics()[0] for _, font in pieces)
    descent = max(font.getmetrics()[1] for _, font in pieces)
    total = max(1, width(text, px, bold) + px)  # room for overhangs
    mask = Image.new("L", (total, ascent + descent + 2))
    pen = ImageDraw.Draw(mask)
    cursor = 0.0
    for run, font in pieces:
        pen.text((cursor, ascent), run, font=font, fill=255, anchor="ls")
        cursor += font.getlength(run)
    alpha = np.asarray(mask, np.float32) / 255.0
    top, left = round(float(baseline)) - ascent, round(float(x))
    y0, x0 = max(0, top), max(0, left)
    y1, x1 = min(img.shape[0], top + alpha.shape[0]), min(img.shape[1], left + alpha.shape[1])
    if y1 <= y0 or x1 <= x0:
        return
    a = alpha[y0 - top : y1 - top, x0 - left : x1 - left, None]
    region = img[y0:y1, x0:x1].astype(np.float32)
    ink = np.asarray(colour, np.float32)[None, None, :]
    img[y0:y1, x0:x1] = np.round(region * (1 - a) + ink * a).astype(np.uint8)
