"""Forget means forget: no answer, figure or listing names a forgotten artist or counts a song."""

from __future__ import annotations

import json

import pytest

from bot.errors import NoModel
from bot.guess_job import guess_file
from bot.inference import guess_config
from bot.service import Mimi
from bot.train_job import train_job
from tests.audio_factory import encode
from tests.bot.taught import GUILD, clip_of, run_cli


@pytest.fixture
def mimi(taught_mimi: Mimi) -> Mimi:
    """The service on this test's own copy of the taught data dir."""
    return taught_mimi


@pytest.fixture
def trained(taught_dir) -> dict[str, list[int]]:
    """The song ids by artist of the taught data dir."""
    return taught_dir[1]


def names_in(payload: object) -> str:
    """Everything a payload would print, as one searchable text."""
    return json.dumps(payload, ensure_ascii=False, default=str)


async def test_forgotten_artist_is_masked_until_retrain(mimi: Mimi, trained, tmp_path) -> None:
    """After forgetting Pulse, a Pulse song is answered among the remaining artists only, with
    renormalised probabilities, and the picture's artists leave Pulse out."""
    clip = clip_of(tmp_path, "Pulse")
    before = (await mimi.guess(GUILD, clip)).answer
    assert before["top"][0]["artist"] == "Pulse"
    await mimi.forget_artist(GUILD, "Pulse")
    after_guess = await mimi.guess(GUILD, clip)
    after = after_guess.answer
    assert after["model_version"] == 1  # the same model, viewed through what is left
    assert "Pulse" not in names_in({k: v for k, v in after.items() if k != "mel"})
    assert after_guess.artists == ("Chime", "Drone")
    assert sum(t["probability"] for t in after["top"]) == pytest.approx(1.0, abs=1e-3)
    assert {w["artist"] for w in after["windows"]} <= {"Chime", "Drone"}


async def test_guess_in_flight_when_forget_lands_is_masked(mimi: Mimi, trained, tmp_path) -> None:
    """A worker that listened before the forget was acknowledged still cannot name the artist:
    the mask is applied after the worker answers."""
    raw = guess_file(clip_of(tmp_path, "Drone"), GUILD, guess_config(mimi.settings))
    assert raw["top"][0]["artist"] == "Drone"
    await mimi.forget_artist(GUILD, "drone")
    done = (await mimi.finish_guess(GUILD, raw, 3, 0.5)).answer
    assert "Drone" not in names_in({k: v for k, v in done.items() if k != "mel"})


async def test_artist_forgotten_song_by_song_then_retaught_is_masked(
    mimi: Mimi, trained, tmp_path
) -> None:
    """Forgetting each song of an artist masks them; teaching the name again with a new song
    does not bring back what the model learned from the forgotten ones."""
    for song_id in trained["Pulse"]:
        await mimi.forget_song(GUILD, song_id)
    new = encode(tmp_path / "other.mp3", "mp3", seconds=21, voice=2, seed=9)
    await mimi.teach(GUILD, "Pulse", new)
    result = await mimi.guess(GUILD, clip_of(tmp_path, "Pulse"))
    assert result.artists == ("Chime", "Drone")


async def test_fewer_than_two_artists_withdraws_the_model(mimi: Mimi, trained, tmp_path) -> None:
    """With one artist left the model is withdrawn: guesses say why, stats show no model."""
    await mimi.forget_artist(GUILD, "Pulse")
    await mimi.forget_artist(GUILD, "Chime")
    with pytest.raises(NoModel, match="at least 2 artists") as err:
        await mimi.guess(GUILD, clip_of(tmp_path, "Chime"))
    assert "Chime" not in err.value.message and "Pulse" not in err.value.message
    stats = await mimi.stats(GUILD)
    assert stats["model"] is None and stats["model_withdrawn"] is True
    assert "Chime" not in names_in(stats) and "Pulse" not in names_in(stats)


async def test_stats_models_and_rollback_leave_forgotten_out(mimi: Mimi, trained, tmp_path) -> None:
    """Stats, the confusion matrix, `models` and `rollback` output name only existing artists,
    count no forgotten song and say that the model predates a forget."""
    train_job(await mimi.training_job(GUILD))  # v2, so there is something to roll back to
    forgotten = trained["Chime"][0]
    await mimi.forget_artist(GUILD, "Pulse")
    await mimi.forget_song(GUILD, forgotten)
    stats = await mimi.stats(GUILD)
    model = stats["model"]
    assert model["artists"] == ["Chime", "Drone"] and model["forgotten_songs"] == 3
    assert model["confusion"] is None or len(model["confusion"]) == 2
    assert "Pulse" not in names_in(stats)
    current, versions = await mimi.models(GUILD)
    assert current == 2 and len(versions) == 2
    shown = names_in(versions)
    assert "Pulse" not in shown
    for meta in versions:
        assert forgotten not in [i for ids in meta["snapshot"].values() for i in ids]
        held = meta["metrics"].get("held_out") or []
        assert all(r["song_id"] != forgotten for r in held)
        assert meta["metrics"]["val_songs"] == len(held)
    assert "Pulse" not in names_in(await mimi.rollback(GUILD, 1))


async def test_cli_output_never_names_a_forgotten_artist(mimi: Mimi, trained, tmp_path) -> None:
    """`mimi stats`, `models` and `guess` print no forgotten artist once the forget returned."""
    await mimi.forget_artist(GUILD, "Pulse")
    clip = clip_of(tmp_path, "Pulse")
    for args in (("stats",), ("models",), ("guess", str(clip))):
        proc = run_cli(mimi.settings, *args, "--guild", str(GUILD))
        assert proc.returncode == 0, proc.stderr
        assert "Pulse" not in proc.stdout and "Drone" in proc.stdout
