"""Ingest throughput: decode + clips + log-mel, in x real time per core, against a naive baseline.

Usage: python bench/ingest.py [--devset DIR] [--runs N] [--json]
The dev set comes from ../shared/bench/make_devset.sh; a 4-minute MP3 is generated here.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.audio import DecodeLimits, decode, find_ffmpeg  # noqa: E402
from bot.ingest import IngestConfig, ingest_file  # noqa: E402
from model_store import features  # noqa: E402
from model_store.features import usable_clips  # noqa: E402

LIMITS = DecodeLimits(max_bytes=1 << 30, max_seconds=3600, min_seconds=10, timeout_s=300)


def cpu_seconds() -> float:
    """CPU time of this process and its waited-for children (ffmpeg), user + system."""
    me, kids = (resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def ours(path: Path) -> float:
    """Product path: ffmpeg child decode -> whole-song log-mel -> usable clips; audio seconds."""
    decoded = decode(path, LIMITS)
    audio = decoded.as_float()
    mel = features.log_mel(audio)
    usable_clips(audio, len(mel), features.DEFAULT_CLIP_SECONDS, features.DEFAULT_CLIP_HOP_SECONDS)
    return decoded.seconds


def naive(path: Path) -> float:
    """The baseline: librosa.load at 16 kHz, then a mel spectrogram per 10 s clip."""
    import librosa

    y, sr = librosa.load(path, sr=features.SAMPLE_RATE, mono=True)
    clip = int(features.DEFAULT_CLIP_SECONDS * sr)
    for start in range(0, len(y) - clip + 1, clip):
        mel = librosa.feature.melspectrogram(
            y=y[start : start + clip],
            sr=sr,
            n_fft=features.N_FFT,
            hop_length=features.HOP_LENGTH,
            n_mels=features.N_MELS,
        )
        np.log10(1 + features.LOG_SCALE * mel)
    return len(y) / sr


def measure(fn: Callable[[Path], float], files: list[Path], runs: int) -> dict[str, float]:
    """Median over `runs` passes of x real time per core (CPU) and per wall second."""
    per_core, wall = [], []
    for _ in range(runs):
        c0, t0 = cpu_seconds(), time.perf_counter()
        audio = sum(fn(f) for f in files)
        cpu, elapsed = cpu_seconds() - c0, time.perf_counter() - t0
        per_core.append(audio / cpu)
        wall.append(audio / elapsed)
    return {
        "audio_s": round(audio, 1),
        "x_per_core": round(statistics.median(per_core), 1),
        "x_wall": round(statistics.median(wall), 1),
        "runs": runs,
    }


def make_mp3(folder: Path) -> Path:
    """A generated 4-minute 44.1 kHz stereo 192 kbit/s MP3 of tones and noise."""
    out = folder / "four_minutes.mp3"
    subprocess.run(
        [
            find_ffmpeg(),
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=220:duration=240:sample_rate=44100",
            "-f",
            "lavfi",
            "-i",
            "anoisesrc=d=240:c=pink:r=44100:a=0.1",
            "-filter_complex",
            "[0][1]amix=inputs=2,aformat=channel_layouts=stereo",
            "-b:a",
            "192k",
            str(out),
        ],
        check=True,
    )
    return out


def main() -> int:
    """Run every measurement and print a table (or JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devset", type=Path, default=ROOT.parent / "devset")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        mp3 = make_mp3(Path(tmp))
        ours(mp3)  # warm-up: imports, mel basis, page cache
        results["mp3_4min/ours"] = measure(ours, [mp3], args.runs)
        results["mp3_4min/naive"] = measure(naive, [mp3], max(1, args.runs // 2))
        config = IngestConfig(Path(tmp) / "cache", LIMITS, 10.0, 10.0)
        full = measure(lambda p: ingest_file(p, 0, config).seconds, [mp3], args.runs)
        results["mp3_4min/ours+cache_write"] = full
        if args.devset.is_dir():
            files = sorted(args.devset.glob("*/*.ogg"))
            subset = [sorted(d.glob("*.ogg"))[0] for d in sorted(args.devset.iterdir())]
            results["devset_all/ours"] = measure(ours, files, max(1, args.runs // 2))
            results["devset_subset/ours"] = measure(ours, subset, args.runs)
            results["devset_subset/naive"] = measure(naive, subset, 1)
        else:
            print(
                f"(no dev set at {args.devset}; run ../shared/bench/make_devset.sh)",
                file=sys.stderr,
            )
    for case in ("mp3_4min", "devset_subset"):
        if f"{case}/ours" in results:
            ratio = results[f"{case}/ours"]["x_per_core"] / results[f"{case}/naive"]["x_per_core"]
            results[f"{case}/ours"]["speedup_vs_naive"] = round(ratio, 1)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(f"{'case':<30} {'audio s':>9} {'x/core':>8} {'x wall':>8} {'vs naive':>9}")
    for name, r in results.items():
        speed = f"{r['speedup_vs_naive']:.1f}x" if "speedup_vs_naive" in r else ""
        row = f"{r['audio_s']:>9.0f} {r['x_per_core']:>8.0f} {r['x_wall']:>8.0f} {speed:>9}"
        print(f"{name:<30} {row}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
