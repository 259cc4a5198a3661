"""Export any CTRModel as a TF Serving SavedModel with ``user_tower``, ``score`` and ``serving_default``.

Layout: ``<export_base>/<name>/<version>/`` (TF Serving's versioned layout), written atomically:
the SavedModel is saved into a hidden temporary directory beside the versions and renamed into
place, so a server polling the directory never sees a half-written version. An export that fails
(a full disk included: ``ExportError`` says so, with the free space left) removes its temporary
directory and leaves the existing versions untouched.

Signatures (inputs dense and padded, outputs dicts with stable names):

* ``user_tower``: the user features of ``FeatureSpec.user_input_signature()`` -> the model's
  ``user_state`` tensors plus ``fingerprint`` ``[B]`` int64.
* ``score``: ``user_state`` tensors + ``fingerprint`` + ``candidate_item_id`` ``[B, C]`` + the
  schema's context features ``[B]`` (none by default) -> ``probabilities`` ``[B, C]``. A
  fingerprint from another model or version fails with INVALID_ARGUMENT, so a cached state is
  never scored by the wrong version; so does a float state holding NaN, inf or a value beyond
  +-``STATE_LIMIT`` (1e15; a corrupt cache entry), naming the state input. Context goes here, not into ``user_tower``, so the cached
  state does not depend on the request.
* ``serving_default``: user features + context + ``candidate_item_id`` -> ``probabilities`` (end to end).

Non-finite request floats: every float input of ``user_tower``, ``serving_default`` and the
context of ``score`` passes through ``finite_inputs`` in the graph: NaN and +-inf become 0 (the
value padding and "not measured" already use: a missing duration or amount) and finite values are
clipped to +-``FLOAT_LIMIT`` (1e12), so no request float can overflow a sum of a history to inf.
The writer refuses non-finite floats in training data (``tfrec.data.tfrecord``), so the rule only
ever acts on serving traffic, and a served probability is always finite.

Item features are never inputs: the item table is a model variable, so requests carry item ids
only. Its size is in the export metadata (``item_table``); a catalogue update is a new export.

Only the shared ``encode_user`` / ``score`` interface is used: no branching on the model class.
The item -> group table and every vocabulary live in the model's variables, so the SavedModel
serves with plain ``tf.saved_model.load`` (no tfrec import, no custom ops).

Warmup: ``assets.extra/tf_serving_warmup_requests`` holds one ``PredictionLog`` per signature (a
batch of two users, 100 candidates each), the file TF Serving (and ``tfrec serve``) replays after
loading a version and before serving it, so the first real request does not pay for tracing and
memory allocation.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Dict, Optional

import numpy as np
import tensorflow as tf

from tfrec.data.spec import FeatureSpec

FINGERPRINT = "fingerprint"
PROBABILITIES = "probabilities"
CANDIDATES = "candidate_item_id"
METADATA_FILE = "tfrec_export.json"
WARMUP_FILE = "tf_serving_warmup_requests"
WARMUP_CANDIDATES = 100
FLOAT_LIMIT = 1e12
STATE_LIMIT = 1e15  # |state| above it is refused by score: no user_tower output comes near it, and
                    # below it no product of two state values overflows float32 in any model's score
STATE_CHECK_PREFIX = "user state"  # clients recognise a state they must recompute by it


def finite_inputs(features: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
    """Float tensors with NaN / +-inf replaced by 0 and finite values clipped to +-``FLOAT_LIMIT``;
    other tensors unchanged (stock ops only: IsFinite, SelectV2, ClipByValue)."""
    out = {}
    for key, value in features.items():
        if value.dtype.is_floating:
            value = tf.where(tf.math.is_finite(value), value, tf.zeros_like(value))
            value = tf.clip_by_value(value, -FLOAT_LIMIT, FLOAT_LIMIT)
        out[key] = value
    return out


def list_versions(model_dir: os.PathLike) -> list[int]:
    """Integer version directories under ``model_dir``, ascending."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        return []
    return sorted(int(p.name) for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit())


def make_fingerprint(name: str, version: int, nonce: str) -> int:
    """A positive int64 identifying one export (model name, version and a per-export nonce)."""
    digest = hashlib.sha256(f"{name}/{version}/{nonce}".encode()).digest()
    return int.from_bytes(digest[:8], "big") & 0x7FFF_FFFF_FFFF_FFFF


def user_state_signature(model, spec: FeatureSpec) -> Dict[str, tf.TensorSpec]:
    """Shapes of ``model.encode_user`` outputs with the batch dimension left open."""
    concrete = tf.function(lambda f: model.encode_user(f, training=False)).get_concrete_function(
        spec.user_input_signature())
    return {k: tf.TensorSpec([None] + v.shape[1:].as_list(), v.dtype, name=k)
            for k, v in concrete.structured_outputs.items()}


class ServingModule(tf.Module):
    """Holds the model and its three serving functions (the TF Ranking ``Signatures`` pattern)."""

    def __init__(self, model, spec: FeatureSpec, fingerprint: int):
        super().__init__()
        self.model = model
        self.fingerprint = tf.constant(fingerprint, tf.int64)
        user_sig = spec.user_input_signature()
        cand_sig = {**spec.candidate_input_signature(), **spec.context_input_signature()}
        state_sig = user_state_signature(model, spec)
        score_sig = {**state_sig, FINGERPRINT: tf.TensorSpec([None], tf.int64, name=FINGERPRINT), **cand_sig}
        self.user_tower = tf.function(self._user_tower, input_signature=[user_sig])
        self.score = tf.function(self._score, input_signature=[score_sig])
        self.serving_default = tf.function(self._serving_default, input_signature=[{**user_sig, **cand_sig}])
        self.state_keys = sorted(state_sig)
        self.context_keys = sorted(spec.context_input_signature())

    def _user_tower(self, features):
        features = finite_inputs(features)
        state = self.model.encode_user(features, training=False)
        batch = tf.shape(features["user_id"])[0]
        return {**state, FINGERPRINT: tf.fill([batch], self.fingerprint)}

    def _score(self, inputs):
        checks = [tf.debugging.assert_equal(
            inputs[FINGERPRINT], self.fingerprint,
            message=f"{STATE_CHECK_PREFIX} fingerprint does not match this model version: the state was computed "
                    "by another model or version; recompute it with this version's user_tower")]
        for key in self.state_keys:
            if inputs[key].dtype.is_floating:  # NaN fails the <= too
                checks.append(tf.debugging.Assert(
                    tf.reduce_all(tf.math.abs(inputs[key]) <= STATE_LIMIT),
                    [f'{STATE_CHECK_PREFIX} input "{key}" holds NaN, inf or a value beyond +-{STATE_LIMIT:g} (a '
                     "corrupt cached state); recompute it with this version's user_tower"], name=f"finite_{key}"))
        with tf.control_dependencies(checks):
            state = {k: tf.identity(inputs[k]) for k in self.state_keys}
        context = finite_inputs({k: inputs[k] for k in self.context_keys})
        return {PROBABILITIES: self.model.score(state, inputs[CANDIDATES], context, training=False)}

    def _serving_default(self, features):
        features = finite_inputs(features)
        state = self.model.encode_user(features, training=False)
        context = {k: features[k] for k in self.context_keys}
        return {PROBABILITIES: self.model.score(state, features[CANDIDATES], context, training=False)}

    def signatures(self):
        return {"user_tower": self.user_tower.get_concrete_function(),
                "score": self.score.get_concrete_function(),
                "serving_default": self.serving_default.get_concrete_function()}


def export_saved_model(model, spec: FeatureSpec, export_base: os.PathLike, name: str,
                       version: Optional[int] = None, metadata: Optional[dict] = None) -> Path:
    """Writes ``<export_base>/<name>/<version>/`` atomically and returns its path.

    Args:
      model: a built CTRModel (any model implementing ``encode_user`` / ``score``).
      spec: the FeatureSpec the model was trained with.
      export_base: the export root (e.g. ``saved_models``).
      name: the served model name.
      version: the version number; default: one more than the largest existing version.
      metadata: extra JSON-serialisable facts stored in ``assets.extra/tfrec_export.json``.
    """
    model_dir = Path(export_base) / name
    model_dir.mkdir(parents=True, exist_ok=True)
    if version is None:
        version = (list_versions(model_dir) or [0])[-1] + 1
    final = model_dir / str(int(version))
    if final.exists():
        raise FileExistsError(f"{final} already exists; export with another --version or remove it first")
    nonce = uuid.uuid4().hex
    fingerprint = make_fingerprint(name, int(version), nonce)
    tmp = model_dir / f".tmp-{version}-{nonce}"
    existing = list_versions(model_dir)
    try:
        module = ServingModule(model, spec, fingerprint)
        tf.saved_model.save(module, str(tmp), signatures=module.signatures())
        extra = tmp / "assets.extra"
        extra.mkdir(exist_ok=True)
        info = {"name": name, "version": int(version), "fingerprint": fingerprint,
                "model_class": type(model).__name__, "model_config": model.get_config(),
                "state_keys": module.state_keys, "context_keys": module.context_keys,
                "item_table": {"n_items": spec.n_items, "features": [f.name for f in spec.item_features]},
                "exported_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                **(metadata or {})}
        (extra / METADATA_FILE).write_text(json.dumps(info, indent=2, default=str))
        write_warmup_requests(module, spec, name, extra / WARMUP_FILE)
        os.rename(tmp, final)
    except (OSError, tf.errors.OpError) as err:
        if not _disk_full(err):
            raise
        shutil.rmtree(tmp, ignore_errors=True)
        raise ExportError(
            f"export of {name} version {version} failed: no space left on the device of {model_dir} "
            f"({shutil.disk_usage(model_dir).free / 2**20:.1f} MiB free now, after removing the partial "
            f"write); the existing versions {existing or 'none'} are untouched and no version {version} was "
            f"written. Free space (or export elsewhere with --export-base) and run the export again") from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


class ExportError(OSError):
    """An export that could not complete; the versions already there are untouched."""


def _disk_full(err: Exception) -> bool:
    """ENOSPC from Python's own writes or from TensorFlow's file system (whose errors carry it as text)."""
    if isinstance(err, OSError):
        return err.errno in (errno.ENOSPC, errno.EDQUOT)
    return "No space left on device" in str(err) or "Disk quota exceeded" in str(err)


def warmup_features(spec: FeatureSpec, batch: int = 2, seed: int = 0) -> Dict[str, np.ndarray]:
    """Deterministic ``user_tower`` inputs for warmup: row 0 a full ``max_history_length``
    history, the others shorter ones (row ``i`` of ``batch`` holds ``L * (batch - i) // batch``)."""
    from tfrec.serving.requests import random_feature_values, stack_features, user_features

    rng = np.random.default_rng(seed)
    length, rows = spec.max_history_length, []
    now = 1_700_000_000
    for i in range(batch):
        n = length * (batch - i) // batch
        history = {"item_id": rng.integers(0, spec.n_items, n),
                   "behavior_type": rng.integers(0, spec.n_behavior_types, n),
                   "timestamp": np.sort(now - rng.integers(1, 400 * 86_400, n)),
                   "duration": rng.exponential(30.0, n), "amount": np.zeros(n),
                   **{fd.name: random_feature_values(fd, rng, n) for fd in spec.behavior_features}}
        profile = {fd.name: random_feature_values(fd, rng) for fd in spec.user_features}
        rows.append(user_features(i, history, request_timestamp=now, max_history_length=length, profile=profile,
                                  spec=spec))
    return stack_features(rows)


def write_warmup_requests(module: ServingModule, spec: FeatureSpec, name: str, path: os.PathLike,
                          n_candidates: int = WARMUP_CANDIDATES) -> int:
    """Writes TF Serving's warmup file: one ``PredictLog`` per signature. Returns the record count."""
    from tensorflow_serving.apis import prediction_log_pb2

    from tfrec.serving.requests import predict_request, random_feature_values

    features = warmup_features(spec)
    batch = len(features["user_id"])
    state = {k: v.numpy() for k, v in module.user_tower(
        {k: tf.constant(v) for k, v in features.items()}).items()}
    candidates = np.random.default_rng(1).integers(0, spec.n_items, (batch, n_candidates)).astype(np.int64)
    rng = np.random.default_rng(2)
    context = {fd.name: np.stack([random_feature_values(fd, rng) for _ in range(batch)]) for fd in spec.context_features}
    requests = [("user_tower", features), ("score", {**state, CANDIDATES: candidates, **context}),
                ("serving_default", {**features, CANDIDATES: candidates, **context})]
    with tf.io.TFRecordWriter(str(path)) as writer:
        for signature, inputs in requests:
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(
                request=predict_request(name, inputs, signature)))
            writer.write(log.SerializeToString())
    return len(requests)


def read_warmup_requests(version_dir: os.PathLike) -> list:
    """The ``PredictRequest``s of a version's warmup file (empty when it has none)."""
    from tensorflow_serving.apis import prediction_log_pb2

    path = Path(version_dir) / "assets.extra" / WARMUP_FILE
    if not path.exists():
        return []
    out = []
    for record in tf.data.TFRecordDataset(str(path)).as_numpy_iterator():
        log = prediction_log_pb2.PredictionLog.FromString(record)
        if log.WhichOneof("log_type") != "predict_log":
            raise ValueError(f"{path}: only predict_log warmup records are supported, got {log.WhichOneof('log_type')}")
        out.append(log.predict_log.request)
    return out


def read_export_metadata(version_dir: os.PathLike) -> dict:
    """The ``assets.extra/tfrec_export.json`` of an exported version."""
    return json.loads((Path(version_dir) / "assets.extra" / METADATA_FILE).read_text())


def saved_model_op_types(version_dir: os.PathLike) -> set[str]:
    """Every op type in the SavedModel's graphs, including its function library."""
    from tensorflow.core.protobuf import saved_model_pb2

    sm = saved_model_pb2.SavedModel()
    sm.ParseFromString((Path(version_dir) / "saved_model.pb").read_bytes())
    ops = set()
    for mg in sm.meta_graphs:
        ops.update(node.op for node in mg.graph_def.node)
        for fn in mg.graph_def.library.function:
            ops.update(node.op for node in fn.node_def)
    return ops


_STOCK_CHECK = """
import json, sys
import tensorflow as tf
from tensorflow.python.framework import op_def_registry
ops = json.loads(sys.stdin.read())
print(json.dumps(sorted(op for op in ops if op_def_registry.get(op) is None)))
"""


def non_stock_ops(version_dir: os.PathLike) -> list[str]:
    """Op types of the SavedModel that a process importing only stock TensorFlow does not know.

    Runs the check in a fresh interpreter (no tfrec, scann or tensorflow-io loaded), which is
    what TF Serving sees. An empty list means stock TF Serving can load the graph.
    """
    ops = sorted(saved_model_op_types(version_dir))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, "-c", _STOCK_CHECK], input=json.dumps(ops), capture_output=True,
                         text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])
