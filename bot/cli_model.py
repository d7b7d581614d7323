"""`mimi train | guess | stats | eval | models | rollback`: the model half of the command line."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from pathlib import Path

from bot import i18n
from bot.errors import MimiError
from bot.service import Mimi

Emit = Callable[[argparse.Namespace, dict, list[str]], None]


def add_commands(sub, common, guild) -> None:
    """Register the model commands on the `mimi` sub-parser."""
    p = sub.add_parser("train", parents=[common, guild], help="train and publish a model now")
    p.add_argument("--model", choices=("musicnn", "scratch"), default="musicnn")
    p = sub.add_parser("guess", parents=[common, guild], help="name the artist of a clip")
    p.add_argument("file", type=Path, metavar="FILE")
    p.add_argument("--top", type=int, default=3, metavar="K")
    p.add_argument("--png", type=Path, metavar="OUT.png", help="write the spectrogram picture")
    p = sub.add_parser("stats", parents=[common, guild], help="songs, model and honest accuracy")
    p.add_argument("--png", type=Path, metavar="OUT.png", help="write the confusion matrix")
    p = sub.add_parser("eval", parents=[common], help="cross-validate on <artist>/<songs>")
    p.add_argument("folder", type=Path, metavar="DIR")
    p.add_argument("--folds", type=int, default=5, metavar="K")
    p.add_argument("--train-songs", type=int, metavar="N", help="few-shot: N songs per artist")
    p.add_argument("--clip-seconds", type=float, default=10.0, metavar="S")
    p.add_argument("--model", choices=("musicnn", "scratch", "melstats"), default="musicnn")
    p.add_argument(
        "--unknown",
        type=Path,
        metavar="DIR2",
        help="songs of artists never taught, for the open-set figures (default: each artist "
        "of DIR in turn plays the unknown one)",
    )
    sub.add_parser("models", parents=[common, guild], help="list this server's model versions")
    p = sub.add_parser("rollback", parents=[common, guild], help="serve an earlier model version")
    p.add_argument("--version", type=int, metavar="V", help="default: the one before current")


def _pct(value: float | None) -> str:
    """A percentage as everywhere in mimi (i18n.percent), or 'n/a'."""
    return "n/a" if value is None else i18n.percent("en", value)


def _num(value: float | None) -> str:
    """A figure to three places, or 'n/a'."""
    return "n/a" if value is None else f"{value:.3f}"


def _progress(epoch: int, total: int, accuracy: float | None) -> None:
    """Show training progress on stderr when it is a terminal."""
    if sys.stderr.isatty():
        acc = "" if accuracy is None else f", validation accuracy {_pct(accuracy)}"
        print(f"\repoch {epoch}/{total}{acc}   ", end="", file=sys.stderr, flush=True)


async def train(args: argparse.Namespace, mimi: Mimi, emit: Emit) -> int:
    """Train now (blocking), record the run and publish a version."""
    from bot.train_job import train_job

    job = await mimi.training_job(args.guild, args.model)

    class Sink:
        def put(self, item: tuple) -> None:
            _progress(*item[1:])

    run = await mimi.start_run(args.guild, "cli")
    try:
        meta = await asyncio.to_thread(train_job, job, Sink())
    except BaseException as err:
        message = err.message if isinstance(err, MimiError) else f"{type(err).__name__}: {err}"
        await mimi.finish_run(args.guild, run, error=message)
        raise
    finally:
        if sys.stderr.isatty():
            print(file=sys.stderr)
    m = meta["metrics"]
    await mimi.finish_run(args.guild, run, model_version=meta["version"], metrics=m)
    from model_store.train import song_count_note

    lines = [
        f"Model v{meta['version']} ({meta['kind']}) trained on {len(job.songs)} songs of "
        f"{len(meta['artists'])} artists in {meta['train_seconds']:.1f} s.",
        f"Held-out songs: {m.get('val_songs', 0)}; song accuracy {_pct(m.get('song_accuracy'))}, "
        f"clip accuracy {_pct(m.get('clip_accuracy'))}.",
    ]
    if note := song_count_note(m):
        lines.append(note)
    emit(args, meta, lines)
    return 0


async def guess(args: argparse.Namespace, mimi: Mimi, emit: Emit) -> int:
    """Guess a clip's artist in this process, optionally writing the picture."""
    if args.top < 1:
        raise MimiError("--top must be at least 1.")
    guessed = await mimi.guess(args.guild, args.file, top_k=args.top)
    result = guessed.answer
    if args.png:
        args.png.write_bytes(guessed.picture(args.file.name))
    lines = [f"{i}. {t.artist}  {_pct(t.probability)}" for i, t in enumerate(guessed.top, 1)]
    if result.get("unknown"):
        lines.insert(
            0,
            "This doesn't sound like anyone I know here "
            f"(known score {result['known_score']:.2f} < {result['threshold']:.2f}); closest:",
        )
    elif result["unsure"]:
        lines.insert(0, "Not sure, but my best guesses are:")
    if result["tags"]:
        lines.append("Sounds like: " + ", ".join(t["tag"] for t in result["tags"]))
    lines.append(f"(model v{result['model_version']})")
    emit(args, result, lines)
    return 0


async def stats(args: argparse.Namespace, mimi: Mimi, emit: Emit) -> int:
    """Artists, the current model and its held-out accuracy."""
    data = await mimi.stats(args.guild)
    lines = [f"{data['songs']} songs, {data['clips']} clips, {len(data['artists'])} artists."]
    lines += [f"  {a['name']}: {a['songs']} songs" for a in data["artists"]]
    model = data["model"]
    if model is None and data["model_withdrawn"]:
        lines.append(
            "The model is withdrawn: fewer than 2 of its artists remain after forgets; "
            "teach another artist, then `mimi train`."
        )
    elif model is None:
        lines.append("No model yet: teach songs of at least 2 artists, then `mimi train`.")
    else:
        lines.append(
            f"Model v{model['version']} ({model['kind']}, trained {model['trained_at']}): "
            f"song accuracy {_pct(model['song_accuracy'])}, clip accuracy "
            f"{_pct(model['clip_accuracy'])} on {model['val_songs'] or 0} held-out songs."
        )
        if model["forgotten_songs"]:
            lines.append(
                f"This model predates a forget ({model['forgotten_songs']} of its songs); the "
                "figures leave those out, and a retrain replaces it."
            )
        if args.png and model.get("confusion"):
            from bot.render import artist_colours
            from bot.render_stats import StatsView, stats_png

            view = StatsView(
                tuple(model["artists"]),
                tuple(tuple(r) for r in model["confusion"]),
                model["version"],
                model["trained_at"][:10],
            )
            order = await mimi.artist_order(args.guild)
            args.png.write_bytes(stats_png(view, artist_colours(order)))
    emit(args, data, lines)
    return 0


async def models(args: argparse.Namespace, mimi: Mimi, emit: Emit) -> int:
    """Every kept model version, marking the current one."""
    current, metas = await mimi.models(args.guild)
    lines = [
        f"{'*' if m['version'] == current else ' '} v{m['version']} {m['kind']} "
        f"{m['created_at']} song accuracy {_pct(m['metrics'].get('song_accuracy'))}"
        + (
            f" ({m['forgotten_songs']} of its songs forgotten since)"
            if m["forgotten_songs"]
            else ""
        )
        for m in metas
    ] or ["No models yet."]
    payload = {"guild": args.guild, "current": current, "versions": metas}
    emit(args, payload, lines)
    return 0


async def rollback(args: argparse.Namespace, mimi: Mimi, emit: Emit) -> int:
    """Make an earlier version current."""
    meta = await mimi.rollback(args.guild, args.version)
    emit(args, meta, [f"Now serving model v{meta['version']}."])
    return 0


def evaluate(args: argparse.Namespace, settings, emit: Emit) -> int:
    """Cross-validated song-level evaluation of a folder (no guild is touched)."""
    from tqdm import tqdm

    from bot.audio import DecodeLimits
    from bot.evaluation import evaluate_songs, load_folder
    from bot.service import import_plan

    if not args.folder.is_dir():
        raise MimiError(f"{args.folder} is not a folder.")
    if args.folds < 2 and args.train_songs is None:
        raise MimiError("--folds must be at least 2.")
    limits = DecodeLimits(
        settings.max_upload_bytes,
        settings.max_song_seconds,
        args.clip_seconds,
        settings.decode_timeout_s,
    )
    if args.unknown is not None and not args.unknown.is_dir():
        raise MimiError(f"{args.unknown} is not a folder.", code="usage")
    weights = settings.frontend_weights if args.model == "musicnn" else None
    folders = [args.folder] + ([args.unknown] if args.unknown is not None else [])
    total = sum(len(import_plan(f)) for f in folders)
    loaded = []
    with tqdm(total=total, unit="file", disable=args.json or None, file=sys.stderr) as bar:
        for folder in folders:
            loaded.append(
                load_folder(
                    folder,
                    clip_seconds=args.clip_seconds,
                    limits=limits,
                    weights=weights,
                    ffmpeg=settings.ffmpeg,
                    progress=lambda _: bar.update(),
                )
            )
    songs, skipped = loaded[0]
    unknown = None
    if args.unknown is not None:
        unknown, more = loaded[1]
        skipped = skipped + more
        if not unknown:
            raise MimiError(f"{args.unknown} holds no usable song.", code="usage")
    result = evaluate_songs(
        songs, args.model, folds=args.folds, train_songs=args.train_songs, unknown=unknown
    )
    result["skipped"] = skipped
    o = result["open_set"]
    lines = [
        f"{args.model}: {result['songs']} songs of {len(result['artists'])} artists, "
        f"{result['folds']} {'splits' if args.train_songs else 'folds'}",
        f"song accuracy {_pct(result['song_accuracy'])}, clip accuracy "
        f"{_pct(result['clip_accuracy'])}, macro-F1 {result['macro_f1']:.3f}, "
        f"training {result['train_seconds']:.1f} s per fold",
        f"calibration: expected calibration error {result['ece']:.3f} (mean confidence "
        f"{_pct(result['calibration']['mean_confidence'])} vs accuracy "
        f"{_pct(result['calibration']['accuracy'])})",
        f"open set ({o['protocol']}, {o['unknown_songs']} unknown songs): AUROC "
        f"{_num(o['auroc'])}, {_pct(o['unknown_rejected'])} of unknown songs answered "
        f'"no one I know", {_pct(o["known_kept"])} of correct answers kept',
    ]
    emit(args, result, lines)
    return 0
