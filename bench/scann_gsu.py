"""ScaNN vs exact numpy for SIREN's soft GSU (eq. 7) over long histories: recall, queries/s, build, bytes.

For each history length L (``--lengths``, default 10,000 and 100,000) and each of ``--users``
synthetic users, builds ``tfrec.retrieval.UserHistoryIndex`` twice over the same behaviors:
exact (numpy: one ``[100, D] x [D, L]`` matmul + ``argpartition`` per batch of candidates) and
ScaNN with the default ``ScannConfig`` (below 100k distinct behaviors: asymmetric hashing of
all, exact reordering of 20 k candidates; from 100k on, the same behind a tree of ~sqrt(L)
leaves, half of them searched), and measures for C = ``--candidates`` queries and k = ``--k``:

* recall@k of ScaNN against exact (mean |ScaNN ∩ exact| / k over the queries; also split into
  candidates from the user's interests and from elsewhere);
* queries/s of each (C / median seconds of one batched search over ``--repeat`` runs, after a
  warm-up). Exact uses numpy's BLAS threads for the matmul; ScaNN's ``search_batched`` one thread;
* index build time per user (ScaNN training + our distinct-vector map) and the index's bytes
  (``UserHistoryIndex.memory_bytes``: normalised vectors + ScaNN's serialized assets), next to
  the raw float32 history (L x D x 4).

Data: ``--clusters`` (200) Gaussian clusters of unit-norm centers in D = ``--dim`` (64) with
per-dimension noise ``--noise`` (0.1); a user draws 90% of the behaviors from 2 - 5 clusters of
their own (Dirichlet weights) and 10% from any cluster, as real users concentrate on a few
interests; candidates come 70% from the user's clusters and 30% from any. Vectors are drawn
directly (no repeated items: the distinct-vector dedup has nothing to merge).

Timings are only valid on an otherwise idle machine: the 1-minute load average
(``os.getloadavg()``) is printed and written next to every timing, and **timings taken while other
jobs run are void** (recall and bytes are not affected). A figure, never a test: nothing is asserted.

    .venv/bin/python bench/scann_gsu.py                                   # ~1 min on 2 cores
    .venv/bin/python bench/scann_gsu.py --lengths 10000 --users 2 --repeat 3
"""
from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"


def make_user(rng, centers, length, candidates, noise, own_share=0.9, candidate_own_share=0.7):
    """(history [L, D], queries [C, D], query_is_own [C]) for one synthetic user, float32."""
    n_clusters, dim = centers.shape
    own = rng.choice(n_clusters, rng.integers(2, 6), replace=False)
    weights = rng.dirichlet(np.ones(len(own)))

    def draw(n, share):
        from_own = rng.random(n) < share
        cluster = np.where(from_own, own[rng.choice(len(own), n, p=weights)], rng.integers(0, n_clusters, n))
        return (centers[cluster] + noise * rng.standard_normal((n, dim))).astype(np.float32), from_own

    history, _ = draw(length, own_share)
    queries, is_own = draw(candidates, candidate_own_share)
    return history, queries, is_own


def median_seconds(fn, repeat):
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def recall(found, truth):
    """Per-query |found ∩ truth| / |truth| over valid (>= 0) positions, ``[C]``."""
    return np.array([len(set(f[f >= 0]) & set(t[t >= 0])) / max(1, int((t >= 0).sum()))
                     for f, t in zip(found, truth)])


def bench_user(history, queries, is_own, k, repeat):
    from tfrec.retrieval import UserHistoryIndex

    exact = UserHistoryIndex(history, exact_threshold=history.shape[0] + 1)
    start = time.perf_counter()
    scann = UserHistoryIndex(history)
    build_s = time.perf_counter() - start
    assert scann.uses_scann and not exact.uses_scann
    load_before = os.getloadavg()[0]
    # the speed-up is taken against the fastest exact search: one float32 matmul + argpartition
    # (the tfrec reference scores in float64 for tie-exactness, ~2x slower)
    vectors = exact.vectors

    def exact32():
        sim = queries @ vectors.T  # [C, D] x [D, L]
        return np.argpartition(sim, sim.shape[1] - k, axis=1)[:, -k:]

    exact_s = median_seconds(exact32, repeat)
    reference_s = median_seconds(lambda: exact.search(queries, k), repeat)
    scann_s = median_seconds(lambda: scann.search(queries, k), repeat)
    load_after = os.getloadavg()[0]
    hits = recall(scann.search(queries, k)[0], exact.search(queries, k)[0])
    c = queries.shape[0]
    return {
        "recall": float(hits.mean()), "recall_own": float(hits[is_own].mean()) if is_own.any() else None,
        "recall_other": float(hits[~is_own].mean()) if (~is_own).any() else None, "recall_min": float(hits.min()),
        "exact_qps": c / exact_s, "reference_qps": c / reference_s, "scann_qps": c / scann_s, "speedup": exact_s / scann_s,
        "build_s": build_s, "index_bytes": scann.memory_bytes(), "raw_bytes": int(history.nbytes),
        "method": scann.method, "num_leaves": scann.num_leaves, "leaves_to_search": scann.leaves_to_search,
        "load_1min": [load_before, load_after],
    }


def summarize(length, rows):
    def mean(key):
        return float(np.mean([r[key] for r in rows]))

    return {"length": length, "users": len(rows), "method": "/".join(sorted({r["method"] for r in rows})),
            "recall": mean("recall"), "recall_min_user": min(r["recall"] for r in rows),
            "recall_own": mean("recall_own"), "recall_other": mean("recall_other"),
            "exact_qps": float(np.median([r["exact_qps"] for r in rows])),
            "reference_qps": float(np.median([r["reference_qps"] for r in rows])),
            "scann_qps": float(np.median([r["scann_qps"] for r in rows])),
            "speedup": float(np.median([r["speedup"] for r in rows])), "build_s": mean("build_s"),
            "index_bytes": mean("index_bytes"), "raw_bytes": mean("raw_bytes"),
            "load_1min": [min(r["load_1min"][0] for r in rows), max(r["load_1min"][1] for r in rows)]}


def format_markdown(args, summaries, meta) -> str:
    lines = [
        "# ScaNN vs exact soft GSU (SIREN eq. 7)",
        "",
        ("Written by `bench/scann_gsu.py`. **Timings taken while other jobs run are void**: the 1-minute "
         "load average before / after each length's timings is in the last column (the box has "
         f"{os.cpu_count()} CPUs); recall and bytes do not depend on load."),
        "",
        f"Command: `{meta['command']}`",
        "",
        (f"Data: {args.clusters} Gaussian clusters, D = {args.dim}, noise {args.noise}; per user 90% of the "
         f"history from 2 - 5 own clusters, {args.candidates} candidates (70% from own clusters), k = {args.k}; "
         f"{args.users} users per length, timings = median of {args.repeat} batched searches. "
         f"numpy {meta['numpy']}, scann {meta['scann']}, {meta['machine']}."),
        "",
        (f"| L | ScaNN method | recall@{args.k} mean (worst user) | own / other candidates | exact q/s (float32 matmul) | "
         "tfrec reference q/s (float64) | ScaNN q/s | speed-up vs float32 exact | build s / user | index MiB (raw vectors MiB) | load 1-min |"),
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in summaries:
        lines.append(
            f"| {s['length']:,} | {s['method']} | {s['recall']:.3f} ({s['recall_min_user']:.3f}) | "
            f"{s['recall_own']:.3f} / {s['recall_other']:.3f} | {s['exact_qps']:,.0f} | {s['reference_qps']:,.0f} | {s['scann_qps']:,.0f} | "
            f"{s['speedup']:.1f}x | {s['build_s']:.2f} | {s['index_bytes'] / 2**20:.1f} ({s['raw_bytes'] / 2**20:.1f}) | "
            f"{s['load_1min'][0]:.2f} / {s['load_1min'][1]:.2f} |")
    lines += ["", ("Index bytes = normalised float32 vectors kept for rescoring and exact fallbacks + ScaNN's "
                   "serialized assets (its own float32 reorder copy, 4-bit AH codes, tree and datapoint -> leaf "
                   "map when it has a tree). Exact uses numpy's BLAS threads for the matmul, ScaNN's "
                   "`search_batched` one thread."), ""]
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--lengths", type=int, nargs="+", default=[10_000, 100_000], help="history lengths L")
    p.add_argument("--dim", type=int, default=64, help="vector size D")
    p.add_argument("--users", type=int, default=3, help="synthetic users per length")
    p.add_argument("--candidates", type=int, default=100, help="candidate queries per user (one batch)")
    p.add_argument("--k", type=int, default=50)
    p.add_argument("--clusters", type=int, default=200)
    p.add_argument("--noise", type=float, default=0.1, help="per-dimension Gaussian noise around a cluster center")
    p.add_argument("--repeat", type=int, default=5, help="timed searches per index (median)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=RESULTS / "scann-gsu.md", help="markdown; the .json lies beside it")
    args = p.parse_args(argv)

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tfrec  # noqa: F401  (tf-keras before ScaNN imports TensorFlow)
    from tfrec.retrieval import normalize

    importlib.import_module("scann")  # here, so that no build time includes the import

    rng = np.random.default_rng(args.seed)
    centers = normalize(rng.standard_normal((args.clusters, args.dim)))
    meta = {"command": "python bench/scann_gsu.py " + " ".join(argv if argv is not None else os.sys.argv[1:]),
            "numpy": np.__version__, "scann": importlib.metadata.version("scann"),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs", "load_start": os.getloadavg()}
    print(f"load average at start: {meta['load_start']}", flush=True)
    summaries, per_user = [], {}
    for length in args.lengths:
        rows = []
        for user in range(args.users):
            history, queries, is_own = make_user(rng, centers, length, args.candidates, args.noise)
            row = bench_user(history, queries, is_own, args.k, args.repeat)
            rows.append(row)
            print(f"L={length:,} user {user}: recall {row['recall']:.3f}, exact {row['exact_qps']:,.0f} q/s, "
                  f"ScaNN {row['scann_qps']:,.0f} q/s ({row['speedup']:.1f}x), build {row['build_s']:.2f} s, "
                  f"index {row['index_bytes'] / 2**20:.1f} MiB, load {row['load_1min'][0]:.2f}/{row['load_1min'][1]:.2f}",
                  flush=True)
        summaries.append(summarize(length, rows))
        per_user[str(length)] = rows
    text = format_markdown(args, summaries, meta)
    print("\n" + text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    payload = {"args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}, "meta": meta,
               "summaries": summaries, "per_user": per_user}
    args.out.with_suffix(".json").write_text(json.dumps(payload, indent=2))
    print(f"wrote {args.out} and {args.out.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
