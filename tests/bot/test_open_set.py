"""Honest confidence and "no one I know": calibrated guesses, the open-set verdict judged only
against stored songs, and the upgrade from a front-end v1 data dir."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from bot.cache import SongCache
from bot.config import Settings
from bot.service import Mimi
from bot.train_job import MODEL_FILE, train_job
from bot.training import TrainingService, outdated
from model_store import features
from model_store.head import HeadConfig, SongEmbeddings
from model_store.openset import REFERENCE_FILE
from model_store.registry import ModelRegistry
from model_store.stages import EMBEDDING, stages_with_embeddings
from model_store.train import train_head_model
from tests.audio_factory import encode, stranger
from tests.bot.taught import GUILD, VOICES


@pytest.fixture
def mimi(taught_mimi: Mimi) -> Mimi:
    """The service on this test's own copy of the taught data dir."""
    return taught_mimi


def known_clip(tmp_path: Path, artist: str) -> Path:
    """A held-out clip of a taught artist."""
    return encode(tmp_path / f"new_{artist}.ogg", "ogg", seconds=14, voice=VOICES[artist], seed=77)


async def test_stranger_is_no_one_i_know_and_a_taught_artist_is_named(
    mimi: Mimi, tmp_path: Path
) -> None:
    """A clip of no taught artist is answered "unknown" (score below the learned threshold); a
    new clip of a taught artist is named, with calibrated probabilities that sum to 1."""
    odd = (await mimi.guess(GUILD, stranger(tmp_path / "odd.wav"))).answer
    assert odd["unknown"] is True and odd["unsure"] is True
    assert odd["known_score"] < odd["threshold"]
    json.dumps({k: v for k, v in odd.items() if k != "mel"})  # JSON-ready fields
    known = (await mimi.guess(GUILD, known_clip(tmp_path, "Chime"))).answer
    assert known["unknown"] is False and known["top"][0]["artist"] == "Chime"
    assert known["known_score"] >= known["threshold"] > odd["known_score"]
    meta = ModelRegistry(mimi.settings.models_dir).current(GUILD)
    assert meta.metrics["calibration"]["temperature"] > 0
    drone = (await mimi.guess(GUILD, known_clip(tmp_path, "Drone"), top_k=3)).answer
    assert sum(t["probability"] for t in drone["top"]) == pytest.approx(1, abs=1e-3)


async def test_forgotten_song_no_longer_counts_as_known(mimi: Mimi, taught_dir, tmp_path) -> None:
    """The very audio of a taught song matches itself (score ~1); once that song is forgotten
    the open-set score is judged against the artist's remaining song only."""
    song = Path(taught_dir[0]).parent / "Pulse0.mp3"
    before = (await mimi.guess(GUILD, song)).answer
    assert before["known_score"] > 0.99
    await mimi.forget_song(GUILD, taught_dir[1]["Pulse"][0])
    after = (await mimi.guess(GUILD, song)).answer
    assert after["top"][0]["artist"] == "Pulse"  # the model still knows Pulse by its other song
    assert after["known_score"] < before["known_score"] - 0.005


def _downgrade_to_front_end_v1(settings: Settings) -> None:
    """Make the taught data dir look as front-end v1 left it: MSD-only embeddings under the
    v1 stage name, and a model trained on MSD's 200 columns with no calibration, no open-set
    reference, front-end version 1."""
    registry = ModelRegistry(settings.models_dir)
    current = registry.current(GUILD)
    cache = SongCache(settings.cache_dir, stages_with_embeddings(settings.frontend_weights))
    songs = []
    for artist, keys in current.snapshot_keys.items():
        for key, song_id in zip(keys, current.snapshot[artist], strict=True):
            emb = cache.get(GUILD, key, EMBEDDING)
            folder = settings.cache_dir / str(GUILD) / key
            v2 = next(folder.glob(f"{EMBEDDING}.v*.npy"))
            old = np.concatenate([emb[:, :200], np.zeros((len(emb), 1506), emb.dtype)], axis=1)
            np.save(folder / f"{EMBEDDING}.vf{features.FEATURE_VERSION}m1.npy", old)
            v2.unlink()
            clips = tuple((float(a), float(b)) for a, b in [(0.0, 10.0), (10.0, 20.0)])
            songs.append(SongEmbeddings(song_id, artist, emb[:, :200], clips))
    result = train_head_model(songs, HeadConfig(parts=("penultimate",)))
    metrics = {k: v for k, v in result.metrics.items() if k not in ("calibration", "open_set")}
    shutil.rmtree(settings.models_dir / str(GUILD))
    registry.publish(
        GUILD, lambda d: result.model.save(d / MODEL_FILE), kind="musicnn", artists=result.artists,
        feature_version=features.FEATURE_VERSION, frontend_version=1, metrics=metrics,
        train_seconds=1.0, snapshot=current.snapshot, snapshot_keys=current.snapshot_keys,
    )  # fmt: skip


async def test_upgrade_from_front_end_v1_keeps_answering_then_retrains(
    settings: Settings, taught_dir, tmp_path: Path
) -> None:
    """A v1 data dir opens: its model still answers (never "unknown": no reference), a restart
    schedules a retrain, and the retrain recomputes embeddings from the cached audio/log-mel
    (no re-upload) and publishes a calibrated model with an open-set reference."""
    shutil.copytree(taught_dir[0], settings.data_dir)
    _downgrade_to_front_end_v1(settings)
    async with await Mimi.open(settings) as mimi:
        old = (await mimi.guess(GUILD, known_clip(tmp_path, "Drone"))).answer
        assert old["top"][0]["artist"] == "Drone" and old["unknown"] is False
        assert old["known_score"] is None and old["model_version"] == 1
        assert outdated(ModelRegistry(settings.models_dir).current(GUILD))
        service = TrainingService(settings, mimi.store, quiet_s=3600)
        await service.start()
        try:
            assert await service.resume() == [GUILD]
        finally:
            await service.close()
        meta = train_job(await mimi.training_job(GUILD))
        folder = ModelRegistry(settings.models_dir).folder(GUILD, meta["version"])
        assert meta["frontend_version"] == features.FRONTEND_VERSION == 2
        assert (folder / REFERENCE_FILE).is_file() and "temperature" in meta["metrics"][
            "calibration"
        ]
        stage = f"{EMBEDDING}.vf{features.FEATURE_VERSION}m{features.FRONTEND_VERSION}.npy"
        assert len(list(settings.cache_dir.glob(f"{GUILD}/*/{stage}"))) == 6
        new = (await mimi.guess(GUILD, stranger(tmp_path / "odd.wav"))).answer
        assert new["model_version"] == meta["version"] and new["unknown"] is True
