"""Draw the README gallery from real replies: /guess and /stats in English and in Japanese, and
the answer to Apps → Who's this artist? on a member's message.

Usage: python scripts/readme_picture.py [--devset ../devset] [--out docs/gallery]
Teaches 3 songs each of 4 dev-set composers through the real bot (in an English server by their
names, in a Japanese one written in katakana), trains, sends /guess with an unheard track and
/stats over the loopback Discord stand-in, and lays each reply out as Discord shows it.
`--small` also writes each picture at 400 px wide, the size Discord shows it in a chat.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot import text  # noqa: E402
from bot.client import MimiBot  # noqa: E402
from bot.config import Settings  # noqa: E402
from model_store.features import WEIGHTS_FILENAME  # noqa: E402
from tests.discord_standin import DiscordStandIn, running_bot  # noqa: E402

EN, JA = 1, 2
COMPOSERS = {  # dev-set folder -> the same composer written in katakana
    "Crystan": "クリスタン",
    "David": "ダヴィッド",
    "Olivier Militon": "オリヴィエ・ミリトン",
    "Wansti": "ワンスティ",
}
HELD_OUT = "Olivier Militon"
BG, EMBED_BG, TEXT, MUTED = (55, 51, 49), (47, 43, 43), (235, 235, 235), (170, 165, 160)
BLURPLE = (242, 101, 88)  # 0x5865F2 in BGR
PX, SMALL = 30, 26


async def capture(devset: Path) -> dict[str, tuple[dict, bytes]]:
    """(embed, picture) of /guess and /stats in both servers, keyed 'guess-en' etc."""
    replies: dict[str, tuple[dict, bytes]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings.load(
            environ={}, env_file=None, data_dir=Path(tmp) / "data", guess_cooldown_s=0.0,
            frontend_weights=ROOT / "pretrained" / WEIGHTS_FILENAME,
        )  # fmt: skip
        tracks = {c: sorted((devset / c).glob("*.ogg")) for c in COMPOSERS}
        async with DiscordStandIn() as standin:
            standin.add_guild(EN, "Game music club")
            standin.add_guild(JA, "ゲーム音楽部", locale="ja")
            bot = MimiBot(settings, guild_ready_timeout=0.1)
            async with running_bot(standin, bot, timeout=120):
                for guild, names in ((EN, {c: c for c in COMPOSERS}), (JA, COMPOSERS)):
                    for composer, files in tracks.items():
                        for path in files[:3]:
                            await bot.mimi.teach(guild, names[composer], path)
                    await bot.training.train_now(guild, "readme picture")
                    locale = "en-US" if guild == EN else "ja"
                    clip = tracks[HELD_OUT][-1]
                    att = standin.add_file(clip.name, clip.read_bytes(), "audio/ogg")
                    reply = await (
                        await standin.invoke(guild, "guess", {"clip": att}, locale=locale)
                    ).final(120)
                    lang = "en" if guild == EN else "ja"
                    replies[f"guess-{lang}"] = (reply.embeds[0], reply.files[0][1])
                    reply = await (await standin.invoke(guild, "stats", locale=locale)).final(120)
                    replies[f"stats-{lang}"] = (reply.embeds[0], reply.files[0][1])
                att = standin.add_file(clip.name, clip.read_bytes(), "audio/ogg")
                posted = await standin.post(EN, "what is this one?", files=[att])
                menu = await standin.use_message_command(posted, "Who's this artist?")
                reply = await menu.final(120)
                heard = reply.content.split(" from ")[0].replace("\\", "")  # (markdown)
                embed = dict(reply.embeds[0], content=heard,
                             buttons=[c["label"] for row in reply.components
                                      for c in row["components"]])  # fmt: skip
                replies["menu-en"] = (embed, reply.files[0][1])
    return replies


def _lines(embed: dict) -> list[tuple[str, int, tuple[int, int, int], bool]]:
    """The embed's text as Discord shows it: (text, px, colour, bold) per line."""
    out = [(embed["title"], PX, TEXT, True)]
    for line in embed.get("description", "").split("\n"):
        if line:
            bold = line.startswith("**")
            out.append((line.replace("**", "").replace("`", ""), PX - 2, TEXT, bold))
    for field in embed.get("fields", []):
        out.append((field["name"], SMALL, TEXT, True))
        out += [(v.replace("**", ""), SMALL, MUTED, False) for v in field["value"].split("\n")]
    return out


def layout(embed: dict, png: bytes, command: str) -> np.ndarray:
    """A Discord-like dark message: bot name, the embed's text and picture, its footer."""
    picture = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    lines = _lines(embed)
    width = picture.shape[1] + 160
    top = 72 + (PX + 20 if embed.get("content") else 0)
    bottom = 90 + (PX + 50 if embed.get("buttons") else 0)
    height = top + 48 + sum(px + 16 for _, px, _, _ in lines) + picture.shape[0] + bottom
    img = np.full((height, width, 3), BG, np.uint8)
    cv2.circle(img, (50, 50), 28, BLURPLE, -1, cv2.LINE_AA)
    text.draw(img, "耳", 36, 62, 28, TEXT, bold=True)
    text.draw(img, "mimi", 96, 46, PX, TEXT, bold=True)
    used = command if command[0].isupper() else f"/{command}"
    text.draw(img, f"APP · {used}", 96 + text.width("mimi", PX, True) + 20, 46, SMALL, MUTED)
    x0, y = 96, top
    if embed.get("content"):
        text.draw(img, embed["content"] + " ↗", x0, 72 + PX, PX, TEXT)
    end = height - 20 - (PX + 50 if embed.get("buttons") else 0)
    cv2.rectangle(img, (x0, y), (width - 24, end), EMBED_BG, -1)
    cv2.rectangle(img, (x0, y), (x0 + 6, end), BLURPLE, -1)
    bx = x0
    for label in embed.get("buttons", []):
        label = label.replace("✅", "✓")  # (Discord draws its own emoji; no colour font here)
        w = text.width(label, SMALL) + 48
        cv2.rectangle(img, (bx, end + 20), (bx + w, end + 20 + PX + 24), (76, 72, 70), -1)
        text.draw(img, label, bx + 24, end + 20 + PX + 6, SMALL, TEXT)
        bx += w + 16
    y += 24
    for line, px, colour, bold in lines:
        y += px + 16
        text.draw(img, text.fit(line, width - x0 - 80, px, bold), x0 + 28, y, px, colour, bold)
    y += 24
    img[y : y + picture.shape[0], x0 + 28 : x0 + 28 + picture.shape[1]] = picture
    footer = embed.get("footer", {}).get("text", "")
    text.draw(img, footer, x0 + 28, end - 24, SMALL, MUTED)
    return img


def small(img: np.ndarray, width: int = 400) -> np.ndarray:
    """`img` as Discord shows it in a chat: `width` px wide."""
    return cv2.resize(img, (width, round(img.shape[0] * width / img.shape[1])),
                      interpolation=cv2.INTER_AREA)  # fmt: skip


def main() -> int:
    """Capture and draw."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devset", type=Path, default=ROOT.parent / "devset")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "gallery")
    parser.add_argument("--small", action="store_true", help="also write 400 px versions")
    args = parser.parse_args()
    replies = asyncio.run(capture(args.devset))
    args.out.mkdir(parents=True, exist_ok=True)
    params = [cv2.IMWRITE_PNG_COMPRESSION, 9]
    for name, (embed, png) in replies.items():
        command = {"menu": "Who's this artist?"}.get(name.split("-")[0], name.split("-")[0])
        img = layout(embed, png, command)
        cv2.imwrite(str(args.out / f"{name}.png"), img, params)
        if args.small:
            picture = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
            cv2.imwrite(str(args.out / f"{name}-400px.png"), small(picture), params)
        print(f"wrote {args.out / name}.png: {embed['title']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
