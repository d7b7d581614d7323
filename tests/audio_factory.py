"""Real test audio: numpy-synthesised signals encoded by the real ffmpeg into real formats."""

from __future__ import annotations

import subprocess
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
    subprocess.run(
        [find_ffmpeg(), "-nostdin", "-v", "error", "-y", "-i", str(src), *args, str(out)],
        check=True,
    )
    src.unlink()
    return out


def encode_tagged(
    path: Path, *, seconds: float, rate: int = 44100, title: str, args: list[str] | None = None
) -> Path:
    """A WAV (or `args`-encoded) file of `seconds` at `rate` whose title tag is `title`."""
    src = path.with_name(path.stem + ".src.wav")
    write_wav(src, synth(seconds, rate=rate), rate)
    cmd = [find_ffmpeg(), "-nostdin", "-v", "error", "-y", "-i", str(src)]
    cmd += ["-metadata", f"title={title}", *(args or ["-c:a", "pcm_s16le"]), str(path)]
    subprocess.run(cmd, check=True)
    src.unlink()
    return path
