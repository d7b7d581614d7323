"""What the pictures share: the colour-blind-safe artist palette, stable per server."""

from __future__ import annotations

import numpy as np

from bot.render import (
    HIT,
    MISS,
    PALETTE,
    UNSURE_COLOUR,
    artist_colours,
    blend,
    ink_for,
    palette_colour,
)

OKABE_ITO_BGR = [(0, 159, 230), (233, 180, 86), (66, 228, 240), (178, 114, 0), (167, 121, 204)]


def test_palette_starts_with_okabe_ito_and_keeps_right_and_wrong_apart() -> None:
    """The first artists get Okabe-Ito colours (safe for colour-blind readers); the green and
    vermillion that mean "right" and "mistaken" in the stats picture are never an artist's."""
    assert list(PALETTE[:5]) == OKABE_ITO_BGR
    assert HIT not in PALETTE and MISS not in PALETTE


def test_artist_colours_distinct_and_stable() -> None:
    """20 artists get 20 clearly different colours, the same on every call; unsure is grey."""
    artists = [f"artist {i}" for i in range(20)]
    first = artist_colours(artists)
    assert first == artist_colours(list(artists))
    values = list(first.values())
    assert len(set(values)) == 20
    gaps = [np.abs(np.subtract(a, b)).sum() for i, a in enumerate(values) for b in values[i + 1 :]]
    assert min(gaps) > 30
    assert UNSURE_COLOUR not in values
    assert artist_colours(["A", "not sure"])["not sure"] == UNSURE_COLOUR


def test_colour_follows_the_servers_order_not_the_rank() -> None:
    """An artist's colour comes from its place in the server's order (first taught first), so
    it is the same whichever artist a picture ranks first."""
    server = ["AAA", "嵐", "SEKAI NO OWARI"]
    colours = artist_colours(server)
    assert colours["嵐"] == palette_colour(1)
    assert artist_colours(server)["嵐"] == colours["嵐"]
    assert colours["AAA"] != colours["嵐"] != colours["SEKAI NO OWARI"]


def test_blend_and_ink() -> None:
    """Blending moves towards the target; text on a light colour is dark and vice versa."""
    assert blend((0, 0, 0), (200, 100, 50), 0.5) == (100, 50, 25)
    assert blend((0, 0, 0), (200, 100, 50), 2.0) == (200, 100, 50)
    assert ink_for((240, 240, 240)) != ink_for((20, 20, 20))
