"""/guess latency through the real bot and discord.py against the loopback Discord stand-in.

Usage: python bench/bot_latency.py [--runs N] [--json]
Times INTERACTION_CREATE -> defer and -> followup for a 4-minute MP3 at 1, 5 and 20 concurrent
requests (p50/p95/p99), and the bot process's memory.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import four_minute_mp3, percentile, proc_memory_mib  # noqa: E402
from bot.client import MimiBot  # noqa: E402
from bot.config import Settings  # noqa: E402
from model_store.features import WEIGHTS_FILENAME  # noqa: E402
from tests.audio_factory import encode  # noqa: E402
from tests.discord_standin import DiscordStandIn, running_bot  # noqa: E402

GUILD = 4242


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank) in milliseconds."""
    return round(1000 * percentile(values, q), 1)


async def bench(runs: int) -> dict:
    """Teach and train a small guild, then time /guess at several concurrency levels."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        settings = Settings.load(
            environ={},
            env_file=None,
            data_dir=tmp / "data",
            guess_cooldown_s=0.0,
            frontend_weights=ROOT / "pretrained" / WEIGHTS_FILENAME,
        )
        song = encode(tmp / "seed.wav", "wav", seconds=60, voice=0)
        mp3 = tmp / "four_minutes.mp3"
        four_minute_mp3(song, mp3)
        songs = [  # encoded before the bot starts, so the bench never blocks the bot's loop
            (artist, encode(tmp / f"{artist}{seed}.mp3", "mp3", seconds=30, voice=voice, seed=seed))
            for voice, artist in ((0, "Drone"), (4, "Chime"))
            for seed in range(3)
        ]
        async with DiscordStandIn() as standin:
            standin.add_guild(GUILD)
            bot = MimiBot(settings, guild_ready_timeout=0.1)
            async with running_bot(standin, bot, timeout=120):
                for artist, path in songs:
                    await bot.mimi.teach(GUILD, artist, path)
                await bot.training.train_now(GUILD, "bench")
                att = standin.add_file("four_minutes.mp3", mp3.read_bytes(), "audio/mpeg")
                warm = await standin.invoke(GUILD, "guess", {"clip": att})
                await warm.final(timeout=120)
                results = {}
                for concurrency in (1, 5, 20):
                    defers, answers = [], []
                    rounds = max(1, runs // concurrency) if concurrency > 1 else runs
                    for _ in range(rounds):
                        inters = await asyncio.gather(
                            *(
                                standin.invoke(GUILD, "guess", {"clip": att}, user_id=100 + i)
                                for i in range(concurrency)
                            )
                        )
                        await asyncio.gather(*(i.final(timeout=300) for i in inters))
                        defers += [i.defer_latency for i in inters]
                        answers += [i.answer_latency for i in inters]
                    results[f"concurrent_{concurrency}"] = {
                        "requests": len(defers),
                        "defer_ms": {q: pct(defers, q) for q in (50, 95, 99)},
                        "followup_ms": {q: pct(answers, q) for q in (50, 95, 99)},
                        "followup_median_s": round(statistics.median(answers), 3),
                    }
                rss, peak = proc_memory_mib(os.getpid()) or (0.0, 0.0)
                results["main_process_rss_mb"] = round(rss, 1)
                results["main_process_peak_rss_mb"] = round(peak, 1)
                results["max_event_loop_stall_ms"] = round(bot.max_stall_s * 1000, 1)
    return results


def main() -> int:
    """Run and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = asyncio.run(bench(args.runs))
    print(json.dumps(results, indent=None if args.json else 2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
