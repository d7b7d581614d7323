"""Names people actually use: renaming an artist keeps the model working; merging asks first."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bot.errors import MimiError
from bot.forgetting import Live, merge_columns, renames
from bot.service import Mimi
from tests.bot.taught import GUILD, clip_of, run_cli


@pytest.fixture
def mimi(taught_mimi: Mimi) -> Mimi:
    """The service on this test's own copy of the taught data dir (Drone, Chime, Pulse; v1)."""
    return taught_mimi


async def test_rename_answers_under_the_new_name_without_a_retrain(mimi: Mimi, tmp_path) -> None:
    """After Pulse becomes パルス, the same model (v1) names パルス in the guess, its windows,
    the picture's artists and /stats; Pulse appears nowhere and keeps its songs and colour."""
    songs = {s.id for s in await mimi.store.songs(GUILD, "Pulse")}
    order = await mimi.store.artist_order(GUILD)
    old, new, moved = await mimi.rename_artist(GUILD, "pulse", "パルス")
    assert (old, new, moved) == ("Pulse", "パルス", 0)
    assert {s.id for s in await mimi.store.songs(GUILD, "パルス")} == songs
    assert await mimi.store.artist_order(GUILD) == [n if n != "Pulse" else "パルス" for n in order]
    result_guess = await mimi.guess(GUILD, clip_of(tmp_path, "Pulse"))
    result = result_guess.answer
    assert result["model_version"] == 1 and result["top"][0]["artist"] == "パルス"
    assert "パルス" in result_guess.artists and "Pulse" not in json.dumps(result["top"])
    assert {w["artist"] for w in result["windows"]} <= {"パルス", "Chime", "Drone"}
    stats = await mimi.stats(GUILD)
    assert "パルス" in stats["model"]["artists"] and "Pulse" not in stats["model"]["artists"]
    _, shown = await mimi.models(GUILD)
    assert "パルス" in shown[0]["artists"] and "Pulse" not in json.dumps(shown[0]["snapshot"])


async def test_a_new_spelling_of_the_same_name_is_a_rename(mimi: Mimi) -> None:
    """Changing only case or width (the same identity key) renames in place."""
    assert await mimi.rename_artist(GUILD, "Drone", "DRONE") == ("Drone", "DRONE", 0)
    assert "DRONE" in [a.name for a in await mimi.artists(GUILD)]


async def test_renaming_onto_another_artist_needs_a_merge(mimi: Mimi, tmp_path) -> None:
    """Onto an existing name, nothing changes without merge; with it, songs move, the model
    answers the merged name (their probabilities added) until the retrain."""
    with pytest.raises(MimiError) as err:
        await mimi.rename_artist(GUILD, "Pulse", "chime")
    assert err.value.code == "merge_needed" and "Chime" in err.value.message
    assert len(await mimi.artists(GUILD)) == 3
    old, new, moved = await mimi.rename_artist(GUILD, "Pulse", "chime", merge=True)
    assert (old, new, moved) == ("Pulse", "Chime", 2)
    assert sorted((a.name, a.songs) for a in await mimi.artists(GUILD)) == [
        ("Chime", 4), ("Drone", 2)]  # fmt: skip
    result_guess = await mimi.guess(GUILD, clip_of(tmp_path, "Pulse"))
    result = result_guess.answer
    assert result["top"][0]["artist"] == "Chime" and len(result["top"]) == 2
    assert sum(t["probability"] for t in result["top"]) == pytest.approx(1.0, abs=1e-3)
    stats = await mimi.stats(GUILD)
    assert set(stats["model"]["artists"]) == {"Chime", "Drone"}
    matrix = np.asarray(stats["model"]["confusion"])
    assert matrix.shape == (2, 2) and matrix.sum() == stats["model"]["val_songs"]


async def test_unknown_or_bad_names_are_refused(mimi: Mimi) -> None:
    """Renaming an artist that isn't there, or to an empty name, is a clear error."""
    with pytest.raises(MimiError) as err:
        await mimi.rename_artist(GUILD, "Nobody", "Someone")
    assert err.value.code == "not_found"
    with pytest.raises(MimiError) as err:
        await mimi.rename_artist(GUILD, "Drone", "\u200b ")
    assert err.value.code == "invalid_name"


def test_merge_columns_adds_probabilities_of_merged_artists() -> None:
    """Two model artists now called the same become one column holding their sum."""
    probs = np.array([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]])
    merged, names = merge_columns(probs, ["A", "B", "C"], {"A": "A", "B": "C", "C": "C"})
    assert names == ["A", "C"] and np.allclose(merged, [[0.5, 0.5], [0.1, 0.9]])


def test_current_names_follow_the_songs() -> None:
    """A model artist is called whatever its songs' artist is called now."""
    from model_store.registry import ModelMeta

    meta = ModelMeta(1, "musicnn", ["A", "B"], 1, 1, {}, 1.0, {"A": [1], "B": [2]},
                     "2026-12-02T00:00:00+00:00", {"A": ["ka"], "B": ["kb"]})  # fmt: skip
    live = Live.of([(1, "ka", "Ä"), (2, "kb", "B")])
    assert renames(meta, live) == {"A": "Ä", "B": "B"}


async def test_cli_rename_and_merge(mimi: Mimi) -> None:
    """`mimi rename` renames; onto an existing artist it says to add --merge, which merges."""
    proc = run_cli(mimi.settings, "rename", "Drone", "ドローン", "--guild", str(GUILD))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"guild": GUILD, "old": "Drone", "new": "ドローン",
                                       "merged": False, "moved": 0}  # fmt: skip
    proc = run_cli(mimi.settings, "rename", "ドローン", "Chime", "--guild", str(GUILD))
    assert proc.returncode != 0 and "--merge" in proc.stderr + proc.stdout
    proc = run_cli(mimi.settings, "rename", "ドローン", "Chime", "--merge", "--guild", str(GUILD))
    assert proc.returncode == 0 and json.loads(proc.stdout)["moved"] == 2
