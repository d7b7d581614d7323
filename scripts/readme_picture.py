"""Draw docs/guess-example.png: a real /guess reply from the stand-in, laid out as Discord does.

Usage: python scripts/readme_picture.py [--devset ../devset] [--out docs/guess-example.png]
Teaches 3 songs each of 4 dev-set composers through the real bot, trains, sends /guess with an
unheard track over the loopback Discord stand-in, and lays out the embed and picture it got back.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.client import MimiBot  # noqa: E402
from bot.config import Settings  # noqa: E402
from model_store.features import WEIGHTS_FILENAME  # noqa: E402
from tests.discord_standin import DiscordStandIn, running_bot  # noqa: E402

GUILD = 1
COMPOSERS = ("Crystan", "David", "Olivier Militon", "Wansti")
BG, EMBED_BG, TEXT, MUTED = (55, 51, 49), (47, 43, 43), (235, 235, 235), (170, 165, 160)
BLURPLE = (242, 101, 88)  # 0x5865F2 in BGR
FONT = cv2.FONT_HERSHEY_SIMPLEX


async def capture(devset: Path) -> tuple[dict, bytes]:
    """The embed and PNG of one real /guess reply."""
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings.load(
            environ={}, env_file=None, data_dir=Path(tmp) / "data", guess_cooldown_s=0.0,
            frontend_weights=ROOT / "pretrained" / WEIGHTS_FILENAME,
        )  # fmt: skip
        tracks = {c: sorted((devset / c).glob("*.ogg")) for c in COMPOSERS}
        async with DiscordStandIn() as standin:
            standin.add_guild(GUILD)
            bot = MimiBot(settings, guild_ready_timeout=0.1)
            async with running_bot(standin, bot, timeout=120):
                for composer, files in tracks.items():
                    for path in files[:3]:
                        await bot.mimi.teach(GUILD, composer, path)
                await bot.training.train_now(GUILD, "readme picture")
                clip = tracks["Olivier Militon"][-1]
                att = standin.add_file(clip.name, clip.read_bytes(), "audio/ogg")
                reply = await (await standin.invoke(GUILD, "guess", {"clip": att})).final(120)
    return reply.embeds[0], reply.files[0][1]


def _text(img: np.ndarray, text: str, x: int, y: int, scale: float, colour, bold=False) -> None:
    """Anti-aliased text (ASCII only: markdown and block characters are drawn separately)."""
    cv2.putText(img, text, (x, y), FONT, scale, colour, 2 if bold else 1, cv2.LINE_AA)


def layout(embed: dict, png: bytes) -> np.ndarray:
    """A Discord-like dark message: bot name, embed with bars, footer, attached picture."""
    picture = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    width = picture.shape[1] + 120
    rows = [line for line in embed.get("description", "").split("\n") if line]
    height = 150 + 30 * len(rows) + picture.shape[0] + 60
    img = np.full((height, width, 3), BG, np.uint8)
    cv2.circle(img, (40, 40), 20, BLURPLE, -1, cv2.LINE_AA)
    _text(img, "m", 30, 48, 0.75, TEXT, bold=True)
    _text(img, "mimi", 74, 36, 0.6, TEXT, bold=True)
    _text(img, "APP   used /guess", 130, 36, 0.45, MUTED)
    x0, y = 74, 56
    cv2.rectangle(img, (x0, y), (width - 20, height - 14), EMBED_BG, -1)
    cv2.rectangle(img, (x0, y), (x0 + 4, height - 14), BLURPLE, -1)
    _text(img, embed["title"], x0 + 18, y + 32, 0.62, TEXT, bold=True)
    y += 62
    for line in rows:
        if line.startswith("**"):
            _text(img, line.strip("*"), x0 + 18, y, 0.5, TEXT, bold=True)
        else:
            share = float(re.search(r"(\d+)%", line).group(1)) / 100
            cv2.rectangle(img, (x0 + 18, y - 13), (x0 + 258, y + 1), (70, 66, 64), -1)
            cv2.rectangle(img, (x0 + 18, y - 13), (x0 + 18 + int(240 * share), y + 1), TEXT, -1)
            _text(img, f"{share:.0%}", x0 + 268, y, 0.45, TEXT)
        y += 28
    for field in embed.get("fields", []):
        _text(img, f"{field['name']}: {field['value']}", x0 + 18, y + 4, 0.45, MUTED)
        y += 30
    img[y : y + picture.shape[0], x0 + 18 : x0 + 18 + picture.shape[1]] = picture
    _text(img, embed["footer"]["text"].replace("·", "-"), x0 + 18, height - 26, 0.42, MUTED)
    return img


def main() -> int:
    """Capture and draw."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devset", type=Path, default=ROOT.parent / "devset")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "guess-example.png")
    args = parser.parse_args()
    embed, png = asyncio.run(capture(args.devset))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), layout(embed, png), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    print(f"wrote {args.out}: {embed['title']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
