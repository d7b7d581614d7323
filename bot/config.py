"""Typed settings from the environment and `.env`; the only module that reads os.environ."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

from dotenv import dotenv_values

from model_store import features

# The installation's own folder (the repo root, where `make setup` writes pretrained/), so the
# default weights do not depend on the directory mimi is started from.
INSTALL_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_FRONTEND_WEIGHTS = INSTALL_ROOT / "pretrained" / features.WEIGHTS_FILENAME
MAX_GUILD_ID = 2**63  # Discord snowflakes are unsigned 64-bit but fit SQLite's signed INTEGER


def parse_guild_id(text: str) -> int:
    """A guild id written as ASCII decimal digits, 0 <= id < 2**63; ValueError otherwise."""
    if not (text.isascii() and text.isdigit()) or len(text) > 20 or int(text) >= MAX_GUILD_ID:
        raise ValueError(
            f"guild id must be a non-negative integer (ASCII digits, below 2**63), not {text!r}"
        )
    return int(text)


@dataclass(frozen=True)
class Secret:
    """A value that never shows itself in str(), repr() or f-strings; use reveal()."""

    _value: str = field(default="", repr=False)

    def __str__(self) -> str:
        return "***" if self._value else ""

    def __repr__(self) -> str:
        return f"Secret({str(self)!r})"

    def __bool__(self) -> bool:
        return bool(self._value)

    def reveal(self) -> str:
        """The real value, for the one place that needs it."""
        return self._value


class SettingsError(ValueError):
    """A setting has a value that cannot be used."""


@dataclass(frozen=True)
class Settings:
    """Every knob of mimi; each field maps to an upper-case environment variable."""

    data_dir: Path = field(default=Path("data"), metadata={"env": "MIMI_DATA_DIR"})
    discord_token: Secret = field(default=Secret(""), metadata={"env": "DISCORD_TOKEN"})
    max_upload_mb: float = field(default=64.0, metadata={"env": "MIMI_MAX_UPLOAD_MB"})
    max_song_minutes: float = field(default=20.0, metadata={"env": "MIMI_MAX_SONG_MINUTES"})
    clip_seconds: float = field(
        default=features.DEFAULT_CLIP_SECONDS, metadata={"env": "MIMI_CLIP_SECONDS"}
    )
    clip_hop_seconds: float = field(
        default=features.DEFAULT_CLIP_HOP_SECONDS, metadata={"env": "MIMI_CLIP_HOP_SECONDS"}
    )
    decode_timeout_s: float = field(default=60.0, metadata={"env": "MIMI_DECODE_TIMEOUT_S"})
    ffmpeg: str = field(default="", metadata={"env": "MIMI_FFMPEG"})
    frontend_weights: Path = field(
        default=DEFAULT_FRONTEND_WEIGHTS,
        metadata={"env": "MIMI_FRONTEND_WEIGHTS"},
    )
    models_keep: int = field(default=5, metadata={"env": "MIMI_MODELS_KEEP"})
    train_quiet_s: float = field(default=20.0, metadata={"env": "MIMI_TRAIN_QUIET_S"})
    train_workers: int = field(default=1, metadata={"env": "MIMI_TRAIN_WORKERS"})
    # The training worker (the only process with TensorFlow) exits after this long idle.
    train_idle_s: float = field(default=120.0, metadata={"env": "MIMI_TRAIN_IDLE_S"})
    unsure_below: float = field(default=0.5, metadata={"env": "MIMI_UNSURE_BELOW"})
    guess_windows: int = field(default=10, metadata={"env": "MIMI_GUESS_WINDOWS"})
    discord_api_base: str = field(default="", metadata={"env": "DISCORD_API_BASE"})
    discord_gateway_url: str = field(default="", metadata={"env": "DISCORD_GATEWAY_URL"})
    teach_cooldown_s: float = field(default=10.0, metadata={"env": "MIMI_TEACH_COOLDOWN_S"})
    guess_cooldown_s: float = field(default=5.0, metadata={"env": "MIMI_GUESS_COOLDOWN_S"})
    max_guild_songs: int = field(default=500, metadata={"env": "MIMI_MAX_GUILD_SONGS"})
    max_guild_artists: int = field(default=50, metadata={"env": "MIMI_MAX_GUILD_ARTISTS"})
    max_guild_minutes: float = field(default=3000.0, metadata={"env": "MIMI_MAX_GUILD_MINUTES"})
    # Worker processes that read uploads and answer guesses (one front-end each, ~300 MB).
    audio_workers: int = field(default=1, metadata={"env": "MIMI_AUDIO_WORKERS"})
    # Audio workers exit after this long without a call (0: never); the next call restarts them.
    audio_idle_s: float = field(default=600.0, metadata={"env": "MIMI_AUDIO_IDLE_S"})
    # Threads each audio worker's front-end uses for one call.
    infer_threads: int = field(default=1, metadata={"env": "MIMI_INFER_THREADS"})
    log_level: str = field(default="INFO", metadata={"env": "MIMI_LOG_LEVEL"})
    cdn_hosts: str = field(
        default="cdn.discordapp.com,media.discordapp.net", metadata={"env": "MIMI_CDN_HOSTS"}
    )
    wait_for_token: bool = field(default=False, metadata={"env": "MIMI_WAIT_FOR_TOKEN"})
    # A Dask scheduler (tcp://host:8786): reading, guessing and training run on its workers.
    dask_scheduler: str = field(default="", metadata={"env": "MIMI_DASK_SCHEDULER"})
    # Gateway shards: 0 = one connection (Bot); N > 0 = AutoShardedBot with N shards; -1 =
    # AutoShardedBot with the count Discord recommends.
    shards: int = field(default=0, metadata={"env": "MIMI_SHARDS"})
    # A server's data is deleted this long after mimi is removed from it (0: at once); adding
    # mimi back before then cancels the deletion.
    purge_after_days: float = field(default=30.0, metadata={"env": "MIMI_PURGE_AFTER_DAYS"})
    # How often the bot looks for deletions that fell due (and expired guess links).
    purge_check_s: float = field(default=3600.0, metadata={"env": "MIMI_PURGE_CHECK_S"})

    @property
    def max_upload_bytes(self) -> int:
        """The upload size cap in bytes."""
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def cdn_host_set(self) -> frozenset[str]:
        """Hosts attachments may be downloaded from: `host` (HTTPS) or `host:port` entries."""
        return frozenset(h.strip().lower() for h in self.cdn_hosts.split(",") if h.strip())

    @property
    def max_song_seconds(self) -> float:
        """The song length cap in seconds."""
        return self.max_song_minutes * 60.0

    @property
    def db_path(self) -> Path:
        """The SQLite database file."""
        return self.data_dir / "mimi.sqlite3"

    @property
    def models_dir(self) -> Path:
        """Per-guild versioned models."""
        return self.data_dir / "models"

    @property
    def cache_dir(self) -> Path:
        """Per-song audio copies and cached features."""
        return self.data_dir / "cache"

    def __post_init__(self) -> None:
        positive = ("max_upload_mb", "max_song_minutes", "clip_seconds", "clip_hop_seconds")
        counts = (
            "models_keep",
            "train_workers",
            "guess_windows",
            "audio_workers",
            "infer_threads",
            "max_guild_songs",
            "max_guild_artists",
            "max_guild_minutes",
        )
        for name in (*positive, *counts, "decode_timeout_s"):
            if not getattr(self, name) > 0:
                raise SettingsError(f"{_env_name(name)} must be greater than 0")
        if not 0 <= self.unsure_below <= 1:
            raise SettingsError("MIMI_UNSURE_BELOW must be between 0 and 1")
        if self.teach_cooldown_s < 0 or self.guess_cooldown_s < 0:
            raise SettingsError("cooldowns must not be negative")
        for name in ("train_quiet_s", "train_idle_s", "audio_idle_s", "purge_after_days"):
            if getattr(self, name) < 0:
                raise SettingsError(f"{_env_name(name)} must not be negative")
        if self.shards < -1:
            raise SettingsError("MIMI_SHARDS must be -1 (Discord's count), 0 (none) or more")
        if self.dask_scheduler and "://" not in self.dask_scheduler:
            raise SettingsError("MIMI_DASK_SCHEDULER must be an address like tcp://host:8786")
        if not self.purge_check_s > 0:
            raise SettingsError("MIMI_PURGE_CHECK_S must be greater than 0")
        if self.clip_seconds > self.max_song_seconds:
            raise SettingsError("MIMI_CLIP_SECONDS must be shorter than MIMI_MAX_SONG_MINUTES")

    @classmethod
    def load(
        cls, environ: Mapping[str, str] | None = None, env_file: Path | None = Path(".env"), **over
    ) -> Settings:
        """Settings from `.env` overridden by the environment, then by explicit keyword values."""
        raw: dict[str, str | None] = {}
        if env_file is not None and env_file.is_file():
            raw.update(dotenv_values(env_file))
        raw.update(os.environ if environ is None else environ)
        if not raw.get("MIMI_AUDIO_WORKERS"):  # its name before reading and guessing merged
            raw["MIMI_AUDIO_WORKERS"] = raw.get("MIMI_INGEST_WORKERS")
        values: dict[str, object] = {}
        for f in fields(cls):
            text = raw.get(f.metadata["env"])
            if text is not None and text.strip() != "":
                values[f.name] = _parse(f.name, f.type, text.strip())
        values.update({k: v for k, v in over.items() if v is not None})
        for key in ("data_dir", "frontend_weights"):
            if key in values:
                values[key] = Path(values[key]).expanduser()  # type: ignore[arg-type]
        return cls(**values)  # type: ignore[arg-type]


def _env_name(field_name: str) -> str:
    """The environment variable that sets `field_name`."""
    return next(f.metadata["env"] for f in fields(Settings) if f.name == field_name)


def _parse(name: str, kind: object, text: str) -> object:
    """Convert one environment string to the field's type, with a clear error."""
    try:
        if kind in ("float", float):
            return float(text)
        if kind in ("int", int):
            return int(text)
    except ValueError:
        raise SettingsError(f"{_env_name(name)}={text!r} is not a number") from None
    if kind in ("bool", bool):
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise SettingsError(f"{_env_name(name)}={text!r} is not 1/0 (true/false)")
    if kind in ("Secret", Secret):
        return Secret(text)
    if kind in ("Path", Path):
        return Path(text)
    return text
