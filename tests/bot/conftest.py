"""Fixtures shared by the bot tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bot.config import Settings
from bot.service import Mimi
from tests.bot.taught import build_taught


@pytest.fixture(scope="session")
def taught_dir(tmp_path_factory: pytest.TempPathFactory, frontend_weights: Path):
    """A data dir with three artists taught and a model v1 trained on all of them (made once
    per session; each test copies it); the song ids by artist."""
    return build_taught(tmp_path_factory.mktemp("taught"), frontend_weights)


@pytest.fixture
async def taught_mimi(settings: Settings, taught_dir):
    """The service opened on this test's own copy of the taught data dir."""
    shutil.copytree(taught_dir[0], settings.data_dir)
    service = await Mimi.open(settings)
    yield service
    await service.close()
