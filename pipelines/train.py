"""Stage `train`: fit one model with model.fit on the tf.data pipeline.

Progress bar, TensorBoard logs (<out>/tensorboard), per-epoch checkpoints (<out>/checkpoints),
final weights + model.json (<out>) for evaluate / predict / export.

``--user-vectors PATH`` feeds a precomputed per-user vector file (``tfrec.data.user_vectors``:
CHIME's compressed interests, LEARN's user embedding) to the model as the numerical feature
``user_vector``; model.json remembers the file, so evaluate / predict / export of the run need no
flag. ``--min-request-timestamp T`` trains on the examples requested at or after ``T`` only (CHIME:
the compressor learned from the logs before ``t1``, the ranker trains on ``[t1, t2)``).
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import yaml

from pipelines.common import (GROUPS, USER_VECTORS_KEY, history_files, load_item_table, load_spec,
                              load_yaml_config, make_split_dataset, user_vectors_info)


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


def parse_overrides(pairs) -> dict:
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise ValueError(f"--set expects KEY=VALUE. Received: {pair!r}")
        key, value = pair.split("=", 1)
        out[key.strip()] = yaml.safe_load(value)
    return out


def train_model(model_type, data_dir, out_dir, model_config=None, epochs=3, batch_size=256, learning_rate=2e-3,
                seed=0, verbose=1, skip_corrupt=False, user_vectors=None, min_request_timestamp=None):
    """Builds and trains one model; returns ``(model, seconds)``.

    ``user_vectors``: path of a ``UserVectors`` file; the model gets ``user_vector_dim`` = its D and
    the run's model.json its path. ``min_request_timestamp``: drop the earlier training examples.
    """
    import tensorflow as tf

    from tfrec.configs import TrainConfig
    from tfrec.grouping import load_group_table
    from tfrec.data.dataset import load_user_histories
    from tfrec.data.request_states import RequestStates
    from tfrec.data.user_vectors import UserVectors
    from tfrec.models import MODELS, CTRModel
    from tfrec.training import build_model, item_frequency, train

    spec = load_spec(data_dir)
    vectors = UserVectors.load(user_vectors) if user_vectors else None
    model_spec = dataclasses.replace(spec, user_vector_dim=vectors.dim) if vectors is not None else spec
    groups_path = Path(data_dir) / GROUPS
    groups = load_group_table(groups_path) if groups_path.exists() else None
    history = load_user_histories(history_files(data_dir), spec, skip_corrupt=skip_corrupt)
    content = None
    if getattr(MODELS.get(model_type), "uses_item_content", False):
        from tfrec.data.item_content import ItemContent

        content = ItemContent.load(data_dir, spec.n_items)
    cfg = TrainConfig(batch_size=batch_size, epochs=epochs, learning_rate=learning_rate, seed=seed)

    def read(read_spec, **shuffle):
        return make_split_dataset(data_dir, "train", read_spec, batch_size, history=history, skip_corrupt=skip_corrupt,
                                  user_vectors=vectors, min_request_timestamp=min_request_timestamp, **shuffle)

    # Config fields sized from the data read their own copy of the pipeline: iterating the training
    # pipeline here would move its reshuffle on, and training would not see the order its seed gives.
    sizing = None
    if MODELS[model_type].config_from_data.__func__ is not CTRModel.config_from_data.__func__:
        tf.keras.utils.set_random_seed(seed)  # the shuffle's order depends on the global seed too
        sizing = read(spec, shuffle=True, seed=seed)
    model = build_model(model_type, model_spec, model_config, groups=groups, item_table=load_item_table(data_dir, spec),
                        item_frequency=item_frequency(history, spec.n_items), item_content=content,
                        train_data=sizing)
    if model.data_report and verbose:
        print(model.data_report.get("top_k_line", model.data_report), flush=True)
    stage = model.request_stage()
    t0 = time.time()  # the once-per-request stage counts as training time
    if stage is None:
        ds = read(spec, shuffle=True, seed=seed)
    else:  # the parameter-free start of the user tower, once per request (DMGIN's grouping)
        fn, history_length = stage
        states = RequestStates.compute(read(spec), fn)
        if verbose:
            print(states.line(), flush=True)
        short_spec = dataclasses.replace(spec, max_history_length=max(int(history_length), 1))
        ds = states.join_dataset(read(short_spec, shuffle=True, seed=seed))
    extra = {"min_request_timestamp": min_request_timestamp}
    if vectors is not None:
        extra[USER_VECTORS_KEY] = user_vectors_info(vectors, user_vectors)
    train(model, model_type, ds, out_dir, cfg, verbose=verbose, extra=extra)
    return model, time.time() - t0


def run(args):
    config = {**load_yaml_config(args.config), **parse_overrides(args.set)}
    _, seconds = train_model(args.model, args.data, args.out, config, args.epochs, args.batch_size,
                             args.learning_rate, args.seed, args.verbose, args.skip_corrupt, args.user_vectors,
                             args.min_request_timestamp)
    print(f"trained {args.model} in {seconds:.1f}s -> {args.out}")
