"""mimi's languages on Discord: the member's language, inert user text, command translations."""

from __future__ import annotations

import discord
from discord import app_commands
from discord.app_commands import TranslationContextLocation as Where

from bot import i18n


def safe(text: str) -> str:
    """User text made inert for Discord: no mentions, no markdown."""
    return discord.utils.escape_markdown(discord.utils.escape_mentions(text))


def lang(interaction: discord.Interaction) -> str:
    """The member's language: their Discord locale, else the server's, else English."""
    return i18n.language(interaction.locale, interaction.guild_locale)


def guild_lang(guild: discord.Guild | None) -> str:
    """A server's language (its community locale), for channel announcements."""
    return i18n.language(guild.preferred_locale if guild is not None else None)


def say(interaction: discord.Interaction | str, key: str, **params: object) -> str:
    """Catalogue message `key` in the member's language, user data in `params` made inert."""
    locale = interaction if isinstance(interaction, str) else lang(interaction)
    return i18n.t(locale, key, _escape=safe, **params)


def command_text(key: str) -> app_commands.locale_str:
    """A command or option description: English from the catalogue, translated on sync."""
    return app_commands.locale_str(i18n.t(i18n.DEFAULT, key), key=key)


def command_key(context: app_commands.TranslationContext) -> str | None:
    """The catalogue key of a command, group or option name/description being synced."""
    data = context.data
    if context.location in (Where.command_name, Where.group_name):
        return f"cmd.{data.qualified_name.replace(' ', '.')}.name"
    if context.location in (Where.command_description, Where.group_description):
        return f"cmd.{data.qualified_name.replace(' ', '.')}.description"
    if context.location is Where.parameter_name:
        return f"cmd.{data.command.qualified_name.replace(' ', '.')}.{data.name}.name"
    if context.location is Where.parameter_description:
        return f"cmd.{data.command.qualified_name.replace(' ', '.')}.{data.name}.description"
    return None


class Translator(app_commands.Translator):
    """Command names and descriptions in every catalogue language (sent to Discord on sync)."""

    async def translate(
        self,
        string: app_commands.locale_str,
        locale: discord.Locale,
        context: app_commands.TranslationContext,
    ) -> str | None:
        """The translation of `string` for `locale`, or None to keep the English default."""
        language = i18n.language(locale)
        if language == i18n.DEFAULT:
            return None
        key = string.extras.get("key") or command_key(context)
        if key is None or key not in i18n.keys(language):
            return None
        return i18n.t(language, key)
