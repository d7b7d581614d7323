"""A finished guess as the service hands it out: the answer (the JSON shape of `mimi guess`),
the artists that may still be named, and what its picture is drawn from."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # (drawing pulls in OpenCV: imported when a picture is wanted)
    from bot.render_guess import GuessView, Window


@dataclass(frozen=True)
class Ranked:
    """One of the top artists and the calibrated probability mimi gives it."""

    artist: str
    probability: float


@dataclass(frozen=True)
class GuessResult:
    """A guess after forgets and renames were applied (read once, by the cogs and the CLI)."""

    answer: dict  # what `mimi guess --json` prints and the replies are written from
    mel: np.ndarray  # the clip's log-mel (float16), for the picture
    colour_order: tuple[str, ...]  # the server's artists in colour order
    artists: tuple[str, ...]  # the model's artists that still exist here, by today's names

    @property
    def top(self) -> tuple[Ranked, ...]:
        """The likeliest artists, best first."""
        return tuple(Ranked(t["artist"], float(t["probability"])) for t in self.answer["top"])

    @property
    def windows(self) -> tuple[Window, ...]:
        """Who each listened-to window of the clip sounds like."""
        return self.view().windows

    @property
    def version(self) -> int:
        """The model version that answered."""
        return int(self.answer["model_version"])

    def view(self, filename: str = "") -> GuessView:
        """What the picture shows."""
        from bot.render_guess import view_of

        return view_of(self.answer, filename)

    def picture(self, filename: str, locale: str = "en") -> bytes:
        """The spectrogram with the timeline and the top artists, as PNG bytes."""
        from bot.render import artist_colours
        from bot.render_guess import guess_png

        colours = artist_colours(list(self.colour_order))
        return guess_png(self.mel, self.view(filename), colours, locale=locale)
