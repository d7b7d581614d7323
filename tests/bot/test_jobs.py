"""Worker jobs end to end: teach real files, train and publish, then guess held-out audio."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot import guess_job
from bot.errors import MimiError, NoModel
from bot.guess_job import guess_file
from bot.inference import guess_config
from bot.service import Mimi
from bot.train_job import MODEL_FILE, train_job
from model_store.head import HEAD_FILE
from model_store.predict import window_starts
from model_store.registry import ModelRegistry
from tests.audio_factory import encode
from tests.bot.helpers import DRONE_AND_CHIME, teach_drone_and_chime


async def test_train_then_guess_held_out_audio(mimi: Mimi, tmp_path: Path) -> None:
    """A published model names the artist of audio it never heard, with a window timeline."""
    await teach_drone_and_chime(mimi, tmp_path)
    progress: list[tuple] = []

    class Sink:
        def put(self, item: tuple) -> None:
            progress.append(item)

    meta = train_job(await mimi.training_job(1), Sink())
    assert meta["version"] == 1 and meta["artists"] == ["Chime", "Drone"]
    assert meta["metrics"]["val_songs"] == 2 and meta["snapshot"].keys() == DRONE_AND_CHIME.keys()
    assert progress and progress[0][0] == 1
    config = guess_config(mimi.settings)
    for artist, voice in DRONE_AND_CHIME.items():
        clip = encode(tmp_path / f"new_{artist}.ogg", "ogg", seconds=25, voice=voice, seed=77)
        result = guess_file(clip, 1, config)
        assert result["top"][0]["artist"] == artist
        assert result["model_version"] == 1 and not result["unsure"]
        assert [(w["start"], w["end"]) for w in result["windows"]] == [(0.0, 10.0), (10.0, 20.0)]
        assert sum(t["probability"] for t in result["top"]) == pytest.approx(1.0, abs=1e-3)


async def test_versions_without_numpy_head_are_upgraded(mimi: Mimi, tmp_path: Path) -> None:
    """A version published before head.npz existed answers the same after an in-place upgrade
    from its model.keras; one whose model file is unreadable says to retrain."""
    await teach_drone_and_chime(mimi, tmp_path, songs=2)
    train_job(await mimi.training_job(1))
    folder = mimi.registry.folder(1, 1)
    clip = encode(tmp_path / "q.ogg", "ogg", seconds=12, voice=DRONE_AND_CHIME["Drone"], seed=5)
    config = guess_config(mimi.settings)
    before = guess_file(clip, 1, config)
    (folder / HEAD_FILE).unlink()
    guess_job._MODELS.clear()  # a fresh worker
    after = guess_file(clip, 1, config)
    assert after["top"] == before["top"] and (folder / HEAD_FILE).is_file()
    (folder / HEAD_FILE).unlink()
    (folder / MODEL_FILE).write_bytes(b"damaged")
    guess_job._MODELS.clear()
    with pytest.raises(MimiError, match="/retrain") as err:
        guess_file(clip, 1, config)
    assert err.value.code == "model_unreadable"


async def test_guess_before_any_model_says_what_to_do(mimi: Mimi, tmp_path: Path) -> None:
    """Guessing in a guild without a model explains how to get one."""
    clip = encode(tmp_path / "c.mp3", "mp3", seconds=5)
    with pytest.raises(NoModel, match="teach at least 2 artists"):
        guess_file(clip, 5, guess_config(mimi.settings))


async def test_short_clips_can_be_guessed(mimi: Mimi, tmp_path: Path) -> None:
    """A 4-second clip (shorter than a training clip) still gets a one-window guess."""
    await teach_drone_and_chime(mimi, tmp_path, songs=2)
    train_job(await mimi.training_job(1))
    clip = encode(tmp_path / "short.wav", "wav", seconds=4, voice=0, seed=5)
    result = guess_file(clip, 1, guess_config(mimi.settings))
    assert result["top"][0]["artist"] == "Drone" and len(result["windows"]) == 1
    with pytest.raises(MimiError, match="too short"):
        guess_file(encode(tmp_path / "tiny.wav", "wav", seconds=1), 1, guess_config(mimi.settings))


async def test_scratch_model_trains_and_guesses(mimi: Mimi, tmp_path: Path) -> None:
    """The original recipe is available as a model kind and answers guesses too."""
    await teach_drone_and_chime(mimi, tmp_path)
    meta = train_job(await mimi.training_job(1, kind="scratch"))
    assert meta["kind"] == "scratch" and meta["frontend_version"] is None
    result = guess_file(
        encode(tmp_path / "x.mp3", "mp3", seconds=12, voice=4, seed=9),
        1,
        guess_config(mimi.settings),
    )
    assert result["model_version"] == 1 and result["tags"] == []
    assert {t["artist"] for t in result["top"]} == set(DRONE_AND_CHIME)


async def test_guilds_have_separate_models(mimi: Mimi, tmp_path: Path) -> None:
    """Training guild 1 publishes nothing for guild 2."""
    await teach_drone_and_chime(mimi, tmp_path, songs=2)
    train_job(await mimi.training_job(1))
    registry = ModelRegistry(mimi.settings.models_dir)
    assert registry.current(1) is not None and registry.current(2) is None


def test_windows_spread_across_long_clips() -> None:
    """Long uploads are sampled with evenly spread windows; short ones are tiled."""
    assert window_starts(625 * 3, 625, 10) == [0, 625, 1250]
    starts = window_starts(15000, 625, 10)
    assert len(starts) == 10 and starts[0] == 0 and starts[-1] == 15000 - 625
    assert window_starts(300, 625, 10) == [0]
