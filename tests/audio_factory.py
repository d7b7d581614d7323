"""Real test audio: numpy-synthesised signals encoded by the real ffmpeg into real formats.

The one place the tests run ffmpeg to make audio (and video) files.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import soundfile as sf

from bot.audio import find_ffmpeg

# Format name -> (file suffix, ffmpeg output arguments).
ENCODINGS: dict[str, tuple[str, list[str]]] = {
    "mp3": (".mp3", ["-c:a", "libmp3lame", "-b:a", "128k"]),
    "m4a": (".m4a", ["-c:a", "aac", "-b:a", "128k"]),
    "aac": (".aac", ["-c:a", "aac", "-b:a", "128k", "-f", "adts"]),
    "ogg": (".ogg", ["-c:a", "libvorbis", "-q:a", "4"]),
    "opus": (".opus", ["-c:a", "libopus", "-b:a", "96k"]),
    "flac": (".flac", ["-c:a", "flac"]),
    "wav": (".wav", ["-c:a", "pcm_s16le"]),
}


def synth(
    seconds: float, *, rate: int = 44100, voice: int = 0, channels: int = 1, seed: int = 0
) -> np.ndarray:
    """A music-like signal: a `voice`-specific timbre and rhythm plus a little noise, in [-1, 1]."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    base = 110.0 * 2 ** (voice * 5 / 12)  # each voice sits a fourth above the last
    notes = base * 2 ** (rng.integers(0, 12, size=int(seconds * 2) + 1) / 12)
    freq = notes[(t * 2).astype(int)]  # a new note every half second
    phase = 2 * np.pi * np.cumsum(freq) / rate
    harmonics = sum(np.sin(k * phase) / k ** (1 + voice % 3) for k in range(1, 6))
    beat = 0.5 + 0.5 * (np.sin(2 * np.pi * (1.5 + voice) * t) > 0)
    y = 0.3 * harmonics * beat + 0.02 * rng.standard_normal(t.size)
    y = (y / max(1e-9, np.abs(y).max()) * 0.8).astype(np.float32)
    return np.repeat(y[:, None], channels, axis=1) if channels > 1 else y


def stranger(path: Path, seconds: float = 14.0) -> Path:
    """A WAV clip like no `synth` voice: bursts of filtered noise, nothing tonal (an artist no
    server taught)."""
    rng = np.random.default_rng(5)
    rate = 22050
    t = np.arange(int(seconds * rate)) / rate
    noise = np.convolve(rng.standard_normal(t.size), np.ones(8) / 8, mode="same")
    bursts = (np.sin(2 * np.pi * 3.3 * t) > 0.6).astype(np.float32)
    return write_wav(path, (0.6 * noise * bursts / np.abs(noise).max()).astype(np.float32), rate)


def write_wav(path: Path, samples: np.ndarray, rate: int, subtype: str = "PCM_16") -> Path:
    """Write samples as a WAV file with soundfile."""
    sf.write(path, samples, rate, subtype=subtype, format="WAV")
    return path


def encode(
    path: Path, fmt: str, seconds: float = 12.0, *, voice: int = 0, seed: int = 0,
    rate: int = 44100, channels: int = 2,
) -> Path:  # fmt: skip
    """Synthesise `seconds` of audio and encode it with ffmpeg as `fmt` into `path`."""
    suffix, args = ENCODINGS[fmt]
    src = path.with_name(path.stem + ".src.wav")
    write_wav(src, synth(seconds, rate=rate, voice=voice, channels=channels, seed=seed), rate)
    out = path if path.suffix else path.with_suffix(suffix)
    transcode(src, out, *args)
    src.unlink()
    return out


def encode_tagged(
    path: Path, *, seconds: float, rate: int = 44100, title: str, args: list[str] | None = None
) -> Path:
    """A WAV (or `args`-encoded) file of `seconds` at `rate` whose title tag is `title`."""
    src = path.with_name(path.stem + ".src.wav")
    write_wav(src, synth(seconds, rate=rate), rate)
    transcode(src, path, "-metadata", f"title={title}", *(args or ["-c:a", "pcm_s16le"]))
    src.unlink()
    return path


def ffmpeg(out: Path, *args: str) -> Path:
    """Run the real ffmpeg with `args` (inputs and output options) writing `out`; `out`."""
    subprocess.run(
        [find_ffmpeg(), "-nostdin", "-v", "error", "-y", *args, str(out)],
        check=True,
        timeout=120,
    )
    return out


def transcode(src: Path, out: Path, *args: str) -> Path:
    """Convert the file `src` into `out` with ffmpeg output options `args`; `out`."""
    return ffmpeg(out, "-i", str(src), *args)


def retag(src: Path, out: Path, title: str, *args: str) -> Path:
    """The audio of `src` stream-copied into `out` with title tag `title`: new bytes, same audio."""
    return transcode(src, out, "-c", "copy", "-metadata", f"title={title}", *args)


def sine(out: Path, *, seconds: float, freq: float, rate: int, args: Sequence[str]) -> Path:
    """A `freq` Hz sine of `seconds` at `rate` Hz from ffmpeg's lavfi, encoded with `args`."""
    return ffmpeg(out, "-f", "lavfi", "-i", f"sine=f={freq:g}:r={rate}:d={seconds:g}", *args)


def video(
    out: Path, *, seconds: float, audio: Path | None = None, colour: str = "blue",
    size: str = "32x32", fps: int | None = None, container: str | None = None,
) -> Path:  # fmt: skip
    """An MPEG-4 video of one `colour`, with `audio` as its AAC track if given (else silent)."""
    picture = f"color=c={colour}:s={size}:d={seconds:g}" + (f":r={fps}" if fps else "")
    args = ["-f", "lavfi", "-i", picture]
    if audio is not None:
        args += ["-i", str(audio), "-shortest", "-c:a", "aac"]
    args += ["-c:v", "mpeg4"]
    if container is not None:
        args += ["-f", container]
    return ffmpeg(out, *args)
