"""Where the time of one call goes, per block and per op type (TF profiler trace, parsed here).

Traces ``--steps`` calls of one of

* ``train``: DMGIN's Keras train step on one batch of ``--batch`` pre-grouped requests (``input_grouping``:
  the tensors ``tfrec train`` joins), DIN on the last ``--recent`` behaviors (``--model din``) or DMQN on
  all ``--length`` raw behaviors (``--model dmqn``: its quantizer is trainable, nothing is pre-grouped);
* ``score`` / ``user_tower``: the exported SavedModel's signature, loaded with
  ``tf.saved_model.load`` and called in-process for one user (``--candidates`` candidates),

with ``tf.profiler.experimental``, reads the trace's XSpace (``*.xplane.pb``) and prints, per step, the
wall time, the summed op time, and that op time by block (the op name's Keras scope: ``intra_group_attention``,
``hstu``, ...; backward ops are counted in their forward block under ``grad``) and by op type. Op time
summed over the executor's threads can exceed the wall time (ops run in parallel); wall time above the
op time is the executor's per-op dispatch.

    python bench/op_profile.py --target train --batch 32
    python bench/op_profile.py --target train --model din --batch 32
    python bench/op_profile.py --target score --candidates 100
"""
import argparse
import collections
import glob
import os
import re
import tempfile
import time

import numpy as np

import tfrec  # noqa: F401
import tensorflow as tf
from tensorflow.tsl.profiler.protobuf import xplane_pb2

from tfrec.data.spec import FeatureSpec
from tfrec.export import export_saved_model
from tfrec.export.saved_model import warmup_features
from tfrec.training import compile_model
from untrained import untrained_model

_SKIP = {"ExecutorState::Process", "MemoryAllocation", "MemoryDeallocation"}


def trace(fn, steps: int):
    """(wall ms per step, {op event name: total us}) over ``steps`` calls of ``fn``."""
    for _ in range(5):
        fn()
    logdir = tempfile.mkdtemp()
    tf.profiler.experimental.start(logdir)
    t0 = time.perf_counter()
    for _ in range(steps):
        fn()
    wall = 1000 * (time.perf_counter() - t0) / steps
    tf.profiler.experimental.stop()
    space = xplane_pb2.XSpace()
    with open(sorted(glob.glob(os.path.join(logdir, "plugins/profile/*/*.xplane.pb")))[-1], "rb") as f:
        space.ParseFromString(f.read())
    ops = collections.Counter()
    for plane in space.planes:
        if not plane.name.startswith("/host:CPU"):
            continue
        for line in plane.lines:
            if not line.name.startswith("tf_"):  # the executor's threads (not the Python line)
                continue
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                if ":" in name and name not in _SKIP:
                    ops[name] += event.duration_ps / 1e6
    return wall, ops


def block_of(op_name: str, depth: int) -> str:
    """``gradient_tape/dmgin/hstu/...:MatMul`` -> ``hstu (grad)`` at depth 1."""
    path = op_name.split(":")[0]
    grad = path.startswith("gradient_tape/") or "/gradients/" in path
    parts = [p for p in path.split("/") if p not in ("gradient_tape",) and not p.startswith("StatefulPartitionedCall")]
    parts = parts[1:] if parts and parts[0] in ("dmgin", "din", "dmqn", "model") else parts
    parts = [p for p in parts if not re.fullmatch(r"(while|cond)(_\d+)?", p)]
    block = "/".join(parts[:depth]) if len(parts) > 1 else "(top level)"
    return block + (" (grad)" if grad else "")


def report(title, wall, ops, steps, depth, top):
    total = sum(ops.values()) / steps / 1000
    print(f"\n{title}: wall {wall:.3f} ms/step, op time {total:.3f} ms/step "
          f"({sum(1 for _ in ops)} distinct ops)")
    by_block, by_type, n_ops = collections.Counter(), collections.Counter(), collections.Counter()
    for name, us in ops.items():
        by_block[block_of(name, depth)] += us / steps / 1000
        n_ops[block_of(name, depth)] += 1
        by_type[name.split(":")[-1]] += us / steps / 1000
    by_op = collections.Counter({name: us / steps / 1000 for name, us in ops.items()})
    for label, table in (("block", by_block), ("op type", by_type), ("op", by_op)):
        print(f"  by {label}:")
        for key, ms in table.most_common(top):
            count = f"{n_ops[key]:5d} ops  " if label == "block" else ""
            print(f"    {ms:8.3f} ms  {100 * ms / total:5.1f}%  {count}{key}")


def grouped_batch(model, spec, b, length, seed=0):
    rng = np.random.default_rng(seed)
    features = {
        "user_id": np.arange(b), "user_segment": rng.integers(0, spec.n_user_segments, b),
        "item_id": rng.integers(0, spec.n_items, b), "request_timestamp": np.full(b, 1_700_000_001),
        "hist_item_id": rng.integers(0, spec.n_items, (b, length)),
        "hist_behavior_type": rng.integers(0, spec.n_behavior_types, (b, length)),
        "hist_timestamp": np.sort(rng.integers(1_600_000_000, 1_700_000_000, (b, length)), axis=1),
        "hist_duration": rng.gamma(2.0, 30.0, (b, length)).astype("float32"),
        "hist_amount": rng.gamma(2.0, 10.0, (b, length)).astype("float32"),
        "hist_length": np.full(b, length, np.int32),
    }
    x = {k: tf.constant(v) for k, v in features.items()}
    if hasattr(model, "pipeline_features"):
        x = model.pipeline_features(x, tf.constant(model.item_group_table()))
    return x, tf.constant(rng.integers(0, 2, b).astype("float32"))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--target", choices=["train", "score", "user_tower"], default="train")
    p.add_argument("--model", choices=["dmgin", "din", "dmqn"], default="dmgin")
    p.add_argument("--k", type=int, default=16)
    p.add_argument("--recent", type=int, default=50, help="DIN's recent_length")
    p.add_argument("--length", type=int, default=10_000)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--candidates", type=int, default=100)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--depth", type=int, default=1, help="scope levels per block")
    p.add_argument("--top", type=int, default=15)
    p.add_argument("--n-items", type=int, default=20_000)
    p.add_argument("--optimizer", choices=["adam", "legacy-adam"], default="adam",
                   help="train: tfrec's Adam (tf.keras.optimizers.Adam) or the legacy one (fused ResourceApplyAdam)")
    args = p.parse_args()
    spec = FeatureSpec(n_items=args.n_items, max_history_length=args.length)
    model = untrained_model(args.model, spec, args.k, {"recent_length": args.recent} if args.model == "din" else None)
    if args.target == "train":
        x, y = grouped_batch(model, spec, args.batch, args.length)
        compile_model(model, 1e-3)
        if args.optimizer == "legacy-adam":
            model.compile(optimizer=tf.keras.optimizers.legacy.Adam(1e-3), loss=model.loss,
                          weighted_metrics=model.compiled_metrics._user_weighted_metrics)
        wall, ops = trace(lambda: model.train_on_batch(x, y), args.steps)
        report(f"{args.model} train step, batch {args.batch}", wall, ops, args.steps, args.depth, args.top)
        return
    path = export_saved_model(model, spec, tempfile.mkdtemp(), args.model, version=1)
    loaded = tf.saved_model.load(str(path))
    user_tower, score = loaded.signatures["user_tower"], loaded.signatures["score"]
    features = {k: tf.constant(v[:1]) for k, v in warmup_features(spec, batch=1).items()
                if k in user_tower.structured_input_signature[1]}
    if args.target == "user_tower":
        wall, ops = trace(lambda: user_tower(**features), args.steps)
    else:
        state = user_tower(**features)
        inputs = {k: v for k, v in state.items() if k in score.structured_input_signature[1]}
        candidates = tf.constant(np.random.default_rng(0).integers(0, args.n_items, (1, args.candidates)), tf.int64)
        inputs.update({k: candidates for k in score.structured_input_signature[1] if k not in inputs})
        wall, ops = trace(lambda: score(**inputs), args.steps)
    report(f"{args.model} {args.target}, one user", wall, ops, args.steps, args.depth, args.top)


if __name__ == "__main__":
    main()
