"""The staged song cache: lossless audio copy, recomputation, version bumps, housekeeping."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bot.cache import SongCache
from model_store.stages import LOGMEL, Stage
from tests.audio_factory import synth

KEY, ORPHAN_OLD, ORPHAN_NEW = "ab" * 32, "cd" * 32, "ef" * 32  # song keys: audio sha256s


def _cache_with_song(root: Path) -> tuple[SongCache, np.ndarray]:
    """A cache holding one 12 s song's audio (no features yet)."""
    cache = SongCache(root)
    samples = (synth(12.0, rate=16000) * 32767).astype(np.int16)
    cache.save_audio(3, KEY, samples)
    return cache, samples


def test_audio_copy_is_lossless(tmp_path: Path) -> None:
    """The stored FLAC gives back exactly the decoded 16-bit samples."""
    cache, samples = _cache_with_song(tmp_path)
    assert np.array_equal(cache.load_audio(3, KEY), samples)


def test_missing_stage_is_recomputed_identically(tmp_path: Path) -> None:
    """Deleting the cached log-mel recomputes the same numbers from the audio copy."""
    cache, _ = _cache_with_song(tmp_path)
    first = cache.get(3, KEY, LOGMEL.name)
    assert cache.has(3, KEY, LOGMEL.name)
    (cache.song_dir(3, KEY) / LOGMEL.filename).unlink()
    assert np.array_equal(cache.get(3, KEY, LOGMEL.name), first)


def test_damaged_stage_file_is_recomputed(tmp_path: Path) -> None:
    """A truncated feature file is treated as missing, not trusted."""
    cache, _ = _cache_with_song(tmp_path)
    good = cache.get(3, KEY, LOGMEL.name)
    (cache.song_dir(3, KEY) / LOGMEL.filename).write_bytes(b"\x93NUMPY garbage")
    assert np.array_equal(cache.get(3, KEY, LOGMEL.name), good)


def test_version_bump_recomputes_and_drops_old_files(tmp_path: Path) -> None:
    """A new stage version is computed from upstream and replaces the old version's file."""
    cache, _ = _cache_with_song(tmp_path)
    cache.get(3, KEY, LOGMEL.name)
    calls: list[int] = []

    def doubled(mel: np.ndarray) -> np.ndarray:
        calls.append(1)
        return mel * 2

    v2 = Stage("logmel", "2", "audio", lambda a: LOGMEL.compute(a))
    twice = Stage("twice", "1", "logmel", doubled)
    newer = SongCache(tmp_path, {"logmel": v2, "twice": twice})
    out = newer.get(3, KEY, "twice")
    assert calls == [1]
    assert sorted(p.name for p in newer.song_dir(3, KEY).iterdir()) == [
        "audio.flac",
        "logmel.v2.npy",
        "twice.v1.npy",
    ]
    assert np.array_equal(out, newer.get(3, KEY, "logmel") * 2)
    newer.get(3, KEY, "twice")
    assert calls == [1]  # cached now


def test_sweep_removes_orphans_unless_a_live_process_claims_them(tmp_path: Path) -> None:
    """Folders no song owns go whatever their age, unless claimed by a live writer; the
    claims a writer holds are its own to release."""
    cache, samples = _cache_with_song(tmp_path)
    cache.save_audio(3, ORPHAN_OLD, samples)
    writer = SongCache(tmp_path, owner="4242:77")  # a teach that has not recorded its song yet
    writer.save_audio(4, ORPHAN_NEW, samples)
    removed = cache.sweep([(3, KEY)], lambda owner: owner == "4242:77")
    assert removed == 1
    assert cache.song_dir(3, KEY).is_dir() and cache.song_dir(4, ORPHAN_NEW).is_dir()
    assert not cache.song_dir(3, ORPHAN_OLD).exists()
    writer.release(4, ORPHAN_NEW)
    assert cache.sweep([(3, KEY)], lambda owner: owner == "4242:77") == 1
    assert not cache.song_dir(4, ORPHAN_NEW).exists()
