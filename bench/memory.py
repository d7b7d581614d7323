"""Memory and latency of the whole bot on a small box: peak and steady PSS per process.

Usage: python bench/memory.py [--guilds 10] [--song-seconds 240] [--songs 2] [--guesses 20]
       [--sequential 200] [--idle-s 10] [--audio-idle-s 600] [--json]
The real bot (default workers) on the loopback Discord stand-in: PSS of every process sampled
4x a second by role (main, audio, training). Phases: idle after start-up (no TensorFlow
anywhere), teaching every guild 4-minute songs and training them, a burst of /guess from every
guild while one guild retrains and /teach arrives, then `--sequential` /guess of a 4-minute MP3
one after another (growth over them = a leak), and idle again once the training worker has
exited. Prints a Markdown table (the README's) and one JSON dict; progress on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import proc_pss_mib  # noqa: E402
from bench.load import FAST, Sampler, build_corpus, burst, forget_records, log, setup, soak  # noqa: E402
from bot.client import MimiBot  # noqa: E402
from bot.config import Settings  # noqa: E402
from tests.discord_standin import DiscordStandIn, running_bot  # noqa: E402

MIB_PER_GIB = 1024


def tree_pss(bot: MimiBot) -> dict[str, float]:
    """PSS now of main, the audio workers and the training workers (MiB; 0 when none)."""
    roles = {
        "main": [os.getpid()],
        "audio": bot.audio_pool.pids(),
        "training": bot.training.worker_pids(),
    }
    out = {role: round(sum(proc_pss_mib(p) for p in pids), 1) for role, pids in roles.items()}
    out["total"] = round(sum(out.values()), 1)
    return out


async def steady(bot: MimiBot, seconds: float = 3.0) -> dict[str, float]:
    """Median PSS by role over a few quiet seconds."""
    samples = []
    for _ in range(max(1, int(seconds / 0.5))):
        samples.append(tree_pss(bot))
        await asyncio.sleep(0.5)
    return {k: round(statistics.median(s[k] for s in samples), 1) for k in samples[0]}


async def wait_exit(pids, timeout: float) -> bool:
    """Wait until `pids()` lists no worker (they exit after their idle period)."""
    deadline = time.monotonic() + timeout
    while pids() and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
    return not pids()


async def bench(args: argparse.Namespace) -> dict:
    """Start the bot on the stand-in and run every phase under the sampler."""
    began = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        corpus = build_corpus(Path(tmp), args.guilds, args.song_seconds, args.songs, 240)
        log(f"encoded {len(corpus.songs)} songs + clips in {time.monotonic() - began:.0f} s")
        settings = Settings.load(
            environ={}, env_file=None, data_dir=Path(tmp) / "data",
            **{**FAST, "train_idle_s": args.idle_s, "audio_idle_s": args.audio_idle_s},
        )  # fmt: skip
        figures: dict = {
            "config": {
                **{k: v for k, v in vars(args).items() if k != "json"},
                "cpus": os.cpu_count(),
                "audio_workers": settings.audio_workers,
                "infer_threads": settings.infer_threads,
            }
        }
        async with DiscordStandIn() as standin:
            for guild in corpus.guilds:
                standin.add_guild(guild)
            bot = MimiBot(settings, guild_ready_timeout=0.1)
            async with running_bot(standin, bot, timeout=120):
                await bot.audio_pool.run(int, 0)  # warm
                figures["idle_start_pss_mib"] = await steady(bot)
                log(f"idle after start: {figures['idle_start_pss_mib']}")
                sampler = Sampler(bot)
                sampler.start()
                try:
                    sampler.phase = "teach"
                    figures["teach"] = await setup(bot, corpus)
                    log(f"taught and trained: {figures['teach']}; burst")
                    sampler.phase = "burst"
                    figures["burst"] = await burst(standin, bot, corpus, args.guesses, 5.0)
                    forget_records(standin, keep=set())
                    log("burst done; sequential guesses")
                    sampler.phase = "sequential"
                    figures["sequential"] = await soak(standin, bot, corpus, args.sequential)
                finally:
                    figures["memory"] = sampler.stop()
                exited = await wait_exit(bot.training.worker_pids, args.idle_s + 60)
                figures["training_worker_exited"] = exited
                if 0 < args.audio_idle_s <= 60:
                    gone = await wait_exit(bot.audio_pool.pids, args.audio_idle_s + 30)
                    figures["audio_worker_exited"] = gone
                figures["idle_end_pss_mib"] = await steady(bot)
                log(f"idle at the end: {figures['idle_end_pss_mib']}")
    figures["wall_s"] = round(time.monotonic() - began, 1)
    return figures


def table(f: dict) -> str:
    """The README's Markdown table from the figures."""
    mem, seq, b = f["memory"], f["sequential"], f["burst"]
    peak = mem["peak_pss_mib"]
    start, end = f["idle_start_pss_mib"], f["idle_end_pss_mib"]
    rows = [
        "| PSS (MiB) | main | audio worker | training worker | total |",
        "|---|---|---|---|---|",
        f"| idle after start | {start['main']} | {start['audio']} | {start['training']} | "
        f"**{start['total']}** |",
        f"| peak, whole run | {peak.get('main', 0)} | {peak.get('audio', 0)} | "
        f"{peak.get('training', 0)} | **{mem['peak_total_pss_mib']}** |",
        f"| idle at the end | {end['main']} | {end['audio']} | {end['training']} | "
        f"**{end['total']}** |",
        "",
        "| latency | p50 | p95 | p99 |",
        "|---|---|---|---|",
        "| /guess, burst of {n} from {g} servers (20-s clips) | {p50} | {p95} | {p99} |".format(
            n=f["config"]["guesses"], g=f["config"]["guilds"], **b["guess_answer_ms"]
        ),
        "| /guess, sequential 4-min MP3 | {p50} | {p95} | {p99} |".format(**seq["answer_ms"]),
        "",
        f"Growth over the sequential guesses (MiB per 100, second half): "
        f"{seq['slope_mib_per_100_second_half']}; errors: burst {b['errors']}, "
        f"sequential {seq['errors']}; training worker exited when idle: "
        f"{f['training_worker_exited']}.",
    ]
    return "\n".join(rows)


def main() -> int:
    """Run and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--guilds", type=int, default=10)
    parser.add_argument("--song-seconds", type=float, default=240.0)
    parser.add_argument("--songs", type=int, default=2, help="songs per artist")
    parser.add_argument("--guesses", type=int, default=20, help="the burst")
    parser.add_argument("--sequential", type=int, default=200)
    parser.add_argument("--idle-s", type=float, default=10.0, help="MIMI_TRAIN_IDLE_S for the run")
    parser.add_argument("--audio-idle-s", type=float, default=600.0,
                        help="MIMI_AUDIO_IDLE_S (at most 60: the end waits for the audio worker "
                             "to exit too)")  # fmt: skip
    parser.add_argument("--json", action="store_true", help="one line instead of indented")
    args = parser.parse_args()
    figures = asyncio.run(bench(args))
    print(table(figures))
    print(json.dumps(figures, indent=None if args.json else 2))
    log(f"done in {figures['wall_s']:.0f} s; peak {figures['memory']['peak_total_pss_mib']} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
