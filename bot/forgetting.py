"""Forget means forget: what a served model may still say once songs or artists are forgotten.

A model keeps answering between a forget and the retrain that follows it. These pure functions
view a model through what the server holds *now*: an artist of the model counts only while at
least one of the songs it was trained on is still stored (so an artist forgotten and taught
again is masked until the retrain); held-out figures leave forgotten songs out.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from model_store.openset import judge
from model_store.registry import ModelMeta

MIN_ARTISTS = 2  # fewer live artists than this and the model is withdrawn


@dataclass(frozen=True)
class Live:
    """The songs a server holds right now: ids, audio keys, and each song's artist name now."""

    ids: frozenset[int]
    keys: frozenset[str]
    names: Mapping[str, str] = field(default_factory=dict, compare=False)  # key -> artist
    id_names: Mapping[int, str] = field(default_factory=dict, compare=False)  # id -> artist

    @classmethod
    def of(cls, songs: Sequence[tuple[int, str] | tuple[int, str, str]]) -> Live:
        """From (song id, audio key[, artist name]) rows."""
        named = [s for s in songs if len(s) > 2]
        return cls(
            frozenset(s[0] for s in songs),
            frozenset(s[1] for s in songs),
            {s[1]: s[2] for s in named},  # type: ignore[misc]
            {s[0]: s[2] for s in named},  # type: ignore[misc]
        )


def current_name(meta: ModelMeta, artist: str, live: Live) -> str:
    """What this server calls the model's `artist` now: the name its songs carry after a
    rename or merge (the songs are the artist's identity, not the spelling), else as trained."""
    names = [live.names[k] for k in meta.snapshot_keys.get(artist, ()) if k in live.names]
    if not names:
        names = [live.id_names[i] for i in meta.snapshot.get(artist, ()) if i in live.id_names]
    return Counter(names).most_common(1)[0][0] if names else artist


def renames(meta: ModelMeta, live: Live) -> dict[str, str]:
    """Model artist -> its name now, for every artist of `meta`."""
    return {a: current_name(meta, a, live) for a in meta.artists}


def merger(artists: Sequence[str], now: Mapping[str, str]) -> tuple[np.ndarray, list[str]]:
    """(artists x names) 0/1 matrix taking each artist to its name today, and those names in
    order: multiplying by it adds up artists merged into one."""
    merged = list(dict.fromkeys(now.get(a, a) for a in artists))
    into = np.zeros((len(artists), len(merged)), int)
    for i, a in enumerate(artists):
        into[i, merged.index(now.get(a, a))] = 1
    return into, merged


def merge_columns(
    probs: np.ndarray, artists: Sequence[str], now: Mapping[str, str]
) -> tuple[np.ndarray, list[str]]:
    """(… x artists) probabilities under today's names: artists merged into one add up."""
    into, merged = merger(artists, now)
    return np.asarray(probs, dtype=np.float64) @ into, merged


def artist_alive(meta: ModelMeta, artist: str, live: Live) -> bool:
    """True while a song this model learned `artist` from is still stored."""
    keys = meta.snapshot_keys.get(artist)
    if keys:  # audio keys are stable; song ids of databases before migration 2 were reused
        return not live.keys.isdisjoint(keys)
    return not live.ids.isdisjoint(meta.snapshot.get(artist, ()))


def live_artists(meta: ModelMeta, live: Live) -> list[str]:
    """The model's artists (class order) that may still be named."""
    return [a for a in meta.artists if artist_alive(meta, a, live)]


def live_names(meta: ModelMeta, live: Live) -> list[str]:
    """Today's names of the model's live artists (two merged since training count once)."""
    return list(dict.fromkeys(current_name(meta, a, live) for a in live_artists(meta, live)))


def forgotten_songs(meta: ModelMeta, live: Live) -> int:
    """How many songs this model was trained on are forgotten since."""
    if meta.snapshot_keys:
        return sum(k not in live.keys for keys in meta.snapshot_keys.values() for k in keys)
    return sum(i not in live.ids for ids in meta.snapshot.values() for i in ids)


def mask(probs: np.ndarray, artists: list[str], allowed: list[str]) -> np.ndarray:
    """Rows of (… x artists) probabilities with disallowed artists zeroed, renormalised."""
    keep = np.array([a in allowed for a in artists], dtype=bool)
    out = np.where(keep, np.asarray(probs, dtype=np.float64), 0.0)
    total = out.sum(axis=-1, keepdims=True)
    fallback = keep / max(int(keep.sum()), 1)  # a row that was all forgotten: uniform
    return np.where(total > 0, out / np.where(total > 0, total, 1.0), fallback)


def live_metrics(meta: ModelMeta, live: Live) -> dict:
    """The model's held-out figures over songs and artists that still exist."""
    metrics, now = meta.metrics, renames(meta, live)
    trained = live_artists(meta, live)
    into, names = merger(trained, now)  # today's names; a merge counts once
    order = list(metrics.get("artists") or meta.artists)
    keep = [order.index(a) for a in trained if a in order]
    confusion = metrics.get("confusion")
    if confusion is not None:
        rows = into[[i for i, a in enumerate(trained) if a in order]]
        sliced = np.asarray(confusion, dtype=int)[np.ix_(keep, keep)]
        confusion = (rows.T @ sliced @ rows).tolist()
    missing = metrics.get("needs_more_songs") or {}
    out = {**metrics, "artists": names, "confusion": confusion}
    out["needs_more_songs"] = {now[a]: n for a, n in missing.items() if a in trained}
    records = metrics.get("held_out")
    if records is not None:  # recompute every figure from the songs that remain
        kept = [
            {**r, "artist": now.get(r["artist"], r["artist"]),
             "predicted": now.get(r["predicted"], r["predicted"])}
            for r in records if r["song_id"] in live.ids and r["artist"] in trained
        ]  # fmt: skip
        index = {a: i for i, a in enumerate(names)}
        matrix = np.zeros((len(names), len(names)), int)
        for r in kept:
            if r["predicted"] in index:  # a song answered with a forgotten artist: a miss
                matrix[index[r["artist"]], index[r["predicted"]]] += 1
        clips = sum(r["clips"] for r in kept)
        hits = sum(r["artist"] == r["predicted"] for r in kept)
        out.update(
            held_out=kept,
            confusion=matrix.tolist() if kept else None,
            val_songs=len(kept),
            song_accuracy=hits / len(kept) if kept else None,
            clip_accuracy=sum(r["clip_hits"] for r in kept) / clips if clips else None,
        )
    elif forgotten_songs(meta, live):  # an older model without per-song records
        hits = np.trace(np.asarray(confusion)) if confusion else 0
        total = int(np.asarray(confusion).sum()) if confusion else 0
        out.update(
            song_accuracy=hits / total if total else None, clip_accuracy=None, val_songs=total
        )
    if forgotten_songs(meta, live):
        out["macro_f1"] = None  # (not recomputed)
    return out


def redact(meta: ModelMeta, live: Live) -> dict:
    """A model's metadata as it may be shown: forgotten artists and songs left out."""
    names, now = set(live_artists(meta, live)), renames(meta, live)
    shown = meta.to_dict()
    shown["artists"] = list(dict.fromkeys(now[a] for a in meta.artists if a in names))
    shown["snapshot"], shown["snapshot_keys"] = {}, {}
    for a, ids in meta.snapshot.items():
        if a in names:
            shown["snapshot"].setdefault(now[a], []).extend(i for i in ids if i in live.ids)
    for a, keys in meta.snapshot_keys.items():
        if a in names:
            shown["snapshot_keys"].setdefault(now[a], []).extend(k for k in keys if k in live.keys)
    shown["metrics"] = live_metrics(meta, live)
    shown["forgotten_songs"] = forgotten_songs(meta, live)
    return shown


def open_set_verdict(raw: dict, meta: ModelMeta, live: Live) -> dict:
    """Whether the guess sounds like no one this server taught, judged only against songs it
    still holds ("unknown", the score and the threshold); models without an open-set
    reference (made before it existed, or not musicnn) never say unknown."""
    matches = raw.pop("matches", None)
    keys = raw.pop("reference_keys", None)
    artists = raw.pop("reference_artists", None)
    open_set = meta.metrics.get("open_set")
    if matches is None or not open_set or "threshold" not in open_set or not raw["top"]:
        return {"unknown": False, "known_score": None, "threshold": None}
    return judge(matches, artists, keys, raw["top"][0]["artist"], live.keys, open_set)
