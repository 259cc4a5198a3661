"""Training step time vs. L: DMGIN, DMQN, DIN on the full raw sequence (DIN-Full) and DIN on the last 50.

Every model gets the same batch of B users with L raw behaviors each (--lengths, default 1,000,
5,000 and 10,000, the papers' lifelong lengths) and runs the same Keras train step (Adam, BCE).
Prints ms/step (median over --steps after --warmup steps) per model and length, from one run,
and the DMQN complexity check: its step time against L (paper sec. 2.6: O(L*W*D + N*W^2*D +
N*W*D^2), linear in L).

    python bench/train_step_time.py --lengths 1000 5000 10000 --batch 32
"""
import argparse
import json
import time

import numpy as np

import tfrec  # noqa: F401
import tensorflow as tf

from tfrec.configs import DINConfig, DMGINConfig, DMQNConfig
from tfrec.data.spec import FeatureSpec
from tfrec.models import DIN, DMGIN, DMQN
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
    p.add_argument("--lengths", type=int, nargs="+", default=[1_000, 5_000, 10_000])
    p.add_argument("--models", nargs="+", default=["DMGIN", "DMQN", "DMQN-simple", "DIN-Full", "DIN (50)"])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--n-items", type=int, default=20_000)
    p.add_argument("--groups", type=int, default=100, help="K-means k")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--steps", type=int, default=5)
    args = p.parse_args()
    table = np.random.default_rng(1).integers(1, args.groups + 1, args.n_items)
    makers = {
        "DMGIN": lambda spec, L: DMGIN(spec, DMGINConfig(top_k_groups=16), num_groups=args.groups + 1, item_to_group=table),
        "DMQN": lambda spec, L: DMQN(spec, DMQNConfig()),
        "DMQN-simple": lambda spec, L: DMQN(spec, DMQNConfig(use_icim=False)),
        "DIN-Full": lambda spec, L: DIN(spec, DINConfig(recent_length=L)),
        "DIN (50)": lambda spec, L: DIN(spec, DINConfig(recent_length=50)),
    }
    ms = {}
    for length in args.lengths:
        spec = FeatureSpec(n_items=args.n_items, max_history_length=length)
        x, y = batch(spec, args.batch, length)
        for name in args.models:
            ms.setdefault(name, {})[length] = time_steps(makers[name](spec, length), x, y, args.warmup, args.steps)
            print(f"  L={length:6d} {name:12s} {ms[name][length]:9.1f} ms/step", flush=True)
    print(f"\ntrain step ms, batch {args.batch}, one run (median of {args.steps} steps)")
    print("| model | " + " | ".join(f"L={n:,}" for n in args.lengths) + " |")
    print("|---|" + "---:|" * len(args.lengths))
    for name, row in ms.items():
        print(f"| {name} | " + " | ".join(f"{row[n]:.1f}" for n in args.lengths) + " |")
    if "DIN-Full" in ms and "DMQN" in ms:
        print("DIN-Full / DMQN: " + ", ".join(f"{ms['DIN-Full'][n] / ms['DMQN'][n]:.2f}x at L={n}" for n in args.lengths))
    print(json.dumps({"batch": args.batch, "ms_per_step": ms}))


if __name__ == "__main__":
    main()
