"""The `mimi` command line's argument parser: every command, its options and their checks."""

from __future__ import annotations

import argparse
from pathlib import Path

from bot import cli_backup, cli_model
from bot.config import parse_guild_id


class UsageError(Exception):
    """Bad command-line arguments (exit code 2)."""


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def _guild(text: str) -> int:
    """A guild id: ASCII decimal digits below 2**63 (a Discord snowflake, or 0 for local use)."""
    try:
        return parse_guild_id(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def build_parser() -> argparse.ArgumentParser:
    """The full `mimi` argument parser."""
    common = _Parser(add_help=False)
    common.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    common.add_argument(
        "--data-dir", type=Path, help="data folder (default: MIMI_DATA_DIR, else ./data)"
    )
    common.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    guild = _Parser(add_help=False)
    guild.add_argument(
        "--guild",
        type=_guild,
        default=None,
        help="server id (default: the only server with songs, else 0: local)",
    )

    parser = _Parser(prog="mimi", description="mimi (耳): learns to tell artists apart by ear.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    p = sub.add_parser("teach", parents=[common, guild], help="teach songs of one artist")
    p.add_argument("--artist", required=True, help="the artist's name")
    p.add_argument("files", nargs="+", type=Path, metavar="FILE")
    p = sub.add_parser("import", parents=[common, guild], help="teach a folder of <artist>/<songs>")
    p.add_argument("folder", type=Path, metavar="DIR")
    sub.add_parser("artists", parents=[common, guild], help="list artists with totals")
    p = sub.add_parser("forget", parents=[common, guild], help="remove an artist or one song")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--artist", help="remove this artist and all their songs")
    which.add_argument("--song", type=int, metavar="SONG_ID", help="remove one song by id")
    p = sub.add_parser(
        "rename", parents=[common, guild], help="rename an artist (the model keeps working)"
    )
    p.add_argument("old", metavar="FROM", help="the artist's name now")
    p.add_argument("new", metavar="TO", help="the new name")
    p.add_argument("--merge", action="store_true", help="TO is another artist: merge FROM into it")
    p = sub.add_parser(
        "purge", parents=[common], help="delete every song, model and record of one server now"
    )
    p.add_argument("--guild", type=_guild, required=True, help="the server whose data goes")
    cli_model.add_commands(sub, common, guild)
    p = sub.add_parser("run", parents=[common], help="start the Discord bot")
    p.add_argument(
        "--playground", action="store_true",
        help="without DISCORD_TOKEN, open the local playground instead of stopping (make run)",
    )  # fmt: skip
    p = sub.add_parser(
        "playground", parents=[common], help="try mimi in the browser, without Discord"
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback)")
    p.add_argument("--port", type=int, default=8765, help="port of the page (0: any free one)")
    cli_backup.add_commands(sub, common)
    sub.add_parser(
        "health", parents=[common], help="check the running bot, its workers and the database"
    )
    p = sub.add_parser("sync-commands", parents=[common], help="register the slash commands")
    p.add_argument("--guild", type=_guild, help="one server (instant) instead of global")
    return parser
