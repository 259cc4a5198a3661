"""Build, train, save, reload and run any tfrec model (one code path for every model)."""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
import weakref
from pathlib import Path
from typing import Callable, Dict, Optional

import numpy as np
import tensorflow as tf

from tfrec import configs as configs_lib
from tfrec.data.spec import FeatureSpec
from tfrec.models import MODELS

MODEL_FILE = "model.json"
WEIGHTS = "weights/final"
BACKUP = "backup"  # BackupAndRestore's directory in a run


def build_model(model_type: str, spec: FeatureSpec, config: Optional[dict] = None, groups=None, item_table=None,
                item_frequency=None, item_content=None, train_data: Optional[tf.data.Dataset] = None):
    """A model by registry name (``MODELS``) with a config dict (default config when None).

    ``groups`` (a ``GroupTable`` from ``tfrec.grouping``) supplies ``num_groups`` and the
    item -> group table to models that take them; ``item_table`` (an ``ItemTable``) the declared
    item features (required when the spec declares any); ``item_frequency`` (``[n_items]``, e.g.
    ``item_frequency(histories, spec.n_items)``) the n_j of DIN's mini-batch aware regularization;
    ``item_content`` (an ``ItemContent``: content vectors and Semantic IDs, ``ItemContent.load(DATA,
    n_items)``) the multimodal tables of models that take them (SIREN, MUSE, MISS); ``train_data``
    (the training ``(features, label)`` batches) sizes the config fields a model derives from the
    data (``CTRModel.config_from_data``, e.g. DMGIN's ``top_k_groups: 0``); what it measured is
    ``model.data_report`` (saved in the run's model.json).
    """
    if model_type not in MODELS:
        raise ValueError(f"Unknown model {model_type!r}; choose one of {sorted(MODELS)}")
    cls = MODELS[model_type]
    cfg = configs_lib.from_dict(cls.config_class, config or {})
    cfg, report = cls.config_from_data(cfg, spec, train_data, groups)
    kwargs = {}
    if cls.needs_item_groups(cfg):
        if groups is None:
            raise ValueError(f"{model_type} needs the item->group table: run `tfrec cluster` and pass --groups")
        kwargs = {"num_groups": groups.n_groups, "item_to_group": groups.table}
    if cls.uses_item_content:
        if item_content is None:
            raise ValueError(f"{model_type} needs the items' content (vectors and/or Semantic IDs): pass item_content="
                             "ItemContent.load(DATA, spec.n_items) (reads raw/items.npz and semantic_ids.npz)")
        kwargs["item_content"] = item_content
    if spec.item_features and item_table is None:
        raise ValueError(f"the schema declares item features {[f.name for f in spec.item_features]}: pass the item "
                         "table (ItemTable.load(DATA/item_features.npz, spec), written by write-tfrecords)")
    if item_frequency is not None:
        kwargs["item_frequency"] = item_frequency
    model = cls(spec, cfg, item_table=item_table, **kwargs)
    model.data_report = report
    return model


def item_frequency(histories, n_items: int) -> np.ndarray:
    """Occurrences of each item id among the stored behaviors of ``histories`` (``UserHistories``):
    the n_j of the mini-batch aware regularization."""
    items = histories.sequences["hist_item_id"]
    items = items[(items >= 0) & (items < n_items)]
    return np.bincount(items, minlength=n_items).astype(np.float64)


def dummy_features(spec: FeatureSpec) -> Dict[str, tf.Tensor]:
    """A one-example batch of every model input (zeros), to create a model's variables."""
    sig = {**spec.user_input_signature(), **spec.context_input_signature()}
    out = {k: tf.zeros([1] + [d or 1 for d in s.shape[1:]], s.dtype) for k, s in sig.items()}
    out["item_id"] = tf.zeros([1], tf.int64)
    return out


class Adam(tf.keras.optimizers.Adam):
    """tf-keras Adam that sums each sparse gradient per distinct row *before* the cross-replica
    reduction.

    An embedding lookup's gradient is an ``IndexedSlices`` with one row per lookup, repeats included
    (DIN on synthetic small: B x L rows of 16 floats, of which at most 601 distinct). Keras all-gathers
    those rows across the replicas and only then sums the repeats. Summing them first sends at most
    one row per distinct id. A table smaller than ``dense_below_bytes`` (8 MiB) is then reduced as a
    dense gradient, packed with the other dense gradients into one all-reduce, instead of two
    all-gathers of its own. The update is the same (the repeats are summed either way); with one
    replica nothing changes. DIN, 2 workers with one core each against one process on one core,
    global batch 2048: 0.49x before (a single run, docs/capacity.md (d)), 1.26x after (median of 3
    rounds, bench/results/distributed.md).
    """

    dense_below_bytes = 8 << 20

    def aggregate_gradients(self, grads_and_vars):
        grads_and_vars = list(grads_and_vars)
        if tf.distribute.get_strategy().num_replicas_in_sync > 1:
            grads = self._deduplicate_sparse_grad([g for g, _ in grads_and_vars])
            grads = [tf.convert_to_tensor(g) if isinstance(g, tf.IndexedSlices) and _nbytes(v) < self.dense_below_bytes
                     else g for g, (_, v) in zip(grads, grads_and_vars)]
            grads_and_vars = list(zip(grads, [v for _, v in grads_and_vars]))
        return super().aggregate_gradients(grads_and_vars)


def _nbytes(variable) -> int:
    return int(np.prod(variable.shape.as_list())) * variable.dtype.size


def compile_model(model, learning_rate: float, steps_per_execution: int = 1):
    model.compile(optimizer=Adam(learning_rate), steps_per_execution=steps_per_execution,
                  loss=tf.keras.losses.BinaryCrossentropy(),
                  weighted_metrics=[tf.keras.metrics.AUC(name="auc"),
                                    tf.keras.metrics.BinaryCrossentropy(name="logloss")])  # sample weights apply
    return model


class _FitClock(tf.keras.callbacks.Callback):
    """Times ``fit`` from the first step it runs (after ``BackupAndRestore`` restored a resumed run)
    and counts the steps it ran (from the optimizer; no per-batch hook, which would slow every step)."""

    def on_train_begin(self, logs=None):
        self.start_step = int(self.model.optimizer.iterations.numpy())
        self.t0 = time.perf_counter()
        self.epochs = []  # (seconds, steps) per epoch

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = (time.perf_counter(), int(self.model.optimizer.iterations.numpy()))

    def on_epoch_end(self, epoch, logs=None):
        t, step = self._epoch
        self.epochs.append((time.perf_counter() - t, int(self.model.optimizer.iterations.numpy()) - step))

    def result(self, batch_size: int) -> dict:
        """fit's seconds, steps and examples/s (``batch_size`` examples per step), and the same
        after the first epoch (which includes tracing) when there are several."""
        seconds = time.perf_counter() - self.t0
        steps = int(self.model.optimizer.iterations.numpy()) - self.start_step
        out = {"fit_seconds": round(seconds, 2), "steps": steps, "batch_size": batch_size,
               "examples_per_second": round(steps * batch_size / max(seconds, 1e-9), 1),
               "epoch_seconds": [round(t, 2) for t, _ in self.epochs]}
        if len(self.epochs) > 1:
            later_seconds = sum(t for t, _ in self.epochs[1:])
            later_steps = sum(n for _, n in self.epochs[1:])
            out["examples_per_second_after_first_epoch"] = round(later_steps * batch_size / max(later_seconds, 1e-9), 1)
        return out


def train(model, model_type: str, train_ds: tf.data.Dataset, out_dir: os.PathLike,
          train_config: configs_lib.TrainConfig, val_ds: Optional[tf.data.Dataset] = None, verbose: int = 1,
          extra: Optional[dict] = None, distribution=None, dataset_fn: Optional[Callable] = None,
          steps_per_epoch: Optional[int] = None, backup_every: Optional[int] = None,
          adapt_data: Optional[tf.data.Dataset] = None, callbacks: Optional[list] = None):
    """``model.fit`` with a progress bar, TensorBoard logs, per-epoch checkpoints and a
    ``BackupAndRestore`` backup under ``out_dir``.

    Writes ``out_dir/model.json`` (type + config + ``extra``, e.g. the user-vector file the run read,
    + ``throughput``: fit seconds, steps, examples/s) and ``out_dir/weights/final`` so that
    ``load_trained(out_dir)`` rebuilds the model. Returns the Keras History.

    Fault tolerance: ``out_dir/backup`` holds the latest training state (weights, optimizer, epoch
    and step), written every ``backup_every`` steps (None: every epoch) and deleted when ``fit``
    finishes; running the same training again after a crash resumes from it (Keras
    ``BackupAndRestore``).

    Distributed training (``distribution``, a ``tfrec.distribute.Distribution``; the model must have
    been built under ``distribution.scope()``): the model compiles under the strategy, and ``fit``
    reads ``dataset_fn(input_context)`` -- this input pipeline's batches of the per-replica size,
    repeated -- through ``DatasetCreator``, ``steps_per_epoch`` steps per epoch. ``train_ds`` (a local
    pipeline) then only serves ``adapt`` and the models' own callbacks. Only the chief writes the
    run; the other workers save their copy to a temporary directory (every worker must take part).
    ``adapt_data``: the dataset ``adapt`` and the model's own callbacks read instead of ``train_ds``
    (multi-worker: the same data on every worker, so every replica adapts to the same values and, e.g.,
    DMQN's dead-codeword resets agree); a non-chief worker's callbacks write into a temporary directory.
    ``callbacks``: more Keras callbacks, run after the model's own and before the backup (so a callback
    that restores the best epoch's weights at the end of training does so before the final save).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tf.keras.utils.set_random_seed(train_config.seed)
    scope = distribution.scope() if distribution is not None else contextlib.nullcontext()
    with scope:
        compile_model(model, train_config.learning_rate, train_config.steps_per_execution)
    train_ds = model.prepare_training_data(train_ds)
    reference = train_ds if adapt_data is None else model.prepare_training_data(adapt_data)
    model.adapt(reference)
    chief = distribution is None or distribution.is_chief
    side_dir = out if chief else Path(tempfile.mkdtemp(prefix="tfrec-worker-"))  # (a model callback's files)
    clock = _FitClock()  # after BackupAndRestore: it starts once a resumed run is restored
    callbacks = model.training_callbacks(reference, side_dir) + list(callbacks or []) + [
        tf.keras.callbacks.TensorBoard(log_dir=str(out / "tensorboard"), update_freq="epoch"),
        tf.keras.callbacks.ModelCheckpoint(str(out / "checkpoints" / "epoch-{epoch:02d}"), save_weights_only=True),
        # (Keras counts calls of the train function: steps_per_execution steps each)
        tf.keras.callbacks.BackupAndRestore(str(out / BACKUP), save_freq=(
            -(-backup_every // train_config.steps_per_execution) if backup_every else "epoch")),
        clock,
    ]
    fit_data = train_ds
    if dataset_fn is not None:
        if not steps_per_epoch:
            raise ValueError("train(dataset_fn=...) needs steps_per_epoch (the per-worker datasets repeat)")
        fit_data = tf.keras.utils.experimental.DatasetCreator(
            lambda context: model.prepare_training_data(dataset_fn(context)))
    history = model.fit(fit_data, validation_data=val_ds, epochs=train_config.epochs, callbacks=callbacks,
                        steps_per_epoch=steps_per_epoch, verbose=verbose)
    throughput = clock.result(train_config.batch_size)
    model.throughput = throughput
    info = {**(extra or {}), "train_config": configs_lib.to_dict(train_config), "throughput": throughput,
            "history": {k: [float(x) for x in v] for k, v in history.history.items()}}
    if chief:
        save_trained(model, model_type, out, extra=info)
    else:  # a non-chief multi-worker replica: its save is part of the collective, its files are not kept
        with tempfile.TemporaryDirectory(prefix="tfrec-worker-") as tmp:
            model.save_weights(str(Path(tmp) / WEIGHTS))
        shutil.rmtree(side_dir, ignore_errors=True)
    return history


def save_trained(model, model_type: str, out_dir: os.PathLike, extra: Optional[dict] = None) -> None:
    out = Path(out_dir)
    model.save_weights(str(out / WEIGHTS))
    info = {"model_type": model_type, "config": model.get_config(), **(extra or {})}
    if getattr(model, "data_report", None):
        info["data_report"] = model.data_report
    (out / MODEL_FILE).write_text(json.dumps(info, indent=2))


def load_trained(run_dir: os.PathLike):
    """Rebuilds a model saved by ``train`` / ``save_trained``; returns ``(model, info)``."""
    run = Path(run_dir)
    if not (run / MODEL_FILE).exists():
        raise FileNotFoundError(f"{run / MODEL_FILE} not found: {run} is not a trained run directory "
                                "(train one with `tfrec train --out DIR`)")
    info = json.loads((run / MODEL_FILE).read_text())
    model = MODELS[info["model_type"]].from_config(info["config"])
    model(dummy_features(model.spec))  # create the variables before restoring them
    model.load_weights(str(run / WEIGHTS)).expect_partial()
    return model, info


# one inference function per model, kept across calls: a new tf.function per call traced the model anew
# on every validation pass (the benchmark's first 135 cells spent 0.93 h of 7.99 h in validation passes
# whose forward cost was ~0.20 h); weak keys, so a model's function goes with the model
_PREDICT_STEPS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _predict_step(model):
    step = _PREDICT_STEPS.get(model)
    if step is None:
        ref = weakref.ref(model)  # (the function must not keep its own key alive)
        step = tf.function(lambda f: ref()(f, training=False), reduce_retracing=True)
        _PREDICT_STEPS[model] = step
    return step


def predict(model, dataset: tf.data.Dataset) -> Dict[str, np.ndarray]:
    """Runs ``model`` over ``(features, label)`` batches; returns user_id, label, prediction
    (+ true_prob when the dataset carries it). The model's inference function is traced once and kept
    (``reduce_retracing``: a batch of another history length relaxes the traced shapes once)."""
    step = _predict_step(model)
    cols: Dict[str, list] = {"user_id": [], "label": [], "prediction": []}
    for features, label in dataset:
        cols["user_id"].append(features["user_id"].numpy())
        cols["label"].append(label.numpy())
        cols["prediction"].append(step(features).numpy())
        if "true_prob" in features:
            cols.setdefault("true_prob", []).append(features["true_prob"].numpy())
    return {k: np.concatenate(v) if v else np.zeros([0]) for k, v in cols.items()}
