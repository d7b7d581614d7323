"""The ML layer's own exceptions: plain English text and a stable code, no app types.

The app maps them to its user-facing error at the seam (`bot.errors.model_errors`)."""

from __future__ import annotations

NO_MODEL_MESSAGE = (
    "This server has no trained model yet: teach at least 2 artists, then train one "
    "(`mimi train` or /retrain)."
)


class ModelStoreError(Exception):
    """A failure of the model store or of training; `code` is a stable machine-readable reason."""

    code = "model_error"
    default = "The model store failed."

    def __init__(self, message: str | None = None) -> None:
        self.message = message or self.default
        super().__init__(self.message)


class NoModel(ModelStoreError):
    """This server has no trained model yet."""

    code = "no_model"
    default = NO_MODEL_MESSAGE


class ModelIncompatible(ModelStoreError):
    """A stored model built with feature or front-end versions this mimi does not use."""

    code = "model_incompatible"


class VersionNotFound(ModelStoreError):
    """A model version that this server does not keep."""

    code = "not_found"


class TooFewArtists(ModelStoreError):
    """Training needs songs by at least 2 artists."""

    code = "too_few_artists"
    default = "I need songs by at least 2 artists before I can learn to tell them apart."


class ModelUnreadable(ModelStoreError):
    """A published model whose files cannot be read."""

    code = "model_unreadable"
