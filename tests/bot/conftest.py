"""Fixtures shared by the bot tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bot.taught import build_taught


@pytest.fixture(scope="session")
def taught_dir(tmp_path_factory: pytest.TempPathFactory, frontend_weights: Path):
    """A data dir with three artists taught and a model v1 trained on all of them (made once
    per session; each test copies it); the song ids by artist."""
    return build_taught(tmp_path_factory.mktemp("taught"), frontend_weights)
