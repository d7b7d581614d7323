"""Guild isolation: random interleavings of teach/forget/train/guess never cross guild lines."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, note
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)

from bot import cli_model
from bot.cache import AUDIO_FILE
from bot.config import Settings
from bot.errors import DuplicateSong, MimiError, NoModel, NotFound
from bot.guess_job import guess_file
from bot.inference import guess_config
from bot.ingest import IngestConfig, ingest_file
from bot.service import Mimi
from bot.training import TrainingService
from model_store.registry import CURRENT_FILE, ModelRegistry
from tests.audio_factory import encode

GUILDS = (1, 2**62, 0)  # small, huge (still a signed 64-bit int) and zero
# Spellings shared by every guild, with their identity written out by hand (not via name_key).
NAME_KEYS = {
    "AAA": "aaa",
    "ａａａ": "aaa",
    "aaa": "aaa",
    "Beta": "beta",
    "Straße": "strasse",
    "STRASSE": "strasse",
}
KEEP = 1  # model versions kept per guild: the current one only, so a second training prunes
MAX_TRAININGS = 2  # successful trainings per example (each costs seconds of TensorFlow)
SONG_SECONDS = 12.0  # long enough for one 10 s clip


@dataclass(frozen=True)
class AudioFile:
    """A pre-encoded song and what ingesting it must yield (the same in every guild)."""

    path: Path
    audio_key: str
    seconds: float
    clips: int
    format: str

    def __repr__(self) -> str:
        return self.path.name


def load(weights: Path, data_dir: Path) -> Settings:
    """Settings for a data dir with no environment or .env influence."""
    return Settings.load(
        environ={}, env_file=None, data_dir=data_dir, frontend_weights=weights, models_keep=KEEP
    )


@pytest.fixture(scope="module")
def audio_pool(tmp_path_factory: pytest.TempPathFactory, frontend_weights: Path) -> list[AudioFile]:
    """Distinct-voice songs in several formats, plus a FLAC twin of the WAV (same audio)."""
    folder = tmp_path_factory.mktemp("pool")
    specs = [("mp3", 0), ("ogg", 1), ("opus", 2), ("m4a", 3), ("wav", 4), ("flac", 4)]
    paths = [
        encode(folder / f"voice{v}.{fmt}", fmt, SONG_SECONDS, voice=v, seed=v) for fmt, v in specs
    ]
    oracle = dataclasses.replace(
        IngestConfig.from_settings(load(frontend_weights, folder / "oracle")), weights=None
    )
    pool = []
    for path in paths:
        got = ingest_file(path, 0, oracle)  # decoding only: no embeddings
        pool.append(AudioFile(path, got.audio_sha256, got.seconds, len(got.clips), got.format))
    assert len({a.audio_key for a in pool}) == len(pool) - 1, "only the FLAC twin repeats audio"
    assert pool[-1].audio_key == pool[-2].audio_key and all(a.clips >= 1 for a in pool)
    return pool


@dataclass
class GuildModel:
    """What one guild must hold: its songs, artist spellings, models and training runs."""

    songs: dict[int, tuple[str, AudioFile]] = field(default_factory=dict)  # id -> (key, file)
    names: dict[str, str] = field(default_factory=dict)  # artist key -> display name
    models: list[tuple[int, dict[str, list[int]]]] = field(default_factory=list)
    model_keys: dict[int, dict[str, set[str]]] = field(default_factory=dict)  # audio keys used
    runs: list[tuple[str, str, int | None]] = field(default_factory=list)  # oldest first

    def snapshot(self) -> dict[str, list[int]]:
        """Display name -> song ids, as a training now would record it."""
        out: dict[str, list[int]] = {}
        for song_id, (key, _) in sorted(self.songs.items()):
            out.setdefault(self.names[key], []).append(song_id)
        return out

    def snapshot_keys(self) -> dict[str, set[str]]:
        """Display name -> audio keys, as a training now would record them."""
        out: dict[str, set[str]] = {}
        for key, audio in self.songs.values():
            out.setdefault(self.names[key], set()).add(audio.audio_key)
        return out

    def served_artists(self) -> set[str] | None:
        """The latest model's artists that may still be named (a stored song it learned them
        from remains); None when it is withdrawn (fewer than 2) or there is no model."""
        if not self.models:
            return None
        live = {a.audio_key for _, a in self.songs.values()}
        used = self.model_keys[self.models[-1][0]]
        names = {name for name, keys in used.items() if keys & live}
        return names if len(names) >= 2 else None

    def forget(self, song_id: int) -> None:
        """Drop a song, and its artist when it was the last one."""
        key, _ = self.songs.pop(song_id)
        if all(k != key for k, _ in self.songs.values()):
            del self.names[key]


class IsolationMachine(RuleBasedStateMachine):
    """Three guilds sharing artist names and audio files, driven through the real service."""

    song_ids = Bundle("song_ids")

    def __init__(self, weights: Path, pool: list[AudioFile]) -> None:
        super().__init__()
        self.pool = pool
        self.tmp = Path(tempfile.mkdtemp(prefix="mimi-iso-"))
        self.settings = load(weights, self.tmp / "data")
        self.loop = asyncio.new_event_loop()
        self.mimi: Mimi = self.loop.run_until_complete(Mimi.open(self.settings))
        self.registry = ModelRegistry(self.settings.models_dir, keep=KEEP)
        self.model = {g: GuildModel() for g in GUILDS}
        self.touched: set[int] = set()  # guilds with a row in the guilds table
        self.trainings = 0
        self.known_ids: set[int] = set()  # every song id ever taught, in any guild

    def run(self, coro):
        """Run a coroutine on this machine's own event loop."""
        return self.loop.run_until_complete(coro)

    # --- rules ---------------------------------------------------------------------------

    @initialize(target=song_ids, guilds=st.permutations(GUILDS), data=st.data())
    def seed_shared_song(self, guilds: list[int], data: st.DataObject):
        """Every example starts with one trainable guild and its first song (same audio, a width
        variant of the name) also taught to a second guild."""
        first, second = data.draw(st.permutations(self.pool[:4]).map(lambda p: p[:2]))
        return multiple(
            self.teach(guilds[0], "AAA", first),
            self.teach(guilds[0], "Beta", second),
            self.teach(guilds[1], "ａａａ", first),
        )

    @rule(
        target=song_ids,
        guild=st.sampled_from(GUILDS),
        name=st.sampled_from(sorted(NAME_KEYS)),
        file=st.sampled_from(range(6)),
    )
    def teach_song(self, guild: int, name: str, file: int):
        """Teach a file as an artist: a new song, or DuplicateSong when this guild has it."""
        song_id = self.teach(guild, name, self.pool[file])
        return multiple() if song_id is None else song_id

    def teach(self, guild: int, name: str, audio: AudioFile) -> int | None:
        """Teach through the service and check the result against the model."""
        model, key = self.model[guild], NAME_KEYS[name]
        dup = [i for i, (_, a) in model.songs.items() if a.audio_key == audio.audio_key]
        if dup:
            same_file = model.songs[dup[0]][1] == audio
            event(f"teach: duplicate in this guild ({'same file' if same_file else 'FLAC twin'})")
            with pytest.raises(DuplicateSong) as err:
                self.run(self.mimi.teach(guild, name, audio.path))
            assert err.value.song_id == dup[0]
            return None
        others = [g for g in GUILDS if g != guild and self.has_audio(g, audio)]
        event(f"teach: audio also in {len(others)} other guild(s)")
        song = self.run(self.mimi.teach(guild, name, audio.path))
        shown = model.names.setdefault(key, name)
        assert song.guild_id == guild and song.artist == shown
        assert (song.audio_sha256, song.clips, song.format) == (
            audio.audio_key,
            audio.clips,
            audio.format,
        )
        assert song.filename == audio.path.name and song.duration_s == round(audio.seconds, 3)
        assert all(song.id not in self.model[g].songs for g in GUILDS)
        model.songs[song.id] = (key, audio)
        self.known_ids.add(song.id)
        self.touched.add(guild)
        return song.id

    def has_audio(self, guild: int, audio: AudioFile) -> bool:
        """Whether a guild holds a song with this audio."""
        return any(a.audio_key == audio.audio_key for _, a in self.model[guild].songs.values())

    @rule(guild=st.sampled_from(GUILDS), song_id=song_ids)
    def forget_song(self, guild: int, song_id: int) -> None:
        """Forget a song by id: only this guild's own ids work; any other id is NotFound."""
        model = self.model[guild]
        if song_id not in model.songs:
            owner = [g for g in GUILDS if song_id in self.model[g].songs]
            event("forget_song: another guild's id" if owner else "forget_song: gone id")
            with pytest.raises(NotFound):
                self.run(self.mimi.forget_song(guild, song_id))
            return
        event("forget_song: own id")
        for other in GUILDS:  # first the guilds it does not belong to: nothing may change
            if other != guild:
                with pytest.raises(NotFound):
                    self.run(self.mimi.forget_song(other, song_id))
                self.check_all()
        song = self.run(self.mimi.forget_song(guild, song_id))
        assert (song.id, song.guild_id) == (song_id, guild)
        model.forget(song_id)

    @rule(guild=st.sampled_from(GUILDS), name=st.sampled_from(sorted(NAME_KEYS)))
    def forget_artist(self, guild: int, name: str) -> None:
        """Forget an artist by any spelling: removes exactly this guild's songs of that artist."""
        model, key = self.model[guild], NAME_KEYS[name]
        if key not in model.names:
            event("forget_artist: not in this guild")
            with pytest.raises(NotFound):
                self.run(self.mimi.forget_artist(guild, name))
            return
        event("forget_artist: own artist")
        removed = self.run(self.mimi.forget_artist(guild, name))
        expected = sorted(i for i, (k, _) in model.songs.items() if k == key)
        assert sorted(s.id for s in removed) == expected
        assert {(s.guild_id, s.artist) for s in removed} == {(guild, model.names[key])}
        for song_id in expected:
            model.forget(song_id)

    def ready(self) -> list[int]:
        """Guilds with at least 2 artists (training can publish)."""
        return [g for g, m in self.model.items() if len(m.names) >= 2]

    @rule(guild=st.sampled_from(GUILDS), probe=st.sampled_from(range(6)))
    def train(self, guild: int, probe: int) -> None:
        """Train any guild: one with fewer than 2 artists gets a failed run of its own only."""
        self.train_guild(guild, probe)

    @precondition(lambda self: self.ready() and self.trainings < MAX_TRAININGS)
    @rule(data=st.data(), probe=st.sampled_from(range(6)))
    def train_ready(self, data: st.DataObject, probe: int) -> None:
        """Train a guild that can publish (kept separate so publishing is common)."""
        self.train_guild(data.draw(st.sampled_from(self.ready()), label="guild"), probe)

    def train_guild(self, guild: int, probe: int) -> None:
        """Train as `mimi train` does: a new version and run for this guild only; then the probe
        file is guessed with the new model, and guilds without a model still have none."""
        model = self.model[guild]
        args = argparse.Namespace(guild=guild, model="musicnn", json=True)
        if len(model.names) < 2:
            event("train: too few artists")
            with pytest.raises(MimiError) as err:
                self.run(cli_model.train(args, self.mimi, lambda *_: None))
            assert err.value.code == "too_few_artists"
            model.runs.append(("failed", "cli", None))
            self.touched.add(guild)
            return
        if self.trainings >= MAX_TRAININGS:
            event("train: skipped (budget)")
            return
        event(f"train: publishes v{len(model.models) + 1}")
        self.trainings += 1
        assert self.run(cli_model.train(args, self.mimi, lambda *_: None)) == 0
        version = model.models[-1][0] + 1 if model.models else 1
        model.models.append((version, model.snapshot()))
        model.model_keys[version] = model.snapshot_keys()
        model.runs.append(("succeeded", "cli", version))
        self.touched.add(guild)
        for g in GUILDS:  # answers only from this guild's new model; NoModel where none
            if g == guild or not self.model[g].models:
                self.guess_in(g, probe)

    @rule(guild=st.sampled_from(GUILDS), file=st.sampled_from(range(6)))
    def guess(self, guild: int, file: int) -> None:
        """Guess in any guild: NoModel where it has none, even if other guilds have one (each
        training also guesses with the model it published)."""
        self.guess_in(guild, file)

    def guess_in(self, guild: int, file: int) -> None:
        """Guess with this guild's model: only its own artists can come back."""
        model, config = self.model[guild], guess_config(self.settings)
        path = self.pool[file].path
        if not model.models:
            event("guess: no model")
            with pytest.raises(NoModel):
                self.run(asyncio.to_thread(guess_file, path, guild, config))
            return
        event("guess: answered")
        version, snapshot = model.models[-1]
        result = self.run(asyncio.to_thread(guess_file, path, guild, config))
        assert result["model_version"] == version
        assert set(result["artists"]) == set(snapshot)
        assert {t["artist"] for t in result["top"]} <= set(snapshot)
        assert {w["artist"] for w in result["windows"]} <= set(snapshot)

    @rule(guild=st.sampled_from(GUILDS), song_id=song_ids)
    def read_song(self, guild: int, song_id: int) -> None:
        """Reading a song by id: this guild's own, else NotFound (even if another guild has it)."""
        own = self.model[guild].songs.get(song_id)
        event(f"read_song: {'own' if own else 'foreign or gone'} id")
        if own is None:
            with pytest.raises(NotFound):
                self.run(self.mimi.store.song(guild, song_id))
            assert self.run(self.mimi.store.clips(guild, song_id)) == []
            return
        song = self.run(self.mimi.store.song(guild, song_id))
        assert (song.guild_id, song.audio_sha256) == (guild, own[1].audio_key)

    @rule()
    def restart(self) -> None:
        """Close and reopen the service (the cache sweep on open must spare every guild's files)."""
        event("restart")
        self.run(self.mimi.close())
        self.mimi = self.run(Mimi.open(self.settings))

    # --- invariants ------------------------------------------------------------------------

    def check_all(self) -> None:
        """Every invariant, now (mid-rule)."""
        self.store_views_match()
        self.ids_readable_only_by_owner()
        self.database_totals_match()
        self.cache_folders_belong_to_their_guild()
        self.models_belong_to_their_guild()

    @invariant()
    def ids_readable_only_by_owner(self) -> None:
        """Every song id ever taught reads as NotFound (and no clips) in every other guild."""
        for song_id in sorted(self.known_ids):
            for guild, model in self.model.items():
                if song_id in model.songs:
                    assert self.run(self.mimi.store.song(guild, song_id)).guild_id == guild
                    continue
                with pytest.raises(NotFound):
                    self.run(self.mimi.store.song(guild, song_id))
                assert self.run(self.mimi.store.clips(guild, song_id)) == []

    @invariant()
    def store_views_match(self) -> None:
        """Store and service views of each guild equal the model, and only it."""
        store = self.mimi.store
        for guild, model in self.model.items():
            songs = self.run(store.songs(guild))
            assert [s.id for s in songs] == sorted(model.songs)
            for s in songs:
                key, audio = model.songs[s.id]
                assert (s.guild_id, s.artist, s.audio_sha256, s.clips) == (
                    guild,
                    model.names[key],
                    audio.audio_key,
                    audio.clips,
                )
            for name, key in NAME_KEYS.items():
                by_artist = self.run(store.songs(guild, name))
                assert [s.id for s in by_artist] == sorted(
                    i for i, (k, _) in model.songs.items() if k == key
                )
            expected = {}
            for key, shown in model.names.items():
                mine = [a for k, a in model.songs.values() if k == key]
                minutes = round(sum(round(a.seconds, 3) for a in mine) / 60, 2)
                expected[shown] = (len(mine), sum(a.clips for a in mine), minutes)
            artists = self.run(self.mimi.artists(guild))
            assert {a.name: (a.songs, a.clips, a.minutes) for a in artists} == expected
            rows = self.run(store.training_songs(guild))
            assert [(i, a, k, len(c)) for i, a, k, c in rows] == [
                (i, model.names[k], a.audio_key, a.clips)
                for i, (k, a) in sorted(model.songs.items())
            ]
            stats = self.run(self.mimi.stats(guild))
            assert stats["guild"] == guild and stats["songs"] == len(model.songs)
            assert stats["clips"] == sum(a.clips for _, a in model.songs.values())
            assert {a["name"] for a in stats["artists"]} == set(expected)
            served = model.served_artists()  # forgotten artists are never shown
            if served is not None:
                assert stats["model"]["version"] == model.models[-1][0]
                assert set(stats["model"]["artists"]) == served
            else:
                assert stats["model"] is None
                assert stats["model_withdrawn"] == bool(model.models)
            runs = [(r["status"], r["reason"], r["model_version"]) for r in stats["runs"]]
            assert runs == model.runs[::-1][:5]
            all_runs = self.run(store.runs(guild, limit=1000))
            assert [(r["status"], r["reason"], r["model_version"]) for r in all_runs] == (
                model.runs[::-1]
            )

    @invariant()
    def database_totals_match(self) -> None:
        """Whole-database counts and listings add up to the per-guild models, nothing more."""
        store = self.mimi.store
        everyone = {i: g for g, m in self.model.items() for i in m.songs}
        assert {s.id: s.guild_id for s in self.run(store.all_songs())} == everyone
        assert self.run(store.counts()) == {
            "guilds": len(self.touched),
            "artists": sum(len(m.names) for m in self.model.values()),
            "songs": len(everyone),
            "clips": sum(a.clips for m in self.model.values() for _, a in m.songs.values()),
        }
        assert self.run(store.guild_ids()) == sorted(g for g, m in self.model.items() if m.songs)
        assert sorted(self.run(store.song_keys())) == sorted(
            (g, a.audio_key) for g, m in self.model.items() for _, a in m.songs.values()
        )

    @invariant()
    def cache_folders_belong_to_their_guild(self) -> None:
        """data/cache/<guild>/ holds exactly the folders of that guild's songs, each complete."""
        root = self.settings.cache_dir
        found: dict[str, set[str]] = {}
        if root.is_dir():
            for gdir in root.iterdir():
                assert gdir.is_dir() and gdir.name in {str(g) for g in GUILDS}, gdir
                found[gdir.name] = {p.name for p in gdir.iterdir()}
        for guild, model in self.model.items():
            keys = {a.audio_key for _, a in model.songs.values()}
            assert found.get(str(guild), set()) == keys, guild
            for key in keys:
                assert (root / str(guild) / key / AUDIO_FILE).is_file()

    @invariant()
    def models_belong_to_their_guild(self) -> None:
        """Each guild's model folder holds only its own versions, built from its own songs."""
        root = self.settings.models_dir
        trained = {str(g) for g, m in self.model.items() if m.models}
        assert (set() if not root.is_dir() else {p.name for p in root.iterdir()}) == trained
        for guild, model in self.model.items():
            kept = model.models[-KEEP:]
            names = {f"v{v:04d}" for v, _ in kept} | ({CURRENT_FILE} if kept else set())
            gdir = self.registry.guild_dir(guild)
            assert (set() if not gdir.is_dir() else {p.name for p in gdir.iterdir()}) == names
            metas = self.registry.versions(guild)
            assert [(m.version, m.snapshot) for m in metas] == kept
            for meta, (_, snapshot) in zip(metas, kept, strict=True):
                assert set(meta.artists) == set(snapshot)
            current = self.registry.current(guild)
            assert (current.version if current else None) == (kept[-1][0] if kept else None)

    def teardown(self) -> None:
        """Check the database file is sound, then release the loop and the data dir."""
        try:
            note(f"trainings: {self.trainings}")
            assert self.run(self.mimi.store.integrity_check()) == "ok"
        finally:
            try:
                self.run(self.mimi.close())
                self.loop.run_until_complete(self.loop.shutdown_default_executor())
            finally:
                self.loop.close()
                shutil.rmtree(self.tmp, ignore_errors=True)


ISOLATION_SETTINGS = hsettings(
    max_examples=12,
    stateful_step_count=10,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def test_random_interleavings_keep_guilds_isolated(
    frontend_weights: Path, audio_pool: list[AudioFile]
) -> None:
    """Random teach/forget/train/guess/read sequences over 3 guilds never cross guild lines."""
    run_state_machine_as_test(
        lambda: IsolationMachine(frontend_weights, audio_pool), settings=ISOLATION_SETTINGS
    )


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under a folder, by relative path, with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


async def test_same_file_in_two_guilds_survives_forgetting_in_one(
    frontend_weights: Path, audio_pool: list[AudioFile], tmp_path: Path
) -> None:
    """One file taught as the same artist to two guilds: forgetting it in one spares the other."""
    settings = load(frontend_weights, tmp_path / "data")
    shared, other_a, other_b = audio_pool[0], audio_pool[1], audio_pool[2]
    a, b = 2**62, 0
    mimi = await Mimi.open(settings)
    training = TrainingService(settings, mimi.store, quiet_s=0)
    await training.start()
    try:
        echo_a = await mimi.teach(a, "Echo", shared.path)
        echo_b = await mimi.teach(b, "Echo", shared.path)  # duplicates are per guild
        assert echo_a.id != echo_b.id and echo_a.audio_sha256 == echo_b.audio_sha256
        other_in_a = await mimi.teach(a, "Other", other_a.path)
        other_in_b = await mimi.teach(b, "Other", other_b.path)
        assert (await training.train_now(a, "test"))["version"] == 1
        assert (await training.train_now(b, "test"))["version"] == 1
        b_cache = settings.cache_dir / str(b)
        b_models = settings.models_dir / str(b)
        b_before = (tree(b_cache), tree(b_models))

        assert (await mimi.forget_song(a, echo_a.id)).guild_id == a
        with pytest.raises(NotFound):
            await mimi.forget_song(a, echo_b.id)  # b's song id is not a's to forget
        assert not (settings.cache_dir / str(a) / echo_a.audio_sha256).exists()
        assert [s.id for s in await mimi.store.songs(a)] == [other_in_a.id]
        assert [s.id for s in await mimi.store.songs(b, "ＥＣＨＯ")] == [echo_b.id]
        assert (tree(b_cache), tree(b_models)) == b_before
        current = ModelRegistry(settings.models_dir).current(b)
        assert current.snapshot == {"Echo": [echo_b.id], "Other": [other_in_b.id]}
        guess = await asyncio.to_thread(guess_file, shared.path, b, guess_config(settings))
        assert guess["model_version"] == 1 and set(guess["artists"]) == {"Echo", "Other"}
        assert [(r["status"], r["model_version"]) for r in await mimi.store.runs(b)] == [
            ("succeeded", 1)
        ]

        wav = await mimi.teach(a, "Echo", audio_pool[4].path)
        with pytest.raises(DuplicateSong) as dup:  # the FLAC twin: same audio, other bytes
            await mimi.teach(a, "echo", audio_pool[5].path)
        assert dup.value.song_id == wav.id
        twin = await mimi.teach(b, "echo", audio_pool[5].path)  # ... but new to b
        assert (twin.artist, twin.audio_sha256) == ("Echo", wav.audio_sha256)
        a_keys = {p.name for p in (settings.cache_dir / str(a)).iterdir()}
        assert a_keys == {other_in_a.audio_sha256, wav.audio_sha256}
        assert await mimi.store.integrity_check() == "ok"
    finally:
        await training.close()
        await mimi.close()
