"""TWIN-V2's in-graph hierarchical clustering: seconds per batch against the clustered vectors' width D.

Why ``TWINV2.cluster_dim`` exists: the clustering's squared distances cost O(D) per point and centroid
(float64, ``[B, N, D]`` per distance), so 384-d text vectors (ml-100k's) cost ~10x more than 32-d ones;
TWIN-V2 projects wider vectors onto their 32 top principal directions first. Random unit vectors,
3 groups, the bench's TWIN-V2 config (gamma 20, M 128, depth 4, 5 Lloyd steps, k <= 8).

    .venv/bin/python bench/clustering_width.py [--batch 512] [--length 256] [--dims 4 16 32 384]
"""
from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

import tfrec  # noqa: E402,F401  (tf-keras before TensorFlow)
import tensorflow as tf  # noqa: E402

from tfrec.layers.hierarchical_clustering import HierarchicalClustering  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--length", type=int, default=256)
    parser.add_argument("--dims", type=int, nargs="+", default=[4, 16, 32, 384])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    layer = tf.function(HierarchicalClustering(3, max_clusters=128))
    rng = np.random.default_rng(0)
    print(f"batch {args.batch}, N = {args.length}, {os.cpu_count()} CPUs")
    for d in args.dims:
        x = rng.normal(size=(args.batch, args.length, d)).astype(np.float32)
        x /= np.linalg.norm(x, axis=-1, keepdims=True)
        inputs = {"vectors": tf.constant(x), "mask": tf.ones((args.batch, args.length)),
                  "groups": tf.constant(rng.integers(0, 3, (args.batch, args.length)), tf.int32)}
        layer(inputs)  # trace
        start = time.perf_counter()
        for _ in range(args.repeats):
            layer(inputs)
        print(f"D = {d:4d}: {(time.perf_counter() - start) / args.repeats:6.2f} s per batch", flush=True)


if __name__ == "__main__":
    main()
