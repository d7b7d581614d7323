"""The layering rules, read from the source: the ML imports no app code, and the cogs and the CLI
go through the service, never into the store or the model registry."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOORLESS = ("bot.store", "bot.store_", "model_store.registry", "bot.migrations")


def imports(path: Path) -> set[str]:
    """Every module `path` imports (absolute names; `from x import y` gives x and x.y)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def attributes(path: Path) -> set[str]:
    """Every `x.store` / `x.registry`-style attribute name used in `path`."""
    return {n.attr for n in ast.walk(ast.parse(path.read_text("utf-8")))
            if isinstance(n, ast.Attribute)}  # fmt: skip


def front_doors() -> list[Path]:
    """The modules that must use the service: every cog and the CLI."""
    bot = ROOT / "bot"
    return sorted([*(ROOT / "cogs").glob("*.py"), bot / "cli.py", *bot.glob("cli_*.py")])


def test_model_store_imports_no_app_code() -> None:
    """model_store/ (the ML) imports nothing from bot/, cogs/ or discord."""
    for path in sorted((ROOT / "model_store").rglob("*.py")):
        bad = {n for n in imports(path) if n.split(".")[0] in ("bot", "cogs", "discord")}
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_cogs_and_cli_go_through_the_service() -> None:
    """Cogs and the CLI import neither the store nor the registry, nor reach for them."""
    for path in front_doors():
        bad = {n for n in imports(path) if n.startswith(DOORLESS)}
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"
        reached = attributes(path) & {"store", "registry"}
        assert not reached, f"{path.relative_to(ROOT)} uses .{', .'.join(sorted(reached))}"


def test_the_rules_would_catch_a_breach(tmp_path: Path) -> None:
    """The readers above see the imports and attributes they look for."""
    probe = tmp_path / "probe.py"
    probe.write_text("from bot.store import Song\nimport model_store.registry\nx = a.mimi.store\n")
    assert {"bot.store", "model_store.registry"} <= imports(probe)
    assert "store" in attributes(probe)


def test_compute_modules_import_no_discord() -> None:
    """The worker jobs and what they use stay free of discord.py (they run on any executor)."""
    for name in ("guess_job", "train_job", "ingest", "audio", "worker", "cache", "executors"):
        path = ROOT / "bot" / f"{name}.py"
        bad = {n for n in imports(path) if n.split(".")[0] in ("discord", "cogs")}
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"
