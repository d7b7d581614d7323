"""/guess latency through the real bot and discord.py against the loopback Discord stand-in.

Usage: python bench/bot_latency.py [--runs N] [--json]
Times INTERACTION_CREATE -> defer and -> followup for a 4-minute MP3 at 1, 5 and 20 concurrent
requests (p50/p95/p99), the same clip asked the other ways (Apps → Who's this artist?, an
@mention, and a correction that teaches it), and the bot process's memory.
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
                results["ways_median_s"] = await ways(standin, att, max(3, runs // 4))
                rss, peak = proc_memory_mib(os.getpid()) or (0.0, 0.0)
                results["main_process_rss_mb"] = round(rss, 1)
                results["main_process_peak_rss_mb"] = round(peak, 1)
                results["max_event_loop_stall_ms"] = round(bot.max_stall_s * 1000, 1)
    return results


async def ways(standin: DiscordStandIn, att, runs: int) -> dict[str, float]:
    """Median seconds from the member's action to mimi's answer, one at a time, per way of
    asking: /guess, the message menu, a mention, and "It was…" → an artist (teaching the clip)."""
    times: dict[str, list[float]] = {"slash": [], "menu": [], "mention": [], "correction": []}
    for i in range(runs):
        user = 500 + i
        slash = await standin.invoke(GUILD, "guess", {"clip": att}, user_id=user)
        reply = await slash.final(timeout=300)
        times["slash"].append(slash.answer_latency)
        posted = await standin.post(GUILD, files=[att], user_id=user)
        menu = await standin.use_message_command(posted, "Who's this artist?", user_id=user)
        await menu.final(timeout=300)
        times["menu"].append(menu.answer_latency)
        start = asyncio.get_running_loop().time()
        mention = await standin.post(GUILD, files=[att], mention_bot=True, user_id=user)
        await standin.wait_for_message(
            lambda m, mid=int(mention["id"]): m in standin.channel_replies(mid), timeout=300
        )
        times["mention"].append(asyncio.get_running_loop().time() - start)
        if i == 0:  # one correction: the clip becomes a song (a second would be a duplicate)
            fix = next(c["custom_id"] for row in reply.components for c in row["components"]
                       if c["custom_id"].startswith("mimi:fix:"))  # fmt: skip
            picker = await (await standin.press(reply, fix, user_id=user)).final(timeout=60)
            select = picker.components[0]["components"][0]["custom_id"]
            chosen = await standin.press(reply, select, values=["Chime"], user_id=user)
            await chosen.followups(2, timeout=300)
            times["correction"].append(chosen.messages[-1].at - chosen.created)
    return {way: round(statistics.median(v), 3) for way, v in times.items() if v}


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
