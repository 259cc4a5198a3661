"""Stage `evaluate`: AUC, GAUC, logloss of a trained run on one split, written as JSON.

GAUC follows the DIN paper: per-user AUC weighted by the user's impressions in the evaluation
set; users whose impressions are all one class are skipped (counted in ``n_users_gauc``).
When the split carries the planted ``true_prob`` (synthetic data), the same metrics of the
oracle (scoring with the true probability) are reported next to the model's.
A run trained with ``--user-vectors`` reads the file its model.json remembers (``--user-vectors``
overrides it, e.g. after the file moved).
"""
from __future__ import annotations

import json
from pathlib import Path

from pipelines.common import dataset_name, load_spec, make_split_dataset, run_user_vectors


def add_arguments(p):
    p.add_argument("--run", required=True, help="trained run directory")
    p.add_argument("--data", required=True, help="data directory")
    p.add_argument("--split", default="test")
    p.add_argument("--out", help="JSON path (default: <run>/eval-<split>.json)")
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--user-vectors", metavar="PATH",
                   help="user-vector file (default: the one the run was trained with, from its model.json)")


def predictions(model, data_dir, split, batch_size=512, user_vectors=None):
    """Predictions of ``model`` on one split (``user_vectors``: a ``UserVectors`` for a model that reads them)."""
    from tfrec.training import predict

    return predict(model, make_split_dataset(data_dir, split, load_spec(data_dir), batch_size,
                                             user_vectors=user_vectors))


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
    result = metrics_of(info["model_type"], args.data, args.split, predictions(model, args.data, args.split,
                                                                               args.batch_size, vectors))
    out = Path(args.out or Path(args.run) / f"eval-{args.split}.json")
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return result
