"""Versioned per-server model storage on real files: publish, prune, rollback, crashes."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from model_store import features, registry
from model_store.errors import ModelIncompatible, NoModel, VersionNotFound
from model_store.registry import ModelMeta, ModelRegistry

REPO = Path(__file__).resolve().parents[2]
MODEL_FILE = "model.bin"


def publish(
    reg: ModelRegistry,
    guild: int,
    payload: bytes = b"weights",
    writer: Callable[[Path], None] | None = None,
    **over,
) -> ModelMeta:
    """Publish a tiny model whose single file holds `payload` (or whatever `writer` writes)."""
    args = {
        "kind": "scratch",
        "artists": ["Björk", "Aphex Twin"],
        "feature_version": features.FEATURE_VERSION,
        "frontend_version": None,
        "metrics": {"val_accuracy": 0.75, "confusion": [[3, 1], [0, 4]]},
        "train_seconds": 1.5,
        "snapshot": {"Björk": [1, 2], "Aphex Twin": [3]},
    } | over
    return reg.publish(guild, writer or (lambda d: (d / MODEL_FILE).write_bytes(payload)), **args)


def numbers(reg: ModelRegistry, guild: int) -> list[int]:
    """Version numbers of the guild's complete versions."""
    return [m.version for m in reg.versions(guild)]


def leftovers(reg: ModelRegistry, guild: int) -> list[str]:
    """Hidden temp entries left in the guild folder."""
    return sorted(p.name for p in reg.guild_dir(guild).iterdir() if p.name.startswith("."))


def run_child(code: str, *args: str) -> subprocess.CompletedProcess:
    """Run `code` in a fresh interpreter that imports this checkout."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_publish_then_current_round_trips(tmp_path: Path) -> None:
    """A published model becomes current; its folder holds the written file and meta.json."""
    reg = ModelRegistry(tmp_path)
    assert reg.current(7) is None
    meta = publish(reg, 7, b"abc")
    assert meta.version == 1
    assert reg.current(7) == meta == reg.require_current(7)
    folder = reg.folder(7, 1)
    assert folder == tmp_path / "7" / "v0001"
    assert (folder / MODEL_FILE).read_bytes() == b"abc"
    assert ModelMeta.from_dict(json.loads((folder / "meta.json").read_text())) == meta
    assert (tmp_path / "7" / "CURRENT").read_text().strip() == "1"
    assert meta.artists == ["Björk", "Aphex Twin"]
    assert meta.snapshot == {"Björk": [1, 2], "Aphex Twin": [3]}
    assert meta.metrics["confusion"] == [[3, 1], [0, 4]]
    assert meta.created_at.endswith("+00:00")
    assert ModelMeta.from_dict(meta.to_dict()) == meta
    assert leftovers(reg, 7) == []


def test_meta_rejects_malformed_input(tmp_path: Path) -> None:
    """Bad metadata types are refused before anything is written."""
    reg = ModelRegistry(tmp_path)
    with pytest.raises(TypeError):
        publish(reg, 1, snapshot={"A": ["x"]})
    with pytest.raises(TypeError):
        publish(reg, 1, metrics={"bad": object()})
    assert reg.current(1) is None
    assert numbers(reg, 1) == []


def test_versions_are_monotonic_and_pruned(tmp_path: Path) -> None:
    """Numbers only grow; keep=N leaves the newest N versions and removes older folders."""
    reg = ModelRegistry(tmp_path, keep=2)
    metas = [publish(reg, 1, bytes([i])) for i in range(5)]
    assert [m.version for m in metas] == [1, 2, 3, 4, 5]
    assert numbers(reg, 1) == [4, 5]
    assert not reg.folder(1, 3).exists()
    assert reg.current(1).version == 5


def test_prune_never_removes_the_current_version(tmp_path: Path) -> None:
    """After a rollback, pruning keeps the newest versions plus the (older) current one."""
    publisher = ModelRegistry(tmp_path, keep=5)
    for i in range(4):
        publish(publisher, 1, bytes([i]))
    publisher.rollback(1, 2)
    strict = ModelRegistry(tmp_path, keep=1)
    assert strict.prune(1) == [1, 3]
    assert numbers(strict, 1) == [2, 4]
    assert strict.current(1).version == 2
    assert (strict.folder(1, 2) / MODEL_FILE).read_bytes() == bytes([1])


def test_failing_write_changes_nothing(tmp_path: Path) -> None:
    """A write callback that raises leaves the previous version current and no leftovers."""
    reg = ModelRegistry(tmp_path)
    first = publish(reg, 1)

    def boom(folder: Path) -> None:
        (folder / MODEL_FILE).write_bytes(b"half")
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        publish(reg, 1, writer=boom)
    assert reg.current(1) == first
    assert numbers(reg, 1) == [1]
    assert leftovers(reg, 1) == []
    assert sorted(p.name for p in reg.guild_dir(1).iterdir()) == ["CURRENT", "v0001"]


def test_crash_before_rename_keeps_old_version(tmp_path: Path) -> None:
    """A publisher killed at the folder rename leaves v1 current; the next publish cleans up."""
    reg = ModelRegistry(tmp_path)
    first = publish(reg, 1, b"old")
    child = run_child(
        """
        import os, sys
        from pathlib import Path
        from model_store.registry import ModelRegistry

        reg = ModelRegistry(Path(sys.argv[1]))
        os.rename = lambda *a, **k: os._exit(9)
        reg.publish(1, lambda d: (d / "model.bin").write_bytes(b"new"), kind="scratch",
                    artists=["A", "B"], feature_version=1, frontend_version=None,
                    metrics={}, train_seconds=0.0, snapshot={})
        """,
        str(tmp_path),
    )
    assert child.returncode == 9, child.stderr
    assert [n for n in leftovers(reg, 1) if n.startswith(".tmp-v0002-")], "no temp folder left"
    assert reg.current(1) == first
    assert numbers(reg, 1) == [1]
    second = publish(reg, 1, b"newer")
    assert second.version == 2
    assert reg.current(1) == second
    assert leftovers(reg, 1) == []


def test_racing_publisher_takes_the_next_number(tmp_path: Path) -> None:
    """When another publisher claims the same number first, publish retries with the next one."""
    reg = ModelRegistry(tmp_path)

    def write_while_another_publishes(folder: Path) -> None:
        (folder / MODEL_FILE).write_bytes(b"slow")
        assert publish(reg, 1, b"fast").version == 1  # wins the race for v1

    meta = publish(reg, 1, writer=write_while_another_publishes)
    assert meta.version == 2
    assert reg.current(1) == meta
    assert (reg.folder(1, 1) / MODEL_FILE).read_bytes() == b"fast"
    assert (reg.folder(1, 2) / MODEL_FILE).read_bytes() == b"slow"
    assert json.loads((reg.folder(1, 2) / "meta.json").read_text())["version"] == 2
    assert leftovers(reg, 1) == []


def test_rollback(tmp_path: Path) -> None:
    """Rollback goes to the previous or an explicit version; later publishes get a fresh number."""
    reg = ModelRegistry(tmp_path)
    for i in range(3):
        publish(reg, 1, bytes([i]))
    assert reg.rollback(1).version == 2
    assert reg.current(1).version == 2
    assert reg.rollback(1).version == 1
    with pytest.raises(VersionNotFound, match="before v1"):
        reg.rollback(1)
    assert reg.rollback(1, 3).version == 3
    with pytest.raises(VersionNotFound, match="v9") as err:
        reg.rollback(1, 9)
    assert err.value.code == "not_found"
    assert reg.current(1).version == 3
    reg.rollback(1, 1)
    assert publish(reg, 1).version == 4
    assert numbers(reg, 1) == [1, 2, 3, 4]


def test_rollback_without_model_raises_no_model(tmp_path: Path) -> None:
    """Rolling back a server with no model says there is no model."""
    with pytest.raises(NoModel):
        ModelRegistry(tmp_path).rollback(3)


def test_no_model(tmp_path: Path) -> None:
    """A server without a model gets NoModel telling the user to teach 2 artists and train."""
    with pytest.raises(NoModel, match="at least 2 artists") as err:
        ModelRegistry(tmp_path).require_current(5)
    assert err.value.code == "no_model"
    assert "train" in err.value.message


def test_feature_version_mismatch(tmp_path: Path) -> None:
    """A model trained on other features is refused with a message that says to retrain."""
    reg = ModelRegistry(tmp_path)
    publish(reg, 1, feature_version=features.FEATURE_VERSION + 1)
    with pytest.raises(ModelIncompatible) as err:
        reg.require_current(1)
    assert err.value.code == "model_incompatible"
    want = (
        f"The current model (v1) was trained with feature version {features.FEATURE_VERSION + 1}"
        f" but this mimi uses {features.FEATURE_VERSION}; retrain it"
    )
    assert want in err.value.message
    assert reg.current(1).version == 1  # still readable, just never used silently


def test_frontend_version_mismatch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A model on another front-end version is refused, explicitly or against the installed one,
    unless the installed front-end still computes its features (v1 under v2)."""
    reg = ModelRegistry(tmp_path)
    publish(reg, 1, kind="musicnn-head", frontend_version=3)
    with pytest.raises(ModelIncompatible, match="front-end version 3 but this mimi uses 2"):
        reg.require_current(1)
    publish(reg, 1, kind="musicnn-head", frontend_version=1)
    assert reg.require_current(1, frontend_version=1).version == 2
    assert reg.require_current(1).version == 2  # v2 computes v1's MSD outputs unchanged
    monkeypatch.setattr(registry, "_frontend_version", lambda: 3)
    with pytest.raises(ModelIncompatible, match="front-end version 1 but this mimi uses 3"):
        reg.require_current(1)
    meta = reg.current(1)
    with pytest.raises(ModelIncompatible, match="uses none"):
        reg.check_compatible(meta, feature_version=meta.feature_version, frontend_version=None)


def test_scratch_model_check_does_not_import_keras(tmp_path: Path) -> None:
    """Checking a model without a front-end never imports musicnn (and so keras)."""
    child = run_child(
        """
        import sys
        from pathlib import Path
        from model_store.registry import ModelRegistry

        reg = ModelRegistry(Path(sys.argv[1]))
        reg.publish(1, lambda d: (d / "m").write_bytes(b""), kind="scratch", artists=["A", "B"],
                    feature_version=1, frontend_version=None, metrics={}, train_seconds=0.0,
                    snapshot={})
        reg.require_current(1)
        assert "model_store.musicnn" not in sys.modules and "keras" not in sys.modules
        """,
        str(tmp_path),
    )
    assert child.returncode == 0, child.stderr


def test_guild_isolation(tmp_path: Path) -> None:
    """Publishing, rolling back and dropping one server never touches another's model."""
    reg = ModelRegistry(tmp_path, keep=1)
    two = publish(reg, 2, b"two")
    publish(reg, 1)
    publish(reg, 1)
    assert reg.current(1).version == 2
    assert reg.current(2) == two
    reg.rollback(1, 2)
    reg.drop_guild(1)
    assert reg.current(1) is None
    assert not reg.guild_dir(1).exists()
    assert reg.current(2) == two
    assert numbers(reg, 2) == [1]
    assert publish(reg, 1).version == 1


def test_corrupt_current_falls_back(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A bad CURRENT or meta.json falls back to the newest complete version, with a warning."""
    reg = ModelRegistry(tmp_path)
    for _ in range(3):
        publish(reg, 1)
    reg.rollback(1, 1)
    (reg.folder(1, 1) / "meta.json").write_text("{not json")
    with caplog.at_level(logging.WARNING, logger="model_store.registry"):
        assert reg.current(1).version == 3
    assert "CURRENT" in caplog.text
    assert numbers(reg, 1) == [2, 3]
    (reg.guild_dir(1) / "CURRENT").write_text("42\n")
    assert reg.current(1).version == 3
    (reg.guild_dir(1) / "CURRENT").write_text("garbage")
    assert reg.current(1).version == 3
    (reg.guild_dir(1) / "CURRENT").unlink()
    assert reg.current(1).version == 3
    assert publish(reg, 1).version == 4  # the damaged v1 folder still counts for numbering


def test_rejects_bad_guild_ids(tmp_path: Path) -> None:
    """Guild ids must be non-negative ints, never strings, bools or paths."""
    reg = ModelRegistry(tmp_path)
    for bad in ("1", "../x", True, -1, 1.0, None):
        with pytest.raises(TypeError):
            reg.current(bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        reg.folder(1, 0)
    with pytest.raises(ValueError):
        ModelRegistry(tmp_path, keep=0)
