"""What every stage shares: the data-directory layout and loading a data set's files.

A data directory holds:
  raw/            the raw logs (the documented input format for users' own data, docs/data.md):
                  behaviors.parquet (user_id, item_id, behavior_type, timestamp, duration, amount
                  [, one column per declared behavior feature]), users.parquet (user_id + one column
                  per declared user feature; default: user_segment), train.parquet / test.parquet
                  (user_id, item_id, request_timestamp, label[, true_prob][, one column per declared
                  context feature]), item_features.parquet (item_id + one column per declared item
                  feature; only with item features), items.npz (item_id, embedding [, topic]),
                  schema.yaml (the feature schema, tfrec/data/schema.py; optional: without it the
                  default schema) and dataset.json (n_items, n_user_segments, max_history_length).
  spec.json       the FeatureSpec (written by write-tfrecords; the schema + measured statistics)
  item_features.npz  the item table (written by write-tfrecords when the schema declares item features)
  user_histories.tfrecord, train.tfrecord, test.tfrecord (or, written with --num-shards N > 1, their
                  shards NAME-SSSSS-of-NNNNN.tfrecord: examples and histories co-partitioned by a hash
                  of user_id, tfrec/data/sharding.py)
  splits.json     per split: examples, true_prob; when user-sharded, "sharding" (``data_sharding``)
  groups.npz      the item -> group table (written by cluster) + groups.balance.json
  semantic_ids.npz  the item -> Semantic ID table (written by semantic-ids) + semantic_ids.json;
                  write-tfrecords / beam-tfrecords copy the codes into the records when it exists
"""
from __future__ import annotations

import json
from pathlib import Path

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # TensorFlow loads only when a stage runs, so `tfrec STAGE --help` answers at once
    from tfrec.data.spec import FeatureSpec

RAW = "raw"
SPEC = "spec.json"
HISTORIES = "user_histories.tfrecord"
GROUPS = "groups.npz"
SEMANTIC_IDS = "semantic_ids.npz"  # the item -> Semantic ID table (written by semantic-ids)
SPLITS = "splits.json"  # per split: number of examples and whether they carry true_prob (+ "sharding")
SHARDING = "sharding"  # splits.json's entry for user-sharded data (tfrec.data.sharding.sharding_entry)
SCHEMA = "schema.yaml"  # in raw/: the declared feature schema
ITEM_FEATURES = "item_features.npz"  # the validated item table (write-tfrecords)
ITEM_FEATURES_SOURCE = "item_features.parquet"  # in raw/
USER_VECTORS_KEY = "user_vectors"  # in a run's model.json: the user-vector file it was trained with


def split_file(data_dir, split: str) -> Path:
    """Where ``write-tfrecords`` writes one split."""
    return Path(data_dir) / f"{split}.tfrecord"


def tfrecord_files(data_dir, stem: str):
    """``<stem>.tfrecord``, or its shards ``<stem>-SSSSS-of-NNNNN.tfrecord`` when only those exist
    (``--num-shards N`` of ``write-tfrecords`` / ``beam-tfrecords``); what the readers take.

    Raises:
      ValueError: the shards are not one complete set (several shard counts, or missing shards).
    """
    single = Path(data_dir) / f"{stem}.tfrecord"
    shards = sorted(Path(data_dir).glob(f"{stem}-[0-9][0-9][0-9][0-9][0-9]-of-[0-9][0-9][0-9][0-9][0-9].tfrecord"))
    if single.exists() or not shards:
        return single
    totals = sorted({p.name[-len("NNNNN.tfrecord"):-len(".tfrecord")] for p in shards})
    if len(totals) > 1 or len(shards) != int(totals[0]):
        raise ValueError(f"{data_dir}: the {stem} shards are not one complete set ({len(shards)} files, "
                         f"-of-{'/-of-'.join(totals)}): rewrite the data with one --num-shards")
    return [str(p) for p in shards]


def data_sharding(data_dir) -> dict | None:
    """The ``"sharding"`` entry of ``splits.json``: ``{"key": "user_id", "hash": "splitmix64",
    "num_shards": N, "shard_counts": {"user_histories": [...], "train": [...], "test": [...]}}`` when
    the examples and histories are co-partitioned by user (``--num-shards N > 1``,
    ``tfrec.data.sharding``), else None (single files, or runner-ordered Beam shards, which are not
    co-partitioned).

    Raises:
      ValueError: the entry names a key or hash this version does not compute.
    """
    from tfrec.data import sharding

    path = Path(data_dir) / SPLITS
    if not path.exists():
        return None
    entry = json.loads(path.read_text()).get(SHARDING)
    if entry is None:
        return None
    if entry.get("key") != sharding.SHARD_KEY or entry.get("hash") != sharding.SHARD_HASH:
        raise ValueError(f"{path}: sharded by {entry.get('key')!r} / {entry.get('hash')!r}, but this version "
                         f"shards by {sharding.SHARD_KEY!r} / {sharding.SHARD_HASH!r}: {sharding.REWRITE_FIX}")
    return entry


def shard_files(data_dir, stem: str, shards) -> list[str]:
    """The files of shards ``shards`` (indices) of output ``stem`` (``user_histories``, ``train``,
    ``test``): ``<stem>-SSSSS-of-NNNNN.tfrecord`` with N from ``data_sharding``, or, for data that is
    not user-sharded, ``<stem>.tfrecord`` as the one shard 0.

    Raises:
      ValueError: a shard index outside ``[0, N)``.
      FileNotFoundError: a shard's file is missing (named).
    """
    from tfrec.data.sharding import REWRITE_FIX, shard_paths

    sharding = data_sharding(data_dir)
    n = sharding["num_shards"] if sharding else 1
    paths = shard_paths(str(Path(data_dir) / stem), n)
    out = []
    for s in shards:
        if not 0 <= int(s) < n:
            raise ValueError(f"{data_dir}: shard {s} of {stem} does not exist: the data has {n} user shard(s) "
                             f"(splits.json); {REWRITE_FIX}")
        path = paths[int(s)]
        if not Path(path).exists():
            written = f"user-sharded into {n}" if sharding else "not user-sharded"
            raise FileNotFoundError(f"{path} not found: {data_dir} is {written} (splits.json); re-run "
                                    f"`tfrec write-tfrecords --data {data_dir}` with the --num-shards it was written with")
        out.append(path)
    return out


def history_files(data_dir):
    """The user-history file (or its shards) of a data directory."""
    return tfrecord_files(data_dir, HISTORIES[: -len(".tfrecord")])


def load_spec(data_dir) -> "FeatureSpec":
    from tfrec.data.spec import FeatureSpec

    path = Path(data_dir) / SPEC
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: run `tfrec write-tfrecords --data {data_dir}` first")
    return FeatureSpec.from_dict(json.loads(path.read_text()))


def declared_spec(data_dir, schema_path=None, max_history_length=None, **sizes) -> "FeatureSpec":
    """The FeatureSpec a data directory declares: ``raw/dataset.json`` sizes + the schema file
    (``schema_path``, default ``raw/schema.yaml`` when it exists, else the default schema).

    Precedence for L: ``max_history_length`` (the flag) > the schema file's > dataset.json's.
    ``sizes`` adds FeatureSpec fields (e.g. the Semantic ID levels).
    """
    from tfrec.data.spec import FeatureSpec

    raw = Path(data_dir) / RAW
    meta = json.loads((raw / "dataset.json").read_text())
    defaults = {"n_items": meta["n_items"], "n_user_segments": meta.get("n_user_segments", 8),
                "max_history_length": meta["max_history_length"], **sizes}
    path = Path(schema_path) if schema_path else raw / SCHEMA
    if schema_path and not path.exists():
        raise FileNotFoundError(f"--schema {path} not found")
    spec = FeatureSpec.from_schema_file(path, **defaults) if path.exists() else FeatureSpec(**defaults)
    if max_history_length:
        import dataclasses

        spec = dataclasses.replace(spec, max_history_length=int(max_history_length))
    return spec


def load_item_table(data_dir, spec: "FeatureSpec"):
    """The item table of a data directory (``item_features.npz``), or None when the schema declares no
    item feature."""
    if not spec.item_features:
        return None
    from tfrec.data.item_table import ItemTable

    path = Path(data_dir) / ITEM_FEATURES
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: the schema declares item features; run "
                                f"`tfrec write-tfrecords --data {data_dir}` (it reads raw/{ITEM_FEATURES_SOURCE})")
    return ItemTable.load(path, spec)


def make_split_dataset(data_dir, split: str, spec: "FeatureSpec", batch_size: int, shuffle: bool = False,
                       seed: int = 0, history=None, skip_corrupt: bool = False, user_vectors=None,
                       min_request_timestamp=None, files=None, max_request_timestamp=None, **options):
    """The tf.data pipeline over one split, joined with the user-history file (and ``user_vectors``, a
    ``UserVectors``, when given; ``min_request_timestamp`` drops the earlier examples, ``max_request_timestamp``
    the ones requested at or after it). ``files``: the
    split's example files to read (default: all of them); ``options``: more ``make_dataset`` arguments
    (``repeat``, ``drop_remainder``, ``input_shard``)."""
    from tfrec.data.dataset import load_user_histories, make_dataset

    if history is None:
        history = load_user_histories(history_files(data_dir), spec, skip_corrupt=skip_corrupt)
    splits_path = Path(data_dir) / SPLITS
    splits = json.loads(splits_path.read_text()) if splits_path.exists() else {}
    with_prob = bool(splits.get(split, {}).get("true_prob", False))
    return make_dataset(tfrecord_files(data_dir, split) if files is None else files, spec, history=history,
                        batch_size=batch_size, shuffle=shuffle, seed=seed, include_true_prob=with_prob,
                        skip_corrupt=skip_corrupt, user_vectors=user_vectors,
                        min_request_timestamp=min_request_timestamp, max_request_timestamp=max_request_timestamp,
                        **options)


def file_sha256(path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def user_vectors_info(user_vectors, path) -> dict:
    """What a trained run's ``model.json`` remembers of its user-vector file (``USER_VECTORS_KEY``),
    with the file's sha256 so a later stage notices the file was rewritten (e.g. a new compression
    into the same directory)."""
    return {"path": str(Path(path).resolve()), "name": user_vectors.name, "dim": user_vectors.dim,
            "n_users": len(user_vectors), "boundaries": [int(user_vectors.boundaries[0]),
                                                         int(user_vectors.boundaries[-1])],
            "meta": user_vectors.meta, "sha256": file_sha256(path)}


def check_recorded_user_vectors(recorded: dict, path) -> None:
    """Raises when the recorded file (``recorded["path"]``) no longer holds what the model was trained
    with: the vectors are features, and silently reading different ones skews every score."""
    expected = recorded.get("sha256")
    if expected and Path(path).exists() and file_sha256(path) != expected:
        raise ValueError(f"user vectors {path} changed since the model was trained with them (sha256 differs): "
                         "re-train on the new file, or pass --user-vectors PATH to use this file anyway")


def run_user_vectors(spec: "FeatureSpec", info: dict, path=None):
    """The ``UserVectors`` a trained run reads: ``path`` (``--user-vectors``) or else the file its
    ``model.json`` remembers; None for a run trained without user vectors.

    Raises:
      ValueError: the run takes user vectors but no file is known, the file's width differs from the
        model's ``user_vector_dim``, or ``path`` is given for a run trained without user vectors.
      FileNotFoundError: the file is gone (pass ``--user-vectors`` with its new place).
    """
    from tfrec.data.user_vectors import UserVectors

    dim = spec.user_vector_dim
    if not dim:
        if path:
            raise ValueError(f"--user-vectors {path}: this run was trained without user vectors "
                             "(its model has user_vector_dim=0); train with --user-vectors to use them")
        return None
    if not path:
        recorded = info.get(USER_VECTORS_KEY) or {}
        path = recorded.get("path")
        if not path:
            raise ValueError(f"the model reads user vectors (user_vector_dim={dim}) and the run does not say which "
                             "file: pass --user-vectors PATH")
        check_recorded_user_vectors(recorded, path)
    user_vectors = UserVectors.load(path)
    if user_vectors.dim != dim:
        raise ValueError(f"{path}: user vectors have D={user_vectors.dim} but the model was trained with "
                         f"user_vector_dim={dim}; pass the file the run was trained with")
    return user_vectors


def dataset_name(data_dir) -> str:
    raw = Path(data_dir) / RAW / "dataset.json"
    if raw.exists():
        return json.loads(raw.read_text()).get("name", Path(data_dir).name)
    return Path(data_dir).name


def load_yaml_config(path) -> dict:
    if not path:
        return {}
    import yaml

    with open(path) as f:
        return yaml.safe_load(f) or {}


def stage_args(module, argv) -> "argparse.Namespace":
    """A stage's arguments as its command line would give them (defaults filled in)."""
    import argparse

    parser = argparse.ArgumentParser(prog=f"tfrec {module.__name__.rsplit('.', 1)[-1]}")
    module.add_arguments(parser)
    return parser.parse_args([str(a) for a in argv])


def skipped_corrupt(scan_reports) -> dict | None:
    """What ``--skip-corrupt`` dropped, for a stage's output: ``{"n_files", "n_readable_records", "files":
    [{"path", "records_readable", "reason"}]}``, or None when no file was skipped.

    ``n_readable_records`` counts the intact records lost with the files (``SkippedFile.records_readable``);
    what follows the damage in a file is not readable, so not counted.
    """
    import dataclasses

    files = [dataclasses.asdict(s) for report in scan_reports for s in report.skipped]
    if not files:
        return None
    return {"n_files": len(files), "n_readable_records": sum(f["records_readable"] for f in files), "files": files}


def skipped_corrupt_line(skipped: dict) -> str:
    """One line naming the skipped files and the readable records lost with them (``skipped_corrupt``)."""
    paths = ", ".join(f["path"] for f in skipped["files"])
    return (f"skipped {skipped['n_files']} corrupt TFRecord file(s) and the {skipped['n_readable_records']} "
            f"readable records in them (--skip-corrupt): {paths}")
