"""/help: what mimi can do, one embed per group of commands, with examples, in your language."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot import i18n
from bot.discord_i18n import command_text, lang

if TYPE_CHECKING:
    from bot.client import MimiBot

# (group, commands as qualified names); the order of the help.
GROUPS = (
    ("teaching", ("teach", "forget", "artist rename")),
    ("guessing", ("guess",)),
    ("looking", ("stats", "artists", "songs")),
    ("managing", ("retrain",)),
)
MANAGERS_ONLY = frozenset({"artist rename", "retrain"})
COLOUR = 0x5865F2


def command_name(locale: str, qualified: str) -> str:
    """A command as the member's Discord shows it: `/アーティスト 名前変更`."""
    parts = qualified.split()
    keys = [f"cmd.{'.'.join(parts[: i + 1])}.name" for i in range(len(parts))]
    return "/" + " ".join(i18n.t(locale, k) for k in keys)


def help_embeds(locale: str) -> list[discord.Embed]:
    """The intro, then one embed per group: each command, what it does, an example."""
    intro = discord.Embed(
        title=i18n.t(locale, "help.title"), description=i18n.t(locale, "help.intro"), colour=COLOUR
    )
    embeds = [intro]
    for group, names in GROUPS:
        embed = discord.Embed(title=i18n.t(locale, f"help.group.{group}"), colour=COLOUR)
        for qualified in names:
            key = qualified.replace(" ", ".")
            title = command_name(locale, qualified)
            if qualified in MANAGERS_ONLY:
                title = i18n.t(locale, "help.managers_only", name=title)
            value = (
                i18n.t(locale, f"cmd.{key}.description")
                + "\n"
                + i18n.t(locale, f"help.example.{key}")
            )
            embed.add_field(name=title, value=value[:1024], inline=False)
        embeds.append(embed)
    chat = discord.Embed(title=i18n.t(locale, "help.group.chat"), colour=COLOUR)
    titles = {
        "who": i18n.t(locale, "cmd.menu.who.name"),
        "teach": i18n.t(locale, "cmd.menu.teach.name"),
        "mention": "@mimi",
        "fix": f"{i18n.t(locale, 'button.right')} · {i18n.t(locale, 'button.fix')}",
    }
    for part, title in titles.items():
        value = i18n.t(locale, f"help.chat.{part}", name=title)
        chat.add_field(name=title, value=value[:1024], inline=False)
    embeds.append(chat)
    return embeds


class Help(commands.Cog):
    """Finding your way."""

    def __init__(self, bot: MimiBot) -> None:
        self.bot = bot

    @app_commands.command(name="help", description=command_text("cmd.help.description"))
    async def help(self, interaction: discord.Interaction) -> None:
        """Answer privately with the help in the member's language."""
        await interaction.response.send_message(
            embeds=help_embeds(lang(interaction)), ephemeral=True
        )


async def setup(bot: MimiBot) -> None:
    """Register the cog."""
    await bot.add_cog(Help(bot))
