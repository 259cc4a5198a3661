"""A/B of two exported SavedModel versions of one model: the same requests through ``Session::Run``,
interleaved in one process, so a drift of the box hits both alike (issue 16's serving graph work).

Loads both version directories into their own ``tf.compat.v1.Session`` (TF Serving's path), computes
one user's state with each version's ``user_tower`` (``warmup_features``: one user with ``--length``
behaviors), then alternates ``--blocks`` blocks of 50 calls of A and of B for ``user_tower`` and for
``score`` (``--candidates`` random candidates), and prints p50 of each, B / A, and the largest absolute
difference of their outputs (the fingerprint aside, which differs per export): two exports of the same
weights by different code must agree to float32 rounding.

    # the same seeded, untrained model exported by the old and by the new code (tfrec comes from
    # PYTHONPATH, the script and bench/untrained.py from this checkout):
    git worktree add /tmp/old <old-commit>
    PYTHONPATH=/tmp/old python bench/serving_ab.py --export /tmp/a
    python bench/serving_ab.py --export /tmp/b
    python bench/serving_ab.py /tmp/a/dmgin/1 /tmp/b/dmgin/1 [--intra-op-threads 1]
"""
import argparse
import time

import numpy as np

import tfrec  # noqa: F401
import tensorflow as tf

from tfrec.data.spec import FeatureSpec
from tfrec.export.saved_model import warmup_features
from serving_inprocess import load_session, signature_runner


def export(out, model_name, spec, k):
    """The seeded untrained model (``untrained_model``), exported as version 1 under ``out``."""
    from tfrec.export import export_saved_model
    from untrained import untrained_model

    print(export_saved_model(untrained_model(model_name, spec, k), spec, out, model_name, version=1))


def runner(loaded, name):
    """``(input keys, run)``: ``run(feeds)`` -> {output: value} through ``Session::Run``."""
    keys, outs, run = signature_runner(*loaded, name)
    return keys, (lambda feeds: dict(zip(outs, run(*[feeds[k] for k in keys]))))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("a", nargs="?")
    p.add_argument("b", nargs="?")
    p.add_argument("--export", metavar="DIR", help="export the seeded model with this checkout's code and stop")
    p.add_argument("--model", default="dmgin")
    p.add_argument("--k", type=int, default=16)
    p.add_argument("--length", type=int, default=10_000)
    p.add_argument("--n-items", type=int, default=20_000)
    p.add_argument("--candidates", type=int, default=100)
    p.add_argument("--blocks", type=int, default=20)
    p.add_argument("--intra-op-threads", type=int, default=0)
    p.add_argument("--inter-op-threads", type=int, default=0)
    args = p.parse_args()
    spec = FeatureSpec(n_items=args.n_items, max_history_length=args.length)
    if args.export:
        return export(args.export, args.model, spec, args.k)
    if not (args.a and args.b):
        p.error("give two version directories to compare (or --export DIR)")
    features = {k: v[:1] for k, v in warmup_features(spec, batch=1).items()}
    candidates = np.random.default_rng(0).integers(0, spec.n_items, (1, args.candidates)).astype(np.int64)
    calls = []
    for path in (args.a, args.b):
        loaded = load_session(path, args.intra_op_threads, args.inter_op_threads)
        ut_keys, user_tower = runner(loaded, "user_tower")
        sc_keys, score = runner(loaded, "score")
        ut_feeds = {k: features[k] for k in ut_keys}
        state = user_tower(ut_feeds)
        sc_feeds = {k: state[k] if k in state else candidates for k in sc_keys}
        calls.append({"user_tower": (user_tower, ut_feeds), "score": (score, sc_feeds)})
    for name in ("user_tower", "score"):
        (fa, xa), (fb, xb) = calls[0][name], calls[1][name]
        ya, yb = fa(xa), fb(xb)
        diff = max(float(np.max(np.abs(ya[k].astype(np.float64) - yb[k].astype(np.float64))))
                   for k in ya if k in yb and k != "fingerprint")
        times = [[], []]
        for f, x in ((fa, xa), (fb, xb)):
            for _ in range(50):
                f(x)
        for _ in range(args.blocks):
            for i, (f, x) in enumerate(((fa, xa), (fb, xb))):
                for _ in range(50):
                    t0 = time.perf_counter()
                    f(x)
                    times[i].append(1000 * (time.perf_counter() - t0))
        pa, pb = np.percentile(times[0], 50), np.percentile(times[1], 50)
        print(f"{name:10s} A p50 {pa:.3f} ms   B p50 {pb:.3f} ms   B/A {pb / pa:.2f}   max |A - B| {diff:.2e}")


if __name__ == "__main__":
    main()
