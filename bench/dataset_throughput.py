"""Throughput of the tf.data reader (user-history join, cut at request time, padding) at L=1000.

Writes (once, into --root) 2,000 user histories of 500-10,000 random behaviors and 60,000
examples, then times two passes of ``make_dataset`` at batch 256 and prints examples/s.

    python bench/dataset_throughput.py --root /tmp/tfrec-bench-data
"""
import argparse
import os
import time

import numpy as np

import tfrec  # noqa: F401
from tfrec.data import dataset, tfrecord
from tfrec.data.spec import FeatureSpec

N_USERS, N_EXAMPLES, N_ITEMS = 2000, 60000, 100000


def write_data(root, spec, rng):
    lengths = rng.integers(500, 10001, N_USERS)

    def users():
        for u in range(N_USERS):
            n = lengths[u]
            yield dict(user_id=u * 7 + 1, user_segment=u % 8, hist_item_id=rng.integers(0, N_ITEMS, n),
                       hist_behavior_type=rng.integers(0, 6, n), hist_timestamp=np.sort(rng.integers(0, 10**9, n)),
                       hist_duration=rng.random(n, dtype=np.float32), hist_amount=rng.random(n, dtype=np.float32))

    tfrecord.write_user_histories(f"{root}/hist.tfrec", spec, users())
    examples = [dict(user_id=int(rng.integers(0, N_USERS)) * 7 + 1, item_id=int(rng.integers(0, N_ITEMS)),
                     request_timestamp=int(rng.integers(2 * 10**8, 10**9)), label=int(rng.integers(0, 2)))
                for _ in range(N_EXAMPLES)]
    tfrecord.write_examples(f"{root}/ex.tfrec", spec, examples)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", default="/tmp/tfrec-bench-data")
    args = p.parse_args()
    os.makedirs(args.root, exist_ok=True)
    spec = FeatureSpec(n_items=N_ITEMS, max_history_length=1000)
    if not os.path.exists(f"{args.root}/ex.tfrec"):
        write_data(args.root, spec, np.random.default_rng(0))
    t0 = time.time()
    hist = dataset.load_user_histories(f"{args.root}/hist.tfrec", spec)
    print(f"load_user_histories: {time.time() - t0:.1f}s ({hist.n_behaviors} behaviors)")
    ds = dataset.make_dataset(f"{args.root}/ex.tfrec", spec, hist, batch_size=256)
    for _ in range(2):
        n, t = 0, time.time()
        for _, label in ds:
            n += int(label.shape[0])
        dt = time.time() - t
        print(f"pass: {n} examples in {dt:.2f}s = {n / dt:,.0f} examples/s (L=1000, batch 256, {os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
