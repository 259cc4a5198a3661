"""In-process latency of an exported SavedModel's signatures, no RPC (issue 16's serving goals).

Builds an untrained model (DMGIN by default, ``top_k_groups`` = ``--k``; weights do not change the
graph's cost), exports it (``export_saved_model``), loads it with ``tf.saved_model.load`` and calls:

* ``user_tower`` on one user with ``--length`` raw behaviors (the cached path's precompute);
* ``score`` on that cached state with ``--candidates`` candidates (the cached request);

each ``--calls`` times after 20 warm-up calls, and prints p50 / p90 in ms, on two runtimes:

* ``session``: the SavedModel loaded into a ``tf.compat.v1.Session`` and each signature run through a
  ``Session.make_callable`` on its input / output tensors: ``Session::Run`` on the signature, the path
  TF Serving takes per request (the issue's figure);
* ``tf2``: ``tf.saved_model.load(...).signatures[...]`` called from Python with keyword tensors. This
  adds the Python binding's per-call cost: a one-op signature with the same inputs is timed beside it
  (``floor``), and it grows with the number of inputs (``score`` has 8).
 The issue's goals on 2 cores:
``score`` (100 candidates) p50 <= 0.5 ms, ``user_tower`` at L = 10,000 <= 5 ms. The FLOP floor of
``score`` comes from ``bench/score_flops.py --saved-model <printed path>``.

    python bench/serving_inprocess.py --length 10000
    python bench/serving_inprocess.py --model din --length 10000
"""
import argparse
import tempfile
import time

import numpy as np

import tfrec  # noqa: F401
import tensorflow as tf

from tfrec.data.spec import FeatureSpec
from tfrec.export import export_saved_model
from tfrec.export.saved_model import warmup_features
from tfrec.grouping import GroupTable
from tfrec.training import build_model, dummy_features


def timed(fn, calls):
    for _ in range(20):
        fn()
    out = []
    for _ in range(calls):
        t0 = time.perf_counter()
        fn()
        out.append(1000 * (time.perf_counter() - t0))
    return np.percentile(out, 50), np.percentile(out, 90)


def session_callables(path, signatures, feeds):
    """{name: zero-argument callable running the signature through Session::Run}."""
    graph = tf.Graph()
    with graph.as_default():
        session = tf.compat.v1.Session(graph=graph)
        meta = tf.compat.v1.saved_model.loader.load(session, ["serve"], str(path))
    out = {}
    for name in signatures:
        sig = meta.signature_def[name]
        keys = sorted(feeds[name])
        fetches = [graph.get_tensor_by_name(t.name) for t in sig.outputs.values()]
        run = session.make_callable(fetches, [graph.get_tensor_by_name(sig.inputs[k].name) for k in keys])
        values = [np.asarray(feeds[name][k]) for k in keys]
        out[name] = (lambda run=run, values=values: run(*values))
    return out


def floor_signature(feeds):
    """A one-op (identity) signature with the same inputs as ``feeds``: the Python call's own cost."""
    spec = {k: tf.TensorSpec([None] * len(v.shape), v.dtype, name=k) for k, v in feeds.items()}
    first = sorted(feeds)[0]
    module = tf.Module()
    module.f = tf.function(lambda x: {"out": tf.identity(x[first])}, input_signature=[spec])
    path = tempfile.mkdtemp()
    tf.saved_model.save(module, path, signatures={"f": module.f.get_concrete_function()})
    return tf.saved_model.load(path).signatures["f"]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="dmgin")
    p.add_argument("--k", type=int, default=16)
    p.add_argument("--length", type=int, default=10_000)
    p.add_argument("--candidates", type=int, default=100)
    p.add_argument("--calls", type=int, default=300)
    p.add_argument("--n-items", type=int, default=20_000)
    args = p.parse_args()
    spec = FeatureSpec(n_items=args.n_items, max_history_length=args.length)
    config, groups = {}, None
    if args.model == "dmgin":
        table = np.random.default_rng(1).integers(1, 101, args.n_items).astype(np.int32)
        groups = GroupTable(table=table, centroids=np.zeros((100, 1), np.float32), n_groups=101, report={})
        config = {"top_k_groups": args.k}
    model = build_model(args.model, spec, config, groups=groups)
    model(dummy_features(spec))
    path = export_saved_model(model, spec, tempfile.mkdtemp(), args.model, version=1)
    loaded = tf.saved_model.load(str(path))
    user_tower, score = loaded.signatures["user_tower"], loaded.signatures["score"]
    features = {k: tf.constant(v[:1]) for k, v in warmup_features(spec, batch=1).items()
                if k in user_tower.structured_input_signature[1]}
    state = user_tower(**features)
    candidates = tf.constant(np.random.default_rng(0).integers(0, args.n_items, (1, args.candidates)), tf.int64)
    score_inputs = {k: v for k, v in state.items() if k in score.structured_input_signature[1]}
    ckey = [k for k in score.structured_input_signature[1] if k not in score_inputs]
    extra = {k: candidates for k in ckey}
    threads = tf.config.threading.get_intra_op_parallelism_threads() or "all"
    print(f"{args.model} (saved at {path}), one user, L = {args.length:,}, {args.candidates} candidates, "
          f"{args.calls} calls in-process on {threads} threads:")
    feeds = {"user_tower": features, "score": {**score_inputs, **extra}}
    calls = session_callables(path, ["user_tower", "score"], feeds)
    results = {
        "session": (timed(calls["user_tower"], args.calls), timed(calls["score"], args.calls)),
        "tf2": (timed(lambda: user_tower(**features), args.calls), timed(lambda: score(**score_inputs, **extra), args.calls)),
    }
    floors = [timed(lambda f=floor_signature(feeds[n]), x=feeds[n]: f(**x), args.calls)[0] for n in ("user_tower", "score")]
    for runtime, (ut, sc) in results.items():
        print(f"  {runtime:8s} user_tower p50 {ut[0]:.2f} ms, p90 {ut[1]:.2f} ms   (goal: <= 5 ms at L = 10,000)")
        print(f"  {runtime:8s} score      p50 {sc[0]:.3f} ms, p90 {sc[1]:.3f} ms   (goal: <= 0.5 ms)")
    print(f"  tf2 floor (one-op signature, same inputs): user_tower {floors[0]:.3f} ms, score {floors[1]:.3f} ms")

if __name__ == "__main__":
    main()
