"""Artist names: one identity across case and width, clean display, clear refusals."""

from __future__ import annotations

import pytest

from bot.errors import InvalidName
from bot.names import display_name, name_key


def test_case_and_width_insensitive_identity() -> None:
    """ "AAA", "ａａａ" and "aaa" are the same artist."""
    assert name_key("AAA") == name_key("ａａａ") == name_key("aaa") == name_key("  a\tAa ") != ""


def test_display_keeps_what_the_user_typed_minus_invisibles() -> None:
    """The display form keeps case but drops zero-width/bidi characters and extra spaces."""
    assert display_name("  Daft\u200b   Punk\u202e ") == "Daft Punk"
    assert display_name("Sigur Rós") == "Sigur Rós"


@pytest.mark.parametrize("bad", ["", "   ", "\u200b\u200d", "x" * 65])
def test_unusable_names_are_refused(bad: str) -> None:
    """Empty, invisible-only and over-long names get a clear InvalidName."""
    with pytest.raises(InvalidName):
        name_key(bad)


def test_file_names_are_cleaned_once_for_storage_and_replies() -> None:
    """One cleaner: base name, printable only, cut at the limit (with "…" where shown), and
    "upload" when nothing printable is left."""
    from bot.names import clean_filename

    assert clean_filename("C:\\music\\dir/../song\x07.mp3") == "song.mp3"
    assert clean_filename("x" * 250) == "x" * 200
    assert clean_filename("y" * 150, 100, ellipsis=True) == "y" * 99 + "…"
    assert clean_filename("\x00\x01") == "upload" and clean_filename("dir/") == "dir"
