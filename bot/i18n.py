"""Languages: one gettext catalogue per locale (bot/locales), messages, numbers and durations.

Messages are keyed ("guess.known"); English and Japanese live in `bot/locales/<lang>/LC_MESSAGES/
mimi.po`, read with Babel and served through the standard library's gettext (plural forms
included). Placeholders use `str.format` names; a plural message counts its `n` parameter.
"""

from __future__ import annotations

import functools
import gettext
import io
import math
import string
from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta
from pathlib import Path

from babel import Locale
from babel.dates import format_timedelta
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal, format_percent

DEFAULT = "en"
LOCALES = ("en", "ja")
DOMAIN = "mimi"
LOCALE_DIR = Path(__file__).with_name("locales")


def po_path(locale: str) -> Path:
    """The catalogue file of `locale`."""
    return LOCALE_DIR / locale / "LC_MESSAGES" / f"{DOMAIN}.po"


@functools.cache
def _catalogue(locale: str) -> tuple[gettext.GNUTranslations, frozenset[str], frozenset[str]]:
    """`locale`'s translations, its keys, and which of them have plural forms."""
    with po_path(locale).open("rb") as f:
        catalog = read_po(f, locale=locale, domain=DOMAIN)
    buf = io.BytesIO()
    write_mo(buf, catalog, use_fuzzy=False)
    buf.seek(0)
    keys, plural = set(), set()
    for message in catalog:
        if not message.id or message.fuzzy:
            continue
        key = message.id[0] if isinstance(message.id, tuple) else message.id
        keys.add(key)
        if message.pluralizable:
            plural.add(key)
    return gettext.GNUTranslations(buf), frozenset(keys), frozenset(plural)


def keys(locale: str) -> frozenset[str]:
    """Every message key `locale` translates."""
    return _catalogue(locale)[1]


def templates(locale: str, key: str) -> list[str]:
    """The raw template(s) of `key` in `locale`: one, or one per plural form."""
    tr, _, plural = _catalogue(locale)
    if key not in plural:
        return [tr.gettext(key)]
    forms = tr.plural(0), tr.plural(1), tr.plural(2), tr.plural(5), tr.plural(21)
    return [tr._catalog[(key, i)] for i in sorted(set(forms))]  # type: ignore[attr-defined]


def placeholders(template: str) -> set[str]:
    """The `{name}` fields a template uses."""
    return {name.split(".")[0].split("[")[0] for _, name, _, _ in string.Formatter().parse(
        template) if name}  # fmt: skip


def language(*candidates: object) -> str:
    """The first supported language among Discord locales ("ja", "en-US", Locale.japanese)."""
    for candidate in candidates:
        value = getattr(candidate, "value", candidate)
        if not value:
            continue
        lang = str(value).split("-")[0].split("_")[0].lower()
        if lang in LOCALES:
            return lang
    return DEFAULT


class Percent(float):
    """A share in [0, 1] shown as a percentage in the reader's language."""


class Seconds(float):
    """A length of time shown in words in the reader's language ("3 min 28 s", "3分28秒")."""


class Size(int):
    """A byte count shown as KB or MB."""


class Msg:
    """A message to be shown in the reader's language: a catalogue key and its parameters.

    String parameters are the user's data (names, file names) and are escaped for Discord when
    `render` is given an `escape`; Msg, Percent, Seconds, Size and numbers are formatted."""

    __slots__ = ("key", "params")

    def __init__(self, key: str, **params: object) -> None:
        self.key = key
        self.params = params

    def __repr__(self) -> str:
        return f"Msg({self.key!r}, {self.params!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Msg) and (self.key, self.params) == (other.key, other.params)

    def __hash__(self) -> int:
        return hash(self.key)

    def __reduce__(self):
        return (_msg, (self.key, self.params))

    def render(self, locale: str = DEFAULT, escape: Callable[[str], str] | None = None) -> str:
        """The message in `locale` (English where a key is missing there)."""
        return t(locale, self.key, _escape=escape, **self.params)


def _msg(key: str, params: Mapping[str, object]) -> Msg:
    """Unpickle a Msg."""
    return Msg(key, **params)


def _value(locale: str, value: object, escape: Callable[[str], str] | None) -> object:
    """One parameter formatted for `locale`."""
    if isinstance(value, Msg):
        return value.render(locale, escape)
    if isinstance(value, Percent):
        return percent(locale, value)
    if isinstance(value, Seconds):
        return duration(locale, value)
    if isinstance(value, Size):
        return size(locale, value)
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return format_decimal(value, locale=locale)
    if isinstance(value, float):
        return format_decimal(value, format="#,##0.#", locale=locale)
    if isinstance(value, str):
        return escape(value) if escape else value
    return value


def t(locale: str, key: str, *, _escape: Callable[[str], str] | None = None, **params: object
      ) -> str:  # fmt: skip
    """The message `key` in `locale` with `params` filled in (plural forms count `n`)."""
    lang = locale if locale in LOCALES and key in keys(locale) else DEFAULT
    tr, known, plural = _catalogue(lang)
    if key not in known:
        raise KeyError(f"no message {key!r} in the {lang} catalogue")
    if key in plural:
        count = params.get("n", 0)
        template = tr.ngettext(key, key, int(count) if isinstance(count, int | float) else 0)
    else:
        template = tr.gettext(key)
    values = {k: _value(lang, v, _escape) for k, v in params.items()}
    return template.format(**values)


def percent(locale: str, value: float | None) -> str:
    """52% (or "not yet measurable" when there is no value)."""
    if value is None or not math.isfinite(value):
        return t(locale, "value.unmeasured")
    return format_percent(value, locale=language(locale))


def number(locale: str, value: float, digits: int = 0) -> str:
    """A number with the locale's grouping and `digits` decimals."""
    pattern = "#,##0" + ("." + "0" * digits if digits else "")
    return format_decimal(value, format=pattern, locale=language(locale))


def duration(locale: str, seconds: float) -> str:
    """'0.5 s', '42 s', '3 min 28 s', '2 h 05 min' — or '0.5秒', '3分28秒', '2時間5分'."""
    if not math.isfinite(seconds):
        seconds = 0.0
    if seconds < 10:
        return t(locale, "duration.s", s=number(locale, seconds, 1))
    if seconds < 60:
        return t(locale, "duration.s", s=number(locale, seconds))
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        if secs == 0:
            return t(locale, "duration.min", m=minutes)
        return t(locale, "duration.min_s", m=minutes, s=secs)
    if minutes % 60 == 0:
        return t(locale, "duration.h", h=minutes // 60)
    return t(locale, "duration.h_min", h=minutes // 60, min=minutes % 60)


def size(locale: str, nbytes: int) -> str:
    """12 KB, 3.4 MB."""
    if nbytes < 2**20:
        return t(locale, "size.kb", kb=number(locale, nbytes / 2**10))
    return t(locale, "size.mb", mb=number(locale, nbytes / 2**20, 1))


def ago(locale: str, seconds: float) -> str:
    """How long ago, in words ("3 hours ago", "3 時間前"), or "just now"."""
    if seconds < 60:
        return t(locale, "time.just_now")
    delta = timedelta(seconds=-seconds)  # in the past
    return format_timedelta(delta, add_direction=True, threshold=1.0, locale=Locale.parse(locale))


def join(locale: str, items: Iterable[str]) -> str:
    """Items joined as a list in the locale ("a, b" / "a、b")."""
    return t(locale, "list.separator").join(items)
