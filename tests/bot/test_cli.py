"""The `mimi` command line, run as a real process: JSON shapes, exit codes, one-line errors."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bot.config import DEFAULT_FRONTEND_WEIGHTS
from tests.audio_factory import encode

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _weights(frontend_weights: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point every CLI run at the converted front-end weights."""
    monkeypatch.setenv("MIMI_FRONTEND_WEIGHTS", str(frontend_weights))


def mimi(
    *args: str, cwd: Path, env: dict[str, str | None] | None = None, timeout: float = 120, **run
) -> subprocess.CompletedProcess:
    """Run `python -m bot ARGS` in `cwd` with a clean mimi environment (weights kept).

    An `env` value of None removes that variable; `run` goes to subprocess.run.
    """
    keep = ("MIMI_FRONTEND_WEIGHTS",)
    base = {
        k: v for k, v in os.environ.items() if k in keep or not k.startswith(("MIMI_", "DISCORD_"))
    }
    base["PYTHONPATH"] = str(ROOT)
    merged = {k: v for k, v in {**base, **(env or {})}.items() if v is not None}
    run.setdefault("capture_output", "stdout" not in run)
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=cwd,
        env=merged,
        text=True,
        timeout=timeout,
        **run,
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
    other = json.loads(mimi("artists", "--guild", "0", "--json", cwd=tmp_path).stdout)
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


PROFILE_IMPORTS = {"PYTHONPROFILEIMPORTTIME": "1"}  # every import, listed on stderr


def loaded_tensorflow(stderr: str) -> bool:
    """Whether a run under PROFILE_IMPORTS imported TensorFlow or Keras."""
    return bool(re.search(r"^import time:.*\|\s+(tensorflow|keras)(\.|$)", stderr, re.M))


def test_train_guess_stats_models_rollback(tmp_path: Path, library: Path) -> None:
    """The model commands work end to end and keep their documented JSON fields; only `train`
    loads TensorFlow (import and guess run the front-end in ONNX Runtime)."""
    data = ["--data-dir", str(tmp_path / "d")]
    imported = mimi("import", str(library), *data, cwd=tmp_path, env=PROFILE_IMPORTS)
    assert imported.returncode == 0 and not loaded_tensorflow(imported.stderr)
    first = mimi("train", *data, "--json", cwd=tmp_path, env=PROFILE_IMPORTS)
    assert first.returncode == 0, first.stderr
    assert loaded_tensorflow(first.stderr)
    meta = json.loads(first.stdout)
    assert meta["version"] == 1 and meta["artists"] == ["Alpha", "Beta"]
    assert {"song_accuracy", "clip_accuracy", "confusion"} <= meta["metrics"].keys()
    clip = encode(tmp_path / "q.mp3", "mp3", seconds=15, voice=1, seed=42)
    png = tmp_path / "guess.png"
    out = mimi("guess", str(clip), *data, "--json", "--png", str(png), cwd=tmp_path,
               env=PROFILE_IMPORTS)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert not loaded_tensorflow(out.stderr)
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
    """eval cross-validates a folder by song without creating any guild data, with calibration
    and open-set figures against a folder of artists it never taught."""
    strangers = tmp_path / "strangers" / "Gamma"
    strangers.mkdir(parents=True)
    for i in range(2):
        encode(strangers / f"gamma{i}.mp3", "mp3", voice=6, seed=i)
    out = mimi(
        "eval", str(library), "--folds", "2", "--unknown", str(strangers.parent), "--json",
        cwd=tmp_path,
    )  # fmt: skip
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
    assert 0 <= result["ece"] <= 1 and result["calibration"]["ece"] == result["ece"]
    open_set = result["open_set"]
    assert {"auroc", "unknown_rejected", "known_kept", "threshold"} <= open_set.keys()
    assert open_set["protocol"] == "unknown folder" and open_set["unknown_songs"] == 2 * 2
    assert 0 <= open_set["auroc"] <= 1 and 0 <= open_set["unknown_rejected"] <= 1
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["guess", "q.mp3"], "at least 2 artists"),
        (["train"], "at least 2 artists"),
        (["rollback"], "no trained model yet"),
    ],
)
def test_model_commands_explain_missing_prerequisites(
    tmp_path: Path, args: list[str], words: str
) -> None:
    """Before anything is taught, model commands say what to do, with exit code 1."""
    encode(tmp_path / "q.mp3", "mp3", seconds=5)
    out = mimi(*args, "--data-dir", str(tmp_path / "d"), cwd=tmp_path)
    assert out.returncode == 1 and words.lower() in out.stderr.lower()
    assert len(out.stderr.strip().splitlines()) == 1


FAST_S = 3.0  # a refusal before TensorFlow loads; loading it first took about 7 s


@pytest.mark.timeout(120)
def test_bad_paths_are_refused_fast_and_named(tmp_path: Path) -> None:
    """Missing files, FIFOs and devices get their own one-line error before TensorFlow loads.

    Before: `teach FIFO`/`teach /dev/zero` never returned, `guess FIFO` hung, and
    `guess missing.mp3` loaded TensorFlow for 7 s to say "unexpected error: FileNotFoundError".
    """
    os.mkfifo(tmp_path / "pipe.mp3")
    (tmp_path / "zero.mp3").symlink_to("/dev/zero")
    data = ["--data-dir", str(tmp_path / "d")]
    cases = [
        (["guess", "missing.mp3"], "missing.mp3: Could not read the file (No such file"),
        (["guess", "pipe.mp3"], "pipe.mp3: That is a named pipe (FIFO), not a regular file"),
        (["teach", "--artist", "A", "pipe.mp3"], "pipe.mp3: That is a named pipe (FIFO)"),
        (["teach", "--artist", "A", "/dev/zero"], "zero: That is a device, not a regular file"),
        (["teach", "--artist", "A", "zero.mp3"], "zero.mp3: That is a device"),
        (["eval", "nowhere"], "nowhere is not a folder"),
    ]
    for args, words in cases:
        started = time.monotonic()
        out = mimi(*args, *data, cwd=tmp_path, timeout=30)
        took = time.monotonic() - started
        assert out.returncode == 1 and words in out.stderr, (args, out.stderr)
        assert len(out.stderr.strip().splitlines()) == 1 and "unexpected" not in out.stderr
        assert took < FAST_S, (args, took)
    out = mimi("teach", "--artist", "A", "pipe.mp3", "--json", *data, cwd=tmp_path, timeout=30)
    (result,) = json.loads(out.stdout)["results"]
    assert (result["status"], result["error"]) == ("rejected", "not_a_file")


@pytest.mark.timeout(180)
def test_import_lists_fifos_and_dangling_links_as_skipped(tmp_path: Path) -> None:
    """A FIFO, a symlink to one and a dangling symlink are skipped with reasons, not hidden."""
    lib = tmp_path / "lib" / "Alpha"
    lib.mkdir(parents=True)
    encode(lib / "a.mp3", "mp3")
    os.mkfifo(tmp_path / "fifo")
    (lib / "b_fifo.mp3").symlink_to(tmp_path / "fifo")
    os.mkfifo(lib / "c_pipe.mp3")
    (lib / "d_gone.mp3").symlink_to(tmp_path / "nothing.mp3")
    out = mimi("import", str(tmp_path / "lib"), "--json", "--data-dir", str(tmp_path / "d"),
               cwd=tmp_path, timeout=150)  # fmt: skip
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert len(report["taught"]) == 1
    skipped = {Path(item["file"]).name: item["error"] for item in report["skipped"]}
    assert skipped == {"b_fifo.mp3": "not_a_file", "c_pipe.mp3": "not_a_file",
                       "d_gone.mp3": "unreadable"}  # fmt: skip


@pytest.mark.parametrize(
    ("guild", "code"),
    [
        ("99999999999999999999", 2),  # was "unexpected error: OverflowError"
        ("9223372036854775808", 2),  # 2**63: beyond SQLite's INTEGER
        ("\uff15", 2),  # full-width 5, was taken as guild 5
        ("\u0665", 2),  # Arabic-Indic 5
        ("-1", 2),
        ("9223372036854775807", 0),
        ("007", 0),
    ],
)
def test_guild_ids_are_ascii_snowflakes(tmp_path: Path, guild: str, code: int) -> None:
    """--guild takes ASCII decimal digits below 2**63; anything else is a usage error."""
    out = mimi("artists", "--guild", guild, "--json", "--data-dir", str(tmp_path), cwd=tmp_path)
    assert out.returncode == code, out.stderr
    if code == 2:
        assert "usage error" in out.stderr and "guild id must be" in out.stderr
        assert len(out.stderr.strip().splitlines()) == 1
    else:
        assert json.loads(out.stdout)["guild"] == int(guild)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("args", [["artists"], ["stats"], ["--help"]])
def test_closed_pipe_is_not_an_error(tmp_path: Path, args: list[str]) -> None:
    """`mimi ... | head -c1`: when the reader has gone, mimi stops quietly (141, as `yes` does)."""
    read, write = os.pipe()
    os.close(read)  # the reader is gone before mimi writes anything
    try:
        out = mimi(*args, "--data-dir", str(tmp_path / "d"), cwd=tmp_path, timeout=30,
                   stdout=write, stderr=subprocess.PIPE)  # fmt: skip
    finally:
        os.close(write)
    assert out.returncode in (0, 141)
    assert out.stderr == "", out.stderr  # was "mimi: unexpected error: BrokenPipeError"


def test_head_reads_the_first_byte(tmp_path: Path) -> None:
    """A real `mimi artists | head -c1` pipeline prints one byte and no error."""
    cmd = f"{sys.executable} -m bot artists --data-dir d | head -c1"
    out = subprocess.run(
        ["bash", "-c", cmd], cwd=tmp_path, capture_output=True, text=True, timeout=30,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert out.stdout == "N" and out.stderr == ""


@pytest.mark.timeout(180)
@pytest.mark.skipif(not DEFAULT_FRONTEND_WEIGHTS.is_file(), reason="run `make setup` first")
def test_default_weights_do_not_depend_on_the_current_folder(tmp_path: Path) -> None:
    """Run from another folder with no MIMI_FRONTEND_WEIGHTS, teach uses the installed weights."""
    song = encode(tmp_path / "song.mp3", "mp3")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = mimi("teach", "--artist", "A", str(song), "--json", cwd=elsewhere,
               env={"MIMI_FRONTEND_WEIGHTS": None}, timeout=150)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["results"][0]["status"] == "taught"


@pytest.mark.parametrize(
    "args",
    [
        ["teach", "--artist", "A", "song.mp3", "other.mp3", "--json"],
        ["import", "lib", "--json"],
        ["guess", "song.mp3"],
        ["eval", "lib"],
    ],
)
def test_missing_weights_is_one_setup_error(tmp_path: Path, args: list[str]) -> None:
    """Missing musicnn weights stop teach/import/guess/eval with one setup line, blaming no song."""
    encode(tmp_path / "song.mp3", "mp3")
    encode(tmp_path / "other.mp3", "mp3", seed=1)
    (tmp_path / "lib" / "A").mkdir(parents=True)
    encode(tmp_path / "lib" / "A" / "s.mp3", "mp3")
    missing = tmp_path / "no" / "weights.weights.h5"
    started = time.monotonic()
    out = mimi(*args, "--data-dir", str(tmp_path / "d"), cwd=tmp_path,
               env={"MIMI_FRONTEND_WEIGHTS": str(missing)}, timeout=60)  # fmt: skip
    assert time.monotonic() - started < FAST_S
    assert out.returncode == 1
    assert out.stdout == ""  # no per-file rejection
    assert out.stderr.strip().splitlines() == [
        f"mimi: Setup is incomplete: the pretrained musicnn weights are missing at {missing}; "
        "run `make setup` (or `python -m model_store.convert`) or set MIMI_FRONTEND_WEIGHTS."
    ]


@pytest.mark.timeout(240)
def test_omitted_guild_means_the_only_server_with_songs(tmp_path: Path) -> None:
    """Without --guild: no songs -> 0; one server -> it (said on stderr); several -> exit 2."""
    data = ["--data-dir", str(tmp_path / "d")]
    empty = mimi("stats", *data, "--json", cwd=tmp_path)
    assert json.loads(empty.stdout)["guild"] == 0 and empty.stderr == ""
    first = encode(tmp_path / "a.mp3", "mp3")
    second = encode(tmp_path / "b.mp3", "mp3", voice=1, seed=3)
    server = "123456789012345678"
    taught = mimi("teach", "--guild", server, "--artist", "A", str(first), *data,
                  cwd=tmp_path, timeout=150)  # fmt: skip
    assert taught.returncode == 0, taught.stderr
    quiet = mimi("stats", *data, "--json", cwd=tmp_path)
    assert json.loads(quiet.stdout)["guild"] == int(server) and quiet.stderr == ""
    said = mimi("stats", *data, cwd=tmp_path)
    assert said.stdout.startswith("1 songs")
    assert said.stderr == (
        f"mimi: using server {server}, the only one with songs (--guild chooses another)\n"
    )
    listed = json.loads(mimi("artists", *data, "--json", cwd=tmp_path).stdout)
    assert listed["guild"] == int(server) and listed["artists"][0]["songs"] == 1
    taught = mimi("teach", "--guild", "42", "--artist", "B", str(second), *data, cwd=tmp_path,
                  timeout=150)  # fmt: skip
    assert taught.returncode == 0, taught.stderr
    several = mimi("stats", *data, cwd=tmp_path)
    assert several.returncode == 2 and several.stdout == ""
    assert several.stderr.strip().splitlines() == [
        f"mimi: usage error: several servers have songs, pick one with --guild: 42 (1 songs), "
        f"{server} (1 songs) (see mimi --help)"
    ]
    chosen = mimi("stats", "--guild", "42", *data, "--json", cwd=tmp_path)
    assert json.loads(chosen.stdout)["guild"] == 42
