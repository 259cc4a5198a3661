"""Stage `synthetic`: generate a synthetic data set with a planted, known click probability.

Writes the raw logs (see pipelines/common.py) that `write-tfrecords` turns into TFRecords.
`--version v2` (default) plants one term per paper claim; `--version v1` reproduces the first
generator (tfrec/data/synthetic/). `--report` prints what the data can test: the oracle, the oracle
with each planted term removed, and the information ceilings of the classic shortcuts (v2 only).
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
    p.add_argument("--version", default="v2", choices=["v1", "v2"],
                   help="generator version: v2 (default; a term per paper claim) or v1 (the first one, kept so "
                        "earlier results stay reproducible)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="data directory to create (optional with --report)")
    p.add_argument("--report", action="store_true",
                   help="print the oracle, the oracle without each planted term and the shortcut ceilings "
                        "(v2; written to raw/synthetic_report.json too when --out is given)")


def _table(records, fields) -> pa.Table:
    return pa.table({f: np.asarray([r[f] for r in records]) for f in fields})


def write_raw(data, out_dir, name: str) -> Path:
    from tfrec.data.synthetic import version_of

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
        "generator": version_of(cfg),
        "n_items": spec.n_items, "n_user_segments": spec.n_user_segments,
        "max_history_length": spec.max_history_length,
        # The generator's hidden truth, for reports and tests only: no stage reads it (`cluster`
        # chooses k from the embeddings).
        "truth": {"n_topics": int(cfg.n_topics), "n_categories": int(cfg.n_categories)}}, indent=2))
    return raw


def run(args):
    from tfrec.data.synthetic import generate, preset

    version = getattr(args, "version", "v2")
    do_report = getattr(args, "report", False)
    if args.out is None and not do_report:
        raise ValueError("tfrec synthetic needs --out DATA (or --report to only print the report)")
    if do_report and version != "v2":
        raise ValueError("--report needs --version v2: v1's truth has no separate terms to ablate")
    name = f"synthetic-{args.size}" + ("" if version == "v2" else f"-{version}")
    t0 = time.time()
    data = generate(preset(args.size, version, seed=args.seed))
    elapsed = time.time() - t0
    n_beh = sum(len(h["hist_item_id"]) for h in data.histories)
    where = ""
    if args.out is not None:
        raw = write_raw(data, args.out, name)
        where = f" -> {raw}"
    print(f"{name} (seed {args.seed}): {len(data.histories)} users, {n_beh} behaviors, {len(data.train)} train / "
          f"{len(data.test)} test examples, {data.spec.n_items} items, generated in {elapsed:.1f}s{where}")
    if do_report:
        from tfrec.data.synthetic.report import format_report, report

        t1 = time.time()
        result = report(data)
        print(format_report(f"{name} seed {args.seed} (test split)", result))
        print(f"(report computed in {time.time() - t1:.1f}s)")
        if args.out is not None:
            (raw / "synthetic_report.json").write_text(json.dumps(result, indent=2))
    return data
