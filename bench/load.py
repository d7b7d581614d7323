"""Reliability under load: a /guess burst across guilds during a retrain, memory, and a soak.

Usage: python bench/load.py [--guilds 10] [--guesses 100] [--window 10] [--soak 1000] [--json]
The real bot (default worker counts) on the loopback Discord stand-in: every guild is taught
and trained; then a burst of /guess spread over the window while one guild retrains and /teach
arrives; the memory of the bot's whole process tree is sampled by role throughout; finally a
soak of sequential /guess in one guild looks for leaks. Prints one JSON dict; progress on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import sys
import tempfile
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import descendants, percentile, proc_memory_mib, proc_pss_mib, proc_text  # noqa: E402
from bot.client import MimiBot  # noqa: E402
from bot.config import Settings  # noqa: E402
from bot.training import TrainingEvent  # noqa: E402
from model_store.features import WEIGHTS_FILENAME  # noqa: E402
from tests.audio_factory import encode  # noqa: E402
from tests.discord_standin import DiscordStandIn, Interaction, Message, running_bot  # noqa: E402

FIRST_GUILD = 9000
NAMES = ("Drone", "Chime", "Pulse")
MANAGE_GUILD = 1 << 5
TEACHES = 5  # /teach interactions during the burst's retrain
ANSWER_TIMEOUT_S = 900.0
MIME = {".mp3": "audio/mpeg", ".ogg": "audio/ogg"}
TOP1 = re.compile(r"\*\*1\. (.+?)\*\*")
Clip = tuple[str, str, bytes]  # (artist, filename, bytes)
FAST = dict(teach_cooldown_s=0.0, guess_cooldown_s=0.0, train_quiet_s=0.5)  # no cooldowns
FAST["frontend_weights"] = ROOT / "pretrained" / WEIGHTS_FILENAME  # type: ignore[assignment]


def log(message: str) -> None:
    """A progress line on stderr."""
    print(f"[load {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def ms(values: list[float]) -> dict[str, float]:
    """p50/p95/p99 of latencies in seconds, as milliseconds."""
    return {f"p{q}": round(1000 * percentile(values, q), 1) for q in (50, 95, 99)}


def rounded(mib: dict[str, float]) -> dict[str, float]:
    """MiB figures by role, sorted and rounded to 0.1."""
    return {role: round(v, 1) for role, v in sorted(mib.items())}


@dataclass
class Corpus:
    """Every file of the run, encoded before the bot starts so the bench never blocks its loop."""

    guilds: list[int]
    songs: list[tuple[int, str, Path]] = field(default_factory=list)  # taught in setup
    clips: dict[int, list[Clip]] = field(default_factory=dict)  # held out, per guild
    extra: list[tuple[int, Clip]] = field(default_factory=list)  # new songs for /teach
    soak: Clip = ("", "", b"")


def build_corpus(
    folder: Path, guilds: int, song_s: float = 30, songs: int = 3, soak_s: float = 10
) -> Corpus:
    """2-3 artists per guild (distinct voices), `songs` songs of `song_s` seconds each,
    held-out 20-s clips, extra songs to teach during the burst, and the soak's clip."""
    corpus = Corpus([FIRST_GUILD + g for g in range(guilds)])
    jobs: list[tuple[str, tuple]] = []  # (role, encode args)
    for g, guild in enumerate(corpus.guilds):
        for k, name in enumerate(NAMES[: 2 + g % 2]):
            voice, seed = g % 3 + 4 * k, 1000 * g + 10 * k
            for i in range(songs):
                jobs.append(("song", (guild, name, f"{guild}_{name}{i}.mp3", song_s, voice,
                                      seed + i)))  # fmt: skip
            for j, ext in enumerate(("ogg", "mp3")):
                jobs.append(("clip", (guild, name, f"{guild}_{name}_clip{j}.{ext}", 20, voice,
                                      seed + 5 + j)))  # fmt: skip
    for t in range(TEACHES):
        g = t % guilds  # a new song of the guild's first or second artist, in that artist's voice
        voice, guild = g % 3 + 4 * (t % 2), corpus.guilds[g]
        jobs.append(("extra", (guild, NAMES[t % 2], f"{guild}_new{t}.mp3", song_s, voice,
                               500 + t)))  # fmt: skip
    soak_name = "soak.ogg" if soak_s <= 10 else "soak.mp3"
    jobs.append(("soak", (corpus.guilds[0], NAMES[0], soak_name, soak_s, 0, 99)))

    def make(args: tuple) -> Path:
        _, _, name, seconds, voice, seed = args  # name ends in .mp3 or .ogg: the format
        return encode(folder / name, name[-3:], seconds=seconds, voice=voice, seed=seed)

    with ThreadPoolExecutor(os.cpu_count() or 2) as pool:
        paths = list(pool.map(make, [args for _, args in jobs]))
    for (role, (guild, name, filename, *_)), path in zip(jobs, paths, strict=True):
        clip = (name, filename, path.read_bytes())
        if role == "song":
            corpus.songs.append((guild, name, path))
        elif role == "clip":
            corpus.clips.setdefault(guild, []).append(clip)
        elif role == "extra":
            corpus.extra.append((guild, clip))
        else:
            corpus.soak = clip
    return corpus


def stray(pid: int, parent: int) -> str:
    """ffmpeg; fork: not yet exec'd, its pages (and RSS) still its parent's; or other."""
    if proc_text(pid, "comm") == "ffmpeg":
        return "ffmpeg"
    return "fork" if proc_text(pid, "cmdline") == proc_text(parent, "cmdline") else "other"


class Sampler(threading.Thread):
    """VmRSS/VmHWM of the bot's whole process tree every `every` s, summed by role and phase."""

    def __init__(self, bot: MimiBot, every: float = 0.25) -> None:
        super().__init__(daemon=True, name="memory-sampler")
        self.bot, self.every, self.phase = bot, every, "setup"
        self.peaks: dict[str, dict[str, float]] = {}  # phase -> role (and "total") -> MiB
        self.hwm: dict[int, tuple[str, float]] = {}  # pid -> (role, VmHWM MiB)
        self._halt = threading.Event()

    def roles(self) -> dict[int, str]:
        """Every process of the tree: main, reading, guessing, training or a stray's role."""
        main = os.getpid()
        known, tree = {main: "main"}, {main: 0, **descendants(main)}
        pools = (("audio", self.bot.audio_pool.pids), ("training", self.bot.training.worker_pids))
        for role, pids in pools:
            # re-read every sample (pools may be rebuilt); a dict changing under us: next time
            with contextlib.suppress(RuntimeError):
                known.update(dict.fromkeys(pids(), role))
        return {pid: known.get(pid) or stray(pid, parent) for pid, parent in tree.items()}

    def sample(self) -> None:
        """One simultaneous reading of every process, folded into the phase's peaks."""
        sums: dict[str, float] = defaultdict(float)
        for pid, role in self.roles().items():
            if role == "fork" or (mem := proc_memory_mib(pid)) is None:
                continue
            pss = proc_pss_mib(pid)  # what a cgroup limit sees, roughly
            sums[role] += mem[0]
            sums[f"{role}_pss"] += pss
            sums["total"] += mem[0]
            sums["total_pss"] += pss
            self.hwm[pid] = (role, max(mem[1], self.hwm.get(pid, (role, 0.0))[1]))
        peaks = self.peaks.setdefault(self.phase, {})
        for role, mib in sums.items():
            peaks[role] = max(peaks.get(role, 0.0), mib)

    def run(self) -> None:
        """Sample until stopped."""
        while not self._halt.wait(self.every):
            self.sample()

    def stop(self) -> dict:
        """Stop, take a last sample, and report peak RSS per role/phase and VmHWM per role."""
        self._halt.set()
        self.join()
        self.sample()
        overall: dict[str, float] = defaultdict(float)
        hwm: dict[str, float] = defaultdict(float)
        for role, mib in [kv for p in self.peaks.values() for kv in p.items()]:
            overall[role] = max(overall[role], mib)
        for role, mib in self.hwm.values():
            hwm[role] = max(hwm[role], mib)
        pss = {k.removesuffix("_pss"): overall.pop(k) for k in list(overall) if k.endswith("_pss")}
        return {
            "peak_total_mib": round(overall.pop("total", 0.0), 1),
            "peak_total_pss_mib": round(pss.pop("total", 0.0), 1),
            "peak_rss_mib": rounded(overall),
            "peak_pss_mib": rounded(pss),
            "peak_rss_mib_by_phase": {phase: rounded(p) for phase, p in self.peaks.items()},
            "max_vm_hwm_mib_per_process": rounded(hwm),
            "processes_seen": len(self.hwm),
            "note": "main includes the in-process stand-in; forks not yet exec'd are not counted",
        }


def top1(msg: Message) -> str:
    """The first artist a /guess answer names, lower-cased."""
    top = TOP1.match(msg.embeds[0].get("description", ""))
    return top.group(1).lower() if top else ""


def problem(kind: str, msg: Message | None) -> str | None:
    """None for a proper answer to a /`kind`, else what went wrong (errors are ephemeral)."""
    if msg is None:
        return "no answer"
    text, title = msg.content or "", msg.embeds[0].get("title", "") if msg.embeds else ""
    ok = {"guess": title.startswith(("Sounds like", "Not sure")), "teach": "Learned **" in text,
          "retrain": text.startswith("Retraining now")}[kind]  # fmt: skip
    return None if ok and not msg.ephemeral else f"/{kind}: {text[:160]}"


async def answer(inter: Interaction) -> Message | None:
    """The interaction's visible answer, or None if none came in time."""
    try:
        return await inter.final(timeout=ANSWER_TIMEOUT_S)
    except TimeoutError:
        return None


def forget_records(standin: DiscordStandIn, keep: set[int]) -> None:
    """Drop the stand-in's per-request records so they don't grow the main process's RSS."""
    per_request = (standin.requests, standin.messages, standin.interactions, standin._by_token)
    for records in (*per_request, standin._by_id):
        records.clear()
    for att_id in [a for a in standin._files if a not in keep]:
        del standin._files[att_id]


async def setup(bot: MimiBot, corpus: Corpus) -> dict:
    """Teach every guild's songs and train every guild (not part of the load figures)."""
    start = time.monotonic()
    await asyncio.gather(*(bot.mimi.teach(g, name, path) for g, name, path in corpus.songs))
    log(f"taught {len(corpus.songs)} songs in {time.monotonic() - start:.0f} s; training")
    await asyncio.gather(*(bot.training.train_now(g, "bench setup") for g in corpus.guilds))
    return {"songs": len(corpus.songs), "wall_s": round(time.monotonic() - start, 1)}


async def burst(
    standin: DiscordStandIn, bot: MimiBot, corpus: Corpus, guesses: int, window: float
) -> dict:
    """Guesses spread over the window; a /retrain early on and /teach during it; then answers."""
    events: list[tuple[float, TrainingEvent]] = []
    bot.training.subscribe(lambda e: events.append((time.monotonic(), e)))
    retrain_at = max(1, guesses // 20)
    teach_at = {min(guesses - 1, retrain_at + 5 + 3 * t) for t in range(TEACHES)}  # 0.3 s apart
    home, extra = corpus.guilds[0], list(corpus.extra)
    sent: list[tuple[str, Interaction, str]] = []  # (command, interaction, expected artist)
    during_retrain = 0
    bot.max_stall_s, start = 0.0, time.monotonic()
    for i in range(guesses):
        await asyncio.sleep(max(0.0, start + i * window / guesses - time.monotonic()))
        guild = corpus.guilds[i % len(corpus.guilds)]
        clips = corpus.clips[guild]
        artist, name, data = clips[(i // len(corpus.guilds)) % len(clips)]
        att = standin.add_file(name, data, MIME[Path(name).suffix])
        sent.append(("guess", await standin.invoke(guild, "guess", {"clip": att}, user_id=3000 + i),
                     artist))  # fmt: skip
        if i == retrain_at:
            inter = await standin.invoke(home, "retrain", user_id=2999, permissions=MANAGE_GUILD)
            sent.append(("retrain", inter, ""))
        if i in teach_at and extra:
            guild, (artist, name, data) = extra.pop(0)
            during_retrain += bot.training.status(home).state == "running"
            att = standin.add_file(name, data, MIME[Path(name).suffix])
            options = {"artist": artist, "song": att}
            sent.append(("teach", await standin.invoke(guild, "teach", options, user_id=4000 + i),
                         artist))  # fmt: skip
    sent_s = time.monotonic() - start
    replies = await asyncio.gather(*(answer(inter) for _, inter, _ in sent))
    answered_s = time.monotonic() - start
    stall_ms = round(bot.max_stall_s * 1000, 1)
    log(f"burst answered in {answered_s:.1f} s; waiting for the queued trainings")
    await asyncio.wait_for(bot.training.wait_idle(), ANSWER_TIMEOUT_S)
    defers = [inter.defer_latency for _, inter, _ in sent]
    errors = [p for (kind, _, _), r in zip(sent, replies, strict=True) if (p := problem(kind, r))]
    guessed = [(top1(m), artist) for (kind, _, artist), m in zip(sent, replies, strict=True)
               if kind == "guess" and m is not None and m.embeds]  # fmt: skip
    right = sum(top == artist.lower() for top, artist in guessed)
    retrain = [(t, e) for t, e in events if e.guild_id == home and e.reason == "retrain"]
    began = next((t for t, e in retrain if e.kind == "started"), None)
    ended = next((t for t, e in retrain if e.kind in ("finished", "failed")), None)

    def latencies(kind: str) -> list[float]:
        return [i.answer_latency for k, i, _ in sent if k == kind and i.answer_latency is not None]

    return {
        "interactions": len(sent),
        "sent_over_s": round(sent_s, 2),
        "all_answered_after_s": round(answered_s, 1),
        "deferred_over_3s": sum(d is None or d > 3.0 for d in defers),
        "defer_ms": ms([d for d in defers if d is not None]),
        "guess_answer_ms": ms(latencies("guess")),
        "teach_answer_ms": [round(1000 * s, 1) for s in latencies("teach")],
        "retrain": {
            "answer_ms": [round(1000 * s, 1) for s in latencies("retrain")],
            "trained_s": round(ended - began, 1) if began and ended else None,
            "outcome": next((e.kind for _, e in retrain if e.kind in ("finished", "failed")), None),
            "teaches_sent_while_it_ran": during_retrain,
        },
        "trainings_finished": sum(e.kind == "finished" for _, e in events),
        "failed_trainings": sum(e.kind == "failed" for _, e in events),
        "errors": len(errors),
        "error_samples": errors[:5],
        "guess_top1_accuracy": round(right / max(1, len(guessed)), 3),
        "max_event_loop_stall_ms": stall_ms,
    }


async def soak(standin: DiscordStandIn, bot: MimiBot, corpus: Corpus, count: int) -> dict:
    """Sequential /guess in one guild, sampling main + audio worker PSS (leak hunting)."""
    guild, (artist, name, data) = corpus.guilds[0], corpus.soak
    att = standin.add_file(name, data, MIME[Path(name).suffix])
    every = min(100, max(1, count // 10))
    series: list[dict] = []
    latencies, errors = [], []
    bot.max_stall_s, start = 0.0, time.monotonic()
    for i in range(1, count + 1):
        inter = await standin.invoke(guild, "guess", {"clip": att}, user_id=5000)
        if (p := problem("guess", await answer(inter))) is not None:
            errors.append(p)
        latencies.append(inter.answer_latency or ANSWER_TIMEOUT_S)
        forget_records(standin, keep={att.id})
        if i % every == 0 or i == 1:
            mem = {role: sum(proc_pss_mib(pid) for pid in pids)
                   for role, pids in (("main", [os.getpid()]),
                                      ("audio", bot.audio_pool.pids()))}  # fmt: skip
            series.append({"guesses": i, **rounded(mem)})
        if i % 100 == 0:
            log(f"soak {i}/{count}: p50 {1000 * percentile(latencies, 50):.0f} ms, {series[-1]}")

    def slope(role: str) -> float:
        """Least-squares MiB per 100 guesses over the second half of the series."""
        pts = [(s["guesses"], s[role]) for s in series if s["guesses"] > count / 2]
        if len(pts) < 2:
            return 0.0
        mx, my = (sum(p[k] for p in pts) / len(pts) for k in (0, 1))
        var = sum((x - mx) ** 2 for x, _ in pts)
        return round(100 * sum((x - mx) * (y - my) for x, y in pts) / var, 2)

    return {
        "guesses": count,
        "clip": f"{name} ({artist})",
        "wall_s": round(time.monotonic() - start, 1),
        "answer_ms": ms(latencies),
        "errors": len(errors),
        "error_samples": errors[:5],
        "pss_mib_series": series,
        "first": series[0] if series else None,
        "last": series[-1] if series else None,
        "slope_mib_per_100_second_half": {r: slope(r) for r in ("main", "audio")},
        "max_event_loop_stall_ms": round(bot.max_stall_s * 1000, 1),
    }


async def bench(args: argparse.Namespace) -> dict:
    """Encode, start the bot on the stand-in, and run setup, burst and soak under the sampler."""
    began = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        corpus = build_corpus(Path(tmp), args.guilds)
        log(f"encoded {len(corpus.songs)} songs + clips in {time.monotonic() - began:.0f} s")
        settings = Settings.load(environ={}, env_file=None, data_dir=Path(tmp) / "data", **FAST)
        workers = dict(audio=settings.audio_workers, training=settings.train_workers)
        config = {k: v for k, v in vars(args).items() if k != "json"}
        figures: dict = {"config": {**config, "cpus": os.cpu_count(), "workers": workers}}
        async with DiscordStandIn() as standin:
            for guild in corpus.guilds:
                standin.add_guild(guild)
            bot = MimiBot(settings, guild_ready_timeout=0.1)
            async with running_bot(standin, bot, timeout=120):
                sampler = Sampler(bot)
                sampler.start()
                try:
                    figures["setup"] = await setup(bot, corpus)
                    figures["setup"]["max_event_loop_stall_ms"] = round(bot.max_stall_s * 1000, 1)
                    _, name, data = corpus.clips[corpus.guilds[0]][0]
                    warm = standin.add_file(name, data, MIME[Path(name).suffix])
                    await answer(await standin.invoke(corpus.guilds[0], "guess", {"clip": warm}))
                    log("setup done; burst")
                    sampler.phase = "burst"
                    figures["burst"] = await burst(standin, bot, corpus, args.guesses, args.window)
                    log(f"burst: {figures['burst']['errors']} errors; soak")
                    forget_records(standin, keep=set())
                    sampler.phase = "soak"
                    figures["soak"] = await soak(standin, bot, corpus, args.soak)
                finally:
                    figures["memory"] = sampler.stop()
    figures["wall_s"] = round(time.monotonic() - began, 1)
    return figures


def main() -> int:
    """Run and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--guilds", type=int, default=10)
    parser.add_argument("--guesses", type=int, default=100)
    parser.add_argument("--window", type=float, default=10.0)
    parser.add_argument("--soak", type=int, default=1000)
    parser.add_argument("--json", action="store_true", help="one line instead of indented")
    args = parser.parse_args()
    figures = asyncio.run(bench(args))
    print(json.dumps(figures, indent=None if args.json else 2))
    burst, soaked, memory = figures["burst"], figures["soak"], figures["memory"]
    log(f"done in {figures['wall_s']:.0f} s: burst errors {burst['errors']}, late defers "
        f"{burst['deferred_over_3s']}, peak total {memory['peak_total_mib']} MiB, soak errors "
        f"{soaked['errors']}, slope {soaked['slope_mib_per_100_second_half']}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
