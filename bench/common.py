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


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank) of `values`, 0.0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def proc_memory_mib(pid: int) -> tuple[float, float] | None:
    """(VmRSS, VmHWM) of a process in MiB from /proc, or None once it is gone."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return None
    kib = {k: int(v.split()[0]) for k, _, v in (ln.partition(":") for ln in lines) if v.strip()
           and k in ("VmRSS", "VmHWM")}  # fmt: skip
    return (kib["VmRSS"] / 1024, kib["VmHWM"] / 1024) if len(kib) == 2 else None


def descendants(pid: int) -> dict[int, int]:
    """Every live process below `pid` (children, grandchildren...) -> its parent, from /proc."""
    found: dict[int, int] = {}
    todo = [pid]
    while todo:
        parent = todo.pop()
        try:
            tasks = list(Path(f"/proc/{parent}/task").iterdir())
        except OSError:
            continue
        for task in tasks:
            try:
                kids = [int(k) for k in (task / "children").read_text().split()]
            except OSError:
                continue
            found.update(dict.fromkeys(kids, parent))
            todo += kids
    return found


def proc_text(pid: int, name: str) -> str:
    """/proc/<pid>/<name> (e.g. comm, cmdline) as text, "" once the process is gone."""
    try:
        return Path(f"/proc/{pid}/{name}").read_text(errors="replace").strip()
    except OSError:
        return ""


def proc_pss_mib(pid: int) -> float:
    """Proportional set size in MiB (shared pages split among their users), 0.0 once gone."""
    try:
        lines = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
    except OSError:
        return 0.0
    return next((int(ln.split()[1]) / 1024 for ln in lines if ln.startswith("Pss:")), 0.0)
