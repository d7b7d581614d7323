"""Compare inference runtimes for the musicnn front-end on real songs: agreement, speed, memory.

    python bench/runtimes.py --devset ../devset [--songs 4] [--batch 4] [--litert frontend.tflite]

Each runtime runs in a fresh process (cold start = import + model load + first batch); the
Keras port is the reference. Prints agreement (max abs on the penultimate layers, max relative
on the pools), cold start relative to `python -c "import tensorflow"` measured in the same run,
throughput as x real time per core per network and peak RSS (VmHWM)."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHILD = r"""
import json, resource, sys, time
t0 = time.perf_counter()
import numpy as np
runtime, model_path, mels_path, out_path, batch, threads = sys.argv[1:7]
batch, threads = int(batch), int(threads)
if runtime == "keras":
    from model_store import quiet_tensorflow_import
    quiet_tensorflow_import()
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    from model_store.musicnn import embed_patches, load_frontend
    model = load_frontend(model_path)
    run = lambda x: embed_patches(model, x)  # today's batch of 64
elif runtime == "onnx":
    from model_store.lean import Frontend
    model = Frontend(model_path, batch_size=batch, threads=threads)
    run = model.embed
elif runtime == "litert":
    from ai_edge_litert.interpreter import Interpreter
    it = Interpreter(model_path=model_path, num_threads=threads)
    sig = it.get_signature_runner()
    index = {k: d["index"] for k, d in sig.get_output_details().items()}
    del sig
    it.resize_tensor_input(0, (batch, 187, 96))
    it.allocate_tensors()
    def run(x):
        parts = {k: [] for k in index}
        for s in range(0, len(x), batch):
            b = x[s:s + batch]
            n = len(b)
            if n < batch:
                b = np.concatenate([b, np.zeros((batch - n, *b.shape[1:]), np.float32)])
            it.set_tensor(0, np.ascontiguousarray(b))
            it.invoke()
            for k, i in index.items():
                parts[k].append(it.get_tensor(i)[:n].copy())
        return {k: np.concatenate(v) for k, v in parts.items()}
mels = np.load(mels_path)
songs = [mels[k].astype(np.float32) for k in sorted(mels.files)]
from model_store.embed import patch_starts, patches_of
xs = [patches_of(m, patch_starts(len(m))) for m in songs]
run(xs[0][:batch])
cold = time.perf_counter() - t0
times = []
outs = None
for _ in range(2):
    t = time.perf_counter()
    res = [run(x) for x in xs]
    times.append(time.perf_counter() - t)
    outs = outs or res
keys = ("penultimate", "mtt_penultimate", "max_pool", "mtt_max_pool", "mean_pool", "mtt_mean_pool")
np.savez(out_path, **{k: np.concatenate([o[k] for o in outs]) for k in keys})
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"cold_s": cold, "embed_s": min(times), "patches": sum(map(len, xs)),
                  "peak_mib": peak}))
"""


def song_mels(devset: Path, n: int, out: Path) -> float:
    """Log-mels of the first `n` songs (one per artist in turn) into `out`; total seconds."""
    import librosa

    from model_store import features

    artists = sorted(p for p in devset.iterdir() if p.is_dir())
    files = [sorted(a.iterdir()) for a in artists]
    chosen = [f[i] for i in range(max(map(len, files))) for f in files if i < len(f)][:n]
    mels, seconds = {}, 0.0
    for i, path in enumerate(chosen):
        y, _ = librosa.load(path, sr=features.SAMPLE_RATE, mono=True)
        seconds += len(y) / features.SAMPLE_RATE
        mels[f"s{i:02d}"] = features.log_mel(y)
    np.savez(out, **mels)
    return seconds


def main() -> int:
    """Run every runtime in its own process and print the comparison table."""
    from model_store.features import WEIGHTS_FILENAME
    from model_store.lean import frontend_model_path

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--devset", type=Path, default=ROOT.parent / "devset")
    p.add_argument("--songs", type=int, default=4)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--runs", type=int, default=2, help="interleaved rounds (median)")
    p.add_argument("--litert", type=Path, help="a LiteRT export of the front-end, to compare too")
    args = p.parse_args()
    weights = ROOT / "pretrained" / WEIGHTS_FILENAME
    models = {"keras": weights, "onnx": frontend_model_path(weights)}
    if args.litert:  # keras.Model.export(path, format="litert", input_signature=[(None, 187, 96)])
        models["litert"] = args.litert
    with tempfile.TemporaryDirectory() as tmp:
        mels = Path(tmp) / "mels.npz"
        seconds = song_mels(args.devset, args.songs, mels)
        rows: dict[str, list[dict]] = {k: [] for k in models}
        tf_import = []
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        for _ in range(args.runs):
            t = time.perf_counter()
            subprocess.run([sys.executable, "-c", "import tensorflow"], check=True, env=env,
                           stderr=subprocess.DEVNULL)  # fmt: skip
            tf_import.append(time.perf_counter() - t)
            for name, path in models.items():
                out = Path(tmp) / f"{name}.npz"
                cmd = [sys.executable, "-c", CHILD, name, str(path), str(mels), str(out),
                       str(args.batch), str(args.threads)]  # fmt: skip
                res = subprocess.run(cmd, check=True, env=env, capture_output=True, text=True)
                rows[name].append(json.loads(res.stdout.strip().splitlines()[-1]))
        ref = np.load(Path(tmp) / "keras.npz")
        base = statistics.median(r["embed_s"] for r in rows["keras"])
        tf_s = statistics.median(tf_import)
        print(f"{args.songs} songs, {seconds:.0f} s of audio, batch {args.batch}, "
              f"{args.threads} thread(s); `import tensorflow` {tf_s:.2f} s")  # fmt: skip
        print("| runtime | penult max abs | pools max rel | cold start | vs import tf | "
              "x real time/core/network | vs keras | peak RSS MiB |")  # fmt: skip
        print("|---|---|---|---|---|---|---|---|")
        for name, rs in rows.items():
            got = np.load(Path(tmp) / f"{name}.npz")
            pen = max(
                float(np.abs(got[k] - ref[k]).max()) for k in ("penultimate", "mtt_penultimate")
            )
            pool = max(
                float((np.abs(got[k] - ref[k]) / (np.abs(ref[k]) + 1e-3)).max())
                for k in ("max_pool", "mtt_max_pool", "mean_pool", "mtt_mean_pool")
            )
            cold = statistics.median(r["cold_s"] for r in rs)
            emb = statistics.median(r["embed_s"] for r in rs)
            speed = seconds / emb / args.threads * 2  # two networks per pass
            peak = max(r["peak_mib"] for r in rs)
            print(f"| {name} | {pen:.1e} | {pool:.1e} | {cold:.2f} s | {cold / tf_s:.2f}x | "
                  f"{speed:.0f}x | {base / emb:.2f} | {peak:.0f} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
