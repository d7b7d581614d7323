"""Names people type: artist names (a clean display form and a case/width-insensitive key,
"AAA" = "ａａａ"), and the file names uploads arrive with."""

from __future__ import annotations

import re
import unicodedata
from pathlib import PurePosixPath

from bot.errors import InvalidName
from bot.i18n import Msg

MAX_NAME_LENGTH = 64
_SPACES = re.compile(r"\s+")


def _visible(text: str) -> str:
    """Drop control and invisible format characters (zero-width, bidi overrides, BOM)."""
    return "".join(ch for ch in text if unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Co"))


def display_name(raw: str) -> str:
    """The name as shown: invisible characters removed, whitespace collapsed, 1-64 characters."""
    name = _SPACES.sub(" ", _visible(unicodedata.normalize("NFC", raw))).strip()
    if not name:
        raise InvalidName(Msg("name.empty"))
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidName(Msg("name.too_long", n=len(name), limit=MAX_NAME_LENGTH))
    return name


def name_key(raw: str) -> str:
    """The identity of a name: NFKC-normalised, case-folded, whitespace-collapsed."""
    folded = unicodedata.normalize("NFKC", display_name(raw)).casefold()
    return _SPACES.sub(" ", unicodedata.normalize("NFKC", folded)).strip()


def clean_filename(name: str, limit: int = 200, *, ellipsis: bool = False) -> str:
    """An uploader-chosen file name made harmless: its base name, printable characters only,
    at most `limit` characters (the last one "…" with `ellipsis`), "upload" if nothing is left."""
    base = PurePosixPath(name.replace("\\", "/")).name
    text = "".join(ch for ch in base if ch.isprintable()) or "upload"
    if len(text) > limit:
        text = text[: limit - 1] + "…" if ellipsis else text[:limit]
    return text
