"""Hostile and awkward restores: Docker volume mount points, doctored databases, bad keys, tar
bombs, leftovers of killed runs, an unwritable backup folder. Real files, real SQLite, real tar
archives, real tmpfs mounts (as root) and a real unprivileged process."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
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
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot import backup, backup_files, cli, restore_checks
from bot.cache import AUDIO_FILE, SongCache
from bot.config import Settings
from bot.owner import process_token
from bot.service import Mimi
from bot.store import NewSong, Store
from model_store.features import WEIGHTS_FILENAME
from tests.bot.helpers import can_mount, mount, run_mimi, unmount

ROOT = Path(__file__).resolve().parents[2]
GUILD, OTHER = 7, 876543210987654321
WEIGHTS = ROOT / "pretrained" / WEIGHTS_FILENAME  # never loaded here


def settings_for(data: Path) -> Settings:
    """Settings on `data` with no environment influence."""
    return Settings.load(environ={}, env_file=None, data_dir=data, frontend_weights=WEIGHTS)


def tree(root: Path) -> dict[str, str]:
    """Every file and folder under `root` (hidden ones too), files with their sha256."""
    if not root.exists():
        return {}
    return {
        p.relative_to(root).as_posix(): (
            hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        )
        for p in sorted(root.rglob("*"))
    }


def disk_usage(root: Path) -> int:
    """Bytes of disk that the files under `root` occupy."""
    total = 0
    for d, _, names in os.walk(root):
        for n in names:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(d, n)).st_blocks * 512
    return total


async def _build(data: Path, songs: dict[int, int], seed: int) -> None:
    """A data dir: `songs[guild]` songs per server, each with audio and an embedding."""
    store = await Store.open(data / "mimi.sqlite3")
    cache_ = SongCache(data / "cache")
    try:
        for guild, count in songs.items():
            for i in range(count):
                audio = os.urandom(4096) + f"{seed}-{guild}-{i}".encode()
                key = hashlib.sha256(audio).hexdigest()
                folder = cache_.song_dir(guild, key)
                folder.mkdir(parents=True)
                (folder / AUDIO_FILE).write_bytes(audio)
                (folder / "embedding.vf1m1.npy").write_bytes(os.urandom(512))
                song = NewSong(key, key, f"s{i}.mp3", "mp3", 20.0, [(0.0, 10.0), (10.0, 20.0)])
                await store.add_song(guild, f"Artist {i % 2}", song)
    finally:
        await store.close()


def make_data(data: Path, songs: dict[int, int], seed: int = 0) -> Path:
    asyncio.run(_build(data, songs, seed))
    return data


@pytest.fixture(scope="module")
def archives(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two backups: "a" (2 servers, 3 songs) and "b" (1 server, 2 other songs), and their
    source data dirs."""
    work = tmp_path_factory.mktemp("archives")
    out = {}
    for name, songs, seed in (("a", {GUILD: 2, OTHER: 1}, 1), ("b", {GUILD: 2}, 2)):
        data = make_data(work / f"data-{name}", songs, seed)
        code, _, err = run_mimi("backup", str(work / f"{name}.tar"), "--data-dir", str(data))
        assert code == 0, err
        out[name], out[f"{name}-data"] = work / f"{name}.tar", data
    return out


def song_count(data: Path) -> int:
    db = sqlite3.connect(data / "mimi.sqlite3")
    try:
        return db.execute("SELECT COUNT(*) FROM songs").fetchone()[0]
    finally:
        db.close()


def cache_files(data: Path) -> dict[str, str]:
    return {k: v for k, v in tree(data / "cache").items() if v != "dir"}


# --- mounts -------------------------------------------------------------------------------


@contextlib.contextmanager
def docker_layout(data: Path) -> Iterator[Path]:
    """data/, data/cache and data/models as three tmpfs mounts, as docker-compose.yml has."""
    if not can_mount():
        pytest.skip("needs tmpfs mounts (root with CAP_SYS_ADMIN) to build the Docker layout")
    mounted: list[Path] = []
    try:
        for path in (data, data / "cache", data / "models"):
            path.mkdir(parents=True, exist_ok=True)
            done = mount("-t", "tmpfs", "-o", "size=64m", "tmpfs", str(path))
            assert done.returncode == 0, done.stderr
            mounted.append(path)
        assert all(os.path.ismount(p) for p in mounted)
        yield data
    finally:
        for path in reversed(mounted):
            unmount(path)


def test_restore_onto_docker_volume_mount_points(
    archives: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """data/, data/cache, data/models are mount points: restore replaces their contents (fresh,
    then --force), leaves no staging behind, and a failed install puts everything back."""
    with docker_layout(tmp_path / "data") as data:
        code, out, err = run_mimi("restore", str(archives["a"]), "--data-dir", str(data), "--json")
        assert code == 0, err
        assert (json.loads(out)["songs"], song_count(data)) == (3, 3)
        assert cache_files(data) == cache_files(archives["a-data"])
        (data / "models" / "5").mkdir()
        (data / "models" / "5" / "stale").write_text("old model")
        code, _, err = run_mimi("restore", str(archives["b"]), "--data-dir", str(data), "--force")
        assert code == 0, err
        assert song_count(data) == 2
        assert cache_files(data) == cache_files(archives["b-data"])
        assert os.listdir(data / "models") == []  # b has no models: the old ones are gone
        for folder in (data, data / "cache", data / "models"):
            assert os.path.ismount(folder)
            assert not [n for n in os.listdir(folder) if n.startswith(".")], os.listdir(folder)
        before = tree(data)

        async def broken(self, source):  # the database copy fails after the folders moved
            raise sqlite3.OperationalError("disk I/O error")

        monkeypatch.setattr(Store, "restore_from", broken)
        code, _, err = run_mimi("restore", str(archives["a"]), "--data-dir", str(data), "--force")
        assert code == 1 and "disk I/O error" in err
        assert tree(data) == before and song_count(data) == 2


def test_failed_fresh_restore_on_mount_points_leaves_nothing(
    archives: dict[str, Path], tmp_path: Path
) -> None:
    """A refused restore into empty mount points leaves them empty (no mimi.sqlite3)."""
    bad = tmp_path / "bad.tar"
    edit_db(archives["a"], bad, "CREATE VIEW v AS SELECT * FROM songs")
    with docker_layout(tmp_path / "data") as data:
        before = tree(data)
        code, _, err = run_mimi("restore", str(bad), "--data-dir", str(data))
        assert code == 1 and "holds a view ('v')" in err
        assert tree(data) == before == {"cache": "dir", "models": "dir"}


# --- doctored databases ------------------------------------------------------------------


def reseal(members: list[tuple[tarfile.TarInfo, bytes]]) -> list[tuple[tarfile.TarInfo, bytes]]:
    """Recompute the manifest's member checksums and its own checksum."""
    files = {i.name: d for i, d in members}
    manifest = json.loads(files[backup_files.MANIFEST])
    manifest["members"] = {
        name: {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
        for name, data in files.items()
        if name != backup_files.MANIFEST
    }
    manifest["manifest_sha256"] = backup_files.manifest_digest(manifest)
    text = json.dumps(manifest).encode()
    return [(i, text if i.name == backup_files.MANIFEST else d) for i, d in members]


def write_tar(dest: Path, members: list[tuple[tarfile.TarInfo, bytes]]) -> Path:
    with tarfile.open(dest, "w") as tar:
        for info, data in members:
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return dest


def edit_db(src: Path, dest: Path, sql: str, cache_key: str | None = None) -> Path:
    """Copy the archive `src` to `dest` with `sql` run on its database (foreign keys off),
    resealed so that every checksum matches."""
    with tarfile.open(src) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
    out = []
    for info, data in members:
        if info.name == backup_files.DB_MEMBER:
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "db.sqlite3"
                path.write_bytes(data)
                db = sqlite3.connect(path, isolation_level=None)
                db.executescript(sql)
                db.close()
                data = path.read_bytes()
        out.append((info, data))
    return write_tar(dest, reseal(out))


FIRST_SONG = "(SELECT MIN(id) FROM songs)"
DOCTORED = {
    "user_version 0 over a full schema": (
        "PRAGMA user_version = 0",
        r"says schema v0 but already holds tables",
    ),
    "user_version -3": ("PRAGMA user_version = -3", r"has an invalid schema version \(v-3\)"),
    "dropped table": (
        "DROP TABLE training_runs",
        r"is not a mimi database: it lacks the table 'training_runs'",
    ),
    "dropped column": (
        "ALTER TABLE songs DROP COLUMN taught_by",
        r"is not a mimi database: table 'songs' lacks the column 'taught_by'",
    ),
    "extra table": (
        "CREATE TABLE notes (x)",
        r"is not a mimi database: it has an unexpected table 'notes'",
    ),
    "extra index": (
        "CREATE INDEX sneaky ON songs (filename)",
        r"is not a mimi database: it has an unexpected index 'sneaky'",
    ),
    "trigger": (
        "CREATE TRIGGER t AFTER INSERT ON songs BEGIN"
        " DELETE FROM songs WHERE guild_id <> NEW.guild_id; END",
        r"holds a trigger \('t'\), which a mimi database never has",
    ),
    "view": ("CREATE VIEW v AS SELECT * FROM songs", r"holds a view \('v'\)"),
    "clip of another server's song": (
        f"INSERT INTO clips (guild_id, song_id, idx, start_s, end_s)"
        f" VALUES ({OTHER}, (SELECT MIN(id) FROM songs WHERE guild_id = {GUILD}), 9, 0, 1)",
        r"is inconsistent: 1 row\(s\) point at rows that do not exist \(first: clips row",
    ),
    "negative server id": (
        "INSERT INTO guilds (id, created_at) VALUES (-5, 'x')",
        r"holds an invalid server id -5 in guilds",
    ),
    "text server id": (
        "PRAGMA foreign_keys = OFF; UPDATE training_runs SET guild_id = 'x'; "
        "INSERT INTO training_runs (guild_id, status, reason) VALUES ('../x', 'failed', 'r')",
        r"holds an invalid server id '\.\./x' in training_runs",
    ),
    "path in a song key": (
        f"UPDATE songs SET audio_sha256 = '../../x/victim' WHERE id = {FIRST_SONG}",
        r"holds a song with an invalid key '\.\./\.\./x/victim'",
    ),
    "upper-case song key": (
        f"UPDATE songs SET audio_sha256 = upper(audio_sha256) WHERE id = {FIRST_SONG}",
        r"holds a song with an invalid key '[0-9A-F]{64}'",
    ),
}


@pytest.mark.parametrize("case", sorted(DOCTORED))
def test_doctored_database_is_refused_before_anything_is_installed(
    archives: dict[str, Path], tmp_path: Path, case: str
) -> None:
    """The staged database, migrated by the real Store, must match a fresh one exactly, hold
    no trigger or view, break no foreign key and hold only valid ids and keys; otherwise the
    restore is refused and the previous install (and a fresh dir) is untouched."""
    sql, message = DOCTORED[case]
    bad = edit_db(archives["a"], tmp_path / "bad.tar", sql)
    target = tmp_path / "target"
    assert run_mimi("restore", str(archives["b"]), "--data-dir", str(target))[0] == 0
    before = tree(target)
    for data, force in ((target, ["--force"]), (tmp_path / "fresh", [])):
        code, out, err = run_mimi("restore", str(bad), "--data-dir", str(data), *force)
        assert (code, out) == (1, ""), err
        assert re.fullmatch(rf"mimi: The database in .*{message}.*\n", err), err
    assert tree(target) == before and song_count(target) == 2
    assert not (tmp_path / "fresh").exists() and not (tmp_path / "x").exists()


def test_expected_schema_comes_from_a_fresh_store(tmp_path: Path) -> None:
    """The reference schema is whatever Store.open creates now (so new migrations count), and
    a database migrated from v1 matches it."""
    from bot.migrations import MIGRATIONS

    expected = asyncio.run(restore_checks.expected_schema())
    assert {"guilds", "artists", "songs", "clips", "training_runs"} <= set(expected["tables"])
    old = tmp_path / "v1.sqlite3"
    db = sqlite3.connect(old, isolation_level=None)
    db.executescript(f"{MIGRATIONS[0]}; PRAGMA user_version = 1;")
    db.close()

    async def migrated() -> dict:
        store = await Store.open(old)
        try:
            return await store.describe_schema()
        finally:
            await store.close()

    assert restore_checks.schema_difference(expected, asyncio.run(migrated())) is None


# --- keys -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key", ["../../x/victim", "ab" * 31, "AB" * 32, "ab" * 32 + "/..", "g" * 64, "", 7]
)
def test_song_dir_accepts_only_sha256_keys(tmp_path: Path, key: object) -> None:
    """SongCache.song_dir, the one function building cache paths, takes 64 lowercase hex."""
    cache_ = SongCache(tmp_path)
    assert cache_.song_dir(3, "ab" * 32) == tmp_path / "3" / ("ab" * 32)
    with pytest.raises(ValueError, match="bad song key"):
        cache_.song_dir(3, key)  # type: ignore[arg-type]
    for guild in (-1, 2**63, "3", 3.0):
        with pytest.raises(ValueError, match="bad guild id"):
            cache_.song_dir(guild, "ab" * 32)  # type: ignore[arg-type]


def test_backup_builds_cache_paths_through_song_dir(
    archives: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """backup asks SongCache.song_dir for every song's folder (no hand-built paths)."""
    asked, real = [], SongCache.song_dir

    def spy(self, guild_id, key):
        asked.append((guild_id, key))
        return real(self, guild_id, key)

    monkeypatch.setattr(SongCache, "song_dir", spy)
    code, _, err = run_mimi(
        "backup", str(tmp_path / "b.tar"), "--data-dir", str(archives["a-data"])
    )
    assert code == 0, err
    assert len(asked) == 3


def test_archive_member_with_a_bad_key_is_refused(archives: dict[str, Path], tmp_path: Path):
    """A cache member whose key is not a sha256 is refused by name, before anything is written."""
    with tarfile.open(archives["a"]) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
    info = tarfile.TarInfo(f"cache/{GUILD}/{'AB' * 32}/audio.flac")
    bad = write_tar(tmp_path / "bad.tar", reseal([(info, b"x"), *members]))
    code, _, err = run_mimi("restore", str(bad), "--data-dir", str(tmp_path / "fresh"))
    assert code == 1 and f"holds 'cache/{GUILD}/{'AB' * 32}/audio.flac'" in err
    assert not (tmp_path / "fresh").exists()


def test_every_member_goes_through_the_data_filter(
    archives: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """tarfile's PEP 706 "data" filter vets each member (under mimi's own stricter checks)."""
    seen, real = [], tarfile.data_filter

    def spy(member, dest):
        seen.append(member.name)
        return real(member, dest)

    monkeypatch.setattr(tarfile, "data_filter", spy)
    code, _, err = run_mimi("restore", str(archives["a"]), "--data-dir", str(tmp_path / "r"))
    assert code == 0, err
    with tarfile.open(archives["a"]) as tar:
        names = tar.getnames()
    assert sorted(set(seen)) == sorted(names) and len(seen) == 2 * len(names)  # both passes


# --- tar bombs ------------------------------------------------------------------------------


class DiskWatch:
    """The largest disk usage under `root` seen while the block runs (sampled every 5 ms)."""

    def __init__(self, root: Path) -> None:
        self.root, self.peak, self._stop = root, 0, threading.Event()

    def __enter__(self) -> DiskWatch:
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()
        return self

    def _watch(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, disk_usage(self.root))

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.thread.join()
        self.peak = max(self.peak, disk_usage(self.root))


GIB = 1 << 30


def manifest_for(members: dict[str, tuple[str, int]]) -> bytes:
    """An honest, correctly sealed manifest for (sha256, size) members."""
    manifest = {
        "format": backup_files.FORMAT, "format_version": 1, "schema_version": 1,
        "created_at": "2026-01-01T00:00:00+00:00", "counts": {}, "skipped_songs": [],
        "members": {n: {"sha256": s, "size": z} for n, (s, z) in members.items()},
    }  # fmt: skip
    manifest["manifest_sha256"] = backup_files.manifest_digest(manifest)
    return json.dumps(manifest).encode()


@pytest.fixture(scope="module")
def gzip_bomb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ~2 MB .tar.gz whose database member (honestly listed in a sealed manifest) expands
    to 2 GiB of zeros: gzip members of 64 MiB of zeros, concatenated."""
    path = tmp_path_factory.mktemp("bomb") / "bomb.tar.gz"
    chunk, copies = 64 << 20, 32
    zeros = b"\0" * chunk
    sha = hashlib.sha256()
    for _ in range(copies):
        sha.update(zeros)
    info = tarfile.TarInfo(backup_files.DB_MEMBER)
    info.size = chunk * copies
    block = gzip.compress(zeros, 9)
    manifest = manifest_for({backup_files.DB_MEMBER: (sha.hexdigest(), info.size)})
    tail = io.BytesIO()
    with tarfile.open(fileobj=tail, mode="w") as tar:
        m = tarfile.TarInfo(backup_files.MANIFEST)
        m.size = len(manifest)
        tar.addfile(m, io.BytesIO(manifest))
    with path.open("wb") as f:
        f.write(gzip.compress(info.tobuf(tarfile.GNU_FORMAT)))
        for _ in range(copies):
            f.write(block)
        f.write(gzip.compress(tail.getvalue()))
    assert path.stat().st_size < 3 << 20
    with gzip.open(path) as g:  # really a tar of 2 GiB + the manifest: tarfile reads it
        assert g.read(512)[:12] == b"mimi.sqlite3"
    return path


def sparse_tar(folder: Path) -> Path:
    """A ~10 KB GNU tar whose database member is a sparse file claiming 2 GiB (GNU tar -S)."""
    src = folder / "src"
    src.mkdir()
    with (src / backup_files.DB_MEMBER).open("wb") as f:
        f.truncate(2 * GIB)
    manifest = manifest_for({backup_files.DB_MEMBER: (hashlib.sha256(b"").hexdigest(), 2 * GIB)})
    (src / backup_files.MANIFEST).write_bytes(manifest)
    out = folder / "sparse.tar"
    subprocess.run(
        ["tar", "--sparse", "--format=gnu", "-cf", str(out), "-C", str(src),
         backup_files.DB_MEMBER, backup_files.MANIFEST],
        check=True,
    )  # fmt: skip
    return out


@pytest.mark.parametrize("kind", ["gzip bomb", "sparse", "over --max-bytes"])
def test_tar_bombs_are_refused_without_writing(
    archives: dict[str, Path], gzip_bomb: Path, tmp_path: Path, kind: str
) -> None:
    """A 2 MB .tar.gz expanding to 2 GiB, a 10 KB sparse tar claiming 2 GiB, and a genuine
    backup over --max-bytes are refused from their headers: at most a few MB ever land in the
    data dir (its disk usage is watched throughout), and an existing install is unchanged."""
    extra: list[str] = []
    if kind == "gzip bomb":
        bad, message = gzip_bomb, r"claims to expand to more than 16× its size"
    elif kind == "sparse":
        if not shutil.which("tar"):
            pytest.skip("needs GNU tar to write a sparse member")
        bad = sparse_tar(tmp_path)
        assert bad.stat().st_size < 64 << 10
        with tarfile.open(bad) as tar:
            assert tar.getmember(backup_files.DB_MEMBER).issparse()
        message = r"holds a sparse file \('mimi\.sqlite3'\)"
    else:
        bad, message, extra = (
            archives["a"],
            r"would write more than 0\.0 MiB",
            ["--max-bytes", "4K"],
        )
    target = tmp_path / "target"
    assert run_mimi("restore", str(archives["b"]), "--data-dir", str(target))[0] == 0
    before, baseline = tree(target), disk_usage(target)
    for data, force in ((target, ["--force"]), (tmp_path / "fresh", [])):
        data.mkdir(exist_ok=True)
        with DiskWatch(data) as watch:
            code, out, err = run_mimi("restore", str(bad), "--data-dir", str(data), *force, *extra)
        assert (code, out) == (1, ""), err
        assert re.fullmatch(rf"mimi: .*{message}.*\n", err), err
        assert watch.peak - (baseline if data == target else 0) < 4 << 20
    assert tree(target) == before
    assert tree(tmp_path / "fresh") == {}


def test_manifest_is_read_first_even_though_it_is_written_last(
    archives: dict[str, Path], tmp_path: Path
) -> None:
    """A member whose header disagrees with the manifest's size is refused before any byte of
    the archive is extracted (the manifest sits at the end of the tar)."""
    with tarfile.open(archives["a"]) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
    assert members[-1][0].name == backup_files.MANIFEST
    sealed = reseal(members)
    names = [i.name for i, _ in sealed]
    audio = next(i for i, n in enumerate(names) if n.endswith(AUDIO_FILE))
    info, data = sealed[audio]
    sealed[audio] = (info, data + b"longer than the manifest says")  # header grows with it
    bad = write_tar(tmp_path / "bad.tar", sealed)
    data_dir = tmp_path / "fresh"
    data_dir.mkdir()
    with DiskWatch(data_dir) as watch:
        code, _, err = run_mimi("restore", str(bad), "--data-dir", str(data_dir))
    assert code == 1 and "does not match its manifest's size" in err
    assert watch.peak == 0 and os.listdir(data_dir) == []


# --- leftovers ------------------------------------------------------------------------------


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def plant(data: Path, token: str, *, committed: bool, phase: str = "in") -> None:
    """What a restore killed mid-install leaves: staging in data/ (with the database), the old
    cache set aside and the new one moved in (phase "in"), and models staging."""
    (data / f".restore-{token}").mkdir()
    (data / f".restore-{token}" / backup_files.DB_MEMBER).write_bytes(b"staged")
    if committed:
        (data / f".restore-{token}" / backup_files.COMMITTED).touch()
    aside = data / "cache" / f".replaced-{token}"
    aside.mkdir(parents=True)
    (aside / backup_files.PHASE_FILE).write_text(phase)
    (aside / "99").mkdir()
    (aside / "99" / "old").write_text("old cache")
    (data / "cache" / "98").mkdir()
    (data / "cache" / "98" / "new").write_text("new cache")
    (data / "models" / f".restore-{token}" / "5").mkdir(parents=True)


async def _open_and_close(settings: Settings) -> None:
    async with await Mimi.open(settings):
        pass


def test_leftovers_of_killed_restores_are_swept_at_start(tmp_path: Path) -> None:
    """Mimi.open rolls back a dead restore that never committed (old cache back), finishes a
    committed one, and never touches the folders of a restore whose process still runs."""
    start = process_token().split(":")[1].replace("?", "x")
    dead = f"{dead_pid()}_1-deadbeef"
    for name, committed in (("undo", False), ("done", True)):
        data = tmp_path / name
        (data / "models").mkdir(parents=True)
        plant(data, dead, committed=committed)
        asyncio.run(_open_and_close(settings_for(data)))
        cache_ = {k for k, v in tree(data / "cache").items() if v != "dir"}
        assert cache_ == ({"99/old"} if name == "undo" else {"98/new"}), cache_
        assert not [n for n in os.listdir(data) if n.startswith(".")]
        assert not [n for n in os.listdir(data / "cache") if n.startswith(".")]
        assert os.listdir(data / "models") == []
    live = tmp_path / "live"
    (live / "models").mkdir(parents=True)
    token = f"{os.getpid()}_{start}-cafef00d"
    plant(live, token, committed=False)
    before = tree(live)
    asyncio.run(_open_and_close(settings_for(live)))
    assert {k: v for k, v in tree(live).items() if not k.startswith("mimi.sqlite3")} == {
        k: v for k, v in before.items() if not k.startswith("mimi.sqlite3")
    }
    code, _, err = run_mimi("restore", str(tmp_path / "x.tar"), "--data-dir", str(live))
    assert code == 1 and "does not exist" in err  # ... and the live restore is left alone
    assert (live / f".restore-{token}").is_dir()
    reused = f"{os.getpid()}_1-0badf00d"  # this pid, but another process's start time
    (tmp_path / "reused" / "models").mkdir(parents=True)
    plant(tmp_path / "reused", reused, committed=True)
    assert backup_files.sweep_leftovers(settings_for(tmp_path / "reused")) == [f".restore-{reused}"]


def test_restore_sweeps_dead_leftovers_and_refuses_beside_a_live_one(
    archives: dict[str, Path], tmp_path: Path
) -> None:
    """restore tidies a dead restore's folders first; while another restore runs (its pid is
    alive), it refuses rather than touch that restore's data."""
    data = tmp_path / "data"
    (data / "models").mkdir(parents=True)
    plant(data, f"{dead_pid()}_1-deadbeef", committed=False)
    code, _, err = run_mimi("restore", str(archives["a"]), "--data-dir", str(data), "--force")
    assert code == 0, err
    for folder in (data, data / "cache", data / "models"):
        assert not [n for n in os.listdir(folder) if n.startswith(".")]
    start = process_token().split(":")[1].replace("?", "x")
    (data / f".restore-{os.getpid()}_{start}-cafef00d").mkdir()
    code, _, err = run_mimi("restore", str(archives["a"]), "--data-dir", str(data), "--force")
    assert code == 1 and f"Another restore (pid {os.getpid()}) is running" in err


def test_killed_backup_partials_are_swept_by_the_next_backup(
    archives: dict[str, Path], tmp_path: Path
) -> None:
    """A killed backup's `.NAME.<token>.partial` folder goes at the next backup into that
    folder; a running backup's stays."""
    out = tmp_path / "backups"
    out.mkdir()
    start = process_token().split(":")[1].replace("?", "x")
    dead = out / f".mimi-backup-20260101-000000.tar.{dead_pid()}_1-deadbeef.partial"
    live = out / f".nightly.tar.gz.{os.getpid()}_{start}-cafef00d.partial"
    for folder in (dead, live):
        folder.mkdir()
        (folder / "archive").write_bytes(b"half an archive")
    code, _, err = run_mimi("backup", f"{out}/", "--data-dir", str(archives["a-data"]))
    assert code == 0, err
    assert not dead.exists() and live.is_dir()
    assert len([n for n in os.listdir(out) if not n.startswith(".")]) == 1


# --- an unwritable backup folder --------------------------------------------------------------


def run_as(uid: int, argv: list[str]) -> tuple[int, str]:
    """`mimi ARGV` in a forked child that has become `uid` (when root): exit code, stderr."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        code = 98
        try:
            os.close(read)
            if os.geteuid() == 0:
                os.setgroups([])
                os.setgid(uid)
                os.setuid(uid)
            err = io.StringIO()
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                code = cli.main(argv)
            os.write(write, err.getvalue().encode())
        except BaseException as exc:  # reported to the parent
            os.write(write, repr(exc).encode())
        finally:
            os._exit(code)
    os.close(write)
    with os.fdopen(read, "rb") as f:
        stderr = f.read().decode()
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), stderr


def test_unwritable_backup_folder_says_what_to_run(
    archives: dict[str, Path], tmp_path: Path
) -> None:
    """`mimi backup /backups/` into a folder mimi's user may not write (Docker creates
    ./backups as root; mimi runs as uid 10001) fails with a real EACCES, and the message says
    exactly what to run instead of "unexpected error: PermissionError"."""
    base = Path(tempfile.mkdtemp(prefix="mimi-perm-"))
    try:
        base.chmod(0o755)
        data, backups = base / "data", base / "backups"
        make_data(data, {GUILD: 1})
        backups.mkdir()
        backups.chmod(0o555)  # root's, like the folder Docker creates
        argv = ["backup", f"{backups}/", "--data-dir", str(data)]
        uid = 65534 if os.geteuid() == 0 else os.getuid()  # root: a real unprivileged user
        if os.geteuid() == 0:
            subprocess.run(["chown", "-R", f"{uid}:{uid}", str(data)], check=True)
        code, stderr = run_as(uid, argv)
        assert code == 1, stderr
        assert "unexpected error" not in stderr
        assert stderr == (
            f"mimi: mimi (uid {uid}) may not write to {backups}: run `sudo chown {uid}:{uid} "
            f"{backups}`, or back up into a folder you own.\n"
        )
        assert os.listdir(backups) == []
    finally:
        subprocess.run(["rm", "-rf", str(base)], check=False)


def test_unwritable_message_in_docker_names_the_host_folder(monkeypatch) -> None:
    """Inside the container the fix is on the host: the compose file's ./backups."""
    import errno

    real = Path.exists
    monkeypatch.setattr(Path, "exists", lambda p: str(p) == "/.dockerenv" or real(p))
    err = backup.not_writable(Path("/backups"), PermissionError(errno.EACCES, "denied"))
    uid, gid = os.getuid(), os.getgid()
    assert err.code == "backup_folder_not_writable"
    assert f"on the Docker host run `sudo chown {uid}:{gid} ./backups`" in err.message


def test_gzip_bomb_fixture_really_expands(gzip_bomb: Path) -> None:
    """The bomb is what it claims: its first member's header says 2 GiB."""
    with gzip.open(gzip_bomb) as g:
        head = tarfile.TarInfo.frombuf(g.read(512), "utf-8", "surrogateescape")
    assert head.size == 2 * GIB
