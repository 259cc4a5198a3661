"""Stage `predict`: per-example ``user_id, label, prediction`` (CSV or Parquet), so anyone can
recompute the metrics independently. ``--skip-corrupt`` drops corrupt TFRecord files (warned, and
named in the closing line) instead of failing."""
from __future__ import annotations

from pathlib import Path

import pyarrow as pa


def add_arguments(p):
    from pipelines.evaluate import add_skip_corrupt_argument

    p.add_argument("--run", required=True, help="trained run directory")
    p.add_argument("--data", required=True, help="data directory")
    p.add_argument("--split", default="test")
    p.add_argument("--out", required=True, help="output file: .csv or .parquet")
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--user-vectors", metavar="PATH",
                   help="user-vector file (default: the one the run was trained with, from its model.json)")
    add_skip_corrupt_argument(p)


def write_predictions(preds, out) -> Path:
    out = Path(out)
    table = pa.table({k: preds[k] for k in ("user_id", "label", "prediction")})
    if out.suffix == ".parquet":
        import pyarrow.parquet as pq

        pq.write_table(table, out)
    elif out.suffix == ".csv":
        import pyarrow.csv as pcsv

        pcsv.write_csv(table, out)
    else:
        raise ValueError(f"--out must end in .csv or .parquet. Received: {out}")
    return out


def run(args):
    from pipelines.common import run_user_vectors
    from pipelines.common import skipped_corrupt, skipped_corrupt_line
    from pipelines.evaluate import predictions
    from tfrec.training import load_trained

    model, info = load_trained(args.run)
    scans = []
    preds = predictions(model, args.data, args.split, args.batch_size,
                        run_user_vectors(model.spec, info, args.user_vectors), args.skip_corrupt, scans)
    path = write_predictions(preds, args.out)
    print(f"wrote {len(preds['prediction'])} predictions to {path}")
    skipped = skipped_corrupt(scans)
    if skipped:
        print(skipped_corrupt_line(skipped))
