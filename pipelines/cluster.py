"""Stage `cluster`: K-means over item embeddings -> the item -> group table (DMGIN IDECM).

Prints and saves the cluster load-balance report (size histogram, max/min, coefficient of
variation) and warns (or fails with --strict) past the thresholds.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from pipelines.common import GROUPS, RAW


def add_arguments(p):
    p.add_argument("--data", required=True, help="data directory (reads raw/items.npz)")
    p.add_argument("--k", type=int, default=None,
                   help="clusters (default: dataset.json's n_topics when known, else sqrt(n_items), at least 8)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=None, help="mini-batch K-means for large catalogs")
    p.add_argument("--n-iter", type=int, default=None,
                   help="Lloyd iterations, or passes over the data with --batch-size (default 50, or 5 with it)")
    p.add_argument("--max-cv", type=float, default=1.0, help="balance check: max coefficient of variation")
    p.add_argument("--max-ratio", type=float, default=50.0, help="balance check: max largest/smallest size")
    p.add_argument("--strict", action="store_true", help="fail instead of warning when the balance check fails")


def run(args):
    from tfrec.grouping import (balance_report, check_balance, format_balance_report, item_to_group_table, kmeans,
                                save_group_table)

    t0 = time.time()
    items = np.load(Path(args.data) / RAW / "items.npz")
    emb, ids = items["embedding"], items["item_id"]
    if not np.array_equal(ids, np.arange(len(ids))):
        raise ValueError(f"{args.data}/raw/items.npz: item_id must be 0..n_items-1 in order")
    meta_path = Path(args.data) / RAW / "dataset.json"
    known_k = json.loads(meta_path.read_text()).get("n_topics") if meta_path.exists() else None
    k = args.k or known_k or max(8, int(round(np.sqrt(len(ids)))))
    n_iter = args.n_iter or (5 if args.batch_size else 50)
    result = kmeans(emb, k, seed=args.seed, n_iter=n_iter, batch_size=args.batch_size)
    report = balance_report(result.assignments, k)
    print(format_balance_report(report))
    check_balance(report, max_cv=args.max_cv, max_ratio=args.max_ratio, on_fail="raise" if args.strict else "warn")
    out = Path(args.data) / GROUPS
    save_group_table(out, item_to_group_table(result.assignments), result.centroids, report)
    print(f"k={k} groups for {len(ids)} items (+ reserved group 0) -> {out} ({time.time() - t0:.1f}s)")
    return result
