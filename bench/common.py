"""Helpers the benchmark scripts share."""

from __future__ import annotations

import subprocess
from pathlib import Path

from bot.audio import find_ffmpeg


def four_minute_mp3(source: Path, out: Path) -> Path:
    """Loop `source` into a 4-minute 192 kbit/s MP3 at `out` (the guess-latency test file)."""
    subprocess.run(
        [
            find_ffmpeg(),
            "-v",
            "error",
            "-y",
            "-stream_loop",
            "-1",
            "-i",
            str(source),
            "-t",
            "240",
            "-b:a",
            "192k",
            str(out),
        ],
        check=True,
    )
    return out
