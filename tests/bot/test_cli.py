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


def mimi(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run `python -m bot ARGS` in `cwd` with a clean mimi environment."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("MIMI_", "DISCORD_"))}
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
