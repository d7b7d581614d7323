"""What the training service reports: a guild's status, its events, and its one error type."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bot.errors import MimiError
from model_store.registry import ModelMeta


class TrainingFailed(MimiError):
    """A training that failed for a reason other than the guild's data."""

    code = "training_failed"


@dataclass
class TrainingStatus:
    """Where a guild's training stands; `pending` means another one follows the running one."""

    state: str = "idle"  # "idle" | "queued" | "running"
    epoch: int | None = None
    epochs: int | None = None
    val_accuracy: float | None = None
    last_error: str | None = None
    songs: int | None = None
    pending: bool = False


@dataclass
class TrainingEvent:
    """A training started, progressed, finished (`meta`, `previous`) or failed (`error`)."""

    kind: str  # "started" | "progress" | "finished" | "failed"
    guild_id: int
    songs: int | None = None
    epoch: int | None = None
    epochs: int | None = None
    val_accuracy: float | None = None
    meta: ModelMeta | None = None  # the published version
    previous: ModelMeta | None = None  # the model that was current before this training
    error: str | None = None
    reason: str = ""
    failure: MimiError | None = None  # why it failed, in every language
    attempt: int = 1  # 2 when retrying after the worker died


Listener = Callable[[TrainingEvent], Awaitable[None] | None]
