"""Stage `write-tfrecords`: raw logs -> user-history file + example files (+ spec.json).

The feature schema is DATA/raw/schema.yaml (or --schema FILE; without one, the default schema:
user_segment only; docs/data.md). Behaviors are grouped by user and sorted by timestamp (stable),
then written once per user with the user features and the declared behavior features; every user
of users.parquet gets a record. Examples carry user_id + request_timestamp + target + label + the
context features. Item features go into DATA/item_features.npz (the item table the model keeps),
and the mean/std of `standardize` features are measured on the training data into spec.json. The
writer validates every record and stops with the record number and field on bad data.

When DATA/semantic_ids.npz exists (written by `tfrec semantic-ids`; or --semantic-ids PATH), every
record also carries the items' Semantic ID codes (target: item_semantic_id_1..M, history:
hist_semantic_id_1..M) and spec.json declares them; --no-semantic-ids leaves them out.

--num-shards N (default 1: the single files) writes NAME-SSSSS-of-NNNNN.tfrecord instead, every
example and every user history in shard tfrec.data.sharding.user_shard(user_id, N), so shard i of
the examples and shard i of the histories hold the same users (a distributed-training worker joins
only its own users' histories); splits.json then records the sharding and the records per shard.
Earlier outputs of another shard count (or the single files) are deleted, so readers never mix two
writes.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from pipelines.common import (HISTORIES, ITEM_FEATURES, ITEM_FEATURES_SOURCE, RAW, SEMANTIC_IDS, SPEC, SPLITS,
                              declared_spec)


def add_arguments(p):
    p.add_argument("--data", required=True, help="data directory with raw/ (see pipelines/common.py)")
    p.add_argument("--max-history-length", type=int, default=None,
                   help="L fed to models (default: the schema's, else dataset.json's max_history_length)")
    p.add_argument("--schema", default=None,
                   help="feature schema YAML (default: DATA/raw/schema.yaml if it exists, else the default schema: "
                        "user_segment only; see docs/data.md)")
    p.add_argument("--num-shards", type=int, default=1, metavar="N",
                   help="files per output (default 1: user_histories.tfrecord, train.tfrecord, test.tfrecord); with "
                        "N > 1, NAME-SSSSS-of-NNNNN.tfrecord, examples and histories sharded by a hash of user_id "
                        "into the same shards (docs/data.md)")
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
    return {c: _column(table.column(c)) for c in table.column_names}


def _column(column):
    """A Parquet column as numpy: flat columns as arrays, list columns as an object array of arrays."""
    import pyarrow as pa

    if pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
        return np.array([np.asarray(v if v is not None else []) for v in column.to_pylist()] + [None],
                        dtype=object)[:-1]
    return column.to_numpy()


def user_columns(users, spec):
    """user_id -> row of the users table, and the user feature columns (validated by the writer)."""
    names = [f.name for f in spec.user_fields()]
    row = {int(u): i for i, u in enumerate(users["user_id"].tolist())}
    if len(row) != len(users["user_id"]):
        uniq, counts = np.unique(users["user_id"], return_counts=True)
        raise ValueError(f"users.parquet: user_id {int(uniq[counts > 1][0])} has {int(counts.max())} rows; "
                         "give each user one row")
    return row, {n: users[n] for n in names}


def history_records(behaviors, users, spec, semantic_ids=None):
    """One record per user, behaviors sorted oldest first, in user_id order: every user of
    users.parquet (one without behaviors gets an empty history, so its user features reach the
    model) and every user with behaviors (who must have a users.parquet row).

    The user features come from ``users`` (users.parquet); declared behavior features from the
    ``behaviors`` columns of the same name. With a ``SemanticIDLookup`` each record also gets
    ``hist_semantic_id_1..M``.
    """
    from tfrec.data.spec import HIST_SEMANTIC_ID

    row_of, profile = user_columns(users, spec)
    order = np.lexsort((behaviors["timestamp"], behaviors["user_id"]))
    uid = behaviors["user_id"][order]
    bounds = np.flatnonzero(np.diff(uid)) + 1
    starts, ends = np.r_[0, bounds], np.r_[bounds, len(uid)]
    names = {"item_id": "hist_item_id", "behavior_type": "hist_behavior_type", "timestamp": "hist_timestamp",
             "duration": "hist_duration", "amount": "hist_amount"}
    names.update({f.schema_name: f.name for f in spec.behavior_fields()})
    cols = {dst: behaviors[src][order] for src, dst in names.items()}
    if semantic_ids is not None:
        cols.update(semantic_ids.columns(cols["hist_item_id"], HIST_SEMANTIC_ID,
                                         lambda i: f"behaviors.parquet row {int(order[i])}"))
    span = {int(uid[s]): (s, e) for s, e in zip(starts, ends)}
    for u in sorted(set(span) | set(row_of)):
        if u not in row_of:
            raise ValueError(f"users.parquet: user_id {u} has behaviors but no row; add a row with its user "
                             f"features {list(profile)}")
        s, e = span.get(u, (0, 0))
        r = row_of[u]
        yield {"user_id": u, **{k: v[r] for k, v in profile.items()}, **{k: v[s:e] for k, v in cols.items()}}


def measure_statistics(spec, behaviors, users, train, items):
    """(mean, std) of every standardized numeric feature whose statistics the schema leaves open:
    user features over users.parquet, context over train.parquet, behavior features over
    behaviors.parquet, item features over the item table (training data only, so the test split
    never leaks into the model)."""
    from tfrec.data.item_table import column_statistics

    sources = {"user": users, "context": train, "behavior": behaviors}
    stats = {}
    for section, name in spec.statistics_needed():
        fd = next(f for f in getattr(spec, f"{section}_features") if f.name == name)
        if section == "item":
            stats[(section, name)] = items.statistics(fd)
        else:
            stats[(section, name)] = column_statistics(sources[section][name], fd)
    return stats


def write_user_sharded(data, stem, num_shards, spec, features, records, **progress):
    """Validates and writes ``records`` as ``DATA/stem.tfrecord`` (one shard) or
    ``DATA/stem-SSSSS-of-NNNNN.tfrecord``, each record in shard ``user_shard(user_id, num_shards)``
    (relative order kept), then deletes ``stem``'s earlier outputs of another shard count.
    Returns the records per shard."""
    import functools

    from tfrec.data.sharding import record_shard, shard_paths, stale_outputs
    from tfrec.data.tfrecord import write_sharded_records

    data = Path(data)
    counts = write_sharded_records(shard_paths(str(data / stem), num_shards), records, features, spec,
                                   shard_of=functools.partial(record_shard, num_shards=num_shards), **progress)
    for name in stale_outputs((p.name for p in data.iterdir()), stem, num_shards):
        (data / name).unlink()
    return counts


def run(args):
    from tfrec.data.item_table import ItemTable
    from tfrec.data.sharding import sharding_entry
    from tfrec.data.spec import ITEM_SEMANTIC_ID

    t0 = time.time()
    num_shards = getattr(args, "num_shards", None)  # callers may build the Namespace by hand
    num_shards = 1 if num_shards is None else num_shards
    if num_shards < 1:
        raise ValueError(f"--num-shards must be >= 1; got {num_shards}")
    data = Path(args.data)
    raw = data / RAW
    meta = json.loads((raw / "dataset.json").read_text())
    semantic_ids = semantic_id_lookup(args, data, meta["n_items"])
    spec = declared_spec(data, getattr(args, "schema", None), args.max_history_length,
                         **(semantic_ids.spec_fields() if semantic_ids else {}))
    behaviors = _columns(raw / "behaviors.parquet", ["user_id", "item_id", "behavior_type", "timestamp", "duration",
                                                     "amount"] + [f.schema_name for f in spec.behavior_fields()])
    users = _columns(raw / "users.parquet", ["user_id"] + [f.name for f in spec.user_fields()])
    context = [f.name for f in spec.context_fields()]
    examples = {split: _columns(raw / f"{split}.parquet",
                                ["user_id", "item_id", "request_timestamp", "label"] + context)
                for split in ("train", "test")}
    items = None
    if spec.item_features:
        items = ItemTable.from_parquet(raw / ITEM_FEATURES_SOURCE, spec)
    spec = spec.with_statistics(measure_statistics(spec, behaviors, users, examples["train"], items))
    counts = {}
    counts["user_histories"] = write_user_sharded(
        data, HISTORIES[: -len(".tfrecord")], num_shards, spec, spec.history_record_features(),
        history_records(behaviors, users, spec, semantic_ids), progress="user histories",
        total=len(np.union1d(behaviors["user_id"], users["user_id"])))
    n_users = sum(counts["user_histories"])
    splits = {}
    for split, cols in examples.items():
        with_prob = "true_prob" in cols
        keys = ["user_id", "item_id", "request_timestamp", "label"] + (["true_prob"] if with_prob else []) + context
        if semantic_ids is not None:
            codes = semantic_ids.columns(cols["item_id"], ITEM_SEMANTIC_ID,
                                         lambda i, split=split: f"{split}.parquet row {i}")
            cols.update(codes)
            keys += list(codes)
        records = ({k: cols[k][i] for k in keys} for i in range(len(cols["user_id"])))
        counts[split] = write_user_sharded(data, split, num_shards, spec,
                                           spec.example_record_features(with_true_prob=with_prob), records,
                                           progress=f"{split} examples", total=len(cols["user_id"]))
        splits[split] = {"examples": sum(counts[split]), "true_prob": with_prob}
    if num_shards > 1:
        splits["sharding"] = sharding_entry(num_shards, counts)
    if items is not None:
        items.save(data / ITEM_FEATURES)
    (data / SPEC).write_text(json.dumps(spec.to_dict(), indent=2))
    (data / SPLITS).write_text(json.dumps(splits, indent=2))
    if semantic_ids is not None:
        print(f"Semantic IDs: {semantic_ids.levels} levels (codes < {semantic_ids.vocab}) from {semantic_ids.source}")
    if items is not None:
        print(f"item table: {len(spec.item_features)} features x {items.n_items} items "
              f"({items.n_missing} items not listed in {ITEM_FEATURES_SOURCE}: unknown values)")
    print(f"wrote {n_users} user histories, {splits['train']['examples']} train / {splits['test']['examples']} "
          f"test examples to {data} "
          f"({time.time() - t0:.1f}s)")
