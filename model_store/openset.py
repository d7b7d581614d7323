"""Open set: how much a clip sounds like the songs each artist was taught from, and when that is
too little to name anyone ("that's no one I know here")."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from model_store.embed import select, unit

REFERENCE_FILE = "reference.npz"
REFERENCE_DTYPE = np.float16
KEEP_KNOWN = 0.90  # the threshold keeps this share of correctly answered held-out songs
# The threshold measured on the dev set (leave-one-artist-out at 2 songs, bench/train_eval.py);
# a server's own held-out songs move it in proportion to their number (PRIOR_SONGS).
PRIOR_THRESHOLD = 0.69
UNVALIDATED_THRESHOLD = 0.60  # no held-out songs (an artist with one song): measured at 1 song
PRIOR_SONGS = 8.0
# Measured on the dev set (leave one artist out, 2 songs): the plain best-match similarity
# separates known from unknown songs better (AUROC 0.78) than the same similarity relative to
# how alike an artist's own songs are (0.72), centred embeddings (0.71) or the top softmax
# probability (0.58); so the score is the plain similarity.


@dataclass(frozen=True)
class Reference:
    """Unit-length patch embeddings of a model's training songs and which song each row is."""

    patches: np.ndarray  # (rows, dims)
    song_of_row: np.ndarray  # (rows,) index into keys/artists
    keys: tuple[str, ...]  # per song: its audio key (or id), for leaving forgotten songs out
    artists: tuple[str, ...]  # per song

    def save(self, path: Path) -> None:
        """Write to an .npz file (numbers and strings only, no pickles)."""
        np.savez_compressed(
            path,
            patches=self.patches.astype(REFERENCE_DTYPE),
            song_of_row=self.song_of_row.astype(np.int32),
            keys=np.array(self.keys, dtype=str),
            artists=np.array(self.artists, dtype=str),
        )

    @classmethod
    def load(cls, path: Path) -> Reference:
        """Read what `save` wrote."""
        with np.load(path, allow_pickle=False) as data:
            return cls(
                data["patches"].astype(np.float32),
                data["song_of_row"],
                tuple(str(k) for k in data["keys"]),
                tuple(str(a) for a in data["artists"]),
            )


def build_reference(songs: Sequence, parts: Sequence[str], keys: Sequence[str]) -> Reference:
    """The reference of `songs` (SongEmbeddings-like), one key per song."""
    rows = [unit(select(s.patches, parts)) for s in songs]
    owner = np.concatenate([np.full(len(r), i, np.int32) for i, r in enumerate(rows)])
    return Reference(np.concatenate(rows), owner, tuple(keys), tuple(s.artist for s in songs))


def best_matches(reference: Reference, query: np.ndarray) -> np.ndarray:
    """(query patches x reference songs): each query patch's best cosine match in each song."""
    sims = unit(query) @ reference.patches.T
    out = np.full((len(sims), len(reference.keys)), -1.0, np.float32)
    for song in range(len(reference.keys)):
        cols = reference.song_of_row == song
        if cols.any():
            out[:, song] = sims[:, cols].max(axis=1)
    return out


def artist_similarity(
    matches: np.ndarray,
    artists: Sequence[str],
    keys: Sequence[str],
    artist: str,
    live_keys: frozenset[str] | None = None,
) -> float:
    """Mean over query patches of the best match among the artist's (still stored) songs;
    `artists` and `keys` name the columns of `matches`."""
    cols = [
        i
        for i, (a, k) in enumerate(zip(artists, keys, strict=True))
        if a == artist and (live_keys is None or k in live_keys)
    ]
    if not cols or not len(matches):
        return -1.0
    return float(matches[:, cols].max(axis=1).mean())


def known_scores(
    reference: Reference, songs: Sequence, named: Sequence[str], parts: Sequence[str]
) -> list[float]:
    """The known score of each song (all its patches): its similarity to the artist named."""
    out = []
    for song, artist in zip(songs, named, strict=True):
        matches = best_matches(reference, select(song.patches, parts))
        out.append(artist_similarity(matches, reference.artists, reference.keys, artist))
    return out


def judge(
    matches: np.ndarray,
    artists: Sequence[str],
    keys: Sequence[str],
    named: str,
    live_keys: frozenset[str],
    open_set: dict,
) -> dict:
    """The open-set verdict on a guess naming `named`, judged over the songs still stored."""
    score = artist_similarity(np.asarray(matches), artists, keys, named, live_keys)
    threshold = float(open_set["threshold"])
    return {"unknown": score < threshold, "known_score": round(score, 4), "threshold": threshold}


def fit_threshold(
    scores: Sequence[float], *, prior: float = PRIOR_THRESHOLD, prior_songs: float = PRIOR_SONGS
) -> float:
    """The score below which to answer "no one I know": the quantile keeping KEEP_KNOWN of the
    correctly answered held-out songs, shrunk towards the dev-set prior for small servers."""
    values = np.asarray(scores, dtype=float)
    if not len(values):
        return float(prior)
    fitted = float(np.quantile(values, 1 - KEEP_KNOWN))
    weight = len(values) / (len(values) + prior_songs)
    return round(weight * fitted + (1 - weight) * prior, 4)
