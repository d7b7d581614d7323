"""Settings: environment over .env, typed values, clear errors, a token that never prints."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import Settings, SettingsError


def test_env_overrides_dotenv_and_types_are_parsed(tmp_path: Path) -> None:
    """Values come from .env, the environment wins, and numbers become numbers."""
    env_file = tmp_path / ".env"
    env_file.write_text("MIMI_MAX_SONG_MINUTES=5\nMIMI_DATA_DIR=/from/dotenv\nDISCORD_TOKEN=abc\n")
    s = Settings.load(environ={"MIMI_DATA_DIR": str(tmp_path / "d")}, env_file=env_file)
    assert s.max_song_seconds == 300.0
    assert s.data_dir == tmp_path / "d"
    assert s.db_path.parent == tmp_path / "d"
    assert s.discord_token.reveal() == "abc"


def test_defaults_without_any_configuration() -> None:
    """With nothing set, data lives in ./data and the documented limits apply."""
    s = Settings.load(environ={}, env_file=None)
    assert s.data_dir == Path("data")
    assert (s.max_song_minutes, s.clip_seconds, s.max_upload_mb) == (20.0, 10.0, 64.0)
    assert not s.discord_token


def test_token_never_shows_in_text() -> None:
    """The token does not appear in repr, str or f-strings of the settings."""
    s = Settings.load(environ={"DISCORD_TOKEN": "sekrit.token.value"}, env_file=None)
    assert "sekrit" not in repr(s) and "sekrit" not in f"{s.discord_token}" + str(s)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"MIMI_MAX_UPLOAD_MB": "lots"}, "MIMI_MAX_UPLOAD_MB='lots' is not a number"),
        ({"MIMI_CLIP_SECONDS": "0"}, "MIMI_CLIP_SECONDS must be greater than 0"),
    ],
)
def test_bad_values_are_named(env: dict[str, str], message: str) -> None:
    """A bad setting names the variable and the problem."""
    with pytest.raises(SettingsError, match=message):
        Settings.load(environ=env, env_file=None)


def test_env_example_documents_every_setting() -> None:
    """.env.example names every environment variable Settings reads."""
    from dataclasses import fields

    text = (Path(__file__).resolve().parents[2] / ".env.example").read_text()
    missing = [f.metadata["env"] for f in fields(Settings) if f.metadata["env"] not in text]
    assert missing == []


def test_default_weights_belong_to_the_installation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The weights default is the repo's pretrained/ file, wherever mimi is started from."""
    from bot.config import DEFAULT_FRONTEND_WEIGHTS
    from model_store.features import WEIGHTS_FILENAME

    root = Path(__file__).resolve().parents[2]
    monkeypatch.chdir(tmp_path)
    s = Settings.load(environ={}, env_file=None)
    assert s.frontend_weights == DEFAULT_FRONTEND_WEIGHTS == root / "pretrained" / WEIGHTS_FILENAME
    assert s.frontend_weights.is_absolute()
    moved = Settings.load(environ={"MIMI_FRONTEND_WEIGHTS": str(tmp_path / "w.h5")}, env_file=None)
    assert moved.frontend_weights == tmp_path / "w.h5"  # the setting still wins


@pytest.mark.parametrize("text", ["99999999999999999999", str(2**63), "\uff15", "", " 5", "+5"])
def test_guild_ids_outside_ascii_snowflakes_are_refused(text: str) -> None:
    """parse_guild_id takes ASCII digits below 2**63 only."""
    from bot.config import parse_guild_id

    with pytest.raises(ValueError, match="guild id must be"):
        parse_guild_id(text)
    assert parse_guild_id(str(2**63 - 1)) == 2**63 - 1 and parse_guild_id("0") == 0
