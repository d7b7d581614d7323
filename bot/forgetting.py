"""Forget means forget: what a served model may still say once songs or artists are forgotten.

A model keeps answering between a forget and the retrain that follows it. These pure functions
view a model through what the server holds *now*: an artist of the model counts only while at
least one of the songs it was trained on is still stored (so an artist forgotten and taught
again is masked until the retrain); held-out figures leave forgotten songs out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from model_store.openset import judge
from model_store.registry import ModelMeta

MIN_ARTISTS = 2  # fewer live artists than this and the model is withdrawn


@dataclass(frozen=True)
class Live:
    """The songs a server holds right now: ids and audio keys."""

    ids: frozenset[int]
    keys: frozenset[str]

    @classmethod
    def of(cls, songs: list[tuple[int, str]]) -> Live:
        """From (song id, audio key) rows."""
        return cls(frozenset(i for i, _ in songs), frozenset(k for _, k in songs))


def artist_alive(meta: ModelMeta, artist: str, live: Live) -> bool:
    """True while a song this model learned `artist` from is still stored."""
    keys = meta.snapshot_keys.get(artist)
    if keys:  # audio keys are stable; song ids of databases before migration 2 were reused
        return not live.keys.isdisjoint(keys)
    return not live.ids.isdisjoint(meta.snapshot.get(artist, ()))


def live_artists(meta: ModelMeta, live: Live) -> list[str]:
    """The model's artists (class order) that may still be named."""
    return [a for a in meta.artists if artist_alive(meta, a, live)]


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
    metrics = meta.metrics
    names = live_artists(meta, live)
    order = list(metrics.get("artists") or meta.artists)
    keep = [order.index(a) for a in names if a in order]
    confusion = metrics.get("confusion")
    if confusion is not None:
        confusion = np.asarray(confusion, dtype=int)[np.ix_(keep, keep)].tolist()
    missing = metrics.get("needs_more_songs") or {}
    out = {**metrics, "artists": names, "confusion": confusion}
    out["needs_more_songs"] = {a: n for a, n in missing.items() if a in names}
    records = metrics.get("held_out")
    if records is not None:  # recompute every figure from the songs that remain
        kept = [r for r in records if r["song_id"] in live.ids and r["artist"] in names]
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
    names = set(live_artists(meta, live))
    shown = meta.to_dict()
    shown["artists"] = [a for a in meta.artists if a in names]
    shown["snapshot"] = {
        a: [i for i in ids if i in live.ids] for a, ids in meta.snapshot.items() if a in names
    }
    shown["snapshot_keys"] = {
        a: [k for k in keys if k in live.keys]
        for a, keys in meta.snapshot_keys.items()
        if a in names
    }
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
