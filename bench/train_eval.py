"""Accuracy and speed of our model against the original recipe and mel statistics, same splits.

Usage: python bench/train_eval.py [--devset DIR] [--repeats R] [--scratch-seconds S] [--json]
Builds nothing itself: make the dev set with ../shared/bench/make_devset.sh first (`make bench`).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import four_minute_mp3  # noqa: E402
from bot.audio import DecodeLimits  # noqa: E402
from bot.evaluation import EvalSong, load_folder  # noqa: E402
from model_store import features  # noqa: E402
from model_store.baselines import ScratchConfig, melstats_method, scratch_method  # noqa: E402
from model_store.calibrate import reliability  # noqa: E402
from model_store.evaluate import (  # noqa: E402
    cross_validate,
    fewshot_splits,
    kfold_splits,
    open_set_validate,
)
from model_store.head import HeadConfig  # noqa: E402
from model_store.train import musicnn_method, train_head_model  # noqa: E402

LIMITS = DecodeLimits(max_bytes=1 << 30, max_seconds=3600, min_seconds=10, timeout_s=300)


def cpu() -> float:
    """CPU seconds of this process (user + system)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def load(devset: Path, weights: Path, cache: Path) -> tuple[list[EvalSong], dict]:
    """Dev-set songs with log-mel and embeddings, cached on disk between runs."""
    key = f"f{features.FEATURE_VERSION}m{features.FRONTEND_VERSION}"
    path = cache / f"devset-{key}.npz"
    speed: dict = {}
    if not path.is_file():
        c0, t0 = cpu(), time.perf_counter()
        songs, _ = load_folder(devset, clip_seconds=10.0, limits=LIMITS, weights=weights)
        audio = sum(len(s.mel) for s in songs) * features.HOP_LENGTH / features.SAMPLE_RATE
        speed = {
            "ingest_x_per_core_incl_embedding": round(audio / (cpu() - c0), 1),
            "ingest_x_wall_incl_embedding": round(audio / (time.perf_counter() - t0), 1),
        }
        arrays = {}
        for s in songs:
            arrays[f"{s.song_id}|{s.artist}|mel"] = s.mel
            arrays[f"{s.song_id}|{s.artist}|emb"] = s.patches
            arrays[f"{s.song_id}|{s.artist}|clips"] = np.array(s.clips)
        cache.mkdir(parents=True, exist_ok=True)
        np.savez(path, **arrays)
    data = np.load(path)
    songs = []
    for name in sorted(
        {k.rsplit("|", 1)[0] for k in data.files}, key=lambda n: int(n.split("|")[0])
    ):
        sid, artist = name.split("|")
        clips = tuple(tuple(map(float, c)) for c in data[f"{name}|clips"])
        songs.append(EvalSong(int(sid), artist, data[f"{name}|mel"], data[f"{name}|emb"], clips))
    return songs, speed


def embedding_speed(weights: Path, songs: list[EvalSong]) -> float:
    """Front-end throughput in x real time per core on real dev-set patches."""
    from model_store.embed import embed_mel, frontend

    model = frontend(weights)
    mels = [s.mel.astype(np.float32) for s in songs[:6]]
    embed_mel(model, mels[0][:2000])  # warm-up
    c0 = cpu()
    frames = sum(len(embed_mel(model, m)) * features.PATCH_FRAMES for m in mels)
    return round(frames * features.HOP_LENGTH / features.SAMPLE_RATE / (cpu() - c0), 1)


def retrain_seconds(songs: list[EvalSong], n: int = 50, runs: int = 3) -> float:
    """Median wall seconds to retrain a server's head on `n` songs with cached embeddings."""
    subset = sorted(songs, key=lambda s: s.song_id)[:n]
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        train_head_model(subset)
        times.append(time.perf_counter() - t0)
    return round(statistics.median(times), 2)


def guess_latency(songs: list[EvalSong], weights: Path, runs: int = 5) -> dict:
    """Warm end-to-end guess of a 4-minute MP3: decode, mel, sampled windows, head."""
    from bot.guess_job import GuessConfig, guess_file
    from bot.ingest import IngestConfig
    from bot.train_job import MODEL_FILE
    from model_store.openset import REFERENCE_FILE
    from model_store.registry import ModelRegistry

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        result = train_head_model(songs)
        ModelRegistry(tmp / "models").publish(
            0,
            lambda d: (
                result.model.save(d / MODEL_FILE),
                result.reference.save(d / REFERENCE_FILE),
            ),
            kind="musicnn",
            artists=result.artists,
            feature_version=features.FEATURE_VERSION,
            frontend_version=features.FRONTEND_VERSION,
            metrics=result.metrics,
            train_seconds=result.seconds,
            snapshot={},
        )
        mp3 = tmp / "four_minutes.mp3"
        src = sorted((ROOT.parent / "devset").glob("*/*.ogg"))[0]
        four_minute_mp3(src, mp3)
        ingest = IngestConfig(tmp / "cache", LIMITS, 10.0, 10.0, weights)
        config = GuessConfig(tmp / "models", ingest)
        guess_file(mp3, 0, config)  # warm: TensorFlow, front-end and head loaded
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            guess_file(mp3, 0, config)
            times.append(time.perf_counter() - t0)
    return {"median_s": round(statistics.median(times), 3), "runs": runs}


METHODS = ("ours", "msd-only", "scratch", "melstats")
OPEN_SET = ("ours", "msd-only", "melstats")  # the scratch CNN costs minutes per training


def compare(
    songs: list[EvalSong], repeats: int, scratch_seconds: float, which: tuple[str, ...] = METHODS
) -> dict:
    """Every method on the same 5-fold and few-shot splits: accuracy, calibration and (but
    for the scratch CNN) the open set, leave-one-artist-out."""
    artists = [s.artist for s in songs]
    every = {
        "ours": ("ours (MSD + MTT musicnn + head)", musicnn_method()),
        "msd-only": (
            "MSD musicnn + head (before issue 11)",
            musicnn_method(HeadConfig(parts=("penultimate",))),
        ),
        "scratch": (
            "original recipe (scratch CNN)",
            scratch_method(ScratchConfig(max_seconds=scratch_seconds)),
        ),
        "melstats": ("mel stats + logistic regression", melstats_method()),
    }
    methods = {every[k][0]: every[k][1] for k in which}
    open_set = {every[k][0] for k in which if k in OPEN_SET}
    plans = {"all songs (5-fold)": (songs, kfold_splits(artists, 5, seed=0))}
    for n in (1, 2, 5):
        # Few-shot needs at least one test song per artist: artists with <= n songs sit out.
        enough = [s for s in songs if artists.count(s.artist) > n]
        names = [s.artist for s in enough]
        label = f"{n} train songs/artist ({len(set(names))} artists)"
        plans[label] = (enough, fewshot_splits(names, n, repeats, seed=n))
    table: dict = {}
    for plan, (subset, splits) in plans.items():
        for name, method in methods.items():
            t0 = time.perf_counter()
            names = [s.artist for s in subset]
            r = cross_validate(subset, names, splits, method)
            row = {k: r[k] for k in ("song_accuracy", "clip_accuracy", "macro_f1", "train_seconds")}
            row["ece"] = reliability(r["labels"], r["song_clips"])["ece"]
            if name in open_set:
                row["open_set"] = open_set_validate(subset, names, splits, method)
            row |= {"splits": len(splits), "wall_s": round(time.perf_counter() - t0, 1)}
            table[f"{plan} | {name}"] = row
            print(f"{plan:24s} {name:38s} {_row(row)}", file=sys.stderr, flush=True)
    return table


def _row(r: dict) -> str:
    """One table row's figures."""
    o = r.get("open_set") or {}

    def f(v: float | None) -> str:
        return "   n/a" if v is None else f"{v:6.3f}"

    return (
        f"{f(r['song_accuracy'])} {f(r['clip_accuracy'])} {f(r['macro_f1'])} {f(r['ece'])} "
        f"{f(o.get('auroc'))} {f(o.get('unknown_rejected'))} {f(o.get('known_kept'))} "
        f"{r['train_seconds']:7.1f}"
    )


def main() -> int:
    """Run the comparison and the speed figures; print a table (or JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devset", type=Path, default=ROOT.parent / "devset")
    parser.add_argument(
        "--weights", type=Path, default=ROOT / "pretrained" / features.WEIGHTS_FILENAME
    )
    parser.add_argument("--cache", type=Path, default=ROOT / ".cache" / "bench")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--scratch-seconds", type=float, default=120.0)
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--methods", default=",".join(METHODS), help=f"comma-separated, of {', '.join(METHODS)}"
    )
    args = parser.parse_args()
    if not args.devset.is_dir():
        print(f"no dev set at {args.devset}: run ../shared/bench/make_devset.sh", file=sys.stderr)
        return 1
    songs, speed = load(args.devset, args.weights, args.cache)
    report = {
        "songs": len(songs),
        "artists": len({s.artist for s in songs}),
        "clips": sum(len(s.clips) for s in songs),
        **speed,
        "embedding_x_per_core": embedding_speed(args.weights, songs),
        "retrain_50_songs_s": retrain_seconds(songs),
        "guess_4min_mp3_warm": guess_latency(songs, args.weights),
        "table": compare(songs, args.repeats, args.scratch_seconds, tuple(args.methods.split(","))),
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    for key, value in report.items():
        if key != "table":
            print(f"{key}: {value}")
    head = ("song", "clip", "F1", "ECE", "AUROC", "unk.rej", "kept", "train s")
    print(f"\n{'split | method':<72} " + " ".join(f"{h:>6}" for h in head))
    for name, r in report["table"].items():
        print(f"{name:<72} {_row(r)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
