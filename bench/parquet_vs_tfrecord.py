"""TFRecord vs Parquet (tensorflow-io) input paths over the same raw logs: examples/s and one-off costs.

(a) the TFRecord path: ``pipelines.common.make_split_dataset`` over train.tfrecord, joined with
    ``load_user_histories(user_histories.tfrecord)``;
(b) the Parquet path (``tfrec.data.parquet``): raw/train.parquet read with tensorflow-io (chunked
    ``IOTensor`` slices, or per row with ``IODataset.from_parquet``) or pyarrow, joined in graph with
    ``histories_from_parquet(raw/behaviors.parquet)``: the same join, cut and padding.

Batch 256, unshuffled. Before timing, every path is checked against (a): identical histories
(CSR arrays), the first --check-batches batches identical tensor by tensor, and every batch's
per-feature sums identical. Then --passes timed passes each. One-off costs: loading the histories,
building the dataset (the TFRecord reader scans every example file; the Parquet reader checks the
schema and every example value, as the TFRecord writer would), and writing the TFRecords from
raw/ with write-tfrecords (skip with --no-time-write), which the Parquet path skips. Also times
reading the examples alone (no join) to separate the input format from the join, and reading
behaviors.parquet (row groups of 1,048,576 rows) in 65,536- and 4,096-row tensorflow-io reads:
its reader decodes each row group from the start on every read. Prints wall-clock examples/s
and the process CPU time per 1,000 examples (all threads; steadier on a shared machine).

    .venv/bin/tfrec synthetic --size medium --out /tmp/pq-medium
    .venv/bin/tfrec write-tfrecords --data /tmp/pq-medium
    .venv/bin/python bench/parquet_vs_tfrecord.py --data /tmp/pq-medium [--json OUT]
"""
import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

import tfrec  # noqa: F401  (tf-keras before TensorFlow)
import tensorflow as tf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pipelines import write_tfrecords  # noqa: E402
from pipelines.common import (RAW, SPLITS, history_files, load_spec, make_split_dataset, stage_args,  # noqa: E402
                              tfrecord_files)
from tfrec.data import parquet as pqt  # noqa: E402
from tfrec.data.dataset import load_user_histories  # noqa: E402

BATCH = 256


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def sums(features, label):
    """Per-feature (shape, float64 sum) of one batch: equal sums of equal arrays are bit-identical."""
    out = {name: (tuple(v.shape), float(np.asarray(v, np.float64).sum())) for name, v in features.items()}
    out["label"] = (tuple(label.shape), float(np.asarray(label, np.float64).sum()))
    return out


def verify(dataset, reference, check_batches):
    """Compares every batch's sums with the reference and the first batches exactly; returns (ok, note)."""
    ref_sums, ref_batches = reference
    n = 0
    for i, (features, label) in enumerate(dataset):
        features = {k: v.numpy() for k, v in features.items()}
        label = label.numpy()
        if i >= len(ref_sums):
            return False, f"extra batch {i}"
        if i < check_batches:
            ref_f, ref_l = ref_batches[i]
            if sorted(ref_f) != sorted(features):
                return False, f"batch {i}: features {sorted(features)} vs {sorted(ref_f)}"
            for name in ref_f:
                a, b = ref_f[name], features[name]
                if a.dtype != b.dtype or a.shape != b.shape or not np.array_equal(a, b):
                    return False, f"batch {i}: {name} differs ({a.dtype}{a.shape} vs {b.dtype}{b.shape})"
            if not np.array_equal(ref_l, label):
                return False, f"batch {i}: label differs"
        if sums(features, label) != ref_sums[i]:
            return False, f"batch {i}: per-feature sums differ"
        n += len(label)
    if n != sum(s["label"][0][0] for s in ref_sums):
        return False, f"{n} examples"
    return True, f"{len(ref_sums)} batches, first {check_batches} exact"


def reference(dataset, check_batches):
    ref_sums, ref_batches = [], []
    for i, (features, label) in enumerate(dataset):
        features = {k: v.numpy() for k, v in features.items()}
        ref_sums.append(sums(features, label.numpy()))
        if i < check_batches:
            ref_batches.append((features, label.numpy()))
    return ref_sums, ref_batches


def passes(dataset, n_passes, cpu=None):
    """examples/s of each pass; appends each pass's process CPU seconds per 1,000 examples to ``cpu``
    (all threads: less sensitive than wall time to other processes on the machine)."""
    rates = []
    for _ in range(n_passes):
        n, t, c = 0, time.perf_counter(), time.process_time()
        for element in dataset:
            label = element[1] if isinstance(element, tuple) else element["user_id"]
            n += int(label.shape[0])
        rates.append(n / (time.perf_counter() - t))
        if cpu is not None:
            cpu.append(1000 * (time.process_time() - c) / n)
    return rates


def same_histories(a, b):
    if not (np.array_equal(a.user_ids, b.user_ids) and np.array_equal(a.row_splits, b.row_splits)):
        return False
    for part in ("sequences", "profile"):
        x, y = getattr(a, part), getattr(b, part)
        if sorted(x) != sorted(y) or any(x[k].dtype != y[k].dtype or not np.array_equal(x[k], y[k]) for k in x):
            return False
    return True


def time_write(data):
    """Seconds of write-tfrecords (histories + train + test) from a copy of raw/ (the step Parquet skips)."""
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copytree(Path(data) / RAW, Path(tmp) / RAW)
        _, seconds = timed(lambda: write_tfrecords.run(stage_args(write_tfrecords, ["--data", tmp])))
    return seconds


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="/tmp/pq-medium", help="data directory with raw/*.parquet and the TFRecords")
    p.add_argument("--passes", type=int, default=2)
    p.add_argument("--check-batches", type=int, default=4)
    p.add_argument("--no-time-write", action="store_true", help="skip timing write-tfrecords")
    p.add_argument("--json", default=None, help="write the figures here")
    args = p.parse_args()
    data, raw = Path(args.data), Path(args.data) / RAW
    spec = load_spec(data)
    with_prob = bool(json.loads((data / SPLITS).read_text())["train"]["true_prob"])
    results = {"data": str(data), "batch": BATCH, "cpus": os.cpu_count(), "tf": tf.__version__,
               "max_history_length": spec.max_history_length}
    import tensorflow_io as tfio
    results["tfio"] = tfio.__version__

    # -- one-off costs ---------------------------------------------------------------------------
    if not args.no_time_write:
        results["write_tfrecords_s"] = time_write(data)
    hist_tf, results["histories_tfrecord_s"] = timed(lambda: load_user_histories(history_files(data), spec))
    hist_pa, results["histories_parquet_pyarrow_s"] = timed(
        lambda: pqt.histories_from_parquet(raw / "behaviors.parquet", spec, reader="pyarrow"))
    hist_io, results["histories_parquet_tfio_s"] = timed(
        lambda: pqt.histories_from_parquet(raw / "behaviors.parquet", spec, reader="tfio"))
    results["histories_identical"] = same_histories(hist_tf, hist_pa) and same_histories(hist_tf, hist_io)
    results["n_users"], results["n_behaviors"] = len(hist_tf), hist_tf.n_behaviors

    def tfrecord():
        return make_split_dataset(data, "train", spec, BATCH, history=hist_tf)

    def parquet(**kw):
        return lambda: pqt.make_parquet_dataset(raw / "train.parquet", spec, hist_io, BATCH,
                                                include_true_prob=with_prob, **kw)

    variants = {
        "tfrecord (make_split_dataset)": (tfrecord, "histories_tfrecord_s"),
        "parquet: tfio chunks (IOTensor slices)": (parquet(reader="tfio"), "histories_parquet_tfio_s"),
        "parquet: tfio per row (IODataset.from_parquet)": (parquet(reader="tfio", per_row=True),
                                                           "histories_parquet_tfio_s"),
        "parquet: pyarrow chunks": (parquet(reader="pyarrow"), "histories_parquet_pyarrow_s"),
    }
    ref = None
    rows = []
    for name, (build, hist_key) in variants.items():
        dataset, build_s = timed(build)
        if ref is None:
            ref = reference(dataset, args.check_batches)
            ok, note = True, "reference"
        else:
            ok, note = verify(dataset, ref, args.check_batches)
        cpu = []
        rates = passes(dataset, args.passes, cpu)
        rows.append({"path": name, "histories_s": results[hist_key], "build_s": build_s, "rates": rates,
                     "cpu_s_per_1k": cpu, "identical": ok, "note": note})
        print(f"{name}: build {build_s:.2f}s, " + ", ".join(f"{r:,.0f}" for r in rates) + " ex/s, CPU "
              + ", ".join(f"{c:.3f}" for c in cpu) + f" s per 1k examples; {note}", flush=True)
    results["joined"] = rows

    # -- reading the examples alone (no join) ----------------------------------------------------
    parse_spec = spec.parse_spec(spec.example_record_features(with_true_prob=with_prob))
    columns = {n: f.tf_dtype for n, f in pqt.example_columns(spec, with_prob).items()}
    readers = {
        "tfrecord: TFRecordDataset + parse_example": lambda: tf.data.TFRecordDataset(
            str(tfrecord_files(data, "train"))).batch(BATCH).map(lambda s: tf.io.parse_example(s, parse_spec),
                                                                num_parallel_calls=tf.data.AUTOTUNE),
        "parquet: tfio chunks": lambda: pqt.parquet_columns_dataset(raw / "train.parquet", columns, "tfio", BATCH),
        "parquet: tfio per row + batch": lambda: pqt.parquet_columns_dataset(raw / "train.parquet", columns,
                                                                            "tfio").batch(BATCH),
        "parquet: pyarrow chunks": lambda: pqt.parquet_columns_dataset(raw / "train.parquet", columns, "pyarrow",
                                                                       BATCH),
    }
    results["read_only"] = []
    for name, build in readers.items():
        dataset = build()
        cpu = []
        rates = passes(dataset, args.passes, cpu)
        results["read_only"].append({"path": name, "rates": rates, "cpu_s_per_1k": cpu})
        print(f"read only, {name}: " + ", ".join(f"{r:,.0f}" for r in rates) + " ex/s, CPU "
              + ", ".join(f"{1000 * c:.1f}" for c in cpu) + " ms per 1k examples", flush=True)

    # -- a file with large row groups: tensorflow-io re-decodes each row group from its start -----
    # behaviors.parquet (pyarrow's default row groups of 1,048,576 rows): every tfio read skips from
    # the start of its row group (no row-group cache), so small reads cost quadratic decoding;
    # IODataset.from_parquet reads 4,096 rows at a time.
    beh = raw / "behaviors.parquet"
    beh_meta = pq.ParquetFile(beh).metadata
    results["behaviors_row_groups"] = [beh_meta.row_group(i).num_rows for i in range(beh_meta.num_row_groups)]
    beh_columns = {"user_id": tf.int64, "item_id": tf.int64, "timestamp": tf.int64, "duration": tf.float32}
    results["large_row_groups"] = []
    for name, kw in {"tfio, 65,536-row reads": dict(reader="tfio", chunk_rows=65536),
                     "tfio, 4,096-row reads (as IODataset.from_parquet)": dict(reader="tfio", chunk_rows=4096),
                     "pyarrow, 65,536-row reads": dict(reader="pyarrow", chunk_rows=65536)}.items():
        dataset = pqt.parquet_columns_dataset(beh, beh_columns, batch_size=BATCH * 16, **kw)
        (rate,) = passes(dataset, 1)
        results["large_row_groups"].append({"path": name, "rate": rate})
        print(f"behaviors.parquet, {name}: {rate:,.0f} rows/s", flush=True)

    # -- table -----------------------------------------------------------------------------------
    sizes = {"tfrecord": sum(os.path.getsize(data / f) for f in ("train.tfrecord", "user_histories.tfrecord")),
             "parquet": sum(os.path.getsize(raw / f) for f in ("train.parquet", "behaviors.parquet", "users.parquet"))}
    results["bytes"] = sizes
    print()
    print(f"train: {sum(s['label'][0][0] for s in ref[0])} examples, {results['n_users']} users, "
          f"{results['n_behaviors']:,} behaviors, L = {spec.max_history_length}, batch {BATCH}, "
          f"{os.cpu_count()} CPUs, TF {tf.__version__}, tensorflow-io {tfio.__version__}")
    if "write_tfrecords_s" in results:
        print(f"write-tfrecords (histories + train + test), skipped by the Parquet path: "
              f"{results['write_tfrecords_s']:.1f} s")
    print(f"input bytes read: TFRecord {sizes['tfrecord'] / 1e6:.1f} MB, Parquet {sizes['parquet'] / 1e6:.1f} MB")
    print(f"histories identical (TFRecord vs Parquet pyarrow / tfio): {results['histories_identical']}")
    print()
    header = "| path | load histories (s) | build dataset (s) | " + " | ".join(
        f"pass {i + 1} (ex/s)" for i in range(args.passes)) + " | CPU s / 1k ex (min) | same tensors as TFRecord |"
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for r in rows:
        print(f"| {r['path']} | {r['histories_s']:.2f} | {r['build_s']:.2f} | "
              + " | ".join(f"{x:,.0f}" for x in r["rates"]) + f" | {min(r['cpu_s_per_1k']):.3f} | "
              f"{'yes' if r['identical'] else 'NO'}: {r['note']} |")
    print()
    cols = " | ".join(f"pass {i + 1} (ex/s)" for i in range(args.passes))
    print(f"| reading examples only (no join) | {cols} | CPU ms / 1k ex (min) |")
    print("|---|" + "---|" * (args.passes + 1))
    for r in results["read_only"]:
        print(f"| {r['path']} | " + " | ".join(f"{x:,.0f}" for x in r["rates"])
              + f" | {1000 * min(r['cpu_s_per_1k']):.1f} |")
    print()
    print(f"| behaviors.parquet, {beh_meta.num_rows:,} rows in row groups of {results['behaviors_row_groups']}, "
          f"{len(beh_columns)} columns | rows/s |")
    print("|---|---|")
    for r in results["large_row_groups"]:
        print(f"| {r['path']} | {r['rate']:,.0f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    if not (results["histories_identical"] and all(r["identical"] for r in rows)):
        sys.exit(1)


if __name__ == "__main__":
    main()
