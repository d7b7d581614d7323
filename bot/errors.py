"""The one user-facing exception type: its message is safe and meant to be shown as is."""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from bot import i18n
from bot.i18n import Msg
from model_store.errors import NO_MODEL_MESSAGE, ModelStoreError


class MimiError(Exception):
    """A failure the user caused or can fix; `code` is a stable machine-readable reason.

    Built from a catalogue `Msg` it speaks every language (`text`); `message` is its English
    form, as the CLI and logs show it. A plain string (operator-only errors) stays English."""

    code = "error"

    def __init__(self, message: str | Msg, *, code: str | None = None) -> None:
        self.msg = message if isinstance(message, Msg) else None
        self.message = message.render() if isinstance(message, Msg) else message
        super().__init__(self.message)
        if code is not None:
            self.code = code

    def text(self, locale: str = "en", escape=None) -> str:
        """The message in `locale`, user data escaped with `escape` (for Discord).

        An error raised with a plain string (the ML layer speaks English only) is shown from the
        catalogue's "code.<code>" message where there is one."""
        if self.msg is not None:
            return self.msg.render(locale, escape)
        if f"code.{self.code}" in i18n.keys(i18n.DEFAULT):
            return i18n.t(locale, f"code.{self.code}")
        return self.message

    def as_dict(self) -> dict[str, str]:
        """JSON-ready form: the stable code and the human message."""
        return {"error": self.code, "message": self.message}


class AudioRejected(MimiError):
    """An upload that cannot be used as audio (codes: empty, not_audio, corrupt, no_audio, ...)."""

    code = "audio_rejected"


class DuplicateSong(MimiError):
    """The same audio was already taught to this server."""

    code = "duplicate"

    def __init__(self, message: str | Msg, *, song_id: int, artist: str) -> None:
        super().__init__(message)
        self.song_id = song_id
        self.artist = artist


class NotFound(MimiError):
    """An artist or song that this server does not have."""

    code = "not_found"


class NoModel(MimiError):
    """This server has no model to answer with (none yet, or withdrawn after forgets)."""

    code = "no_model"

    def __init__(self, message: str | Msg = NO_MODEL_MESSAGE) -> None:
        super().__init__(message)


def model_error(err: ModelStoreError) -> MimiError:
    """The app's error for one of the ML layer's (same code and English text)."""
    if err.code == NoModel.code:
        return NoModel(err.message)
    if err.code == NotFound.code:
        return NotFound(err.message)
    return MimiError(err.message, code=err.code)


@contextlib.contextmanager
def model_errors() -> Iterator[None]:
    """The seam to model_store: its exceptions leave as MimiError with the same code."""
    try:
        yield
    except ModelStoreError as err:
        raise model_error(err) from err


class InvalidName(MimiError):
    """An artist name that cannot be used."""

    code = "invalid_name"


def read_error(err: OSError) -> dict[str, str]:
    """JSON-ready form of a file that could not be read."""
    return {"error": "unreadable", "message": unreadable(err).render()}


def unreadable(err: OSError) -> Msg:
    """The message for a file that could not be read."""
    return Msg("error.unreadable", reason=str(err.strerror or err))


class StorageError(MimiError):
    """mimi could not write its own data folder (codes: disk_full, read_only); nothing was saved."""

    code = "storage"


DISK_FULL_MSG, READ_ONLY_MSG = Msg("error.disk_full"), Msg("error.read_only")
DISK_FULL, READ_ONLY = DISK_FULL_MSG.render(), READ_ONLY_MSG.render()  # English, for logs and CLI
_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_DENIED_ERRNOS = {errno.EACCES, errno.EPERM}


def storage_error(err: BaseException, folder: Path | None = None) -> StorageError | None:
    """The StorageError for a failed write to the data folder (disk full or read-only), or None.

    Looks through the exception chain (a failed ROLLBACK may hide SQLite's own error). For
    SQLite's "unable to open" the answer depends on whether `folder` is writable; a permission
    error on a file outside `folder` (say, the ffmpeg program) is not about the data folder.
    """
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, StorageError):
            return err
        if isinstance(err, OSError) and err.errno in _FULL_ERRNOS:
            return StorageError(DISK_FULL_MSG, code="disk_full")
        if isinstance(err, OSError) and (
            err.errno == errno.EROFS
            or (err.errno in _DENIED_ERRNOS and _inside(err.filename, folder))
        ):
            return StorageError(READ_ONLY_MSG, code="read_only")
        if isinstance(err, sqlite3.Error):
            name = getattr(err, "sqlite_errorname", "") or ""
            if name == "SQLITE_FULL":
                return StorageError(DISK_FULL_MSG, code="disk_full")
            if name.startswith("SQLITE_READONLY"):
                return StorageError(READ_ONLY_MSG, code="read_only")
            if name.startswith("SQLITE_CANTOPEN") and _unwritable(folder):
                return StorageError(READ_ONLY_MSG, code="read_only")
        err = err.__cause__ or err.__context__
    return None


@contextlib.contextmanager
def data_writes(folder: Path | None = None) -> Iterator[None]:
    """Re-raise a failed data write (disk full, read-only) as its StorageError."""
    try:
        yield
    except (OSError, sqlite3.Error) as err:
        mapped = storage_error(err, folder)
        if mapped is None:
            raise
        raise mapped from err


def _inside(filename: object, folder: Path | None) -> bool:
    """True unless `filename` is known to lie outside `folder`."""
    if folder is None or not isinstance(filename, str | bytes | os.PathLike):
        return True
    return Path(os.fsdecode(filename)).resolve().is_relative_to(folder.resolve())


def _unwritable(folder: Path | None) -> bool:
    """True if `folder` exists and this process may not write in it."""
    return folder is not None and folder.is_dir() and not os.access(folder, os.W_OK)
