"""Stage `cluster`: K-means over item embeddings -> the item -> group table (DMGIN IDECM).

k comes from --k, or else from the data: a silhouette sweep over a geometric grid of k
(tfrec.grouping.choose_k; --k-grid overrides the grid) whose table is printed. It never reads the
synthetic generator's n_topics: that would tune the grouping on the ground truth.

Prints and saves the cluster load-balance report (size histogram, max/min, coefficient of
variation) and warns (or fails with --strict) past the thresholds. The DMGIN paper's second check:
a t-SNE picture of the embeddings colored by cluster (DATA/clusters_tsne.png) and a few example
members per cluster (titles from raw/items_text.parquet when present, else item ids) for review.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from pipelines.common import GROUPS, RAW


def add_arguments(p):
    p.add_argument("--data", required=True, help="data directory (reads raw/items.npz)")
    p.add_argument("--k", type=int, default=None,
                   help="clusters (default: chosen by a silhouette sweep over --k-grid; the table is printed)")
    p.add_argument("--k-grid", type=_int_list, default=None,
                   help="comma-separated candidate k for the sweep when --k is not given (default: a geometric "
                        "grid from 8 to min(256, n_items // 10), ratio 1.25)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=None, help="mini-batch K-means for large catalogs")
    p.add_argument("--n-iter", type=int, default=None,
                   help="Lloyd iterations, or passes over the data with --batch-size (default 50, or 5 with it)")
    p.add_argument("--max-cv", type=float, default=1.0, help="balance check: max coefficient of variation")
    p.add_argument("--max-ratio", type=float, default=50.0, help="balance check: max largest/smallest size")
    p.add_argument("--strict", action="store_true", help="fail instead of warning when the balance check fails")
    p.add_argument("--plot", default=None, help="t-SNE PNG path (default DATA/clusters_tsne.png)")
    p.add_argument("--no-plot", action="store_true", help="skip the t-SNE picture")
    p.add_argument("--plot-points", type=int, default=3000, help="items drawn in the t-SNE (a seeded sample)")
    p.add_argument("--examples", type=int, default=5, help="example members printed per cluster (0: none)")
    p.add_argument("--example-clusters", type=int, default=10, help="clusters with examples printed")


def _int_list(text):
    import argparse

    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError(f"expected at least one integer, got {text!r}")
    return values


def run(args):
    from tfrec.grouping import (balance_report, check_balance, choose_k, format_balance_report, format_k_table,
                                item_to_group_table, kmeans, save_group_table)

    t0 = time.time()
    items = np.load(Path(args.data) / RAW / "items.npz")
    emb, ids = items["embedding"], items["item_id"]
    if not np.array_equal(ids, np.arange(len(ids))):
        raise ValueError(f"{args.data}/raw/items.npz: item_id must be 0..n_items-1 in order")
    n_iter = args.n_iter or (5 if args.batch_size else 50)
    k = args.k
    if k is None:
        started = time.time()
        sweep_iter = args.n_iter or (5 if args.batch_size else 30)
        selection = choose_k(emb, grid=args.k_grid, seed=args.seed, n_iter=sweep_iter, batch_size=args.batch_size,
                             max_cv=args.max_cv, max_ratio=args.max_ratio)
        print(format_k_table(selection))
        print(f"({time.time() - started:.1f}s; pass --k to skip the sweep)")
        k = selection.k
    result = kmeans(emb, k, seed=args.seed, n_iter=n_iter, batch_size=args.batch_size, progress=True)
    report = balance_report(result.assignments, k)
    print(format_balance_report(report))
    out = Path(args.data) / GROUPS
    save_group_table(out, item_to_group_table(result.assignments), result.centroids, report)
    print(f"k={k} groups for {len(ids)} items (+ reserved group 0) -> {out} ({time.time() - t0:.1f}s)")
    review(args, emb, result.assignments, k)
    check_balance(report, max_cv=args.max_cv, max_ratio=args.max_ratio, on_fail="raise" if args.strict else "warn")
    return result


def review(args, emb, assignments, k):
    """The human checks: example members per cluster and the t-SNE picture."""
    from tfrec.grouping.visualize import cluster_examples, format_cluster_examples, tsne_plot

    if args.examples > 0:
        text_path = Path(args.data) / RAW / "items_text.parquet"
        if text_path.exists():
            import pyarrow.parquet as pq
            table = pq.read_table(text_path)
            column = "title" if "title" in table.column_names else "text"
            table = table.select(["item_id", column]).to_pydict()
            titles = dict(zip(table["item_id"], table[column]))
            labels = [titles.get(i, f"item {i}") for i in range(len(assignments))]
        else:
            labels = [f"item {i}" for i in range(len(assignments))]
        sizes = np.bincount(assignments, minlength=k)
        shown = list(np.argsort(-sizes, kind="stable")[:args.example_clusters])
        print(f"example members of the {len(shown)} largest clusters (review that each group means something):")
        print(format_cluster_examples(cluster_examples(assignments, labels, args.examples, shown, args.seed), sizes))
    if not args.no_plot:
        started = time.time()
        path = tsne_plot(emb, assignments, args.plot or Path(args.data) / "clusters_tsne.png",
                         max_points=args.plot_points, seed=args.seed)
        print(f"t-SNE picture -> {path} ({time.time() - started:.1f}s)")
