"""The `mimi` command line on a small box: wall time and peak RSS of each command, cold.

Usage: python bench/cli.py [--runs 3] [--devset ../devset] [--json]
Every command is a fresh process (cold: imports, model load, work), timed against
`python -c "import tensorflow"` measured in the same run. Peak RSS is the process's VmHWM
(with its ffmpeg children) from wait4. `--devset` adds `mimi eval` of the whole dev set.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import four_minute_mp3  # noqa: E402
from tests.audio_factory import encode  # noqa: E402

ENV = {
    **{k: v for k, v in os.environ.items() if not k.startswith(("MIMI_", "DISCORD_"))},
    "PYTHONPATH": str(ROOT),
}


def timed(cmd: list[str], cwd: Path) -> tuple[float, float, int]:
    """(wall seconds, peak RSS MiB, exit code) of one command, run to completion."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return time.perf_counter() - started, usage.ru_maxrss / 1024, proc.returncode


def measure(cmd: list[str], cwd: Path, runs: int, fresh=None) -> dict:
    """Median wall time and largest peak RSS over `runs` cold runs (`fresh()` before each)."""
    walls, peaks, codes = [], [], set()
    for _ in range(runs):
        if fresh is not None:
            fresh()
        wall, peak, code = timed(cmd, cwd)
        walls.append(wall)
        peaks.append(peak)
        codes.add(code)
    return {"wall_s": round(statistics.median(walls), 2), "peak_rss_mib": round(max(peaks)),
            "exit": sorted(codes)}  # fmt: skip


def main() -> int:
    """Build a small library, train once, then time every command."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--devset", type=Path, help="also time `mimi eval` of this folder")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    mimi = [sys.executable, "-m", "bot"]
    out: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        data = ["--data-dir", str(t / "data"), "--guild", "1"]
        for artist, voice in (("Alpha", 0), ("Beta", 4)):
            (t / "lib" / artist).mkdir(parents=True)
            for i in range(2):
                encode(t / "lib" / artist / f"{i}.mp3", "mp3", seconds=40, voice=voice, seed=i)
        src = encode(t / "src.ogg", "ogg", seconds=30, voice=4, seed=9)
        song = four_minute_mp3(src, t / "song.mp3")
        subprocess.run([*mimi, "import", str(t / "lib"), *data], env=ENV, check=True,
                       capture_output=True)  # fmt: skip
        subprocess.run([*mimi, "train", *data], env=ENV, check=True, capture_output=True)

        def fresh_teach_dir() -> None:
            subprocess.run(["rm", "-rf", str(t / "teach")], check=True)

        out["import tensorflow"] = measure([sys.executable, "-c", "import tensorflow"], t,
                                           args.runs)  # fmt: skip
        out["guess 4-min MP3"] = measure([*mimi, "guess", str(song), *data], t, args.runs)
        teach = [*mimi, "teach", "--data-dir", str(t / "teach"), "--guild", "1", "--artist", "A"]
        out["teach 4-min MP3"] = measure([*teach, str(song)], t, args.runs, fresh_teach_dir)
        for name, cmd in {
            "artists": ["artists", *data],
            "stats": ["stats", *data],
            "forget (no such song)": ["forget", *data, "--song", "999"],
            "health": ["health", "--data-dir", str(t / "data")],
            "sync-commands (no token)": ["sync-commands", "--data-dir", str(t / "data")],
            "guess of a missing file": ["guess", str(t / "missing.mp3"), *data],
            "usage error": ["teach", "--guild", "x"],
        }.items():
            out[name] = measure([*mimi, *cmd], t, args.runs)
        if args.devset:
            out["eval dev set"] = measure([*mimi, "eval", str(args.devset), "--data-dir",
                                           str(t / "eval")], t, 1)  # fmt: skip
    tf_s = out["import tensorflow"]["wall_s"]
    print("| command | wall | vs `import tensorflow` | peak RSS | exit |")
    print("|---|---|---|---|---|")
    for name, m in out.items():
        print(f"| `{name}` | {m['wall_s']:.2f} s | {m['wall_s'] / tf_s:.2f}× | "
              f"{m['peak_rss_mib']} MiB | {m['exit']} |")  # fmt: skip
    print(json.dumps(out, indent=None if args.json else 2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
