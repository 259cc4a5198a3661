"""Stage `synthetic`: generate a synthetic data set with a planted, known click probability.

Writes the raw logs (see pipelines/common.py) that `write-tfrecords` turns into TFRecords.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.common import RAW


def add_arguments(p):
    p.add_argument("--size", default="small", choices=["small", "medium", "long"],
                   help="preset size: small (tests, seconds), medium (demo), long (10,000-behavior histories)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="data directory to create")


def _table(records, fields) -> pa.Table:
    return pa.table({f: np.asarray([r[f] for r in records]) for f in fields})


def write_raw(data, out_dir, name: str) -> Path:
    raw = Path(out_dir) / RAW
    raw.mkdir(parents=True, exist_ok=True)
    hist = data.histories
    lengths = np.array([len(h["hist_item_id"]) for h in hist])
    behaviors = {
        "user_id": np.repeat([int(h["user_id"]) for h in hist], lengths),
        "item_id": np.concatenate([h["hist_item_id"] for h in hist]),
        "behavior_type": np.concatenate([h["hist_behavior_type"] for h in hist]),
        "timestamp": np.concatenate([h["hist_timestamp"] for h in hist]),
        "duration": np.concatenate([h["hist_duration"] for h in hist]),
        "amount": np.concatenate([h["hist_amount"] for h in hist]),
    }
    pq.write_table(pa.table(behaviors), raw / "behaviors.parquet")
    pq.write_table(_table(hist, ["user_id", "user_segment"]), raw / "users.parquet")
    fields = ["user_id", "item_id", "request_timestamp", "label", "true_prob"]
    pq.write_table(_table(data.train, fields), raw / "train.parquet")
    pq.write_table(_table(data.test, fields), raw / "test.parquet")
    np.savez(raw / "items.npz", **data.items)
    cfg = data.config
    pq.write_table(pa.table({k: data.items[k] for k in ("item_id", "category", "brand")}),
                   raw / "item_features.parquet")
    (raw / "schema.yaml").write_text(
        f"# Feature schema of {name} (written by `tfrec synthetic`; tfrec/data/schema.py)\n"
        "user:\n"
        f"  - {{name: user_segment, kind: categorical, vocab_size: {cfg.n_user_segments}}}\n"
        "context: []\n"
        "item:  # category: topics_per_category topics each; brand: mostly from the item's topic\n"
        f"  - {{name: category, kind: categorical, vocab_size: {cfg.n_categories}}}\n"
        f"  - {{name: brand, kind: categorical, vocab_size: {cfg.n_brands}}}\n"
        "behavior: []\n")
    spec = data.spec
    (raw / "dataset.json").write_text(json.dumps({
        "name": name,
        "n_items": spec.n_items, "n_user_segments": spec.n_user_segments,
        "max_history_length": spec.max_history_length,
        # The latent truth K-means should recover; `cluster` uses it as the default k.
        "n_topics": int(data.config.n_topics)}, indent=2))
    return raw


def run(args):
    from tfrec.data.synthetic import SyntheticConfig, generate

    t0 = time.time()
    data = generate(SyntheticConfig.preset(args.size, seed=args.seed))
    raw = write_raw(data, args.out, f"synthetic-{args.size}")
    n_beh = sum(len(h["hist_item_id"]) for h in data.histories)
    print(f"synthetic-{args.size}: {len(data.histories)} users, {n_beh} behaviors, {len(data.train)} train / "
          f"{len(data.test)} test examples, {data.spec.n_items} items -> {raw} ({time.time() - t0:.1f}s)")
