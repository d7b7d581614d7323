"""`mimi backup` / `mimi restore` on real data dirs: real SQLite, audio, TensorFlow models."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from bot import backup, backup_files
from bot.cache import AUDIO_FILE
from bot.config import Settings
from bot.guess_job import guess_file
from bot.health import heartbeat_path, write_heartbeat
from bot.inference import guess_config
from bot.migrations import MIGRATIONS
from bot.service import Mimi
from bot.store import Store
from bot.train_job import MODEL_FILE, TrainJob, train_job
from model_store.registry import ModelRegistry
from model_store.stages import EMBEDDING, LOGMEL, stages_with_embeddings
from tests.audio_factory import encode
from tests.bot.helpers import run_mimi, teach_alpha_and_beta

ROOT = Path(__file__).resolve().parents[2]
GUILD, OTHER = 7, 876543210987654321  # a real-sized snowflake: long member names


@dataclass(frozen=True)
class Source:
    """A data dir with 2 servers, 5 songs and two trained model versions, plus a backup of it."""

    settings: Settings
    archive: Path
    clip: Path


def settings_for(data: Path, weights: Path, **over) -> Settings:
    """Settings on `data` with no environment influence."""
    return Settings.load(environ={}, env_file=None, data_dir=data, frontend_weights=weights, **over)


def ok_json(*argv: str) -> dict:
    """Run a mimi command that must succeed with --json; its payload."""
    code, out, err = run_mimi(*argv, "--json")
    assert code == 0, err
    return json.loads(out)


def tree(root: Path) -> dict[str, str]:
    """Every file under `root` (hidden ones too) with its sha256."""
    if not root.exists():
        return {}
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def version_files(models: Path, guild: int, version: int) -> dict[str, str]:
    """sha256 of each file of one published model version."""
    return tree(models / str(guild) / f"v{version:04d}")


async def _build(settings: Settings, work: Path) -> None:
    async with await Mimi.open(settings) as mimi:
        await teach_alpha_and_beta(mimi, work / "songs", guild=GUILD)
        await mimi.teach(OTHER, "Solo", encode(work / "solo.mp3", "mp3", voice=5, seed=3))
        job = await mimi.training_job(GUILD)
        for _ in range(2):
            await asyncio.to_thread(train_job, job)


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory, frontend_weights: Path) -> Source:
    """Build the source data dir once (teach, train twice) and back it up."""
    work = tmp_path_factory.mktemp("source")
    settings = settings_for(work / "data", frontend_weights)
    asyncio.run(_build(settings, work))
    report = ok_json("backup", str(work / "base.tar"), "--data-dir", str(settings.data_dir))
    assert (report["guilds"], report["songs"], report["model_versions"]) == (2, 5, 2)
    clip = encode(work / "clip.mp3", "mp3", seconds=12, voice=3, seed=9)
    return Source(settings, work / "base.tar", clip)


def copy_data(source: Source, dest: Path) -> Path:
    """A private copy of the source data dir."""
    shutil.copytree(source.settings.data_dir, dest)
    return dest


def check_restored(data: Path, original: Path) -> dict:
    """A restored data dir is sound: integrity ok, every song's audio and embedding present and
    identical to the original's, no log-mel (recomputable) archived."""
    info = asyncio.run(Store.inspect(data / "mimi.sqlite3", integrity=True))
    assert info["integrity"] == "ok"
    embedding = stages_with_embeddings(Path("unused"))[EMBEDDING].filename
    for guild, key in info["song_keys"]:
        for name in (AUDIO_FILE, embedding):
            restored = (data / "cache" / str(guild) / key / name).read_bytes()
            assert restored == (original / "cache" / str(guild) / key / name).read_bytes()
    assert not list((data / "cache").rglob(f"{LOGMEL.name}*"))
    return info


def test_backups_during_teaching_and_training_restore_whole(
    source: Source, tmp_path: Path, frontend_weights: Path
) -> None:
    """Backups during `mimi import` and model publish/prune restore whole: DB, audio, models."""
    import keras

    live = copy_data(source, tmp_path / "live")
    settings = settings_for(live, frontend_weights, models_keep=2)
    lib = tmp_path / "lib" / "Gamma"
    lib.mkdir(parents=True)
    for i in range(8):
        encode(lib / f"g{i}.mp3", "mp3", seconds=11, voice=6, seed=20 + i)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MIMI_", "DISCORD_"))}
    env |= {"PYTHONPATH": str(ROOT), "MIMI_FRONTEND_WEIGHTS": str(frontend_weights)}
    importer = subprocess.Popen(
        [sys.executable, "-m", "bot", "import", "--guild", str(GUILD), str(lib.parent),
         "--data-dir", str(live), "--json"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    published = {v: version_files(live / "models", GUILD, v) for v in (1, 2)}
    job = TrainJob.for_guild(settings, GUILD, asyncio.run(_training_rows(settings)))

    def trainer() -> None:
        for _ in range(3):  # with keep=2 every publish prunes a version
            meta = train_job(job)
            published[meta["version"]] = version_files(live / "models", GUILD, meta["version"])

    thread = threading.Thread(target=trainer)
    thread.start()
    reports, spent = [], 0.0
    while importer.poll() is None or thread.is_alive():
        started = time.perf_counter()
        out = tmp_path / f"b{len(reports)}.tar"
        reports.append(ok_json("backup", str(out), "--data-dir", str(live)))
        spent += time.perf_counter() - started
        time.sleep(0.15)
    thread.join()
    out, err = importer.communicate()
    assert importer.returncode == 0, err
    assert len(json.loads(out)["taught"]) == 8
    during = [r["songs"] for r in reports]
    assert len(reports) >= 3 and during == sorted(during) and during[0] == 5
    assert any(5 < n < 13 for n in during), f"no backup overlapped the teaching: {during}"
    kept = sorted(os.listdir(live / "models" / str(GUILD)))
    assert max(published) == 5 and kept == ["CURRENT", "v0004", "v0005"]
    compared, restoring = 0, 0.0
    for i, report in enumerate(reports):
        data, started = tmp_path / f"r{i}", time.perf_counter()
        restored = ok_json("restore", report["archive"], "--data-dir", str(data))
        restoring += time.perf_counter() - started
        assert (restored["songs"], restored["guilds"]) == (report["songs"], 2)
        assert check_restored(data, live)["songs"] == report["songs"]
        registry = ModelRegistry(data / "models")
        current = registry.require_current(GUILD)
        for meta in registry.versions(GUILD):
            assert version_files(data / "models", GUILD, meta.version) == published[meta.version]
        original = live / "models" / str(GUILD) / f"v{current.version:04d}" / MODEL_FILE
        if original.is_file() and compared < 2:
            ours = keras.models.load_model(registry.folder(GUILD, current.version) / MODEL_FILE)
            theirs = keras.models.load_model(original)
            x = np.random.default_rng(i).standard_normal((4, *ours.input_shape[1:]))
            np.testing.assert_array_equal(ours.predict(x, verbose=0), theirs.predict(x, verbose=0))
            compared += 1
    assert compared >= 1
    print(
        f"\n{len(reports)} backups during import+training ({reports[-1]['bytes'] / 1e6:.1f} MB): "
        f"backup {spent / len(reports):.3f} s, restore {restoring / len(reports):.3f} s; {during}"
    )


async def _training_rows(settings: Settings) -> list[tuple]:
    store = await Store.open(settings.db_path)
    try:
        return await store.training_songs(GUILD)
    finally:
        await store.close()


async def _forget_first_song(settings: Settings) -> dict:
    async with await Mimi.open(settings) as mimi:
        song = (await mimi.store.songs(GUILD))[0]
        await mimi.forget_song(GUILD, song.id)
    return {"guild": GUILD, "song_id": song.id, "artist": song.artist, "filename": song.filename}


def test_song_forgotten_during_backup_is_left_out(
    source: Source, tmp_path: Path, frontend_weights: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A song forgotten right after the DB snapshot is dropped from the backup and reported."""
    live = copy_data(source, tmp_path / "live")
    settings = settings_for(live, frontend_weights)
    real, forgotten = Store.backup_to, []

    async def snapshot_then_forget(self: Store, target: Path) -> None:
        await real(self, target)
        if not forgotten:  # the first call snapshots the live database
            forgotten.append(await _forget_first_song(settings))

    monkeypatch.setattr(Store, "backup_to", snapshot_then_forget)
    report = ok_json("backup", str(tmp_path / "b.tar"), "--data-dir", str(live))
    assert report["skipped_songs"] == forgotten and report["songs"] == 4
    code, out, _ = run_mimi("backup", str(tmp_path / "c.tar"), "--data-dir", str(live))
    assert code == 0 and "Backed up 4 songs of 2 servers and 2 model versions" in out
    restored = ok_json("restore", str(tmp_path / "b.tar"), "--data-dir", str(tmp_path / "r"))
    assert restored["songs"] == 4
    assert check_restored(tmp_path / "r", source.settings.data_dir)["songs"] == 4
    artists = ok_json("artists", "--guild", str(GUILD), "--data-dir", str(tmp_path / "r"))
    assert [(a["name"], a["songs"]) for a in artists["artists"]] == [("Alpha", 1), ("Beta", 2)]


def test_current_model_pruned_mid_copy_rereads_current(
    source: Source, tmp_path: Path, frontend_weights: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A CURRENT version pruned mid-copy makes backup re-read CURRENT and archive the new one."""
    live = copy_data(source, tmp_path / "live")
    registry = ModelRegistry(live / "models", keep=1)
    real, raced = backup._add_version, []

    def racing(add, gdir: Path, version: int) -> bool:
        if gdir.name == str(GUILD) and version == 2 and not raced:
            raced.append(version)  # a training publishes v3 (keep=1 prunes v1 and v2) meanwhile
            model = (gdir / "v0002" / MODEL_FILE).read_bytes()
            meta = registry.current(GUILD)
            registry.publish(
                GUILD, lambda d: (d / MODEL_FILE).write_bytes(model), kind=meta.kind,
                artists=meta.artists, feature_version=meta.feature_version,
                frontend_version=meta.frontend_version, metrics=meta.metrics,
                train_seconds=1.0, snapshot=meta.snapshot,
            )  # fmt: skip
        return real(add, gdir, version)

    monkeypatch.setattr(backup, "_add_version", racing)
    report = ok_json("backup", str(tmp_path / "b.tar"), "--data-dir", str(live))
    assert raced == [2] and report["model_versions"] == 2  # v1 (copied before) and v3
    with tarfile.open(tmp_path / "b.tar") as tar:
        names = tar.getnames()
        current = tar.extractfile(f"models/{GUILD}/CURRENT").read()
    assert current == b"3\n"
    assert {n.split("/")[2] for n in names if n.startswith(f"models/{GUILD}/v")} == {
        "v0001", "v0003",
    }  # fmt: skip
    ok_json("restore", str(tmp_path / "b.tar"), "--data-dir", str(tmp_path / "r"))
    assert ModelRegistry(tmp_path / "r" / "models").require_current(GUILD).version == 3


async def test_restore_refuses_existing_db_then_force_replaces_it(
    source: Source, tmp_path: Path, frontend_weights: Path
) -> None:
    """restore refuses an existing DB (bytes kept); --force replaces it under a live connection."""
    target = copy_data(source, tmp_path / "target")
    settings = settings_for(target, frontend_weights)
    async with await Mimi.open(settings) as mimi:
        await mimi.forget_artist(GUILD, "Beta")
    before = tree(target)
    code, out, err = await asyncio.to_thread(
        run_mimi, "restore", str(source.archive), "--data-dir", str(target)
    )
    assert code == 1 and out == ""
    assert err == (
        f"mimi: {target / 'mimi.sqlite3'} already holds 3 songs in 2 servers; restore replaces "
        "it: re-run with --force (stop the bot first).\n"
    )
    assert tree(target) == before
    bot_store = await Store.open(settings.db_path)  # a running bot's connection
    try:
        assert [a.name for a in await bot_store.artists(GUILD)] == ["Alpha"]
        beat = {"state": "running", "pid": os.getpid(), "written_at": time.time()}
        write_heartbeat(heartbeat_path(settings), beat)
        started = time.perf_counter()
        code, out, err = await asyncio.to_thread(
            run_mimi, "restore", str(source.archive), "--data-dir", str(target), "--force", "--json"
        )
        seconds = time.perf_counter() - started
        assert code == 0, err
        assert json.loads(out) == {
            "archive": str(source.archive), "guilds": 2, "songs": 5, "model_versions": 2,
            "schema_version": len(MIGRATIONS),
        }  # fmt: skip
        assert "restart it so it reloads the restored models" in err
        assert [(a.name, a.songs) for a in await bot_store.artists(GUILD)] == [
            ("Alpha", 2), ("Beta", 2),
        ]  # fmt: skip
        assert await bot_store.integrity_check() == "ok"
    finally:
        await bot_store.close()
    assert not [p for p in target.iterdir() if p.name.startswith(".")]
    await asyncio.to_thread(check_restored, target, source.settings.data_dir)
    config = guess_config(settings)
    expected = await asyncio.to_thread(
        guess_file, source.clip, GUILD, guess_config(source.settings)
    )
    guessed = await asyncio.to_thread(guess_file, source.clip, GUILD, config)
    assert guessed["top"] == expected["top"] and guessed["model_version"] == 2
    print(f"\nrestore --force: {seconds:.2f} s")


def test_backup_refuses_existing_file_and_names_one_in_a_folder(
    source: Source, tmp_path: Path
) -> None:
    """backup never overwrites OUT, names its file in a folder, gzips .tar.gz, needs a database."""
    data = str(source.settings.data_dir)
    existing = tmp_path / "keep.tar"
    existing.write_bytes(b"precious")
    code, out, err = run_mimi("backup", str(existing), "--data-dir", data)
    assert (code, out) == (1, "") and err == (
        f"mimi: {existing} already exists; a backup never overwrites a file.\n"
    )
    assert existing.read_bytes() == b"precious" and os.listdir(tmp_path) == ["keep.tar"]
    folder = tmp_path / "backups"
    folder.mkdir()
    report = ok_json("backup", str(folder), "--data-dir", data)
    archive = Path(report["archive"])
    assert archive.parent == folder and os.listdir(folder) == [archive.name]
    assert re.fullmatch(r"mimi-backup-\d{8}-\d{6}\.tar", archive.name)
    assert report["bytes"] == archive.stat().st_size and tarfile.is_tarfile(archive)
    fresh = ok_json("backup", f"{tmp_path / 'new'}/", "--data-dir", data)  # "DIR/": created
    assert Path(fresh["archive"]).parent == tmp_path / "new"
    gz = tmp_path / "b.tar.gz"
    assert ok_json("backup", str(gz), "--data-dir", data)["songs"] == 5
    assert gz.read_bytes()[:2] == b"\x1f\x8b"
    restored = ok_json("restore", str(gz), "--data-dir", str(tmp_path / "r"))
    assert (restored["guilds"], restored["songs"], restored["model_versions"]) == (2, 5, 2)
    code, _, err = run_mimi("backup", str(tmp_path / "x.tar"), "--data-dir", str(tmp_path / "none"))
    assert code == 1 and "There is no database at" in err
    assert not (tmp_path / "none").exists() and not (tmp_path / "x.tar").exists()


def rebuild(src: Path, dest: Path, edit) -> Path:
    """Copy the archive `src` to `dest`, letting `edit(members)` change its (TarInfo, bytes)."""
    with tarfile.open(src) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
    members = edit(members)
    with tarfile.open(dest, "w") as tar:
        for info, data in members:
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return dest


def with_member(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"x"):
    """An edit adding one member."""

    def edit(members):
        info = tarfile.TarInfo(name)
        info.type = kind
        if kind == tarfile.SYMTYPE:
            info.linkname, data_ = "/etc/passwd", b""
        else:
            data_ = data
        return [*members, (info, data_)]

    return edit


def newer_schema(members):
    """An edit setting the database's schema to v99, with a consistent manifest."""
    out = []
    for info, data in members:
        if info.name == backup_files.DB_MEMBER:
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "db.sqlite3"
                path.write_bytes(data)
                db = sqlite3.connect(path)
                db.execute("PRAGMA user_version = 99")
                db.close()
                data = path.read_bytes()
        out.append((info, data))
    return reseal(out)


def reseal(members):
    """Recompute the manifest's member checksums and its own checksum."""
    files = {i.name: d for i, d in members}
    manifest = json.loads(files[backup_files.MANIFEST])
    for name, data in files.items():
        if name != backup_files.MANIFEST:
            manifest["members"][name] = {
                "sha256": hashlib.sha256(data).hexdigest(),
                "size": len(data),
            }
    manifest["manifest_sha256"] = backup_files.manifest_digest(manifest)
    text = json.dumps(manifest).encode()
    return [(i, text if i.name == backup_files.MANIFEST else d) for i, d in members]


def flip(archive: Path, dest: Path, at) -> Path:
    """Copy `archive` with one byte changed at `at(data)`."""
    data = bytearray(archive.read_bytes())
    data[at(data)] ^= 0x01
    dest.write_bytes(bytes(data))
    return dest


def audio_offset(archive: Path):
    """Where the middle of the first audio.flac member's data lies in the archive."""
    with tarfile.open(archive) as tar:
        m = next(m for m in tar.getmembers() if m.name.endswith("audio.flac"))
    return lambda _: m.offset_data + m.size // 2


BAD_ARCHIVES = {
    "one byte": (
        lambda src, d: flip(src, d / "a.tar", audio_offset(src)),
        r"is damaged: cache/7/[0-9a-f]{64}/audio\.flac does not match its checksum",
    ),
    "manifest byte": (
        lambda src, d: flip(src, d / "a.tar", lambda b: b.index(b'"songs": 5') + 9),
        r"is damaged: its manifest\.json is unreadable or altered",
    ),
    "truncated": (
        lambda src, d: (
            (d / "a.tar").write_bytes(src.read_bytes()[: src.stat().st_size // 2]) and d / "a.tar"
        ),
        r"is (damaged or truncated|incomplete)",
    ),
    "truncated gz": (
        lambda src, d: truncated_gz(src, d),
        r"is damaged or truncated \(",
    ),
    "text file": (
        lambda src, d: (
            (d / "a.tar").write_text("these are not the songs you want\n") and d / "a.tar"
        ),
        r"is not a mimi backup \(not a tar archive\)",
    ),
    "../evil": (
        lambda src, d: rebuild(src, d / "a.tar", with_member("../evil")),
        r"holds an unsafe path '\.\./evil'; refusing it",
    ),
    "absolute": (
        lambda src, d: rebuild(src, d / "a.tar", with_member("/tmp/evil")),
        r"holds an unsafe path '/tmp/evil'",
    ),
    "symlink": (
        lambda src, d: rebuild(src, d / "a.tar", with_member("cache/7/ab/x", tarfile.SYMTYPE)),
        r"holds a link \('cache/7/ab/x'\), which a mimi backup never has",
    ),
    "unlisted": (
        lambda src, d: rebuild(src, d / "a.tar", with_member(f"cache/7/{'ab' * 32}/audio.flac")),
        rf"is damaged: cache/7/{'ab' * 32}/audio\.flac is not in its manifest",
    ),
    "newer schema": (
        lambda src, d: rebuild(src, d / "a.tar", newer_schema),
        rf"comes from a newer mimi \(schema v99, this mimi knows v{len(MIGRATIONS)}\); "
        "upgrade mimi first",
    ),
    "missing": (lambda src, d: d / "nothing.tar", r"The backup .*nothing\.tar does not exist"),
}


def truncated_gz(src: Path, folder: Path) -> Path:
    """A gzip-compressed copy of `src` cut in half."""
    import gzip

    whole = gzip.compress(src.read_bytes())
    (folder / "a.tar.gz").write_bytes(whole[: len(whole) // 2])
    return folder / "a.tar.gz"


@pytest.mark.parametrize("case", sorted(BAD_ARCHIVES))
def test_bad_archive_is_refused_and_changes_nothing(
    source: Source, tmp_path: Path, case: str
) -> None:
    """A damaged, hostile or missing archive is refused with a specific message; nothing changes."""
    make, message = BAD_ARCHIVES[case]
    (tmp_path / "in").mkdir()
    bad = make(source.archive, tmp_path / "in")
    target = copy_data(source, tmp_path / "target")
    before = tree(target)
    for data, force in ((target, ["--force"]), (tmp_path / "fresh", [])):
        code, out, err = run_mimi("restore", str(bad), "--data-dir", str(data), *force)
        assert (code, out) == (1, "")
        assert re.fullmatch(rf"mimi: .*{message}.*\n", err), err
    assert tree(target) == before and not (tmp_path / "fresh").exists()
    assert not (tmp_path / "evil").exists() and not Path("/tmp/evil").exists()
