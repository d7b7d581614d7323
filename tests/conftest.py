"""Shared fixtures: real settings in a temporary data dir, and a real service over real SQLite."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import Settings
from bot.service import Mimi
from model_store.features import WEIGHTS_FILENAME
from model_store.lean import frontend_model_path

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def frontend_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Converted musicnn weights: the ones `make` built, else converted from the pinned wheel."""
    built = ROOT / "pretrained" / WEIGHTS_FILENAME
    if built.is_file() and frontend_model_path(built).is_file():
        return built
    from model_store.convert import convert, export_lean, fetch_wheel

    tmp = tmp_path_factory.mktemp("pretrained")
    weights = convert(fetch_wheel(tmp), tmp / WEIGHTS_FILENAME)
    export_lean(weights)
    return weights


@pytest.fixture
def settings(tmp_path: Path, frontend_weights: Path) -> Settings:
    """Settings with a fresh data dir and no environment or .env influence."""
    return Settings.load(
        environ={}, env_file=None, data_dir=tmp_path / "data", frontend_weights=frontend_weights
    )


@pytest.fixture
async def mimi(settings: Settings):
    """An open service (store + cache) on the fresh data dir; compute runs in threads."""
    service = await Mimi.open(settings)
    yield service
    await service.close()


def song_dirs(settings: Settings) -> set[str]:
    """Every cached song folder under the data dir, as 'guild/key'."""
    root = settings.cache_dir
    if not root.is_dir():
        return set()
    return {f"{g.name}/{s.name}" for g in root.iterdir() for s in g.iterdir()}
