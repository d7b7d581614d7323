"""Recognise audio containers by their bytes (never by name) and name common non-audio files."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

from bot.errors import AudioRejected, unreadable
from bot.i18n import Msg

# Format name -> the ffmpeg demuxer forced for it (ffmpeg never guesses, nor follows playlists).
DEMUXERS = {
    "mp3": "mp3",
    "aac": "aac",
    "mp4": "mov",
    "ogg": "ogg",
    "flac": "flac",
    "wav": "wav",
    "aiff": "aiff",
    "matroska": "matroska",
    "asf": "asf",
    "caf": "caf",
    "amr": "amr",
}
SUPPORTED = "MP3, M4A/AAC, OGG/Vorbis, Opus, FLAC, WAV (also AIFF, WebM/MKV, WMA)"

_HEAD_BYTES = 64 * 1024
_MAX_ID3_TAGS = 16  # real files carry one, rarely two or three
_NOT_AUDIO = (
    (b"\x89PNG", "png"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"GIF8", "gif"),
    (b"%PDF", "pdf"),
    (b"PK\x03\x04", "zip"),
    (b"\x1f\x8b", "gzip"),
    (b"7z\xbc\xaf", "7z"),
    (b"Rar!", "rar"),
    (b"\x7fELF", "program"),
    (b"MZ", "windows_program"),
)  # each names a "kind.*" message
# What a path is when it is not a regular file (after following symlinks).
_NOT_FILES = (
    (stat.S_ISDIR, "folder"),
    (stat.S_ISFIFO, "fifo"),
    (stat.S_ISCHR, "device"),
    (stat.S_ISBLK, "disk_device"),
    (stat.S_ISSOCK, "socket"),
)
# MPEG audio bitrates in kbit/s by (is_version_1, layer) -> table indexed by the bitrate field.
_BITRATES = {
    (True, 1): (0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (True, 2): (0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (True, 3): (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (False, 1): (0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (False, 2): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


def _mpeg_frame_length(h: bytes) -> int:
    """Length of the MPEG audio frame whose 4-byte header is `h`, or 0 if it is not one."""
    if len(h) < 4 or h[0] != 0xFF or h[1] & 0xE0 != 0xE0:
        return 0
    version, layer_bits = (h[1] >> 3) & 3, (h[1] >> 1) & 3
    bitrate_idx, rate_idx, pad = h[2] >> 4, (h[2] >> 2) & 3, (h[2] >> 1) & 1
    if version == 1 or layer_bits == 0 or bitrate_idx in (0, 15) or rate_idx == 3:
        return 0
    layer = 4 - layer_bits
    v1 = version == 3
    kbps = _BITRATES[(v1, 1 if layer == 1 else (2 if not v1 else layer))][bitrate_idx]
    rate = _RATES[version][rate_idx]
    if layer == 1:
        return (12 * kbps * 1000 // rate + pad) * 4
    factor = 72 if (layer == 3 and not v1) else 144
    return factor * kbps * 1000 // rate + pad


def _adts_frame_length(h: bytes) -> int:
    """Length of the ADTS AAC frame whose header starts `h`, or 0 if it is not one."""
    if len(h) < 7 or h[0] != 0xFF or h[1] & 0xF6 != 0xF0 or (h[2] >> 2) & 0xF > 12:
        return 0
    return ((h[3] & 3) << 11) | (h[4] << 3) | (h[5] >> 5)


def _has_frames(buf: bytes, length_of, needed: int = 3) -> bool:
    """True if `needed` consecutive frames chain from some offset in the first part of `buf`."""
    for start in range(min(len(buf), 16 * 1024)):
        if buf[start] != 0xFF:
            continue
        pos, count = start, 0
        while count < needed and (n := length_of(buf[pos : pos + 7])) >= 7:
            pos, count = pos + n, count + 1
            if pos >= len(buf):  # the file ends right after valid frames: a tiny but real file
                count = needed if pos == len(buf) else count
                break
        if count >= needed:
            return True
    return False


def _not_a_file(mode: int) -> AudioRejected:
    """The rejection of a path that is not a regular file."""
    what = next((name for test, name in _NOT_FILES if test(mode)), "special_file")
    return AudioRejected(Msg("audio.not_a_file", what=Msg(f"kind.{what}")), code="not_a_file")


def _unreadable(err: OSError) -> AudioRejected:
    """The rejection of a path that cannot be looked at or opened (same words as read_error)."""
    return AudioRejected(unreadable(err), code="unreadable")


def require_regular(path: Path | str) -> os.stat_result:
    """The stat of `path` (symlinks followed) if it is a regular file, else AudioRejected.

    Called before a path is opened: a FIFO would block the open, /dev/zero never ends.
    """
    try:
        info = os.stat(path)
    except OSError as err:
        raise _unreadable(err) from err
    if not stat.S_ISREG(info.st_mode):
        raise _not_a_file(info.st_mode)
    return info


def open_regular(path: Path | str) -> BinaryIO:
    """Open a regular file for reading; AudioRejected for anything else.

    The open never blocks (O_NONBLOCK) and the opened file is checked again, so a path
    swapped for a FIFO or a device between the check and the open is refused too.
    """
    require_regular(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as err:
        raise _unreadable(err) from err
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise _not_a_file(mode)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb")


def _skip_id3(f: BinaryIO, head: bytes) -> tuple[bytes, bool]:
    """The bytes after any ID3v2 tags (which may be huge) and whether there were any."""
    offset, tags = 0, 0
    while head[:3] == b"ID3" and len(head) >= 10:
        if tags == _MAX_ID3_TAGS:  # a stack of empty tags is a trap, not a song
            return b"", True
        size = (head[6] << 21) | (head[7] << 14) | (head[8] << 7) | head[9]
        offset += 10 + size + (10 if head[5] & 0x10 else 0)
        tags += 1
        f.seek(offset)
        head = f.read(10)  # just the next header; the audio's head is read once below
    if tags:
        f.seek(offset)
        head = f.read(_HEAD_BYTES)
    return head, tags > 0


def _known_other(head: bytes) -> str | None:
    """The kind of file (a "kind.*" key) whose first bytes are a known non-audio signature."""
    for magic, what in _NOT_AUDIO:
        if head.startswith(magic):
            return what
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    return None


def _describe_other(head: bytes) -> str:
    """The kind ("kind.*" key) of a file that is not audio."""
    if (what := _known_other(head)) is not None:
        return what
    sample = head[:4096]
    try:
        text = sample.decode("utf-8")
    except UnicodeDecodeError:
        text = ""
    if text and sum(ch.isprintable() or ch in "\r\n\t" for ch in text) >= 0.95 * len(text):
        return "text"
    return "unknown"


def sniff(path: Path) -> str:
    """The audio format of the file at `path` (a key of DEMUXERS), or AudioRejected saying why."""
    with open_regular(path) as f:
        head = f.read(_HEAD_BYTES)
        if not head:
            raise AudioRejected(Msg("audio.empty"), code="empty")
        head, tagged = _skip_id3(f, head)
    if head[:4] == b"fLaC":
        return "flac"
    if head[:4] == b"OggS":
        return "ogg"
    if head[:4] in (b"RIFF", b"RF64", b"BW64") and head[8:12] == b"WAVE":
        return "wav"
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return "aiff"
    if head[4:8] in (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip"):
        return "mp4"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "matroska"
    if head[:8] == b"\x30\x26\xb2\x75\x8e\x66\xcf\x11":
        return "asf"
    if head[:4] == b"caff":
        return "caf"
    if head[:5] == b"#!AMR":
        return "amr"
    if (what := _known_other(head)) is not None:  # before frame hunting: programs hold 0xFF
        raise _not_audio(what)
    if _has_frames(head, _adts_frame_length):
        return "aac"
    if _has_frames(head, _mpeg_frame_length, needed=2 if tagged else 3):
        return "mp3"
    if tagged:
        raise AudioRejected(Msg("audio.tag_only"), code="corrupt")
    raise _not_audio(_describe_other(head))


def _not_audio(kind: str) -> AudioRejected:
    """The rejection of a file that is something other than audio (a "kind.*" message)."""
    return AudioRejected(
        Msg("audio.not_audio", what=Msg(f"kind.{kind}"), supported=SUPPORTED), code="not_audio"
    )
