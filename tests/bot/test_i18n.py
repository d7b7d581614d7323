"""mimi's languages: one catalogue per language, complete and consistent, natural numbers."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from bot import i18n
from bot.errors import MimiError
from bot.i18n import Msg, Percent, Seconds, Size

ROOT = Path(__file__).resolve().parents[2]
# Modules whose errors can reach a member on Discord (the CLI-only ones may stay English).
MEMBER_FACING = [
    "bot/audio.py", "bot/sniff.py", "bot/names.py", "bot/store.py", "bot/service.py",
    "bot/pool.py", "bot/guess_job.py", "bot/train_job.py", "bot/ingest.py", "bot/training.py",
    "bot/errors.py", "bot/store_songs.py", "bot/store_people.py", "bot/service_records.py",
    *(str(p.relative_to(ROOT)) for p in sorted((ROOT / "cogs").glob("*.py"))),
]  # fmt: skip
ERRORS = {"MimiError", "AudioRejected", "NotFound", "InvalidName", "DuplicateSong",
          "StorageError", "TrainingFailed", "NoModel"}  # fmt: skip
SOURCES = sorted([*(ROOT / "bot").glob("*.py"), *(ROOT / "cogs").glob("*.py")])


def _sample(name: str) -> object:
    """A plausible value for a placeholder called `name`."""
    if name in ("n", "k", "epoch", "epochs", "limit", "rate"):
        return 3
    if name in ("seconds", "minimum", "decoded", "declared_s", "wait", "heard", "total"):
        return Seconds(208)
    if name in ("size", "declared"):
        return Size(3 * 2**20)
    return f"<{name}>"


def test_every_language_has_every_key() -> None:
    """English and Japanese translate the same keys: a missing one fails here."""
    en, ja = i18n.keys("en"), i18n.keys("ja")
    assert en == ja, {"missing in ja": sorted(en - ja), "missing in en": sorted(ja - en)}
    assert len(en) > 150


@pytest.mark.parametrize("key", sorted(i18n.keys("en")))
def test_placeholders_agree_and_every_message_renders(key: str) -> None:
    """Each message has the same placeholders in every language (in every plural form), and
    renders in both without leftovers."""
    names = {
        lang: [i18n.placeholders(t) for t in i18n.templates(lang, key)] for lang in i18n.LOCALES
    }
    wanted = set().union(*names["en"])
    for lang, forms in names.items():
        for form in forms:
            assert form == wanted, (lang, key, form, wanted)
    params = {name: _sample(name) for name in wanted}
    for lang in i18n.LOCALES:
        out = i18n.t(lang, key, **params)
        assert out and not re.search(r"\{\w+\}", out), (lang, key, out)


def test_catalogues_are_standard_gettext_files() -> None:
    """Both .po files parse with Babel, declare their plural rule, and hold nothing fuzzy."""
    for lang, rule in (("en", "nplurals=2; plural=(n != 1);"), ("ja", "nplurals=1; plural=0;")):
        with i18n.po_path(lang).open("rb") as f:
            catalog = read_po(f)
        assert catalog.plural_forms == rule
        assert not catalog.fuzzy and not any(m.fuzzy for m in catalog if m.id)


@pytest.mark.parametrize(
    ("seconds", "en", "ja"),
    [(0.5, "0.5 s", "0.5秒"), (42, "42 s", "42秒"), (243, "4 min 3 s", "4分3秒"),
     (7500, "2 h 5 min", "2時間5分")],
)  # fmt: skip
def test_durations(seconds: float, en: str, ja: str) -> None:
    """Lengths read naturally in both languages."""
    assert (i18n.duration("en", seconds), i18n.duration("ja", seconds)) == (en, ja)


def test_numbers_and_durations_read_naturally() -> None:
    """3 min 28 s / 3分28秒, plurals, percentages, "ago" and lists in each language."""
    assert i18n.duration("en", 208) == "3 min 28 s" and i18n.duration("ja", 208) == "3分28秒"
    assert i18n.duration("en", 7300) == "2 h 1 min" and i18n.duration("ja", 7300) == "2時間1分"
    assert i18n.duration("en", 4.25) == "4.2 s" and i18n.duration("ja", 42) == "42秒"
    assert (
        i18n.t("en", "count.songs", n=1) == "1 song"
        and i18n.t("en", "count.songs", n=2) == "2 songs"
    )
    assert i18n.t("ja", "count.songs", n=2) == "2曲"
    assert i18n.t("en", "count.songs", n=1234) == "1,234 songs"
    assert i18n.percent("ja", 0.52) == "52%" and i18n.percent("en", None) == "not yet measurable"
    assert i18n.ago("en", 3 * 3600) == "3 hours ago" and i18n.ago("ja", 3 * 3600) == "3 時間前"
    assert i18n.join("ja", ["a", "b"]) == "a、b" and i18n.join("en", ["a", "b"]) == "a, b"
    assert i18n.size("en", 3 * 2**20 + 2**19) == "3.5 MB" and i18n.size("en", 12 * 2**10) == "12 KB"


def test_language_follows_the_member_then_the_server_then_english() -> None:
    """The member's locale if mimi speaks it, else the server's, else English."""
    assert i18n.language("ja", "en-US") == "ja"
    assert i18n.language("en-GB", "ja") == "en"  # the member's own language wins
    assert i18n.language("fr", "ja") == "ja"  # mimi has no French: the server's language
    assert i18n.language("fr", "de") == "en" and i18n.language(None, None) == "en"


def test_a_message_carries_its_parameters_into_every_language() -> None:
    """A MimiError built from a Msg speaks both languages; user text is escaped on request."""
    err = MimiError(Msg("error.no_artist", artist="*嵐*"), code="not_found")
    assert err.message == "This server has no artist called '*嵐*'."
    assert err.text("ja") == "このサーバーに「*嵐*」というアーティストはいません。"
    assert err.text("ja", escape=lambda s: s.replace("*", "\\*")).count("\\*") == 2
    nested = Msg("audio.not_audio", what=Msg("kind.png"), supported="MP3")
    assert "PNG 画像" in nested.render("ja") and "a PNG image" in nested.render("en")
    assert Msg("value.unmeasured").render("xx") == "not yet measurable"  # unknown: English
    assert str(Percent(0.5)) == "0.5"


def test_plain_errors_of_the_ml_layer_are_shown_from_their_code() -> None:
    """An error raised in English by the ML layer shows its code's message in Japanese."""
    err = MimiError("I need songs by at least 2 artists …", code="too_few_artists")
    assert err.text("ja") == i18n.t("ja", "code.too_few_artists")
    assert MimiError("operator detail", code="usage").text("ja") == "operator detail"


def _calls(path: Path):
    """Every call in a module, with its function's name."""
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
            yield name, node


@pytest.mark.parametrize("module", MEMBER_FACING)
def test_errors_a_member_can_see_come_from_the_catalogue(module: str) -> None:
    """No English-only error is raised where a member can see it (CLI usage errors aside,
    and errors whose code has its own catalogue message)."""
    for name, call in _calls(ROOT / module):
        if name not in ERRORS or not call.args:
            continue
        first = call.args[0]
        literal = isinstance(first, ast.JoinedStr) or (
            isinstance(first, ast.Constant) and isinstance(first.value, str)
        )
        code = next((getattr(k.value, "value", "") for k in call.keywords if k.arg == "code"), "")
        shown = code == "usage" or f"code.{code}" in i18n.keys("en")  # CLI-only, or by its code
        assert not literal or shown, f"{module}:{call.lineno}: {name}({ast.unparse(first)[:60]})"


def test_every_key_used_in_the_code_exists() -> None:
    """Every literal catalogue key in bot/ and cogs/ is in the catalogue; every f-string key
    family ("kind.{...}") has members."""
    known, checked = i18n.keys("en"), 0
    for path in SOURCES:
        for name, call in _calls(path):
            if name not in ("Msg", "t", "say", "command_text") or not call.args:
                continue
            if name in ("t", "say") and len(call.args) < 2:
                continue
            key_arg = call.args[0] if name in ("Msg", "command_text") else call.args[1]
            if isinstance(key_arg, ast.Constant) and isinstance(key_arg.value, str):
                assert key_arg.value in known, f"{path.name}:{call.lineno}: {key_arg.value}"
                checked += 1
            elif isinstance(key_arg, ast.JoinedStr) and isinstance(key_arg.values[0], ast.Constant):
                prefix = key_arg.values[0].value
                assert any(k.startswith(prefix) for k in known), f"{path.name}: {prefix}…"
    assert checked > 100
