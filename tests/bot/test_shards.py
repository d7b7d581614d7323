"""MIMI_SHARDS: the same bot over Discord's gateway shards (AutoShardedBot), via the stand-in."""

from __future__ import annotations

import dataclasses

from discord.ext import commands

from bot.client import MimiBot, ShardedMimiBot, make_bot
from bot.config import Settings
from tests.discord_standin import DiscordStandIn, running_bot

GUILD = 7301


def test_shards_setting_picks_the_client() -> None:
    """No MIMI_SHARDS: one gateway connection (Bot); N: AutoShardedBot with N shards; -1: with
    the count Discord recommends."""
    plain = Settings.load(environ={}, env_file=None)
    one = make_bot(plain)
    assert type(one) is MimiBot and not isinstance(one, commands.AutoShardedBot)
    fixed = make_bot(dataclasses.replace(plain, shards=4))
    assert isinstance(fixed, commands.AutoShardedBot) and fixed.shard_count == 4
    assert make_bot(dataclasses.replace(plain, shards=-1)).shard_count is None


async def test_auto_sharded_bot_asks_discord_and_answers(settings: Settings) -> None:
    """With MIMI_SHARDS=-1 the bot asks GET /gateway/bot for the shard count, identifies as
    shard [0, 1] and answers a command like the single-connection bot."""
    sharded = dataclasses.replace(settings, shards=-1)
    async with DiscordStandIn() as standin:
        standin.add_guild(GUILD)
        bot = make_bot(sharded, guild_ready_timeout=0.1)
        assert isinstance(bot, ShardedMimiBot)
        async with running_bot(standin, bot, timeout=60):
            assert bot.shard_count == 1 and standin.identify_payloads[-1]["shard"] == [0, 1]
            reply = await (await standin.invoke(GUILD, "help")).final(30)
            assert "/teach" in str(reply.embeds) + reply.content
