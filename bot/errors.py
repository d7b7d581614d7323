"""The one user-facing exception type: its message is safe and meant to be shown as is."""

from __future__ import annotations


class MimiError(Exception):
    """A failure the user caused or can fix; `code` is a stable machine-readable reason."""

    code = "error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def as_dict(self) -> dict[str, str]:
        """JSON-ready form: the stable code and the human message."""
        return {"error": self.code, "message": self.message}


class AudioRejected(MimiError):
    """An upload that cannot be used as audio (codes: empty, not_audio, corrupt, no_audio, ...)."""

    code = "audio_rejected"


class DuplicateSong(MimiError):
    """The same audio was already taught to this server."""

    code = "duplicate"

    def __init__(self, message: str, *, song_id: int, artist: str) -> None:
        super().__init__(message)
        self.song_id = song_id
        self.artist = artist


class NotFound(MimiError):
    """An artist or song that this server does not have."""

    code = "not_found"


class InvalidName(MimiError):
    """An artist name that cannot be used."""

    code = "invalid_name"


def read_error(err: OSError) -> dict[str, str]:
    """JSON-ready form of a file that could not be read."""
    return {"error": "unreadable", "message": f"Could not read the file ({err.strerror or err})."}
