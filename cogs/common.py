"""Helpers the cogs share: cooldowns, shown file names, attachment downloads, status channels."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import discord
import yarl
from discord import app_commands

from bot.cache import tmp_prefix
from bot.config import Settings
from bot.discord_i18n import safe
from bot.errors import MimiError
from bot.i18n import Msg, Size
from bot.names import clean_filename
from bot.owner import process_token

MANAGE_GUILD = discord.Permissions(manage_guild=True)


@dataclass(frozen=True)
class Upload:
    """A file on Discord's CDN that is not an attachment object here (a guessed clip's link)."""

    url: str
    size: int
    filename: str


AUDIO_EXTENSIONS = frozenset((
    ".mp3", ".ogg", ".oga", ".opus", ".wav", ".flac", ".m4a", ".aac", ".webm", ".wma", ".aif",
    ".aiff", ".mka",
))  # fmt: skip


def is_audio(attachment: discord.Attachment) -> bool:
    """An attachment Discord marks as audio (voice messages are audio/ogg), or one named so."""
    kind = (attachment.content_type or "").split(";")[0].strip().lower()
    if kind.startswith("audio/") or kind in ("video/ogg", "video/webm"):
        return True
    name = attachment.filename.lower()
    return any(name.endswith(ext) for ext in AUDIO_EXTENSIONS)


def audio_attachments(message: discord.Message) -> list[discord.Attachment]:
    """The audio attachments of a message, in order."""
    return [a for a in message.attachments if is_audio(a)]


def can_manage(interaction: discord.Interaction) -> bool:
    """True for members with the Manage Server permission."""
    perms = interaction.permissions
    return bool(perms and (perms.manage_guild or perms.administrator))


def spend_cooldown(client: discord.Client, setting: str, guild_id: int, user_id: int) -> float:
    """Use one of this member's turns of `setting` (e.g. "teach_cooldown_s", shared by every
    way to teach); 0 if allowed now, else the seconds left."""
    seconds = getattr(client.settings, setting)  # type: ignore[attr-defined]
    if seconds <= 0:
        return 0.0
    buckets = client.cooldowns.setdefault(setting, {})  # type: ignore[attr-defined]
    bucket = buckets.setdefault((guild_id, user_id), app_commands.Cooldown(1, seconds))
    return bucket.update_rate_limit() or 0.0


def cooldown_check(setting: str):
    """A check: one use per member and server every `setting` seconds; on cooldown the error
    reply offers to retry with the same options (nothing needs attaching again)."""

    async def predicate(interaction: discord.Interaction) -> bool:
        wait = spend_cooldown(interaction.client, setting, interaction.guild_id or 0,
                              interaction.user.id)  # fmt: skip
        if wait:
            seconds = getattr(interaction.client.settings, setting)
            interaction.extras["retry_setting"] = setting
            raise app_commands.CommandOnCooldown(app_commands.Cooldown(1, seconds), wait)
        return True

    return predicate


def cooldown(setting: str):
    """The cooldown check as a command decorator."""
    return app_commands.check(cooldown_check(setting))


def shown_filename(name: str, limit: int = 100, *, escape: bool = True) -> str:
    """An uploader-chosen file name fit for a reply: base name, printable, cut, inert (unless
    `escape` is False: a message parameter is escaped when it is rendered)."""
    text = clean_filename(name, limit, ellipsis=True)
    return safe(text) if escape else text


# Attachment downloads: only from Discord's CDN, streamed to disk, never more than was declared.
DEFAULT_CDN_HOSTS = Settings().cdn_host_set
DOWNLOAD_SLACK_BYTES = 64 * 1024  # Discord's declared size is exact; this only absorbs rounding
DOWNLOAD_CHUNK_BYTES = 1 << 20  # bytes gathered before one write in a thread
DOWNLOAD_TIMEOUT = aiohttp.ClientTimeout(total=600, sock_connect=15, sock_read=60)
_cdn_hosts: frozenset[str] = DEFAULT_CDN_HOSTS


def configure_downloads(settings: Settings) -> None:
    """Use the settings' MIMI_CDN_HOSTS for every later download (`mimi run` calls this)."""
    global _cdn_hosts
    _cdn_hosts = settings.cdn_host_set


def cdn_hosts() -> frozenset[str]:
    """The allowed attachment hosts: MIMI_CDN_HOSTS, plus the Discord-compatible server the bot
    talks to when DISCORD_API_BASE points elsewhere (it serves its own attachments)."""
    api = yarl.URL(discord.http.Route.BASE)
    if api.host is None or api.host == "discord.com":
        return _cdn_hosts
    return _cdn_hosts | {f"{api.host}:{api.port}".lower()}


def from_cdn(url: str, hosts: frozenset[str] | None = None) -> bool:
    """True if `url` is served by an allowed host: `host` means HTTPS on 443, `host:port` that
    port over HTTP(S). No userinfo, no other scheme."""
    try:
        parsed = yarl.URL(url)
    except (TypeError, ValueError):
        return False
    host = (parsed.host or "").lower()
    if parsed.scheme not in ("http", "https") or not host or parsed.user or parsed.password:
        return False
    hosts = cdn_hosts() if hosts is None else hosts
    if parsed.scheme == "https" and parsed.port == 443 and host in hosts:
        return True
    return f"{host}:{parsed.port}" in hosts


def _too_big(attachment: discord.Attachment | Upload, detail: Msg) -> MimiError:
    """The refusal of an attachment that is (or turned out) bigger than allowed."""
    return MimiError(
        Msg("error.too_big", file=shown_filename(attachment.filename, escape=False),
            detail=detail),
        code="too_big",
    )  # fmt: skip


def _not_from_discord(attachment: discord.Attachment) -> MimiError:
    """The refusal of an attachment that Discord's file server does not host."""
    file = shown_filename(attachment.filename, escape=False)
    return MimiError(Msg("error.not_discord", file=file), code="not_discord")


def upload_limit(interaction: discord.Interaction) -> tuple[int, str]:
    """The upload limit a member meets and whose it is: the smaller of MIMI_MAX_UPLOAD_MB
    ("mimi") and what Discord lets this server upload (the interaction's
    attachment_size_limit, "discord")."""
    ours = interaction.client.settings.max_upload_bytes
    theirs = getattr(interaction, "filesize_limit", None) or ours
    return (theirs, "discord") if theirs < ours else (ours, "mimi")


def check_size(attachment: discord.Attachment, limit: tuple[int, str]) -> None:
    """Refuse an attachment over the size limit (`upload_limit`, saying whose it is), or not
    on Discord's CDN, before downloading a byte of it."""
    max_bytes, whose = limit
    if attachment.size > max_bytes:
        why = Msg(f"limit.{whose}")
        raise _too_big(
            attachment,
            Msg("too_big.limit", size=Size(attachment.size), limit=Size(max_bytes), why=why),
        )
    if not from_cdn(attachment.url):
        raise _not_from_discord(attachment)


@contextlib.asynccontextmanager
async def downloaded(
    attachment: discord.Attachment | Upload, folder: Path, *, max_bytes: int | None = None
) -> AsyncIterator[Path]:
    """The attachment saved to a private temporary file, removed afterwards.

    Only from Discord's CDN (`cdn_hosts`), without following redirects; streamed to disk in
    chunks written by a thread, so the event loop never waits on the disk and memory stays at a
    chunk. It stops with "too big" once more than the declared size (+ slack), or `max_bytes`,
    arrived: a declared size cannot hide a bigger body."""
    if not from_cdn(attachment.url):
        raise _not_from_discord(attachment)
    limit = attachment.size + DOWNLOAD_SLACK_BYTES
    if max_bytes is not None:
        limit = min(limit, max_bytes)
    await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
    prefix = tmp_prefix(process_token())  # a start-up sweep elsewhere spares it while we run
    tmp = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix=prefix, dir=folder))
    try:
        path = tmp / "upload"
        await _fetch(attachment, path, limit)
        yield path
    finally:
        await asyncio.to_thread(shutil.rmtree, tmp, True)


async def _fetch(attachment: discord.Attachment | Upload, path: Path, limit: int) -> None:
    """Stream `attachment.url` into `path`, refusing more than `limit` bytes."""
    failed = MimiError(Msg("error.download_failed"), code="download_failed")
    headers = {"Accept-Encoding": "identity"}
    try:
        async with (
            aiohttp.ClientSession(timeout=DOWNLOAD_TIMEOUT, auto_decompress=False) as session,
            session.get(attachment.url, headers=headers, allow_redirects=False) as resp,
        ):
            if resp.status != 200:
                raise failed
            if resp.content_length is not None and resp.content_length > limit:
                raise _too_big(
                    attachment,
                    Msg("too_big.header", size=Size(resp.content_length),
                        declared=Size(attachment.size)),
                )  # fmt: skip
            with await asyncio.to_thread(path.open, "wb") as out:
                received, pending, pending_bytes = 0, [], 0
                async for chunk in resp.content.iter_chunked(DOWNLOAD_CHUNK_BYTES):
                    received += len(chunk)
                    if received > limit:
                        raise _too_big(
                            attachment,
                            Msg("too_big.stream", size=Size(limit),
                                declared=Size(attachment.size)),
                        )  # fmt: skip
                    pending.append(chunk)
                    pending_bytes += len(chunk)
                    if pending_bytes >= DOWNLOAD_CHUNK_BYTES:
                        await asyncio.to_thread(out.write, b"".join(pending))
                        pending, pending_bytes = [], 0
                if pending:
                    await asyncio.to_thread(out.write, b"".join(pending))
                await asyncio.to_thread(out.flush)
    except (aiohttp.ClientError, TimeoutError):
        raise failed from None


async def artist_choices(
    interaction: discord.Interaction, current: str
) -> list[app_commands.Choice[str]]:
    """Autocomplete: this server's artists whose names contain what is typed so far."""
    if interaction.guild_id is None:
        return []
    typed = current.casefold()
    names = [a.name for a in await interaction.client.mimi.artists(interaction.guild_id)]
    return [app_commands.Choice(name=n, value=n) for n in names if typed in n.casefold()][:25]


async def song_choices(
    interaction: discord.Interaction, current: str
) -> list[app_commands.Choice[int]]:
    """Autocomplete: this server's songs ("#12 Coherence.ogg — Maxstack"), newest first,
    matching what is typed (a number, a file name or an artist)."""
    if interaction.guild_id is None:
        return []
    typed = current.strip().lstrip("#").casefold()
    songs = await interaction.client.mimi.songs(interaction.guild_id)
    choices = []
    for song in reversed(songs):
        label = f"#{song.id} {song.filename} — {song.artist}"
        if typed in label.casefold():
            choices.append(app_commands.Choice(name=label[:100], value=song.id))
    return choices[:25]
