"""Stage `evaluate`: AUC, GAUC, logloss of a trained run on one split, written as JSON.

GAUC follows the DIN paper: per-user AUC weighted by the user's impressions in the evaluation
set; users whose impressions are all one class are skipped (counted in ``n_users_gauc``).
When the split carries the planted ``true_prob`` (synthetic data), the same metrics of the
oracle (scoring with the true probability) are reported next to the model's.
A run trained with ``--user-vectors`` reads the file its model.json remembers (``--user-vectors``
overrides it, e.g. after the file moved).
``--skip-corrupt`` drops corrupt TFRecord files (warned) instead of failing; the JSON then says
which under ``"skipped_corrupt"`` (``skipped_corrupt``), as the metrics cover the rest only.
"""
from __future__ import annotations

import json
from pathlib import Path

from pipelines.common import (dataset_name, load_spec, make_split_dataset, run_user_vectors, skipped_corrupt,
                              skipped_corrupt_line)


def add_arguments(p):
    p.add_argument("--run", required=True, help="trained run directory")
    p.add_argument("--data", required=True, help="data directory")
    p.add_argument("--split", default="test")
    p.add_argument("--out", help="JSON path (default: <run>/eval-<split>.json)")
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--user-vectors", metavar="PATH",
                   help="user-vector file (default: the one the run was trained with, from its model.json)")
    add_skip_corrupt_argument(p)


def add_skip_corrupt_argument(p):
    """``--skip-corrupt`` (as train's), for the stages that read a split through ``predictions``."""
    p.add_argument("--skip-corrupt", action="store_true",
                   help="skip corrupt TFRecord files (reported) instead of failing")


def predictions(model, data_dir, split, batch_size=512, user_vectors=None, skip_corrupt=False, scan_reports=None):
    """Predictions of ``model`` on one split (``user_vectors``: a ``UserVectors`` for a model that reads them).

    ``skip_corrupt``: drop corrupt TFRecord files (history or example files) instead of raising
    ``CorruptTFRecordError``; ``scan_reports``: a list the files' ``ScanReport`` s are appended to,
    for ``skipped_corrupt``.
    """
    from tfrec.training import predict

    return predict(model, make_split_dataset(data_dir, split, load_spec(data_dir), batch_size,
                                             user_vectors=user_vectors, skip_corrupt=skip_corrupt,
                                             scan_reports=scan_reports))


def metrics_of(model_name, data_dir, split, preds) -> dict:
    from tfrec.metrics import ctr_metrics

    out = {"model": model_name, "dataset": dataset_name(data_dir), "split": split,
           **ctr_metrics(preds["user_id"], preds["label"], preds["prediction"])}
    if "true_prob" in preds:
        oracle = ctr_metrics(preds["user_id"], preds["label"], preds["true_prob"])
        out["oracle"] = {k: oracle[k] for k in ("auc", "gauc", "logloss")}
    return out


def run(args):
    from tfrec.training import load_trained

    model, info = load_trained(args.run)
    vectors = run_user_vectors(model.spec, info, args.user_vectors)
    scans = []
    result = metrics_of(info["model_type"], args.data, args.split,
                        predictions(model, args.data, args.split, args.batch_size, vectors, args.skip_corrupt, scans))
    skipped = skipped_corrupt(scans)
    if skipped:
        result["skipped_corrupt"] = skipped
    out = Path(args.out or Path(args.run) / f"eval-{args.split}.json")
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return result
