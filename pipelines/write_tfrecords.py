"""Stage `write-tfrecords`: raw logs -> user-history file + example files (+ spec.json).

Behaviors are grouped by user and sorted by timestamp (stable), then written once per user;
examples carry user_id + request_timestamp + target + label. The writer validates every
record and stops with the record number and field on bad data.

When DATA/semantic_ids.npz exists (written by `tfrec semantic-ids`; or --semantic-ids PATH), every
record also carries the items' Semantic ID codes (target: item_semantic_id_1..M, history:
hist_semantic_id_1..M) and spec.json declares them; --no-semantic-ids leaves them out.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from tfrec.data.spec import HIST_SEMANTIC_ID, ITEM_SEMANTIC_ID

from pipelines.common import HISTORIES, RAW, SEMANTIC_IDS, SPEC, SPLITS, split_file


def add_arguments(p):
    p.add_argument("--data", required=True, help="data directory with raw/ (see pipelines/common.py)")
    p.add_argument("--max-history-length", type=int, default=None,
                   help="L fed to models (default: dataset.json's max_history_length)")
    add_semantic_id_arguments(p)


def add_semantic_id_arguments(p):
    """--semantic-ids / --no-semantic-ids (shared with beam-tfrecords)."""
    p.add_argument("--semantic-ids", default=None,
                   help=f"Semantic ID item table to write into the records (default: DATA/{SEMANTIC_IDS} if it "
                        "exists, from `tfrec semantic-ids`)")
    p.add_argument("--no-semantic-ids", action="store_true", help="write no Semantic IDs even if the table exists")


def semantic_id_lookup(args, data_dir, n_items):
    """The ``SemanticIDLookup`` the flags ask for, or None."""
    from tfrec.data.semantic_ids import SemanticIDLookup

    given = getattr(args, "semantic_ids", None)  # callers may build the Namespace by hand
    if getattr(args, "no_semantic_ids", False):
        if given:
            raise ValueError("--semantic-ids and --no-semantic-ids contradict each other; pass one")
        return None
    path = given or f"{str(data_dir).rstrip('/')}/{SEMANTIC_IDS}"
    if not given and not _exists(path):
        return None
    if not _exists(path):
        raise FileNotFoundError(f"--semantic-ids {path} not found: run `tfrec semantic-ids --data DATA` first")
    return SemanticIDLookup.load(path, n_items)


def _exists(path) -> bool:
    import tensorflow as tf

    return tf.io.gfile.exists(str(path))


def _columns(path, required):
    table = pq.read_table(path)
    missing = [c for c in required if c not in table.column_names]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; required columns are {required}")
    return {c: table.column(c).to_numpy() for c in table.column_names}


def history_records(behaviors, users, semantic_ids=None):
    """One record per user, behaviors sorted oldest first (users without behaviors get none).

    With a ``SemanticIDLookup`` each record also gets ``hist_semantic_id_1..M``.
    """
    segment = dict(zip(users["user_id"].tolist(), users["user_segment"].tolist()))
    order = np.lexsort((behaviors["timestamp"], behaviors["user_id"]))
    uid = behaviors["user_id"][order]
    bounds = np.flatnonzero(np.diff(uid)) + 1
    starts, ends = np.r_[0, bounds], np.r_[bounds, len(uid)]
    names = {"item_id": "hist_item_id", "behavior_type": "hist_behavior_type", "timestamp": "hist_timestamp",
             "duration": "hist_duration", "amount": "hist_amount"}
    cols = {dst: behaviors[src][order] for src, dst in names.items()}
    if semantic_ids is not None:
        cols.update(semantic_ids.columns(cols["hist_item_id"], HIST_SEMANTIC_ID,
                                         lambda i: f"behaviors.parquet row {int(order[i])}"))
    for s, e in zip(starts, ends):
        u = int(uid[s])
        yield {"user_id": u, "user_segment": int(segment.get(u, 0)), **{k: v[s:e] for k, v in cols.items()}}


def run(args):
    from tfrec.data.spec import FeatureSpec
    from tfrec.data.tfrecord import write_examples, write_user_histories

    t0 = time.time()
    data = Path(args.data)
    raw = data / RAW
    meta = json.loads((raw / "dataset.json").read_text())
    semantic_ids = semantic_id_lookup(args, data, meta["n_items"])
    spec = FeatureSpec(n_items=meta["n_items"], n_user_segments=meta.get("n_user_segments", 8),
                       max_history_length=args.max_history_length or meta["max_history_length"],
                       **(semantic_ids.spec_fields() if semantic_ids else {}))
    behaviors = _columns(raw / "behaviors.parquet",
                         ["user_id", "item_id", "behavior_type", "timestamp", "duration", "amount"])
    users = _columns(raw / "users.parquet", ["user_id", "user_segment"])
    n_users = write_user_histories(data / HISTORIES, spec, history_records(behaviors, users, semantic_ids),
                                   progress="user histories", total=len(np.unique(behaviors["user_id"])))
    splits = {}
    for split in ("train", "test"):
        cols = _columns(raw / f"{split}.parquet", ["user_id", "item_id", "request_timestamp", "label"])
        with_prob = "true_prob" in cols
        keys = ["user_id", "item_id", "request_timestamp", "label"] + (["true_prob"] if with_prob else [])
        if semantic_ids is not None:
            codes = semantic_ids.columns(cols["item_id"], ITEM_SEMANTIC_ID,
                                         lambda i, split=split: f"{split}.parquet row {i}")
            cols.update(codes)
            keys += list(codes)
        records = ({k: cols[k][i] for k in keys} for i in range(len(cols["user_id"])))
        n = write_examples(split_file(data, split), spec, records, with_true_prob=with_prob,
                           progress=f"{split} examples", total=len(cols["user_id"]))
        splits[split] = {"examples": n, "true_prob": with_prob}
    (data / SPEC).write_text(json.dumps(spec.to_dict(), indent=2))
    (data / SPLITS).write_text(json.dumps(splits, indent=2))
    if semantic_ids is not None:
        print(f"Semantic IDs: {semantic_ids.levels} levels (codes < {semantic_ids.vocab}) from {semantic_ids.source}")
    print(f"wrote {n_users} user histories, {splits['train']['examples']} train / {splits['test']['examples']} "
          f"test examples to {data} "
          f"({time.time() - t0:.1f}s)")
