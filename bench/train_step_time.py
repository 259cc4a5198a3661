"""Training step time: DMGIN vs. DIN on the full raw sequence (DIN-Full) at L raw behaviors.

Both models get the same batch of B users with L = --length raw behaviors each (default 10,000,
the papers' lifelong length) and run the same Keras train step (Adam, BCE). Prints ms/step
(median over --steps after --warmup steps) and the ratio, from one run.

    python bench/train_step_time.py --length 10000 --batch 32
"""
import argparse
import json
import time

import numpy as np

import tfrec  # noqa: F401
import tensorflow as tf

from tfrec.configs import DINConfig, DMGINConfig
from tfrec.data.spec import FeatureSpec
from tfrec.models import DIN, DMGIN
from tfrec.training import compile_model


def batch(spec, b, length, seed=0):
    rng = np.random.default_rng(seed)
    ts = np.sort(rng.integers(1_600_000_000, 1_700_000_000, size=(b, length)), axis=1)
    features = {
        "user_id": np.arange(b), "user_segment": rng.integers(0, spec.n_user_segments, b),
        "item_id": rng.integers(0, spec.n_items, b), "request_timestamp": np.full(b, 1_700_000_001),
        "hist_item_id": rng.integers(0, spec.n_items, (b, length)),
        "hist_behavior_type": rng.integers(0, spec.n_behavior_types, (b, length)),
        "hist_timestamp": ts, "hist_duration": rng.gamma(2.0, 30.0, (b, length)).astype("float32"),
        "hist_amount": rng.gamma(2.0, 10.0, (b, length)).astype("float32"),
        "hist_length": np.full(b, length, np.int32),
    }
    return {k: tf.constant(v) for k, v in features.items()}, tf.constant(rng.integers(0, 2, b).astype("float32"))


def time_steps(model, x, y, warmup, steps):
    compile_model(model, 1e-3)
    for _ in range(warmup):
        model.train_on_batch(x, y)
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        model.train_on_batch(x, y)
        times.append(time.perf_counter() - t0)
    return 1000 * float(np.median(times))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--length", type=int, default=10_000)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--n-items", type=int, default=20_000)
    p.add_argument("--groups", type=int, default=100, help="K-means k")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--steps", type=int, default=5)
    args = p.parse_args()
    spec = FeatureSpec(n_items=args.n_items, max_history_length=args.length)
    x, y = batch(spec, args.batch, args.length)
    table = np.random.default_rng(1).integers(1, args.groups + 1, args.n_items)
    models = {
        "DMGIN": DMGIN(spec, DMGINConfig(), num_groups=args.groups + 1, item_to_group=table),
        "DIN-Full": DIN(spec, DINConfig(recent_length=args.length)),
        "DIN (50)": DIN(spec, DINConfig(recent_length=50)),
    }
    ms = {name: time_steps(m, x, y, args.warmup, args.steps) for name, m in models.items()}
    print(f"train step, batch {args.batch}, L={args.length} raw behaviors, {tf.config.threading.get_inter_op_parallelism_threads() or 'default'} inter-op threads")
    for name, v in ms.items():
        print(f"  {name:9s} {v:9.1f} ms/step")
    print(f"  DIN-Full / DMGIN step time ratio: {ms['DIN-Full'] / ms['DMGIN']:.2f}x")
    print(json.dumps({"length": args.length, "batch": args.batch, "ms_per_step": ms}))


if __name__ == "__main__":
    main()
