"""The `mimi` command line: the same service layer as the bot, for scripts and home use."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from bot import cli_backup, cli_model
from bot.cli_parser import UsageError, build_parser
from bot.config import Settings, SettingsError
from bot.errors import AudioRejected, DuplicateSong, MimiError, read_error
from bot.ingest import check_setup
from bot.service import Mimi, Song, import_plan
from bot.sniff import open_regular
from model_store import quiet_tensorflow_import

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2
NEEDS_TENSORFLOW = ("train", "eval")  # inference runs in ONNX Runtime; only training needs TF
NEEDS_WEIGHTS = ("teach", "import", "guess")  # and eval with the musicnn model
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what `yes | head -c1` exits with


def song_json(song: Song) -> dict:
    """The stable JSON shape of a song."""
    return {
        "song_id": song.id,
        "artist": song.artist,
        "filename": song.filename,
        "format": song.format,
        "duration_s": song.duration_s,
        "clips": song.clips,
    }


def _emit(args: argparse.Namespace, payload: dict, lines: Sequence[str]) -> None:
    """Print JSON or human lines on stdout."""
    if args.json:
        print(json.dumps(payload, ensure_ascii=False))
    else:
        for line in lines:
            print(line)


async def _teach(args: argparse.Namespace, mimi: Mimi) -> int:
    results, lines, failed = [], [], 0
    refused = getattr(args, "refused", {})
    for index, path in enumerate(args.files):
        try:
            if index in refused:  # found unusable before TensorFlow was loaded
                raise refused[index]
            song = await mimi.teach(args.guild, args.artist, path)
        except DuplicateSong as dup:
            results.append(
                {
                    "file": str(path),
                    "status": "duplicate",
                    "song_id": dup.song_id,
                    "message": dup.message,
                }
            )
            lines.append(f"{path.name}: {dup.message}")
        except (MimiError, OSError) as err:
            failed += 1
            info = err.as_dict() if isinstance(err, MimiError) else read_error(err)
            results.append({"file": str(path), "status": "rejected", **info})
            print(f"mimi: {path.name}: {info['message']}", file=sys.stderr)
        else:
            results.append({"file": str(path), "status": "taught", **song_json(song)})
            lines.append(
                f"Taught {song.artist}: song #{song.id} from {song.filename} "
                f"({song.duration_s / 60:.1f} min, {song.clips} clips)"
            )
    _emit(args, {"guild": args.guild, "results": results}, lines)
    return EXIT_FAIL if failed else EXIT_OK


async def _import(args: argparse.Namespace, mimi: Mimi) -> int:
    from tqdm import tqdm

    if not args.folder.is_dir():
        raise MimiError(f"{args.folder} is not a folder.")
    total = len(import_plan(args.folder))
    with tqdm(total=total, unit="file", disable=args.json or None, file=sys.stderr) as bar:
        report = await mimi.import_folder(args.guild, args.folder, progress=lambda _: bar.update())
    lines = [
        f"Taught {len(report.taught)} songs, {len(report.duplicates)} already known, "
        f"{len(report.skipped)} skipped."
    ]
    lines += [f"  skipped {item['file']}: {item['message']}" for item in report.skipped]
    payload = {
        "guild": args.guild,
        "taught": [song_json(s) for s in report.taught],
        "duplicates": report.duplicates,
        "skipped": report.skipped,
    }
    _emit(args, payload, lines)
    usable = report.taught or report.duplicates
    return EXIT_OK if usable or not report.skipped else EXIT_FAIL


async def _artists(args: argparse.Namespace, mimi: Mimi) -> int:
    rows = await mimi.artists(args.guild)
    lines = [f"{'artist':<32} {'songs':>5} {'clips':>6} {'minutes':>8}"]
    lines += [f"{a.name:<32} {a.songs:>5} {a.clips:>6} {a.minutes:>8.1f}" for a in rows]
    if not rows:
        lines = ["No artists yet: teach one with `mimi teach --artist NAME FILE`."]
    payload = {
        "guild": args.guild,
        "artists": [
            {"name": a.name, "songs": a.songs, "clips": a.clips, "minutes": a.minutes} for a in rows
        ],
    }
    _emit(args, payload, lines)
    return EXIT_OK


async def _forget(args: argparse.Namespace, mimi: Mimi) -> int:
    if args.artist is not None:
        removed = await mimi.forget_artist(args.guild, args.artist)
    else:
        removed = [await mimi.forget_song(args.guild, args.song)]
    lines = [f"Forgot song #{s.id} by {s.artist} ({s.filename})" for s in removed]
    if args.artist is not None and not removed:
        lines = [f"Forgot artist {args.artist} (no songs)."]
    _emit(args, {"guild": args.guild, "removed": [song_json(s) for s in removed]}, lines)
    return EXIT_OK


async def _rename(args: argparse.Namespace, mimi: Mimi) -> int:
    try:
        old, new, moved = await mimi.rename_artist(args.guild, args.old, args.new, merge=args.merge)
    except MimiError as err:
        if err.code == "merge_needed":
            raise MimiError(f"{err.message} Add --merge to do that.", code=err.code) from None
        raise
    if args.merge and moved:
        lines = [f"Merged {old} into {new} ({moved} songs moved); run `mimi train` to retrain."]
    else:
        lines = [f"Renamed {old} to {new}; the current model answers with the new name."]
    data = {"guild": args.guild, "old": old, "new": new, "merged": bool(moved), "moved": moved}
    _emit(args, data, lines)
    return EXIT_OK


async def _purge(args: argparse.Namespace, mimi: Mimi) -> int:
    from bot.privacy import purge_guild

    report = await purge_guild(mimi, args.guild)
    rows = sum(report["rows"].values())
    lines = [f"Deleted server {args.guild}: {report['songs']} songs, {rows} rows, its models "
             "and files."]  # fmt: skip
    _emit(args, report, lines)
    return EXIT_OK


def _health(args: argparse.Namespace, settings: Settings) -> int:
    from bot.health import check

    report = asyncio.run(check(settings))
    lines = [f"{'ok' if c.ok else 'FAIL':<4}  {c.name:<17} {c.detail}" for c in report.checks]
    _emit(args, report.as_dict(), lines)
    return EXIT_OK if report.ok else EXIT_FAIL


def _sync(args: argparse.Namespace, settings: Settings) -> int:
    from bot.runner import sync_commands

    names = asyncio.run(sync_commands(settings, args.guild))
    where = (
        "globally (may take up to an hour to appear)"
        if args.guild is None
        else (f"to server {args.guild}")
    )
    _emit(args, {"synced": names, "guild": args.guild}, [f"Synced {', '.join(names)} {where}."])
    return EXIT_OK


def _check_file(path: Path) -> None:
    """Open and close `path`: it exists, is readable and is a regular file (AudioRejected)."""
    with open_regular(path):
        pass


def _preflight(args: argparse.Namespace, settings: Settings) -> bool:
    """Cheap checks before TensorFlow loads; False when no file is left to work on.

    A missing set-up is one error; a missing, unreadable or special (FIFO, device) path is
    named at once instead of after seconds of model loading.
    """
    if args.command in NEEDS_WEIGHTS or (args.command == "eval" and args.model == "musicnn"):
        check_setup(settings.frontend_weights, show_path=True)
    if args.command in ("import", "eval") and not args.folder.is_dir():
        raise MimiError(f"{args.folder} is not a folder.", code="usage")
    if args.command == "guess":
        try:
            _check_file(args.file)
        except AudioRejected as err:
            raise MimiError(f"{args.file.name}: {err.message}", code=err.code) from None
    if args.command == "teach":
        args.refused = {}
        for index, path in enumerate(args.files):
            try:
                _check_file(path)
            except AudioRejected as err:
                args.refused[index] = err
        return len(args.refused) < len(args.files)
    return True


async def _songs_by_guild(mimi: Mimi) -> dict[int, int]:
    """Song count of every server that has songs."""
    return {
        guild: sum(a.songs for a in await mimi.artists(guild)) for guild in await mimi.guild_ids()
    }


async def _default_guild(args: argparse.Namespace, mimi: Mimi) -> int:
    """The server meant when --guild is omitted: the only one with songs, else 0 (local)."""
    counts = await _songs_by_guild(mimi)
    if not counts:
        return 0
    if len(counts) == 1:
        (guild,) = counts
        if guild != 0 and not args.json:
            print(
                f"mimi: using server {guild}, the only one with songs (--guild chooses another)",
                file=sys.stderr,
            )
        return guild
    listing = ", ".join(f"{g} ({n} songs)" for g, n in sorted(counts.items()))
    raise UsageError(f"several servers have songs, pick one with --guild: {listing}")


async def _dispatch(args: argparse.Namespace, settings: Settings) -> int:
    handlers = {
        "teach": _teach,
        "import": _import,
        "artists": _artists,
        "forget": _forget,
        "rename": _rename,
        "purge": _purge,
    }
    model_handlers = {
        "train": cli_model.train,
        "guess": cli_model.guess,
        "stats": cli_model.stats,
        "models": cli_model.models,
        "rollback": cli_model.rollback,
    }
    async with await Mimi.open(settings) as mimi:
        if getattr(args, "guild", 0) is None:
            args.guild = await _default_guild(args, mimi)
        if args.command in model_handlers:
            return await model_handlers[args.command](args, mimi, _emit)
        return await handlers[args.command](args, mimi)


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    finally:
        os.close(devnull)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `mimi` / `python -m bot`; returns the exit code."""
    try:
        args = build_parser().parse_args(argv)
    except UsageError as err:
        print(f"mimi: usage error: {err} (see mimi --help)", file=sys.stderr)
        return EXIT_USAGE
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        if args.command == "playground":
            from bot.playground import playground_from_cli

            return playground_from_cli(args.data_dir, args.host, args.port)
        settings = Settings.load(data_dir=args.data_dir)
        if args.command == "run":
            if args.playground and not settings.discord_token:
                why = (" — DISCORD_TOKEN is not set, so this is the local playground; to run on "
                       "Discord, put the token in .env and run `make run` again")  # fmt: skip
                from bot.playground import playground_from_cli

                return playground_from_cli(args.data_dir, why=why)
            from bot.runner import serve

            return serve(settings)
        if args.command in cli_backup.HANDLERS:
            return cli_backup.HANDLERS[args.command](args, settings, _emit)
        if args.command == "health":
            return _health(args, settings)
        if args.command == "sync-commands":
            return _sync(args, settings)
        work_left = _preflight(args, settings)
        if args.command in NEEDS_TENSORFLOW and work_left:
            quiet_tensorflow_import()
        if args.command == "eval":
            return cli_model.evaluate(args, settings, _emit)
        return asyncio.run(_dispatch(args, settings))
    except UsageError as err:
        print(f"mimi: usage error: {err} (see mimi --help)", file=sys.stderr)
        return EXIT_USAGE
    except (MimiError, SettingsError) as err:
        print(f"mimi: {err}", file=sys.stderr)
        return EXIT_FAIL
    except BrokenPipeError:  # `mimi ... | head`: the reader left; stop quietly
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        print("mimi: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # the last line of defence: one line, no traceback unless -v
        logging.getLogger("mimi").debug("unexpected failure", exc_info=True)
        print(f"mimi: unexpected error: {type(err).__name__}: {err}", file=sys.stderr)
        return EXIT_FAIL
