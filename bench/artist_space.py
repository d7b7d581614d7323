"""Artist-space study: contrastive projection, transductive centroids, residual fine-tune.

Usage: python bench/artist_space.py --train-projection [--corpus NPZ] [--out NPZ]
       python bench/artist_space.py [--projection NPZ] [--repeats R]
Same splits as bench/train_eval.py::compare; every idea is paired against the production head.
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from model_store import embed  # noqa: E402
from model_store.calibrate import log_softmax  # noqa: E402
from model_store.evaluate import Split, fewshot_splits, kfold_splits, score  # noqa: E402
from model_store.head import (  # noqa: E402
    HeadConfig,
    SongEmbeddings,
    build_model,
    class_weights,
    examples,
    fit,
    imprint,
    song_log_probs,
)
from model_store.train import artist_order  # noqa: E402

CACHE = ROOT / ".cache" / "bench"
PROJ = "artist_projection"  # extra embedding part registered in this process only
RAW = ("penultimate", "mtt_penultimate")
Clips = list[np.ndarray]
Songs = Sequence[SongEmbeddings]


def cpu() -> float:
    """CPU seconds of this process (user + system)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def quiet_tf() -> None:
    """One intra-op and one inter-op thread: the machine is shared."""
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)


def normed(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm."""
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def batch(tracks: list[np.ndarray], rng: np.random.Generator, p: int = 32, k: int = 4):
    """P tracks x K views; a view is the mean of 1-3 consecutive patches at a random place."""
    picks = rng.choice(len(tracks), size=min(p, len(tracks)), replace=False)
    xs, ys = [], []
    for label, track in enumerate(tracks[t] for t in picks):
        for _ in range(k):
            width = int(rng.integers(1, min(3, len(track)) + 1))
            start = int(rng.integers(0, len(track) - width + 1))
            xs.append(track[start : start + width].mean(axis=0))
            ys.append(label)
    return np.stack(xs), np.asarray(ys)


def project(w: dict, x: np.ndarray) -> np.ndarray:
    """400-d raw rows -> unit-norm 128-d rows through the saved 400-256-128 MLP."""
    h = np.maximum(((x - w["mean"]) / w["std"]) @ w["w1"] + w["b1"], 0.0)
    return normed(h @ w["w2"] + w["b2"])


def nn_same_track(tracks: list[np.ndarray], f: Callable[[np.ndarray], np.ndarray]) -> float:
    """Leave-one-out 1-NN track retrieval of 3-patch clips (corpus sanity check only)."""
    xs, ys = [], []
    for i, t in enumerate(tracks):
        for s in range(0, len(t) - 2, 3):
            xs.append(t[s : s + 3].mean(axis=0))
            ys.append(i)
    z = normed(f(np.stack(xs)))
    sim = z @ z.T
    np.fill_diagonal(sim, -np.inf)
    return float((np.asarray(ys)[sim.argmax(axis=1)] == np.asarray(ys)).mean())


def train_projection(corpus: Path, out: Path, steps: int, tau: float = 0.1, seed: int = 0):
    """Supervised-contrastive (track = class) 400-256-128 MLP on the corpus; saves numpy arrays."""
    import keras
    import tensorflow as tf

    quiet_tf()
    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    data = np.load(corpus)  # "{song_id}|{package}|emb" -> (n_patches, 400); label = track
    tracks = [data[k].astype(np.float32) for k in sorted(data.files) if k.endswith("|emb")]
    order = rng.permutation(len(tracks))
    held = [tracks[i] for i in order[:12]]  # corpus-only check of generalisation to new tracks
    train = [tracks[i] for i in order[12:]]
    allp = np.concatenate(train)
    mean, std = allp.mean(axis=0), allp.std(axis=0) + 1e-3
    net = keras.Sequential(
        [keras.Input((400,)), keras.layers.Dense(256, activation="relu"), keras.layers.Dense(128)]
    )
    opt = keras.optimizers.Adam(1e-3)

    @tf.function
    def step(x, y):
        with tf.GradientTape() as tape:
            z = tf.math.l2_normalize(net(x), axis=1)
            logits = tf.matmul(z, z, transpose_b=True) / tau
            eye = tf.eye(tf.shape(z)[0])
            logits -= 1e9 * eye
            pos = tf.cast(tf.equal(y[:, None], y[None, :]), tf.float32) - eye
            logp = tf.nn.log_softmax(logits, axis=1)
            loss = -tf.reduce_mean(tf.reduce_sum(pos * logp, 1) / tf.reduce_sum(pos, 1))
        opt.apply_gradients(
            zip(tape.gradient(loss, net.trainable_variables), net.trainable_variables, strict=True)
        )
        return loss

    c0, losses = cpu(), []
    for i in range(steps):
        x, y = batch(train, rng)
        losses.append(float(step(((x - mean) / std).astype(np.float32), y)))
        if (i + 1) % 250 == 0:
            print(f"step {i + 1}: supcon loss {np.mean(losses[-250:]):.3f}", file=sys.stderr)
    (w1, b1), (w2, b2) = (layer.get_weights() for layer in net.layers)
    raw_norm = float(np.median(np.linalg.norm(allp, axis=1)))
    w = {"mean": mean, "std": std, "w1": w1, "b1": b1, "w2": w2, "b2": b2}
    raw = nn_same_track(held, lambda x: (x - mean) / std)
    proj = nn_same_track(held, lambda x: project(w, x))
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, **w, raw_norm=np.float32(raw_norm), seed=seed, steps=steps, tau=tau)
    print(
        f"{len(train)} tracks ({len(allp)} patches), {steps} steps, {cpu() - c0:.0f} CPU s; "
        f"held-out {len(held)} tracks 1-NN same-track: raw {raw:.3f}, projected {proj:.3f}; "
        f"wrote {out}"
    )


def dev_songs(projection: Path | None) -> Songs:
    """Dev-set songs; with a projection, patches become [raw | raw_norm * projected]."""
    from bench.train_eval import load

    weights = ROOT / "pretrained" / "musicnn_msd_mtt_v2.weights.h5"
    songs, _ = load(ROOT.parent / "devset", weights, CACHE)
    w = dict(np.load(projection)) if projection else None
    out = []
    for s in songs:
        raw = s.patches.astype(np.float32)
        if w is not None:
            raw = np.concatenate([raw, float(w["raw_norm"]) * project(w, raw)], axis=1)
        out.append(SongEmbeddings(s.song_id, s.artist, raw, s.clips))
    if w is not None:
        embed.PARTS[PROJ] = 128  # lets model_store.embed.select() pick the projected columns
    return out


def fit_residual(train: Songs, artists: list[str], config: HeadConfig, seed: int = 0):
    """(b) Head with a zero-initialised 400->400 residual layer, on augmented clip means."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(config.seed)
    rng = np.random.default_rng(seed)
    index = {a: i for i, a in enumerate(artists)}
    xs, ys = [], []
    for song in train:
        feats = embed.select(song.patches, config.parts)
        for start, end in song.clips:
            idx = embed.patches_in(start, end, len(feats))
            if not len(idx):
                continue
            xs.append(feats[idx].mean(axis=0))  # the original clip, then 7 random patch subsets
            for _ in range(7):
                keep = idx[rng.random(len(idx)) < 0.7]
                xs.append(feats[keep if len(keep) else idx[:1]].mean(axis=0))
            ys += [index[song.artist]] * 8
    x, y = np.stack(xs).astype(np.float32), np.asarray(ys)
    x += rng.normal(0, 0.05, x.shape).astype(np.float32) * x.std(axis=0)
    weights = class_weights(y, len(artists))
    w = np.array([weights[int(k)] for k in y], np.float32)
    head = build_model(x.shape[1:], len(artists), config)
    imprint(head, x, y, config.scale)
    inputs = keras.Input(x.shape[1:])
    n = keras.layers.UnitNormalization()(inputs)
    res = keras.layers.Dense(
        x.shape[1], kernel_initializer="zeros", kernel_regularizer=keras.regularizers.L2(1e-4)
    )(n)
    model = keras.Model(inputs, head(keras.layers.Add()([n, res])))
    steps = 10 * math.ceil(len(x) / 8 / config.batch_size)  # 10 epochs of the plain head's
    opt = keras.optimizers.Adam(config.learning_rate)
    model.compile(opt, "sparse_categorical_crossentropy", steps_per_execution=steps)
    data = tf.data.Dataset.from_tensor_slices((x, y, w)).shuffle(len(x), seed=config.seed)
    stop = keras.callbacks.EarlyStopping(
        "loss", patience=3, min_delta=1e-4, restore_best_weights=True
    )
    data = data.batch(config.batch_size).repeat()
    model.fit(
        data, epochs=config.max_epochs // 10, steps_per_epoch=steps, verbose=0, callbacks=[stop]
    )
    return model


def transductive(
    train: Songs,
    test: Songs,
    logps: Clips,
    artists: list[str],
    config: HeadConfig,
    rounds: int = 3,
) -> tuple[Clips, Clips]:
    """(c) Soft k-means of artist centroids with the test songs as the unlabelled pool.

    Returns (head logits shifted by s * (cos to refined - cos to labelled centroid), pure
    nearest-refined-centroid log-probs). Soft labels are per song (all its clips share them)."""
    index = {a: i for i, a in enumerate(artists)}
    zl = [normed(examples(s, config)[0]) for s in train]
    yl = np.concatenate([np.full(len(z), index[s.artist]) for z, s in zip(zl, train, strict=True)])
    zl = np.concatenate(zl)
    zu = [normed(examples(s, config)[0]) for s in test]
    k = len(artists)
    sums = np.stack([zl[yl == c].sum(axis=0) for c in range(k)])
    base = normed(sums)
    # the head's song posteriors start it off
    q = [np.exp(log_softmax(c.mean(axis=0))) for c in logps]
    for _ in range(rounds):
        s_u = sum(qi[:, None] * z.sum(axis=0)[None] for qi, z in zip(q, zu, strict=True))
        cents = normed(sums + s_u)  # (sum of labelled + q-weighted unlabelled) / count, normed
        ncm = [log_softmax(config.scale * z @ cents.T) for z in zu]
        q = [np.exp(log_softmax(c.mean(axis=0))) for c in ncm]
    shifted = [
        log_softmax(c + config.scale * (z @ cents.T - z @ base.T))
        for c, z in zip(logps, zu, strict=True)
    ]
    return shifted, ncm


def run_split(songs: Songs, split: Split, names: list[str], ideas: set[str]) -> dict:
    """Per idea: (test clip log-probs in `names` order, wall seconds) on one split."""
    train, test = [songs[i] for i in split.train], [songs[i] for i in split.test]
    artists = artist_order(train)
    order = [artists.index(a) for a in names]
    out: dict[str, tuple[Clips, float]] = {}

    def head(name: str, parts: tuple[str, ...]) -> None:
        t0 = time.perf_counter()
        config = replace(HeadConfig(), parts=parts)
        model, _ = fit(train, [], artists, config)  # = musicnn_method's final model
        logps = [c for c, _ in song_log_probs(model, test, config)]
        out[name] = ([c[:, order] for c in logps], time.perf_counter() - t0)
        if name == "baseline":
            t0 = time.perf_counter()
            shifted, ncm = transductive(train, test, logps, artists, config)
            secs = time.perf_counter() - t0
            out["(c) transductive shift"] = ([c[:, order] for c in shifted], secs)
            out["(c') soft k-means NCM"] = ([c[:, order] for c in ncm], secs)

    head("baseline", RAW)
    if "proj" in ideas:
        head("(a) projected only", (PROJ,))
        head("(a) raw + projected", (*RAW, PROJ))
    if "residual" in ideas:
        t0 = time.perf_counter()
        config = HeadConfig()
        model = fit_residual(train, artists, config)
        logps = [c for c, _ in song_log_probs(model, test, config)]
        out["(b) residual + aug"] = ([c[:, order] for c in logps], time.perf_counter() - t0)
    return out


def plans(songs: Songs, repeats: int) -> dict[str, tuple[Songs, list[Split]]]:
    """The splits of bench/train_eval.py::compare: 1, 2, 5 train songs per artist, then all."""
    artists = [s.artist for s in songs]
    out = {}
    for n in (1, 2, 5):
        enough = [s for s in songs if artists.count(s.artist) > n]
        names = [s.artist for s in enough]
        split = fewshot_splits(names, n, repeats, seed=n)
        out[f"{n} songs ({len(set(names))} artists)"] = (enough, split)
    out["all songs (5-fold)"] = (songs, kfold_splits(artists, 5, seed=0))
    return out


def evaluate(songs: Songs, repeats: int, projected: bool) -> list[str]:
    """Run every idea on every plan; markdown rows with pooled accuracy and paired deltas."""
    rows = [
        "| split | method | song acc | clip acc | Δsong mean [min, max] | "
        "Δclip mean [min, max] | wall s |",
        "|" + "---|" * 7,
    ]
    for plan, (subset, splits) in plans(songs, repeats).items():
        names = sorted({s.artist for s in subset})
        ideas = {"proj"} if projected else set()
        if not plan.startswith(("1 ", "2 ")):
            ideas.add("residual")
        per: dict[str, list] = {}
        for split in splits:
            labels = [names.index(subset[i].artist) for i in split.test]
            for name, (clips, secs) in run_split(subset, split, names, ideas).items():
                per.setdefault(name, []).append((labels, clips, secs))
        base = [score(r[0], r[1], len(names)) for r in per["baseline"]]
        for name, runs in per.items():
            labels = [y for r in runs for y in r[0]]
            pooled = score(labels, [c for r in runs for c in r[1]], len(names))
            split_scores = [score(r[0], r[1], len(names)) for r in runs]
            cells = []
            for key in ("song_accuracy", "clip_accuracy"):
                d = [a[key] - b[key] for a, b in zip(split_scores, base, strict=True)]
                cells.append(f"{np.mean(d):+.3f} [{min(d):+.3f}, {max(d):+.3f}]")
            line = (
                f"| {plan} | {name} | {pooled['song_accuracy']:.3f} | "
                f"{pooled['clip_accuracy']:.3f} | {cells[0]} | {cells[1]} | "
                f"{sum(r[2] for r in runs):.1f} |"
            )
            rows.append(line)
            print(line, file=sys.stderr, flush=True)
    return rows


def main() -> int:
    """Train the projection (--train-projection) or evaluate every idea on the dev set."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-projection", action="store_true")
    parser.add_argument("--corpus", type=Path, default=CACHE / "traincorpus-f1m2.npz")
    parser.add_argument("--out", type=Path, default=CACHE / "artist_projection.npz")
    parser.add_argument("--projection", type=Path, default=CACHE / "artist_projection.npz")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    if args.train_projection:
        train_projection(args.corpus, args.out, args.steps)
        return 0
    quiet_tf()
    c0, t0 = cpu(), time.perf_counter()
    projection = args.projection if args.projection.is_file() else None
    if projection is None:
        print(f"no projection at {args.projection}: skipping idea (a)", file=sys.stderr)
    rows = evaluate(dev_songs(projection), args.repeats, projection is not None)
    print("\n".join(rows))
    print(f"\n{time.perf_counter() - t0:.0f} s wall, {cpu() - c0:.0f} CPU s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
