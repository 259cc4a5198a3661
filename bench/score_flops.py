"""FLOPs of an exported SavedModel's ``score`` (and ``serving_default``) per candidate, and the compute floor.

Loads one exported version (``saved_models/<name>/<version>``), takes a signature, and retraces it
with fixed shapes: batch 1, C candidates (and, for ``serving_default``, L history behaviors). The
retraced concrete function is frozen (``convert_variables_to_constants_v2``, which also inlines
the nested function calls, so every op sits in one graph with static shapes) and counted twice:

* ``profiler``: ``tf.compat.v1.profiler.profile(graph, options=ProfileOptionBuilder.float_operation())``,
  i.e. TF's registered ``flops`` statistics. TF 2.16 registers none for ``Einsum`` (counted 0)
  nor for transcendental ops (``Sigmoid``, ``Exp``, ``Tanh``: counted 0).
* ``matmul (by hand)``: ``MatMul`` / ``BatchMatMul*`` / ``Einsum`` from the ops' static shapes,
  2 x M x K x N (times the batch); an Einsum with a contracted index costs 2 x the product of
  all its index sizes.

The figure used (``FLOPs`` column) = profiler total - the profiler's own matmul-family count +
the hand count, so Einsum is included; for MatMul and BatchMatMul both methods give the same
number (printed as a check). Then, over C = 1 and C = 100:

    FLOPs per candidate = (F(100) - F(1)) / 99,   per-request constant = F(1) - FLOPs per candidate

and the compute floor = FLOPs / (GFLOP/s), with GFLOP/s measured by ``bench/matmul_gflops.py``
(best square figure, i.e. the peak, and the figure at the score-MLP shape [100 x d] x [d x d]).
The floor ignores embedding gathers, memory traffic and per-op dispatch, so real latency is
higher. Nothing is executed except the matmul timing; shapes alone give the counts.

    python bench/score_flops.py --saved-model saved_models/dmgin/1
    python bench/score_flops.py --saved-model saved_models/din/1 --history-length 1000
    python bench/score_flops.py --saved-model saved_models/dmgin/1 --gflops 100 --breakdown
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import sys
from pathlib import Path

MATMUL_FAMILY = ("MatMul", "BatchMatMul", "BatchMatMulV2", "BatchMatMulV3", "Einsum")
LOOP_OPS = ("While", "StatelessWhile", "For", "If", "StatelessIf", "PartitionedCall", "StatefulPartitionedCall")


def read_metadata(version_dir: Path) -> dict:
    path = Path(version_dir) / "assets.extra" / "tfrec_export.json"
    return json.loads(path.read_text()) if path.exists() else {}


def fixed_specs(signature, batch: int, candidates: int, history_length: int):
    """The signature's input specs with every unknown dim fixed: dim 0 -> batch, else C or L."""
    import tensorflow as tf

    out = {}
    for name, spec in signature.structured_input_signature[1].items():
        dims = spec.shape.as_list()
        shape = []
        for i, d in enumerate(dims):
            if i == 0:
                shape.append(batch)
            elif d is not None:
                shape.append(d)
            else:
                shape.append(candidates if name == "candidate_item_id" else history_length)
        out[name] = tf.TensorSpec(shape, spec.dtype, name=name)
    return out


def frozen_graph(signature, specs):
    """A tf.Graph of ``signature`` traced at ``specs``, variables frozen, functions inlined."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    @tf.function
    def wrapped(inputs):
        return signature(**inputs)

    frozen = convert_variables_to_constants_v2(wrapped.get_concrete_function(specs))
    graph_def = frozen.graph.as_graph_def()
    graph = tf.Graph()
    with graph.as_default():
        tf.graph_util.import_graph_def(graph_def, name="")
    return graph, graph_def


def _shape(tensor):
    dims = tensor.shape.as_list() if tensor.shape.rank is not None else None
    if dims is None or any(d is None for d in dims):
        return None
    return dims


def _prod(xs):
    out = 1
    for x in xs:
        out *= int(x)
    return out


def matmul_flops_by_hand(op) -> int | None:
    """2 x M x K x N (x batch) of a MatMul / BatchMatMul* / Einsum op from static shapes; None if unknown."""
    shapes = [_shape(t) for t in op.inputs]
    if any(s is None for s in shapes):
        return None
    if op.type == "MatMul":
        a, _ = shapes
        k = a[0] if op.get_attr("transpose_a") else a[1]
        return 2 * k * _prod(_shape(op.outputs[0]))
    if op.type.startswith("BatchMatMul"):
        a, _ = shapes
        adj = op.get_attr("adj_x")
        k = a[-2] if adj else a[-1]
        return 2 * k * _prod(_shape(op.outputs[0]))
    if op.type == "Einsum":
        eq = op.get_attr("equation").decode()
        lhs, rhs = eq.replace(" ", "").split("->")
        terms = lhs.split(",")
        if any("." in t for t in terms):
            return None
        size = {}
        for term, shape in zip(terms, shapes):
            for label, dim in zip(term, shape):
                size[label] = max(size.get(label, 1), dim)
        contracted = set("".join(terms)) - set(rhs)
        total = _prod(size.values())
        return 2 * total if contracted and len(terms) > 1 else total
    return None


def count_flops(graph):
    """{"profiler", "registry_by_type", "hand_matmul", "registry_matmul", "flops", "unknown", "loops"}."""
    import tensorflow as tf
    from tensorflow.python.framework import ops as tf_ops

    builder = tf.compat.v1.profiler.ProfileOptionBuilder
    options = builder(builder.float_operation()).with_empty_output().build()
    profiler_total = int(tf.compat.v1.profiler.profile(graph, cmd="scope", options=options).total_float_ops)

    by_type = collections.Counter()
    hand = collections.Counter()
    unknown, loops = [], collections.Counter()
    for op in graph.get_operations():
        if op.type in LOOP_OPS:
            loops[op.type] += 1
        try:
            stat = tf_ops.get_stats_for_node_def(graph, op.node_def, "flops").value
        except Exception:  # noqa: BLE001 - unregistered or shape-less: the profiler counts 0 too
            stat = None
        by_type[op.type] += int(stat or 0)
        if op.type in MATMUL_FAMILY:
            f = matmul_flops_by_hand(op)
            if f is None:
                unknown.append(op.name)
            else:
                hand[op.type] += f
    registry_matmul = sum(by_type[t] for t in MATMUL_FAMILY)
    hand_matmul = sum(hand.values())
    return {"profiler": profiler_total, "registry_by_type": by_type, "registry_total": sum(by_type.values()),
            "registry_matmul": registry_matmul, "hand_by_type": hand, "hand_matmul": hand_matmul,
            "flops": profiler_total - registry_matmul + hand_matmul, "unknown": unknown, "loops": loops}


def analyse(version_dir: Path, signature_name: str, candidates=(1, 100), history_length=1000, batch=1):
    import tensorflow as tf

    loaded = tf.saved_model.load(str(version_dir))
    if signature_name not in loaded.signatures:
        raise SystemExit(f"{version_dir} has no signature {signature_name!r} (has {sorted(loaded.signatures)})")
    signature = loaded.signatures[signature_name]
    rows = {}
    for c in candidates:
        graph, _ = frozen_graph(signature, fixed_specs(signature, batch, c, history_length))
        rows[c] = count_flops(graph)
    return rows


def per_candidate(rows, lo=1, hi=100):
    """(FLOPs per candidate, per-request constant) from the counts at C = lo and C = hi."""
    slope = (rows[hi]["flops"] - rows[lo]["flops"]) / (hi - lo)
    return slope, rows[lo]["flops"] - lo * slope


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--saved-model", default="saved_models/dmgin/1", help="an exported version dir")
    p.add_argument("--signatures", nargs="*", default=["score", "serving_default"])
    p.add_argument("--candidates", type=int, default=100, help="C of the second count (the first is C = 1)")
    p.add_argument("--history-length", type=int, default=None,
                   help="L for serving_default's history inputs (default: the export's max_history_length, "
                        "else 1000)")
    p.add_argument("--gflops", type=float, default=None, help="skip the matmul timing and use this GFLOP/s")
    p.add_argument("--threads", type=int, default=None, help="intra-op threads for the matmul timing")
    p.add_argument("--breakdown", action="store_true", help="print the FLOPs per op type at C = --candidates")
    args = p.parse_args(argv)

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import matmul_gflops

    matmul_gflops.set_threads(args.threads)
    version_dir = Path(args.saved_model)
    meta = read_metadata(version_dir)
    spec_l = ((meta.get("model_config") or {}).get("spec") or {}).get("max_history_length")
    history_length = args.history_length or spec_l or 1000
    hi = args.candidates
    print(f"SavedModel {version_dir} ({meta.get('model_class', '?')}), batch 1, C in (1, {hi}), "
          f"history L = {history_length} (serving_default only)")

    results = {}
    for name in args.signatures:
        rows = analyse(version_dir, name, candidates=(1, hi), history_length=history_length)
        results[name] = rows
        print(f"\n== {name}")
        print(f"{'C':>5} {'FLOPs':>14} {'profiler':>14} {'matmul (hand)':>14} {'matmul (profiler)':>18} "
              f"{'Einsum (hand)':>14}")
        for c, r in rows.items():
            print(f"{c:>5} {r['flops']:>14,} {r['profiler']:>14,} {r['hand_matmul']:>14,} "
                  f"{r['registry_matmul']:>18,} {r['hand_by_type']['Einsum']:>14,}")
            if r["unknown"]:
                print(f"      WARNING: {len(r['unknown'])} matmul-family ops without static shapes (not counted): "
                      f"{r['unknown'][:3]}")
            if r["loops"]:
                print(f"      WARNING: control-flow / call ops left in the graph (bodies counted once or not at all): "
                      f"{dict(r['loops'])}")
            if r["registry_total"] != r["profiler"]:
                print(f"      note: per-op registry sum {r['registry_total']:,} != profiler {r['profiler']:,}")
            mm_types = {t: (r["registry_by_type"][t], r["hand_by_type"][t]) for t in MATMUL_FAMILY
                        if r["hand_by_type"][t] and t != "Einsum"}
            mismatch = {t: v for t, v in mm_types.items() if v[0] != v[1]}
            if mismatch:
                print(f"      note: profiler vs hand differ for {mismatch}")
        slope, const = per_candidate(rows, 1, hi)
        print(f"FLOPs per candidate: {slope:,.0f}   per-request constant: {const:,.0f}   "
              f"(profiler alone: {(rows[hi]['profiler'] - rows[1]['profiler']) / (hi - 1):,.0f} per candidate)")
        if args.breakdown:
            bt = rows[hi]["registry_by_type"].copy()
            for t in MATMUL_FAMILY:
                bt[t] = rows[hi]["hand_by_type"][t]
            print(f"  by op type at C = {hi}: " + ", ".join(f"{t} {v:,}" for t, v in bt.most_common() if v))
        results[name] = {"rows": rows, "per_candidate": slope, "constant": const}

    if args.gflops:
        figures = {"given": args.gflops}
    else:
        print("\nmeasuring matmul GFLOP/s (bench/matmul_gflops.py) ...")
        mm = matmul_gflops.measure_gflops(args.threads, repeats=5, warmup=2)
        print(matmul_gflops.format_table(mm))
        best = max(mm, key=lambda r: r["gflops_median"])
        small = max((r for r in mm if r["m"] == matmul_gflops.SCORE_ROWS), key=lambda r: r["gflops_median"])
        figures = {f"peak ({best['label']})": best["gflops_median"],
                   f"score-MLP shape ({small['label']})": small["gflops_median"]}

    print("\ncompute floor (FLOPs / GFLOP/s; excludes gathers, memory traffic, op dispatch):")
    for label, g in figures.items():
        print(f"  at {g:.1f} GFLOP/s, {label}:")
        for name, res in results.items():
            slope, const = res["per_candidate"], res["constant"]
            total = res["rows"][hi]["flops"]
            print(f"    {name:<16} {slope / g / 1e3:8.3f} us/candidate + {const / g / 1e3:8.2f} us/request"
                  f"  -> C={hi}: {total / g / 1e3:8.1f} us")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
