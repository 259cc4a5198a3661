"""SIREN's Fig. 4 (left) on our runs: mutual information between clustered user-interest
representations and the click label, over a sweep of K-means cluster counts (SIREN sec. 5.4).

  .venv/bin/python bench/siren_mi.py --dataset synthetic-medium --seed 0
  .venv/bin/python bench/siren_mi.py --rows siren-sim-gsu ta+simbucket+semid muse --clusters 8 32 128

For each trained run ``<runs-dir>/<row>-<seed>-<epochs>`` of ``bench/siren_tables.py`` (rows whose run
is missing are skipped), the model computes one interest representation per test example (the
first ``--examples`` of the test split, the same examples for every model); each representation is
clustered with ``tfrec.grouping.kmeans`` (Lloyd, fixed seed) for every K of ``--clusters``, and
``tfrec.metrics.mutual_information`` gives I(Y; Q(r)) in nats (SIREN eq. 14; the paper does not
state its unit). The representation per model class (the paper's for SIREN; ours for the others):

  * SIREN and its Table 2 ablations: the last head input, ũ_t = u_t ⊙ h_t (eq. 12) with target
    interaction, u_t (eq. 11) without (the ablation rows ta-*).
  * MUSE: the ESU output (SA-TA with ``semantic_aware_attention``, else plain target attention);
    two more lines as in Fig. 4: its SimTier histograms (retrieved + recent, concatenated) and
    SA-TA ⊕ SimTier (MUSE's whole interest representation).
  * MISS: its two ESU outputs concatenated, [u_id; u_mm].
  * DIN: the short-term target-attention output (DIN's user-interest vector v_U); DIN has no ESU.

Writes bench/results/siren-mi-<dataset>.md, .json and .png (MI vs K, log-x, one line per
representation). K-means and the forward pass run on the CPU in a few minutes for 20k examples.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import tfrec  # noqa: F401  (tf-keras before TensorFlow; TensorFlow is imported inside the functions)
from bench.siren_tables import ROWS
from tfrec.grouping import kmeans
from tfrec.metrics import label_entropy, mutual_information

ROOT = Path(__file__).resolve().parents[1]


def representation_fn(model, model_type: str):
    """A tf.function ``features -> {name: [B, D] float32}`` of the model's interest representation(s)
    for each example's own target item, and a description per name (a bench may branch on the class)."""
    import tensorflow as tf

    def head_parts(features):
        state = model.encode_user(features, training=False)
        candidate = tf.cast(features["item_id"], tf.int64)[:, None]  # [B, 1]
        item_emb = model.item_embedding(candidate)  # [B, 1, d_item]
        return state, item_emb, list(model.head_inputs(state, candidate, item_emb, training=False))

    config = model.config
    if model_type == "siren":
        name = "ũ = u ⊙ h_t (eq. 12)" if config.target_interaction else "u (eq. 11, no TI)"
        described = {"": name}

        def reps(features):
            return {"": head_parts(features)[2][-1][:, 0]}
    elif model_type == "muse":
        ta = "SA-TA" if config.semantic_aware_attention else "TA (no SA)"
        described = {"": f"ESU output ({ta})"}
        if config.simtier:
            described.update({":simtier": "SimTier histograms (retrieved + recent)",
                              ":sa-ta+simtier": f"{ta} ⊕ SimTier"})

        def reps(features):
            parts = [p[:, 0] for p in head_parts(features)[2]]
            out = {"": parts[0]}
            if len(parts) > 1:
                out[":simtier"] = tf.concat(parts[1:], -1)
                out[":sa-ta+simtier"] = tf.concat(parts, -1)
            return out
    elif model_type == "miss":
        names = [n for n, on in (("u_id", config.id_gsu), ("u_mm", config.mm_gsu)) if on]
        described = {"": f"ESU outputs [{'; '.join(names)}]"}

        def reps(features):
            return {"": tf.concat([p[:, 0] for p in head_parts(features)[2]], -1)}
    elif model_type == "din":
        described = {"": "short-term DIN attention output (no ESU)"}

        def reps(features):
            state, item_emb, _ = head_parts(features)
            out = model.recent_attention({"query": item_emb, "keys": state["recent_behaviors"],
                                          "mask": state["recent_mask"]}, training=False)
            return {"": out[:, 0]}
    else:
        raise ValueError(f"No interest representation defined for model type {model_type!r}")
    return tf.function(reps, reduce_retracing=True), described


def compute_representations(run_dir: Path, dataset, n_batches: int, examples: int):
    """Loads a trained run and returns ``(model_type, {suffix: [n, D]}, descriptions, labels [n])``."""
    from tfrec.training import load_trained

    model, info = load_trained(run_dir)
    fn, described = representation_fn(model, info["model_type"])
    chunks, labels = {}, []
    start = time.time()
    for i, (features, label) in enumerate(dataset.take(n_batches)):
        for key, value in fn(features).items():
            chunks.setdefault(key, []).append(value.numpy())
        labels.append(label.numpy())
        if (i + 1) % 10 == 0 or i + 1 == n_batches:
            print(f"    batch {i + 1}/{n_batches} ({time.time() - start:.0f}s)", flush=True)
    reps = {k: np.concatenate(v)[:examples].astype(np.float32) for k, v in chunks.items()}
    return info["model_type"], reps, described, np.concatenate(labels)[:examples]


def mi_sweep(x: np.ndarray, labels: np.ndarray, clusters, seed: int):
    """MI (nats) of the K-means assignment of ``x`` with ``labels`` for each K; also the inertias."""
    mi, inertia = {}, {}
    n_distinct = len(np.unique(x, axis=0))
    for k in clusters:
        if k > n_distinct:
            print(f"    k={k}: only {n_distinct} distinct rows, skipped", flush=True)
            continue
        t = time.time()
        result = kmeans(x, k, seed=seed)
        mi[k] = mutual_information(labels, result.assignments)
        inertia[k] = float(result.inertia)
        print(f"    k={k}: MI {mi[k]:.5f} nats ({time.time() - t:.1f}s)", flush=True)
    return mi, inertia, n_distinct


def write_results(out: Path, args, results: dict, h_y: float, n: int, clusters) -> None:
    """bench/results/siren-mi-<dataset>.md / .json / .png."""
    ks = list(clusters)
    header = (["| row | representation | dim | test AUC | " + " | ".join(f"K={k}" for k in ks) + " |",
               "|---|---|---|---|" + "---|" * len(ks)])
    lines = [(f"# SIREN's Fig. 4 (left) on `{args.dataset}`: MI between clustered interest representations and "
             "the click label"), "",
             (f"`.venv/bin/python bench/siren_mi.py --dataset {args.dataset} --seed {args.seed} --examples "
             f"{args.examples} --clusters {' '.join(map(str, ks))}`: runs `{args.runs_dir}/<row>-{args.seed}-"
             f"{args.epochs}`, the first {n} test examples. I(Y; Q(r)) = H(Y) - H(Y|Q(r)) (SIREN eq. 14) in "
             f"**nats** (bits = nats / ln 2 = nats x 1.4427; the paper states no unit), Q = K-means (Lloyd, "
             f"k-means++ seeding, seed {args.kmeans_seed}) on the raw representation. Test AUC from the "
             "benchmark's cells.json."), "",
             (f"H(Y) = {h_y:.5f} nats ({h_y / np.log(2):.5f} bits), click rate "
             f"{results['click_rate']:.4f}, N = {n}."), "",
             ("The plug-in MI is biased upwards by about (K - 1) / (2N) nats for a binary label (Miller-Madow), "
             "the same for every row at a given K (row `bias`): compare rows within a column."), ""] + header
    for label, row in results["rows"].items():
        cells = [f"{row['mi'][str(k)]:.5f}" if str(k) in row["mi"] else "—" for k in ks]
        auc = f"{row['auc']:.4f}" if row.get("auc") is not None else ""
        lines.append(f"| {label} | {row['representation']} | {row['dim']} | {auc} | " + " | ".join(cells) + " |")
    lines.append("| bias | (K - 1) / (2N) | | | " + " | ".join(f"{(k - 1) / (2 * n):.5f}" for k in ks) + " |")
    missing = results.get("missing", [])
    if missing:
        lines += ["", "Rows without a trained run (skipped): " + ", ".join(missing) + "."]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    out.with_suffix(".json").write_text(json.dumps(results, indent=2))
    print("\n".join(lines))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    colors = plt.get_cmap("tab20").colors  # 20 distinct colors: no two rows share one
    for i, (label, row) in enumerate(results["rows"].items()):
        got = [(k, row["mi"][str(k)]) for k in ks if str(k) in row["mi"]]
        if got:
            ax.plot(*zip(*got), marker="os^vD"[i % 5], color=colors[(2 * i) % 20 + (i // 10) % 2], label=label)
    ax.plot(ks, [(k - 1) / (2 * n) for k in ks], color="gray", linestyle=":", label="bias (K-1)/2N")
    ax.set_xscale("log", base=2)
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.set_xlabel("number of K-means clusters K")
    ax.set_ylabel("I(Y; cluster) [nats]")
    ax.set_title(f"Representation discriminability ({args.dataset}, N={n})")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(out.with_suffix(".png"), dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    from pipelines.common import history_files, load_spec, make_split_dataset
    from tfrec.data.dataset import load_user_histories

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="synthetic-medium")
    p.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    p.add_argument("--seed", type=int, default=0, help="the training seed of the runs to read")
    p.add_argument("--epochs", type=int, default=2, help="the epochs of the runs to read (run-dir suffix)")
    p.add_argument("--runs-dir", default=None, help="default runs/siren/<dataset>/runs")
    p.add_argument("--data", default=None, help="default runs/synthetic-v2/<size>/data for synthetic-<size>")
    p.add_argument("--clusters", nargs="+", type=int, default=[4, 8, 16, 32, 64, 128])
    p.add_argument("--examples", type=int, default=20000, help="cap on the test examples")
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--kmeans-seed", type=int, default=0)
    p.add_argument("--out", default=None, help="default bench/results/siren-mi-<dataset> (.md/.json/.png)")
    args = p.parse_args(argv)

    args.runs_dir = args.runs_dir or f"runs/siren/{args.dataset}/runs"
    if args.data is None:
        if not args.dataset.startswith("synthetic-"):
            p.error("--data is required for a non-synthetic dataset")
        args.data = str(ROOT / "runs" / "synthetic-v2" / args.dataset.split("-", 1)[1] / "data")
    runs_dir = Path(args.runs_dir)
    cells_path = runs_dir.parent / "cells.json"
    cells = json.loads(cells_path.read_text()) if cells_path.exists() else {}

    available = [r for r in args.rows if (runs_dir / f"{r}-{args.seed}-{args.epochs}" / "model.json").exists()]
    missing = [r for r in args.rows if r not in available]
    print(f"runs: {', '.join(available) or 'none'}; missing: {', '.join(missing) or 'none'}", flush=True)
    if not available:
        return 1

    spec = load_spec(args.data)
    history = load_user_histories(history_files(args.data), spec)
    dataset = make_split_dataset(args.data, "test", spec, args.batch_size, history=history)
    n_batches = -(-args.examples // args.batch_size)

    results = {"dataset": args.dataset, "seed": args.seed, "epochs": args.epochs, "unit": "nats",
               "kmeans_seed": args.kmeans_seed, "clusters": args.clusters, "rows": {}, "missing": missing}
    import tensorflow as tf

    labels_ref = None
    for row in available:
        print(f"{row}: representations", flush=True)
        t = time.time()
        model_type, reps, described, labels = compute_representations(
            runs_dir / f"{row}-{args.seed}-{args.epochs}", dataset, n_batches, args.examples)
        labels = labels.astype(np.int64)
        if labels_ref is None:
            labels_ref = labels
        elif not np.array_equal(labels, labels_ref):
            raise RuntimeError("The test examples differ between runs (the split must be read in order)")
        print(f"  {len(labels)} examples in {time.time() - t:.0f}s", flush=True)
        cell = cells.get(f"{row}/{args.seed}/{args.epochs}", {})
        for suffix, x in reps.items():
            label = row + suffix
            print(f"  {label}: {described[suffix]} [{x.shape[0]}, {x.shape[1]}]", flush=True)
            mi, inertia, n_distinct = mi_sweep(x, labels, args.clusters, args.kmeans_seed)
            results["rows"][label] = {
                "model_type": model_type, "representation": described[suffix], "dim": int(x.shape[1]),
                "distinct_rows": n_distinct, "auc": cell.get("auc"), "gauc": cell.get("gauc"),
                "mi": {str(k): v for k, v in mi.items()}, "inertia": {str(k): v for k, v in inertia.items()}}
        tf.keras.backend.clear_session()

    h_y = label_entropy(labels_ref)
    results.update({"h_y": h_y, "n_examples": len(labels_ref), "click_rate": float(labels_ref.mean())})
    out = Path(args.out) if args.out else ROOT / "bench" / "results" / f"siren-mi-{args.dataset}"
    write_results(out, args, results, h_y, len(labels_ref), args.clusters)
    return 0


if __name__ == "__main__":
    sys.exit(main())
