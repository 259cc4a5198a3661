"""In-process latency of an exported SavedModel's signatures, no RPC (issue 16's serving goals).

Builds an untrained model (DMGIN by default, ``top_k_groups`` = ``--k``; weights do not change the
graph's cost), exports it (``export_saved_model``), loads it with ``tf.saved_model.load`` and calls:

* ``user_tower`` on one user with ``--length`` raw behaviors (the cached path's precompute);
* ``score`` on that cached state with ``--candidates`` candidates (the cached request);

each ``--calls`` times after 10 warm-up calls, and prints p50 / p90 in ms, on two runtimes:

* ``session``: the SavedModel loaded into a ``tf.compat.v1.Session`` and each signature run through a
  ``Session.make_callable`` on its input / output tensors: ``Session::Run`` on the signature, the path
  TF Serving takes per request (the issue's figure);
* ``tf2``: ``tf.saved_model.load(...).signatures[...]`` called from Python with keyword tensors. This
  adds the Python binding's per-call cost, which grows with the number of inputs (``score`` has 8).

Each runtime's own per-call cost is printed beside (``floor``: a one-op signature with the same inputs).
 The issue's goals on 2 cores:
``score`` (100 candidates) p50 <= 0.5 ms, ``user_tower`` at L = 10,000 <= 5 ms. The FLOP floor of
``score`` comes from ``bench/score_flops.py --saved-model <printed path>``.

    python bench/serving_inprocess.py --length 10000
    python bench/serving_inprocess.py --model din --length 10000
    python bench/serving_inprocess.py --length 10000 --intra-op-threads 1   # TF Serving's --tensorflow_intra_op_parallelism=1
"""
import argparse
import tempfile
import time

import numpy as np

import tfrec  # noqa: F401
import tensorflow as tf

from tfrec.benchmark.costs import load_session, session_callables, signature_runner, timed  # noqa: F401
from tfrec.data.spec import FeatureSpec
from tfrec.export import export_saved_model
from tfrec.export.saved_model import warmup_features
from untrained import untrained_model


def floor_model(feeds):
    """A SavedModel with a one-op (identity) signature ``f`` taking the same inputs as ``feeds``."""
    spec = {k: tf.TensorSpec([None] * len(v.shape), v.dtype, name=k) for k, v in feeds.items()}
    first = sorted(feeds)[0]
    module = tf.Module()
    module.f = tf.function(lambda x: {"out": tf.identity(x[first])}, input_signature=[spec])
    path = tempfile.mkdtemp()
    tf.saved_model.save(module, path, signatures={"f": module.f.get_concrete_function()})
    return path


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="dmgin")
    p.add_argument("--k", type=int, default=16)
    p.add_argument("--length", type=int, default=10_000)
    p.add_argument("--candidates", type=int, default=100)
    p.add_argument("--calls", type=int, default=300)
    p.add_argument("--n-items", type=int, default=20_000)
    p.add_argument("--intra-op-threads", type=int, default=0, help="0 = TF's default (all cores)")
    p.add_argument("--inter-op-threads", type=int, default=0, help="0 = TF's default (all cores)")
    args = p.parse_args()
    if args.intra_op_threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.intra_op_threads)
    if args.inter_op_threads:
        tf.config.threading.set_inter_op_parallelism_threads(args.inter_op_threads)
    spec = FeatureSpec(n_items=args.n_items, max_history_length=args.length)
    model = untrained_model(args.model, spec, args.k)
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
    print(f"{args.model} (saved at {path}), one user, L = {args.length:,}, {args.candidates} candidates, "
          f"{args.calls} calls in-process, intra-op threads {args.intra_op_threads or 'all'}, "
          f"inter-op threads {args.inter_op_threads or 'all'}:")
    feeds = {"user_tower": features, "score": {**score_inputs, **extra}}
    calls = session_callables(path, ["user_tower", "score"], feeds, args.intra_op_threads, args.inter_op_threads)
    results = {
        "session": (timed(calls["user_tower"], args.calls), timed(calls["score"], args.calls)),
        "tf2": (timed(lambda: user_tower(**features), args.calls), timed(lambda: score(**score_inputs, **extra), args.calls)),
    }
    floors = {"tf2": [], "session": []}
    for n in ("user_tower", "score"):  # the runtimes' own per-call cost: a one-op signature, same inputs
        floor_path = floor_model(feeds[n])
        signature = tf.saved_model.load(floor_path).signatures["f"]
        floors["tf2"].append(timed(lambda f=signature, x=feeds[n]: f(**x), args.calls)[0])
        run = session_callables(floor_path, ["f"], {"f": feeds[n]}, args.intra_op_threads, args.inter_op_threads)["f"]
        floors["session"].append(timed(run, args.calls)[0])
    for runtime, (ut, sc) in results.items():
        print(f"  {runtime:8s} user_tower p50 {ut[0]:.2f} ms, p90 {ut[1]:.2f} ms   (goal: <= 5 ms at L = 10,000)")
        print(f"  {runtime:8s} score      p50 {sc[0]:.3f} ms, p90 {sc[1]:.3f} ms   (goal: <= 0.5 ms)")
    for runtime, (ut, sc) in floors.items():
        print(f"  {runtime:8s} floor (one-op signature, same inputs): user_tower {ut:.3f} ms, score {sc:.3f} ms")

if __name__ == "__main__":
    main()
