"""Decode untrusted audio files in an ffmpeg child process, with time, size and output limits."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import resource
import shutil
import subprocess
import tempfile
import threading
from collections import deque
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from bot.errors import AudioRejected, data_writes
from bot.i18n import Msg, Seconds, Size
from bot.sniff import DEMUXERS, open_regular, require_regular, sniff
from model_store.features import SAMPLE_RATE, SILENCE_DBFS, rms_dbfs

log = logging.getLogger(__name__)
MIN_SOURCE_RATE = 4000  # Hz; below this there is no music left to hear
CHILD_MEMORY_BYTES = 1 << 30  # address-space cap for the decoder process
PROBE_OUTPUT_BYTES = 1 << 20  # ffprobe's JSON; real files print a few kB
# Used only without ffprobe. Anchored at the two-space indent ffmpeg gives an input's own
# lines: tags (keys and values, even multi-line ones) are printed indented by four or more.
_DURATION = re.compile(r"^  Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)")
_AUDIO_STREAM = re.compile(r"^  Stream #\d+:\d+[^:]*: Audio: [^,]+, (\d+) Hz")


@dataclass(frozen=True)
class DecodeLimits:
    """What an upload may be: size in bytes, length in seconds, wall-clock time to decode."""

    max_bytes: int
    max_seconds: float
    min_seconds: float
    timeout_s: float = 60.0


@dataclass(frozen=True)
class Decoded:
    """Mono 16-bit PCM at SAMPLE_RATE plus what ffmpeg said about the source."""

    samples: np.ndarray
    format: str
    source_rate: int | None
    declared_seconds: float | None

    @property
    def seconds(self) -> float:
        """Decoded length in seconds."""
        return len(self.samples) / SAMPLE_RATE

    def as_float(self) -> np.ndarray:
        """The samples as float32 in [-1, 1)."""
        return self.samples.astype(np.float32) / 32768.0


def audible_dbfs(audio: np.ndarray) -> float:
    """Level of what can be heard: RMS in dBFS once each 0.1 s block's DC offset is removed.

    A constant offset (a stuck converter, NaN floats turned to full scale) is not sound.
    """
    block = SAMPLE_RATE // 10
    blocks = audio[: audio.size // block * block].reshape(-1, block)
    if blocks.size == 0:
        return rms_dbfs(audio - audio.mean()) if audio.size else float("-inf")
    power = float(np.mean(blocks.var(axis=1, dtype=np.float64)))
    return 10.0 * np.log10(power) if power > 0 else float("-inf")


@lru_cache(maxsize=4)
def find_ffmpeg(configured: str = "") -> str:
    """The ffmpeg executable: the configured path, else PATH, else the imageio-ffmpeg binary."""
    if configured:
        if shutil.which(configured) is None:
            raise RuntimeError(f"MIMI_FFMPEG={configured!r} is not an executable")
        return configured
    found = shutil.which("ffmpeg")
    if found:
        return found
    try:
        import imageio_ffmpeg
    except ImportError:
        raise RuntimeError(
            "ffmpeg not found: install it (apt install ffmpeg) or set MIMI_FFMPEG"
        ) from None
    return imageio_ffmpeg.get_ffmpeg_exe()


@lru_cache(maxsize=4)
def find_ffprobe(ffmpeg: str) -> str | None:
    """The ffprobe next to this ffmpeg (also next to the file a symlink points to), or None."""
    exe = Path(shutil.which(ffmpeg) or ffmpeg)
    for base in (exe, exe.resolve()):
        name = base.name.replace("ffmpeg", "ffprobe", 1) if "ffmpeg" in base.name else "ffprobe"
        candidate = base.with_name(name)
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    log.warning(
        "no ffprobe next to %s: the source rate and duration are read from ffmpeg's log", exe
    )
    return None


def _start(cmd: list[str], stderr: int) -> subprocess.Popen:
    """Start a decoder child with no stdin, stdout piped and its address space capped."""
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr)
    # If the child already exited or the platform refuses, the time and output caps still hold.
    with contextlib.suppress(OSError, ValueError):
        resource.prlimit(proc.pid, resource.RLIMIT_AS, (CHILD_MEMORY_BYTES, CHILD_MEMORY_BYTES))
    return proc


def _collect(proc: subprocess.Popen, cap_bytes: int, timeout_s: float) -> tuple[bytes, bool, bool]:
    """Read the child's stdout up to `cap_bytes`, killing it at `timeout_s` or past the cap.

    Returns (output, timed_out, over_cap); the child has exited when this returns.
    """
    timed_out = threading.Event()

    def kill() -> None:
        timed_out.set()
        proc.kill()

    timer = threading.Timer(timeout_s, kill)
    timer.start()
    chunks, total, over = [], 0, False
    try:
        assert proc.stdout is not None
        while chunk := proc.stdout.read(1 << 16):
            chunks.append(chunk)
            total += len(chunk)
            if total > cap_bytes:
                over = True
                proc.kill()
                break
        proc.wait()
    finally:
        timer.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return b"".join(chunks), timed_out.is_set(), over


@dataclass(frozen=True)
class Probe:
    """What ffprobe read from the container: the first audio stream's rate and the duration."""

    rate: int | None
    declared: float | None


def _number(value: object, kind: type) -> int | float | None:
    """A JSON string or number as `kind`, or None for 'N/A', junk or a non-positive value."""
    try:
        number = kind(float(value)) if isinstance(value, str | int | float) else None
    except (ValueError, OverflowError):
        return None
    return number if number is not None and number > 0 else None


def _input_url(path: Path) -> str:
    """The path as ffmpeg's file protocol URL: `AC:DC.mp3` is a file, not protocol `AC`."""
    return "file:" + os.path.abspath(path)


def probe(path: Path, fmt: str, limits: DecodeLimits, ffprobe: str) -> Probe:
    """Ask ffprobe (sandboxed like the decoder) for the source rate and declared duration.

    Unlike ffmpeg's human log, its JSON keeps a file's tags apart from the real values.
    """
    cmd = [
        ffprobe,
        "-v",
        "error",
        "-protocol_whitelist",
        "file",
        "-f",
        DEMUXERS[fmt],
        "-print_format",
        "json",
        "-show_streams",
        "-show_format",
        "-select_streams",
        "a:0",
        _input_url(path),
    ]
    proc = _start(cmd, subprocess.DEVNULL)
    try:
        out, timed_out, over = _collect(proc, PROBE_OUTPUT_BYTES, limits.timeout_s)
    finally:
        proc.stdout.close()  # type: ignore[union-attr]
    if timed_out:
        raise _timeout(limits)
    try:
        data = json.loads(out) if not over else {}
    except ValueError:
        data = {}
    if not isinstance(data, dict):
        data = {}
    streams = [s for s in data.get("streams") or [] if isinstance(s, dict)]
    fmt_info = data.get("format") if isinstance(data.get("format"), dict) else {}
    rate = _number(streams[0].get("sample_rate"), int) if streams else None
    declared = _number(fmt_info.get("duration"), float)
    return Probe(rate, declared)  # type: ignore[arg-type]


def _timeout(limits: DecodeLimits) -> AudioRejected:
    """The rejection of a file whose decoding ran past the wall-clock limit."""
    return AudioRejected(Msg("audio.timeout", seconds=Seconds(limits.timeout_s)), code="timeout")


class _StderrWatcher(threading.Thread):
    """Reads ffmpeg's log as it comes, keeping the declared duration, source rate and last lines."""

    def __init__(self, stream) -> None:
        super().__init__(daemon=True)
        self.stream = stream
        self.declared: float | None = None
        self.rate: int | None = None
        self.tail: deque[str] = deque(maxlen=20)

    def run(self) -> None:
        for raw in iter(lambda: self.stream.readline(8192), b""):
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if self.declared is None and (m := _DURATION.match(line)):
                h, mnt, s = m.groups()
                self.declared = int(h) * 3600 + int(mnt) * 60 + float(s)
            if self.rate is None and (m := _AUDIO_STREAM.match(line)):
                self.rate = int(m.group(1))
            self.tail.append(line.strip())


def _run_ffmpeg(path: Path, fmt: str, limits: DecodeLimits, ffmpeg: str):
    """Run ffmpeg on `path`; return (pcm bytes, returncode, timed_out, stderr watcher)."""
    cap_seconds = limits.max_seconds + 1.0
    cmd = [
        ffmpeg,
        "-nostdin",
        "-hide_banner",
        "-nostats",
        "-v",
        "info",
        "-protocol_whitelist",
        "file",
        "-f",
        DEMUXERS[fmt],
        "-i",
        _input_url(path),
        "-map",
        "0:a:0",
        "-vn",
        "-sn",
        "-dn",
        "-ac",
        "1",
        "-ar",
        str(SAMPLE_RATE),
        "-t",
        f"{cap_seconds:.3f}",
        "-c:a",
        "pcm_s16le",
        "-f",
        "s16le",
        "pipe:1",
    ]
    cap_bytes = int((cap_seconds + 1.0) * SAMPLE_RATE) * 2
    proc = _start(cmd, subprocess.PIPE)
    watcher = _StderrWatcher(proc.stderr)
    watcher.start()
    try:
        pcm, timed_out, _ = _collect(proc, cap_bytes, limits.timeout_s)
    finally:
        watcher.join(timeout=5)
        proc.stdout.close()  # type: ignore[union-attr]
        proc.stderr.close()  # type: ignore[union-attr]
    return pcm, proc.returncode, timed_out, watcher


def _check_size(size: int, limits: DecodeLimits) -> None:
    """Refuse an upload larger than the limit, saying both sizes."""
    if size > limits.max_bytes:
        raise AudioRejected(
            Msg("audio.too_big", size=Size(size), limit=Size(limits.max_bytes)), code="too_big"
        )


def read_upload(path: Path, limits: DecodeLimits) -> bytes:
    """An upload's bytes, for a worker (a regular file within the size limit, or refused)."""
    _check_size(require_regular(path).st_size, limits)
    with open_regular(path) as f:  # (a file grown since the stat is cut at the limit + 1)
        data = f.read(limits.max_bytes + 1)
    _check_size(len(data), limits)
    return data


def decode_bytes(data: bytes, limits: DecodeLimits, ffmpeg: str = "") -> Decoded:
    """`decode` for an upload handed over as bytes (through a private file of this worker)."""
    _check_size(len(data), limits)
    with tempfile.TemporaryDirectory(prefix="mimi-decode-") as tmp:
        path = Path(tmp) / "upload"
        with data_writes():  # this machine's disk is full: say so, not "unreadable file"
            path.write_bytes(data)
        return decode(path, limits, ffmpeg)


def decode(path: Path, limits: DecodeLimits, ffmpeg: str = "") -> Decoded:
    """Validate and decode the file at `path`, or raise AudioRejected with a specific reason."""
    _check_size(require_regular(path).st_size, limits)  # before any open: FIFOs never end
    fmt = sniff(path)
    exe = find_ffmpeg(ffmpeg)
    ffprobe = find_ffprobe(exe)
    probed = probe(path, fmt, limits, ffprobe) if ffprobe else None
    pcm, rc, timed_out, info = _run_ffmpeg(path, fmt, limits, exe)
    if timed_out:
        raise _timeout(limits)
    rate, declared = (probed.rate, probed.declared) if probed else (info.rate, info.declared)
    samples = np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype="<i2").astype(np.int16)
    seconds = len(samples) / SAMPLE_RATE
    log = " ".join(info.tail)
    if rc != 0 and seconds < limits.min_seconds:
        if "matches no streams" in log or "does not contain any stream" in log:
            raise AudioRejected(Msg("audio.no_audio"), code="no_audio")
        raise AudioRejected(Msg("audio.corrupt", format=fmt.upper()), code="corrupt")
    if rate is not None and rate < MIN_SOURCE_RATE:
        raise AudioRejected(Msg("audio.bad_rate", rate=str(rate)), code="bad_rate")
    if seconds > limits.max_seconds:
        raise AudioRejected(
            Msg("audio.too_long", limit=Seconds(limits.max_seconds)), code="too_long"
        )
    if seconds < limits.min_seconds:
        if declared is not None and declared >= limits.min_seconds and seconds < 0.9 * declared:
            raise AudioRejected(
                Msg("audio.truncated", decoded=Seconds(seconds), declared=Seconds(declared)),
                code="corrupt",
            )
        raise AudioRejected(
            Msg("audio.too_short", seconds=Seconds(seconds), minimum=Seconds(limits.min_seconds)),
            code="too_short",
        )
    decoded = Decoded(samples, fmt, rate, declared)
    if audible_dbfs(decoded.as_float()) < SILENCE_DBFS:
        raise AudioRejected(Msg("audio.silent"), code="silent")
    return decoded
