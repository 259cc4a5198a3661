"""What a `tfrec train` process reads and resumes from, under any strategy (not a stage).

* ``input_files``: the example and history files of this process's input pipeline (its user shards
  under multi-worker; otherwise every file and a record-level shard);
* ``check_worker_examples``: every worker has at least one per-replica batch (checked alike on all);
* ``all_reduce_sum``: one sum over the workers (the item frequencies of the workers' users);
* ``count_examples``: a split's examples (epoch length);
* ``backup_fingerprint`` / ``check_backup``: a BackupAndRestore backup resumes only the same training;
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from pipelines.common import HISTORIES, history_files

HISTORIES_STEM = HISTORIES[: -len(".tfrecord")]


def backup_fingerprint(args: dict) -> str:
    return json.dumps(args, sort_keys=True, default=str)


def check_backup(out_dir, fingerprint: str, is_chief: bool) -> None:
    """A backup left by an interrupted run resumes only the same training: another config or data
    would fail to restore (or silently mix two runs), so such a backup is removed, saying so."""
    from tfrec.training import BACKUP

    backup, stamp = Path(out_dir) / BACKUP, Path(out_dir) / f"{BACKUP}.json"
    if backup.exists() and (not stamp.exists() or stamp.read_text() != fingerprint):
        if is_chief:
            print(f"{backup}: a backup of a different training (other model, config, data or strategy): "
                  "removing it and starting from scratch", flush=True)
            shutil.rmtree(backup, ignore_errors=True)
    elif backup.exists():
        # a whole checkpoint is one the ``checkpoint`` state file (written last) names and whose index exists
        import tensorflow as tf

        if any(tf.train.latest_checkpoint(str(state.parent)) for state in backup.rglob("checkpoint")):
            print(f"{backup}: resuming the interrupted training from its backup", flush=True)
        else:
            print(f"{backup}: the interrupted training left no whole checkpoint (killed while writing its "
                  "first): starting from scratch", flush=True)
    if is_chief:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        stamp.write_text(fingerprint)


def input_files(data_dir, split: str, dist, sharding=None):
    """The example and user-history files this process reads, and the record-level shard.

    Returns ``(example_files, history_files, input_shard, line)``: with data sharded by user
    (``write-tfrecords --num-shards``) a multi-worker process reads only its shards of both (its
    users' examples and histories: ``input_shard`` None); otherwise every file, and the examples are
    split by record across the input pipelines (``input_shard`` = (count, index)), every process
    holding every history. ``sharding``: the data's ``data_sharding`` entry (read when not given).
    """
    from pipelines.common import data_sharding, shard_files, tfrecord_files
    from tfrec.data.sharding import worker_shards

    count, index = dist.input_count, dist.input_index
    sharding = data_sharding(data_dir) if sharding is None else sharding
    if count > 1 and sharding is not None:
        shards = worker_shards(sharding["num_shards"], index, count)
        line = (f"input: user shards {shards} of {sharding['num_shards']} (examples and histories of this "
                f"worker's users only)")
        return (shard_files(data_dir, split, shards), shard_files(data_dir, HISTORIES_STEM, shards), None, line)
    line = "input: every file"
    if count > 1:
        line += (f", every {count}-th example record (input pipeline {index}); every history (the data is not "
                 "sharded by user: `tfrec write-tfrecords --num-shards N` co-partitions it)")
    return tfrecord_files(data_dir, split), history_files(data_dir), ((count, index) if count > 1 else None), line


def all_reduce_sum(strategy, values):
    """``values`` (numpy) summed over every worker of a multi-worker strategy (one collective, which
    every worker reaches at the same point of ``train_model``)."""
    import numpy as np
    import tensorflow as tf

    local = tf.constant(values, tf.float32)
    total = strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(lambda: tf.identity(local)), axis=None)
    return np.asarray(total.numpy(), dtype=np.asarray(values).dtype)


def check_worker_examples(data_dir, dist, sharding, input_shard, batch_size: int, min_request_timestamp=None,
                          skip_corrupt: bool = False) -> None:
    """Raises ValueError, on every worker alike, when an input pipeline would have fewer examples than
    one per-replica batch: its repeated dataset would end at once and leave the other workers waiting
    in the all-reduce."""
    count, per_replica = dist.input_count, batch_size // max(dist.replicas, 1)
    if count <= 1:
        return
    if input_shard is not None:
        per_worker = [count_examples(data_dir, "train", min_request_timestamp, skip_corrupt=skip_corrupt) // count] * count
    else:
        from pipelines.common import shard_files
        from tfrec.data.sharding import worker_shards

        shard_counts = sharding.get("shard_counts", {}).get("train")
        per_worker = []
        for worker in range(count):
            shards = worker_shards(sharding["num_shards"], worker, count)
            if min_request_timestamp is None and shard_counts:
                per_worker.append(sum(shard_counts[s] for s in shards))
            else:
                per_worker.append(count_examples(data_dir, "train", min_request_timestamp,
                                                 files=shard_files(data_dir, "train", shards), skip_corrupt=skip_corrupt))
    short = [w for w, n in enumerate(per_worker) if n < per_replica]
    if short:
        raise ValueError(f"worker(s) {short} would read fewer training examples ({[per_worker[w] for w in short]}) than "
                         f"one per-replica batch ({per_replica} = --batch-size {batch_size} / {dist.replicas} replicas): "
                         "use fewer workers, a smaller --batch-size, or more data")


def count_examples(data_dir, split: str, min_request_timestamp=None, files=None, skip_corrupt: bool = False) -> int:
    """Examples in a split (``splits.json``; with ``min_request_timestamp`` or ``files`` -- some of the
    split's files -- counted in the files, without the files ``skip_corrupt`` drops)."""
    from pipelines.common import SPLITS, tfrecord_files

    splits_path = Path(data_dir) / SPLITS
    if files is None and min_request_timestamp is None and splits_path.exists():
        count = json.loads(splits_path.read_text()).get(split, {}).get("examples")
        if count is not None:
            return int(count)
    from pipelines.common import load_spec
    from tfrec.data.tfrecord import read_request_timestamps

    files = tfrecord_files(data_dir, split) if files is None else files
    times, _ = read_request_timestamps(files if isinstance(files, list) else [str(files)], load_spec(data_dir),
                                       skip_corrupt)  # a damaged file is named (or skipped), as training reads it
    return int(len(times) if min_request_timestamp is None else (times >= int(min_request_timestamp)).sum())
