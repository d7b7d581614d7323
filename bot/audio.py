"""Decode untrusted audio files in an ffmpeg child process, with time, size and output limits."""

from __future__ import annotations

import contextlib
import re
import resource
import shutil
import subprocess
import threading
from collections import deque
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from bot.errors import AudioRejected
from bot.sniff import DEMUXERS, sniff
from model_store.features import SAMPLE_RATE, SILENCE_DBFS, rms_dbfs

MIN_SOURCE_RATE = 4000  # Hz; below this there is no music left to hear
CHILD_MEMORY_BYTES = 1 << 30  # address-space cap for the decoder process
_DURATION = re.compile(r"Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)")
_AUDIO_STREAM = re.compile(r"Stream #\d+:\d+.*?: Audio: [^,]+, (\d+) Hz")


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


def describe_seconds(seconds: float) -> str:
    """Human length: '0.5 s', '42 s', '4 min 03 s', '2 h 05 min'."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    return f"{minutes // 60} h {minutes % 60:02d} min"


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
            line = raw.decode("utf-8", "replace").strip()
            if self.declared is None and (m := _DURATION.search(line)):
                h, mnt, s = m.groups()
                self.declared = int(h) * 3600 + int(mnt) * 60 + float(s)
            if self.rate is None and (m := _AUDIO_STREAM.search(line)):
                self.rate = int(m.group(1))
            self.tail.append(line)


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
        str(path),
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
    proc = subprocess.Popen(
        cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    # If the child already exited or the platform refuses, the time and output caps still hold.
    with contextlib.suppress(OSError, ValueError):
        resource.prlimit(proc.pid, resource.RLIMIT_AS, (CHILD_MEMORY_BYTES, CHILD_MEMORY_BYTES))
    watcher = _StderrWatcher(proc.stderr)
    watcher.start()
    timed_out = threading.Event()

    def kill() -> None:
        timed_out.set()
        proc.kill()

    timer = threading.Timer(limits.timeout_s, kill)
    timer.start()
    chunks, total = [], 0
    try:
        assert proc.stdout is not None
        while chunk := proc.stdout.read(1 << 16):
            chunks.append(chunk)
            total += len(chunk)
            if total > cap_bytes:
                proc.kill()
                break
        proc.wait()
    finally:
        timer.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        watcher.join(timeout=5)
        proc.stdout.close()  # type: ignore[union-attr]
        proc.stderr.close()  # type: ignore[union-attr]
    return b"".join(chunks), proc.returncode, timed_out.is_set(), watcher


def decode(path: Path, limits: DecodeLimits, ffmpeg: str = "") -> Decoded:
    """Validate and decode the file at `path`, or raise AudioRejected with a specific reason."""
    size = path.stat().st_size
    if size > limits.max_bytes:
        raise AudioRejected(
            f"The file is too big ({size / 2**20:.1f} MB; the limit is "
            f"{limits.max_bytes / 2**20:.0f} MB).",
            code="too_big",
        )
    fmt = sniff(path)
    pcm, rc, timed_out, info = _run_ffmpeg(path, fmt, limits, find_ffmpeg(ffmpeg))
    if timed_out:
        raise AudioRejected(
            f"Decoding took longer than {limits.timeout_s:.0f} s; the file looks damaged.",
            code="timeout",
        )
    samples = np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype="<i2").astype(np.int16)
    seconds = len(samples) / SAMPLE_RATE
    log = " ".join(info.tail)
    if rc != 0 and seconds < limits.min_seconds:
        if "matches no streams" in log or "does not contain any stream" in log:
            raise AudioRejected("The file has no audio track.", code="no_audio")
        raise AudioRejected(
            f"The file is corrupt or not really {fmt.upper()}; it could not be decoded.",
            code="corrupt",
        )
    if info.rate is not None and info.rate < MIN_SOURCE_RATE:
        raise AudioRejected(
            f"The audio's sample rate ({info.rate} Hz) is too low to carry music.", code="bad_rate"
        )
    if seconds > limits.max_seconds:
        raise AudioRejected(
            f"The audio is longer than the {describe_seconds(limits.max_seconds)} limit.",
            code="too_long",
        )
    if seconds < limits.min_seconds:
        declared = info.declared
        if declared is not None and declared >= limits.min_seconds and seconds < 0.9 * declared:
            raise AudioRejected(
                f"The file is truncated or corrupt: only {describe_seconds(seconds)} of "
                f"{describe_seconds(declared)} could be decoded.",
                code="corrupt",
            )
        raise AudioRejected(
            f"The audio is too short ({describe_seconds(seconds)}; at least "
            f"{describe_seconds(limits.min_seconds)} is needed).",
            code="too_short",
        )
    decoded = Decoded(samples, fmt, info.rate, info.declared)
    if audible_dbfs(decoded.as_float()) < SILENCE_DBFS:
        raise AudioRejected("The audio is silent; there is nothing to hear.", code="silent")
    return decoded
