"""Dense float32 matmul throughput (GFLOP/s) of this CPU under TensorFlow.

Times ``tf.linalg.matmul`` inside a ``tf.function`` for a few square sizes (256 to 2048) and
for ``[100 x d] x [d x d]`` (d = 64, 128), the shape of one score-MLP layer applied to 100
candidates. Each timed call runs ``inner`` chained products ``y = y @ w`` in one graph loop (the
dependency keeps the optimizer from hoisting or dropping them, and the loop keeps the Python
call overhead, ~tens of microseconds, out of the small shapes); ``inner`` is picked so that one
call takes about ``--min-call-ms``. FLOPs per product = 2 * M * K * N. Prints a table (median
and best of ``--repeats`` calls after ``--warmup`` calls) and the best figure. The figures move
with whatever else runs on the machine: compare medians from a quiet box, and run it twice.

    python bench/matmul_gflops.py
    python bench/matmul_gflops.py --threads 1      # one intra-op thread (one core)
    python bench/matmul_gflops.py --threads 2 --repeats 20

``measure_gflops()`` is imported by ``bench/score_flops.py`` to turn FLOP counts into a compute
floor. A figure, never a test: nothing is asserted.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

SQUARE = (256, 512, 1024, 2048)
SCORE_D = (64, 128)
SCORE_ROWS = 100


def shapes(square=SQUARE, score_d=SCORE_D, rows=SCORE_ROWS):
    """(label, M, K, N) for the square sizes and the [rows x d] x [d x d] score-MLP shapes."""
    out = [(f"{n} x {n} x {n}", n, n, n) for n in square]
    out += [(f"[{rows} x {d}] x [{d} x {d}]", rows, d, d) for d in score_d]
    return out


def set_threads(threads: int | None) -> None:
    """Intra-op threads (call before TensorFlow runs any op); None keeps TF's default."""
    import tensorflow as tf

    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(int(threads))


def _chain_fn():
    import tensorflow as tf

    @tf.function
    def chain(y, w, inner):
        for _ in tf.range(inner):
            y = tf.linalg.matmul(y, w)
        return y

    return chain


def time_matmul(m, k, n, repeats=10, warmup=3, min_call_ms=20.0, seed=0):
    """Seconds per product (median, best) for [m x k] x [k x n] float32, and the inner count used."""
    import numpy as np
    import tensorflow as tf

    if k != n:
        raise ValueError("chained products need a square right-hand side (k == n)")
    rng = np.random.default_rng(seed)
    y0 = tf.constant(rng.standard_normal((m, k)).astype("float32"))
    # Scaled so that repeated products keep their magnitude (no overflow / denormals).
    q, _ = np.linalg.qr(rng.standard_normal((k, n)))
    w = tf.constant(q.astype("float32"))
    chain = _chain_fn()

    def call(inner):
        start = time.perf_counter()
        chain(y0, w, tf.constant(inner)).numpy()
        return time.perf_counter() - start

    call(1)  # trace
    inner = 1
    while inner < 1 << 20:  # grow the loop until one call lasts about min_call_ms
        took = min(call(inner) for _ in range(2))
        if took >= min_call_ms / 1e3:
            break
        inner = max(inner * 2, int(inner * min_call_ms / 1e3 / max(took, 1e-7)))
    for _ in range(warmup):
        call(inner)
    per = [call(inner) / inner for _ in range(repeats)]
    return statistics.median(per), min(per), inner


def measure_gflops(threads: int | None = None, repeats=10, warmup=3, min_call_ms=20.0, square=SQUARE,
                   score_d=SCORE_D, rows=SCORE_ROWS, verbose=False):
    """Rows of {label, m, k, n, flops, inner, median_s, best_s, gflops_median, gflops_best}."""
    set_threads(threads)
    rows_out = []
    for label, m, k, n in shapes(square, score_d, rows):
        med, best, inner = time_matmul(m, k, n, repeats=repeats, warmup=warmup, min_call_ms=min_call_ms)
        flops = 2.0 * m * k * n
        row = {"label": label, "m": m, "k": k, "n": n, "flops": flops, "inner": inner, "median_s": med,
               "best_s": best, "gflops_median": flops / med / 1e9, "gflops_best": flops / best / 1e9}
        rows_out.append(row)
        if verbose:
            print(f"  measured {label}", flush=True)
    return rows_out


def format_table(rows) -> str:
    header = (f"{'shape':<24} {'MFLOP':>9} {'inner':>6} {'us/product (median)':>20} "
              f"{'GFLOP/s median':>15} {'GFLOP/s best':>13}")
    lines = [header]
    for r in rows:
        lines.append(f"{r['label']:<24} {r['flops'] / 1e6:>9.2f} {r['inner']:>6d} {r['median_s'] * 1e6:>20.1f} "
                     f"{r['gflops_median']:>15.1f} {r['gflops_best']:>13.1f}")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=None,
                   help="intra-op threads (default: TensorFlow's choice, one per core)")
    p.add_argument("--square", type=int, nargs="*", default=list(SQUARE), help="square sizes n (n x n x n)")
    p.add_argument("--score-d", type=int, nargs="*", default=list(SCORE_D),
                   help="d of the [100 x d] x [d x d] score-MLP shapes")
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--min-call-ms", type=float, default=20.0, help="target duration of one timed call")
    args = p.parse_args(argv)

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    set_threads(args.threads)
    rows = measure_gflops(args.threads, repeats=args.repeats, warmup=args.warmup, min_call_ms=args.min_call_ms,
                          square=tuple(args.square), score_d=tuple(args.score_d))
    print(f"TensorFlow {tf.__version__}, {os.cpu_count()} CPUs visible, intra-op threads: "
          f"{args.threads or 'default'} (TF reports {tf.config.threading.get_intra_op_parallelism_threads()})")
    print(format_table(rows))
    best = max(rows, key=lambda r: r["gflops_median"])
    small = [r for r in rows if r["m"] == SCORE_ROWS]
    print(f"\nbest: {best['gflops_median']:.1f} GFLOP/s (median) at {best['label']}")
    for r in small:
        print(f"score-MLP shape {r['label']}: {r['gflops_median']:.1f} GFLOP/s (median)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
