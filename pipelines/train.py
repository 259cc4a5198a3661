"""Stage `train`: fit one model with model.fit on the tf.data pipeline.

Progress bar, TensorBoard logs (<out>/tensorboard), per-epoch checkpoints (<out>/checkpoints),
final weights + model.json (<out>) for evaluate / predict / export.

``--user-vectors PATH`` feeds a precomputed per-user vector file (``tfrec.data.user_vectors``:
CHIME's compressed interests, LEARN's user embedding) to the model as the numerical feature
``user_vector``; model.json remembers the file, so evaluate / predict / export of the run need no
flag. ``--min-request-timestamp T`` trains on the examples requested at or after ``T`` only (CHIME:
the compressor learned from the logs before ``t1``, the ranker trains on ``[t1, t2)``).

``--strategy mirrored | multi-worker | parameter-server`` trains under ``tf.distribute`` (``TF_CONFIG``;
``tfrec launch`` runs a local cluster): the same model, the global ``--batch-size`` split across the
replicas, each multi-worker worker reading its own user shards (``pipelines/distributed.py``).
Every run keeps a BackupAndRestore backup (<out>/backup, ``--backup-every STEPS``): the same command
after a crash resumes from it. docs/distributed.md.
"""
from __future__ import annotations

import dataclasses
import shutil
import time
from pathlib import Path

import yaml

from pipelines.common import (GROUPS, USER_VECTORS_KEY, data_sharding, load_item_table, load_spec, load_yaml_config,
                              make_split_dataset, skipped_corrupt, skipped_corrupt_line, user_vectors_info)
from pipelines.distributed import (all_reduce_sum, backup_fingerprint, check_backup, check_worker_examples,
                                   count_examples, input_files)

def add_arguments(p):
    p.add_argument("--model", required=True, help="model type (tfrec.models.MODELS): din | dmgin | dmqn | siren")
    p.add_argument("--data", required=True, help="data directory (after write-tfrecords, and cluster for dmgin)")
    p.add_argument("--out", required=True, help="run directory to write")
    p.add_argument("--config", help="YAML file with the model config (e.g. pipelines/configs/dmgin.yaml)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override one model config field, e.g. --set recent_length=1000 (repeatable)")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--learning-rate", type=float, default=2e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--verbose", type=int, default=1, help="Keras verbosity: 1 progress bar, 2 one line per epoch")
    p.add_argument("--skip-corrupt", action="store_true", help="skip corrupt TFRecord files (reported) instead of failing")
    p.add_argument("--user-vectors", metavar="PATH",
                   help="precomputed per-user vectors (.npz, tfrec.data.user_vectors, e.g. CHIME's) fed to the model "
                        "as the feature user_vector; remembered by the run")
    p.add_argument("--min-request-timestamp", type=int, metavar="T",
                   help="train only on examples with request_timestamp >= T (e.g. CHIME's t1)")
    p.add_argument("--strategy", default="default", choices=["default", "mirrored", "multi-worker", "parameter-server"],
                   help="tf.distribute strategy; multi-worker / parameter-server read TF_CONFIG (`tfrec launch` sets "
                        "it for a local cluster; docs/distributed.md). --batch-size is the global batch")
    p.add_argument("--replicas", type=int, default=0,
                   help="mirrored: devices to use (default: every GPU, or 2 logical CPU devices without GPU)")
    p.add_argument("--steps-per-epoch", type=int, default=None,
                   help="steps per epoch (default: the training examples / --batch-size, rounded up)")
    p.add_argument("--steps-per-execution", type=int, default=1,
                   help="train steps per call of the train function (Keras steps_per_execution): metrics are read "
                        "and, across workers, reduced once per call; raises throughput of short steps")
    p.add_argument("--backup-every", type=int, default=None, metavar="STEPS",
                   help="write the BackupAndRestore backup (<out>/backup) every STEPS steps (default: every epoch); "
                        "rerunning the same command after a failure resumes from it")
    p.add_argument("--ps-min-shard-bytes", type=int, default=None,
                   help="parameter-server: split variables of at least this many bytes across the parameter servers "
                        "(default 256 KiB)")


def parse_overrides(pairs) -> dict:
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise ValueError(f"--set expects KEY=VALUE. Received: {pair!r}")
        key, value = pair.split("=", 1)
        out[key.strip()] = yaml.safe_load(value)
    return out


def train_model(model_type, data_dir, out_dir, model_config=None, epochs=3, batch_size=256, learning_rate=2e-3,
                seed=0, verbose=1, skip_corrupt=False, user_vectors=None, min_request_timestamp=None,
                strategy="default", replicas=0, steps_per_epoch=None, backup_every=None,
                ps_min_shard_bytes=None, steps_per_execution=1, max_request_timestamp=None, callbacks=()):
    """Builds and trains one model; returns ``(model, seconds)`` (``(None, 0)`` on a
    parameter-server worker / ps task, which only serves until stopped).

    ``user_vectors``: path of a ``UserVectors`` file; the model gets ``user_vector_dim`` = its D and
    the run's model.json its path. ``min_request_timestamp``: drop the earlier training examples;
    ``max_request_timestamp``: drop the ones requested at or after it (the benchmark's training window).
    ``callbacks``: more Keras callbacks for ``fit`` (the benchmark's validation early stopping).
    ``strategy`` (``tfrec.distribute.STRATEGIES``) + ``TF_CONFIG``: where and how it trains
    (``replicas``: mirrored's device count; ``ps_min_shard_bytes``: the parameter-server
    partitioner's smallest shard); ``batch_size`` is the global batch (split across the replicas),
    an epoch is ``steps_per_epoch`` steps (default: the split's examples / batch_size, rounded up).
    ``backup_every``: BackupAndRestore every that many steps (default: every epoch).
    """
    from tfrec.distribute import PS_MIN_SHARD_BYTES, configure, placement_lines, variable_placement

    dist = configure(strategy, replicas, ps_min_shard_bytes or PS_MIN_SHARD_BYTES)  # before any op runs
    if dist.serves:
        dist.serve()
        return None, 0.0

    import tensorflow as tf

    from tfrec.configs import TrainConfig
    from tfrec.grouping import load_group_table
    from tfrec.data.dataset import load_user_histories
    from tfrec.data.request_states import RequestStates
    from tfrec.data.user_vectors import UserVectors
    from tfrec.models import MODELS, CTRModel
    from tfrec.training import build_model, dummy_features, item_frequency, train

    distributed = dist.name != "default"
    if verbose and distributed:
        print(dist.describe(), flush=True)
    sharding = data_sharding(data_dir)
    if backup_every and dist.name == "parameter-server":
        # (Keras' BackupAndRestore has no step hooks under ParameterServerStrategy)
        print("parameter-server: --backup-every is not supported there; the backup is written every epoch", flush=True)
        backup_every = None
    check_backup(out_dir, backup_fingerprint({
        "model": model_type, "data": str(Path(data_dir).resolve()), "config": model_config, "batch_size": batch_size,
        "seed": seed, "learning_rate": learning_rate, "strategy": strategy,
        "tasks": {job: len(addresses) for job, addresses in dist.task.cluster.items()}, "user_vectors": user_vectors,
        "min_request_timestamp": min_request_timestamp, "max_request_timestamp": max_request_timestamp,
        "backup_every": backup_every,
        "steps_per_epoch": steps_per_epoch, "steps_per_execution": steps_per_execution,
        "num_shards": (sharding or {}).get("num_shards")}), dist.is_chief)
    spec = load_spec(data_dir)
    vectors = UserVectors.load(user_vectors) if user_vectors else None
    model_spec = dataclasses.replace(spec, user_vector_dim=vectors.dim) if vectors is not None else spec
    groups_path = Path(data_dir) / GROUPS
    groups = load_group_table(groups_path) if groups_path.exists() else None
    examples, histories, input_shard, input_line = input_files(data_dir, "train", dist, sharding)
    if verbose and distributed:
        print(input_line, flush=True)
    history = load_user_histories(histories, spec, skip_corrupt=skip_corrupt)
    if verbose:
        print(f"histories: {len(history):,} users, {history.n_behaviors:,} behaviors, "
              f"{history.nbytes / 2**20:.1f} MB in memory", flush=True)
    content = None
    if getattr(MODELS.get(model_type), "uses_item_content", False):
        from tfrec.data.item_content import ItemContent

        content = ItemContent.load(data_dir, spec.n_items)
    cfg = TrainConfig(batch_size=batch_size, epochs=epochs, learning_rate=learning_rate, seed=seed,
                      steps_per_execution=steps_per_execution)

    def read(read_spec, history=history, files=examples, batch=batch_size, shard=input_shard, user_vectors=vectors,
             **options):
        return make_split_dataset(data_dir, "train", read_spec, batch, history=history, skip_corrupt=skip_corrupt,
                                  user_vectors=user_vectors, min_request_timestamp=min_request_timestamp, files=files,
                                  input_shard=shard, max_request_timestamp=max_request_timestamp, **options)

    if distributed:
        check_worker_examples(data_dir, dist, sharding, input_shard, batch_size, min_request_timestamp, skip_corrupt)

    # What the model derives from the data before training -- config fields sized from it
    # (``config_from_data``) and constants set by ``adapt`` -- must be the same on every worker (the same
    # variables, the same values), so a worker of other shards computes them on the first input
    # pipeline's data too (it loads those shards for this only).
    def first_pipeline(**options):
        if dist.input_index == 0 or input_shard is not None:
            return read(spec, shard=None, **options)
        files0, histories0, _, _ = input_files(data_dir, "train", dataclasses.replace(dist, input_index=0), sharding)
        return read(spec, history=load_user_histories(histories0, spec, skip_corrupt=skip_corrupt), files=files0,
                    shard=None, **options)

    # Config fields sized from the data read their own copy of the pipeline: iterating the training
    # pipeline here would move its reshuffle on, and training would not see the order its seed gives.
    sizing = None
    if MODELS[model_type].config_from_data.__func__ is not CTRModel.config_from_data.__func__:
        tf.keras.utils.set_random_seed(seed)  # the shuffle's order depends on the global seed too
        sizing = first_pipeline(shuffle=True, seed=seed)
    frequency = item_frequency(history, spec.n_items)
    if dist.name == "multi-worker" and input_shard is None:  # this worker's users only: sum over the workers
        frequency = all_reduce_sum(dist.strategy, frequency)
    with dist.scope():
        model = build_model(model_type, model_spec, model_config, groups=groups,
                            item_table=load_item_table(data_dir, spec), item_frequency=frequency,
                            item_content=content, train_data=sizing)
        if distributed:  # create the variables now, to log where they live before training
            model(dummy_features(model_spec))
    del sizing
    adapt_data = None
    if dist.name == "multi-worker" and (type(model).adapt is not CTRModel.adapt
                                        or type(model).training_callbacks is not CTRModel.training_callbacks):
        adapt_data = first_pipeline(shuffle=True, seed=seed)
    if model.data_report and verbose:
        print(model.data_report.get("top_k_line", model.data_report), flush=True)
    stage = model.request_stage()
    if stage is not None and dist.name == "parameter-server":
        # the workers run the coordinator's input function: per-request states held by this process
        # cannot be read there, so the stage runs in that function, on each batch (``prepare_training_data``)
        stage = None
        if verbose:
            print("parameter-server: the once-per-request stage runs in the workers' input pipelines, every epoch",
                  flush=True)
    t0 = time.time()  # the once-per-request stage counts as training time
    train_spec, join = spec, None
    if stage is not None:  # the parameter-free start of the user tower, once per request (DMGIN's grouping)
        fn, history_length = stage
        states = RequestStates.compute(read(spec), fn)
        if verbose:
            print(states.line(), flush=True)
        train_spec = dataclasses.replace(spec, max_history_length=max(int(history_length), 1))
        join = states.join_dataset
    scans = []  # the ScanReports of the history and example files (--skip-corrupt)
    local = read(train_spec, shuffle=True, seed=seed, scan_reports=scans)
    ds = join(local) if join is not None else local
    dataset_fn = None
    if distributed:
        steps_per_epoch = steps_per_epoch or -(-count_examples(data_dir, "train", min_request_timestamp,
                                                                      skip_corrupt=skip_corrupt) // batch_size)
        per_worker_seed = dist.name == "parameter-server"

        def dataset_fn(context):
            # Every parameter-server worker runs this one function (traced by the coordinator): its
            # tables are built in the function, and each worker shuffles with its own seed (a clock
            # read when the worker creates the dataset), or they would all read the same order.
            own_seed = seed
            if per_worker_seed:
                # (this function's own graph seed: with a global seed of 0, TensorFlow compares the op
                # seed with 0 in Python, which a tensor seed cannot answer)
                tf.random.set_seed(seed + 1)
                own_seed = tf.cast(tf.timestamp() * 1e6, tf.int64) % (2**31 - 1)
            own_history, own_vectors = history, vectors
            if per_worker_seed:  # fresh copies: their lookup tables are built in this function
                own_history = dataclasses.replace(history)
                own_vectors = dataclasses.replace(vectors) if vectors is not None else None
            per_replica = context.get_per_replica_batch_size(batch_size)
            batches = read(train_spec, history=own_history, batch=per_replica, shuffle=True, seed=own_seed,
                           repeat=True, drop_remainder=True, user_vectors=own_vectors)
            return join(batches) if join is not None else batches

    elif steps_per_epoch or backup_every:
        # (a backup within an epoch needs the epoch's length: Keras resumes at a step of it)
        steps_per_epoch = steps_per_epoch or -(-count_examples(data_dir, "train", min_request_timestamp,
                                                                      skip_corrupt=skip_corrupt) // batch_size)
        ds = ds.repeat()
    extra = {"min_request_timestamp": min_request_timestamp}
    if max_request_timestamp is not None:
        extra["max_request_timestamp"] = max_request_timestamp
    skipped = skipped_corrupt(scans)
    if skipped:  # --skip-corrupt dropped files: the run says which, as evaluate and predict do
        extra["skipped_corrupt"] = skipped
        print(skipped_corrupt_line(skipped), flush=True)
    if vectors is not None:
        extra[USER_VECTORS_KEY] = user_vectors_info(vectors, user_vectors)
    if distributed:
        placement = variable_placement(model)
        extra["distribution"] = {"strategy": dist.name, "replicas": dist.replicas, "cluster": dist.task.cluster,
                                 "input": input_line, "steps_per_epoch": steps_per_epoch,
                                 "bytes_per_device": placement["bytes_per_device"]}
        if verbose and dist.name == "parameter-server":
            print("variables on the parameter servers (largest first):", flush=True)
            print("\n".join(placement_lines(placement)), flush=True)
    train(model, model_type, ds, out_dir, cfg, verbose=verbose, extra=extra, distribution=dist if distributed else None,
          dataset_fn=dataset_fn, steps_per_epoch=steps_per_epoch, backup_every=backup_every, adapt_data=adapt_data,
          callbacks=list(callbacks))
    if dist.is_chief:  # finished: BackupAndRestore emptied its backup; nothing is left to resume
        from tfrec.training import BACKUP

        shutil.rmtree(Path(out_dir) / BACKUP, ignore_errors=True)
        (Path(out_dir) / f"{BACKUP}.json").unlink(missing_ok=True)
    return model, time.time() - t0


def run(args):
    config = {**load_yaml_config(args.config), **parse_overrides(args.set)}
    model, seconds = train_model(args.model, args.data, args.out, config, args.epochs, args.batch_size,
                                 args.learning_rate, args.seed, args.verbose, args.skip_corrupt, args.user_vectors,
                                 args.min_request_timestamp, args.strategy, args.replicas, args.steps_per_epoch,
                                 args.backup_every, args.ps_min_shard_bytes, args.steps_per_execution)
    if model is not None:
        import resource

        rate = getattr(model, "throughput", {}).get("examples_per_second")
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB on Linux
        print(f"trained {args.model} in {seconds:.1f}s ({rate:,.0f} examples/s in fit; peak RSS {peak:,.0f} MB) "
              f"-> {args.out}" if rate else f"trained {args.model} in {seconds:.1f}s -> {args.out}")
