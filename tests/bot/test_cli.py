"""The `mimi` command line, run as a real process: JSON shapes, exit codes, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.audio_factory import encode

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _weights(frontend_weights: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point every CLI run at the converted front-end weights."""
    monkeypatch.setenv("MIMI_FRONTEND_WEIGHTS", str(frontend_weights))


def mimi(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run `python -m bot ARGS` in `cwd` with a clean mimi environment (weights kept)."""
    keep = ("MIMI_FRONTEND_WEIGHTS",)
    base = {
        k: v for k, v in os.environ.items() if k in keep or not k.startswith(("MIMI_", "DISCORD_"))
    }
    base["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=cwd,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def library(tmp_path: Path) -> Path:
    """A folder of two artists' songs plus one unusable file."""
    lib = tmp_path / "lib"
    for artist, voice in (("Alpha", 0), ("Beta", 1)):
        (lib / artist).mkdir(parents=True)
        for i in range(2):
            encode(lib / artist / f"{artist.lower()}{i}.mp3", "mp3", voice=voice, seed=i)
    (lib / "Beta" / "readme.txt").write_text("not a song")
    return lib


def test_teach_duplicate_and_artists_json(tmp_path: Path, library: Path) -> None:
    """teach reports each file's outcome in JSON; a repeat is a duplicate; artists totals add up."""
    song = library / "Alpha" / "alpha0.mp3"
    out = mimi("teach", "--guild", "7", "--artist", "Alpha", str(song), "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    (result,) = json.loads(out.stdout)["results"]
    assert result["status"] == "taught" and result["artist"] == "Alpha" and result["clips"] == 1
    again = mimi("teach", "--guild", "7", "--artist", "ALPHA", str(song), "--json", cwd=tmp_path)
    assert json.loads(again.stdout)["results"][0]["status"] == "duplicate"
    listed = json.loads(mimi("artists", "--guild", "7", "--json", cwd=tmp_path).stdout)
    assert listed == {
        "guild": 7,
        "artists": [{"name": "Alpha", "songs": 1, "clips": 1, "minutes": 0.2}],
    }
    assert (tmp_path / "data" / "mimi.sqlite3").is_file()  # default data dir is ./data
    other = json.loads(mimi("artists", "--json", cwd=tmp_path).stdout)
    assert other == {"guild": 0, "artists": []}  # guild 0 sees nothing of guild 7


def test_import_then_forget(tmp_path: Path, library: Path) -> None:
    """import teaches the folder and lists the skipped file; forget removes song and artist."""
    data = tmp_path / "store"
    out = mimi("import", str(library), "--data-dir", str(data), "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert len(report["taught"]) == 4
    assert [Path(s["file"]).name for s in report["skipped"]] == ["readme.txt"]
    assert report["skipped"][0]["error"] == "not_audio"
    song_id = report["taught"][0]["song_id"]
    gone = mimi("forget", "--song", str(song_id), "--data-dir", str(data), "--json", cwd=tmp_path)
    assert [s["song_id"] for s in json.loads(gone.stdout)["removed"]] == [song_id]
    gone = mimi("forget", "--artist", "beta", "--data-dir", str(data), "--json", cwd=tmp_path)
    assert len(json.loads(gone.stdout)["removed"]) == 2
    listed = json.loads(mimi("artists", "--data-dir", str(data), "--json", cwd=tmp_path).stdout)
    assert [(a["name"], a["songs"]) for a in listed["artists"]] == [("Alpha", 1)]


def test_data_dir_from_environment(tmp_path: Path, library: Path) -> None:
    """Without --data-dir the MIMI_DATA_DIR setting decides where data lives."""
    data = tmp_path / "envdata"
    song = str(library / "Beta" / "beta0.mp3")
    out = mimi("teach", "--artist", "B", song, cwd=tmp_path, env={"MIMI_DATA_DIR": str(data)})
    assert out.returncode == 0, out.stderr
    assert "Taught B: song #1" in out.stdout
    assert (data / "mimi.sqlite3").is_file() and not (tmp_path / "data").exists()


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (["teach", "x.mp3"], 2, "--artist"),
        (["forget", "--artist", "A", "--song", "1"], 2, "not allowed with"),
        (["artists", "--guild", "abc"], 2, "non-negative integer"),
        (["frobnicate"], 2, "invalid choice"),
        (["forget", "--artist", "Nobody"], 1, "no artist called 'Nobody'"),
        (["forget", "--song", "99"], 1, "no song #99"),
        (["import", "missing-dir"], 1, "is not a folder"),
        (["teach", "--artist", "A", "missing.mp3"], 1, "Could not read the file"),
        (["run"], 1, "DISCORD_TOKEN is not set"),
    ],
)
def test_errors_are_one_line_with_exit_code(
    tmp_path: Path, args: list[str], code: int, words: str
) -> None:
    """Usage errors exit 2, other failures exit 1, each with one line on stderr, no traceback."""
    out = mimi(*args, "--data-dir", str(tmp_path / "d"), cwd=tmp_path)
    assert out.returncode == code
    assert words in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr


def test_rejected_file_exits_1_and_keeps_going(tmp_path: Path, library: Path) -> None:
    """A bad file among good ones is reported on stderr; the good ones are still taught."""
    bad = tmp_path / "bad.mp3"
    bad.write_bytes(b"\x00" * 5000)
    good = library / "Alpha" / "alpha1.mp3"
    out = mimi("teach", "--artist", "A", str(bad), str(good), "--json", cwd=tmp_path)
    assert out.returncode == 1
    statuses = [r["status"] for r in json.loads(out.stdout)["results"]]
    assert statuses == ["rejected", "taught"]
    assert out.stderr.startswith("mimi: bad.mp3: That doesn't look like audio")


def test_train_guess_stats_models_rollback(tmp_path: Path, library: Path) -> None:
    """The model commands work end to end and keep their documented JSON fields."""
    data = ["--data-dir", str(tmp_path / "d")]
    assert mimi("import", str(library), *data, cwd=tmp_path).returncode == 0
    first = mimi("train", *data, "--json", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    meta = json.loads(first.stdout)
    assert meta["version"] == 1 and meta["artists"] == ["Alpha", "Beta"]
    assert {"song_accuracy", "clip_accuracy", "confusion"} <= meta["metrics"].keys()
    clip = encode(tmp_path / "q.mp3", "mp3", seconds=15, voice=1, seed=42)
    png = tmp_path / "guess.png"
    out = mimi("guess", str(clip), *data, "--json", "--png", str(png), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    guess = json.loads(out.stdout)
    assert {"top", "windows", "model_version", "unsure"} <= guess.keys()
    assert guess["top"][0]["artist"] == "Beta" and guess["model_version"] == 1
    assert set(guess["windows"][0]) == {"start", "end", "artist", "probability"}
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    stats = json.loads(mimi("stats", *data, "--json", cwd=tmp_path).stdout)
    assert stats["songs"] == 4 and stats["model"]["version"] == 1
    assert {"clip_accuracy", "song_accuracy", "confusion", "trained_at"} <= stats["model"].keys()
    assert mimi("train", *data, cwd=tmp_path).returncode == 0
    back = mimi("rollback", *data, "--json", cwd=tmp_path)
    assert json.loads(back.stdout)["version"] == 1
    listed = json.loads(mimi("models", *data, "--json", cwd=tmp_path).stdout)
    assert listed["current"] == 1 and [v["version"] for v in listed["versions"]] == [1, 2]


def test_eval_reports_song_level_metrics(tmp_path: Path, library: Path) -> None:
    """eval cross-validates a folder by song without creating any guild data."""
    out = mimi("eval", str(library), "--folds", "2", "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    fields = {
        "artists",
        "songs",
        "clips",
        "clip_accuracy",
        "song_accuracy",
        "macro_f1",
        "confusion",
        "train_seconds",
        "folds",
    }
    assert fields <= result.keys()
    assert result["songs"] == 4 and result["folds"] == 2 and result["artists"] == ["Alpha", "Beta"]
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["guess", "missing.mp3"], "no trained model yet"),
        (["train"], "at least 2 artists"),
        (["rollback"], "no trained model yet"),
    ],
)
def test_model_commands_explain_missing_prerequisites(
    tmp_path: Path, args: list[str], words: str
) -> None:
    """Before anything is taught, model commands say what to do, with exit code 1."""
    out = mimi(*args, "--data-dir", str(tmp_path / "d"), cwd=tmp_path)
    assert out.returncode == 1 and words.lower() in out.stderr.lower()
    assert len(out.stderr.strip().splitlines()) == 1
