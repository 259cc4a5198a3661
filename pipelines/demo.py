"""Stage `demo`: the main job end to end on embedded defaults.

synthetic data -> write TFRecords -> K-means groups -> train DIN and DMGIN -> evaluate against
the oracle -> export SavedModels -> load one with plain tf.saved_model.load and score a few
users through user_tower + score -> print a result table (also written to <workdir>/results.md).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from pipelines import cluster, synthetic, write_tfrecords
from pipelines.common import SPEC, dataset_name, load_spec, load_yaml_config, make_split_dataset

CONFIG_DIR = Path(__file__).parent / "configs"
MODELS = ("din", "dmgin")


def add_arguments(p):
    p.add_argument("--size", default="medium", choices=["small", "medium", "long"], help="synthetic data size")
    p.add_argument("--workdir", default="runs/demo", help="where data and runs go")
    p.add_argument("--export-base", default="saved_models")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--regenerate", action="store_true", help="regenerate the data even if it exists")
    p.add_argument("--verbose", type=int, default=2)


def prepare_data(data_dir: Path, size: str, seed: int, regenerate: bool = False):
    if regenerate or not (data_dir / SPEC).exists():
        synthetic.run(argparse.Namespace(size=size, seed=seed, out=str(data_dir)))
        write_tfrecords.run(argparse.Namespace(data=str(data_dir), max_history_length=None))
        cluster.run(argparse.Namespace(data=str(data_dir), k=None, seed=seed, batch_size=None, n_iter=None, max_cv=1.0,
                                       max_ratio=50.0, strict=False))
    else:
        print(f"reusing data in {data_dir} (--regenerate to rebuild)")


def format_table(rows) -> str:
    lines = ["| model | AUC | GAUC | logloss | train s |", "|---|---|---|---|---|"]
    for r in rows:
        secs = f"{r['train_seconds']:.0f}" if r.get("train_seconds") is not None else "-"
        lines.append(f"| {r['model']} | {r['auc']:.4f} | {r['gauc']:.4f} | {r['logloss']:.4f} | {secs} |")
    return "\n".join(lines)


def score_a_few_users(version_dir: Path, data_dir: Path, n_users: int = 3, n_candidates: int = 5, seed: int = 0):
    """Loads the SavedModel like TF Serving would (no tfrec objects) and scores a few users."""
    import tensorflow as tf

    spec = load_spec(data_dir)
    loaded = tf.saved_model.load(str(version_dir))
    batch, _ = next(iter(make_split_dataset(data_dir, "test", spec, batch_size=512)))
    _, first = np.unique(batch["user_id"].numpy(), return_index=True)  # one example per user
    rows = np.sort(first)[:n_users]
    features = {k: tf.gather(v, rows) for k, v in batch.items()}
    n_users = len(rows)
    rng = np.random.default_rng(seed)
    cands = np.concatenate([features["item_id"].numpy()[:, None],
                            rng.integers(0, spec.n_items, size=(n_users, n_candidates - 1))], axis=1)
    user_inputs = {k: features[k] for k in spec.user_input_signature()}
    state = loaded.signatures["user_tower"](**user_inputs)
    probs = loaded.signatures["score"](**state, candidate_item_id=tf.constant(cands, tf.int64))["probabilities"]
    lines = []
    for i in range(n_users):
        pairs = ", ".join(f"item {c}: {p:.3f}" for c, p in zip(cands[i], probs.numpy()[i]))
        lines.append(f"  user {int(features['user_id'][i])} (history {int(features['hist_length'][i])}): {pairs}")
    return "\n".join(lines)


def run(args):
    from pipelines.evaluate import metrics_of, predictions
    from pipelines.train import train_model
    from tfrec.export import export_saved_model

    work = Path(args.workdir)
    data_dir = work / "data"
    prepare_data(data_dir, args.size, args.seed, args.regenerate)
    rows, exported = [], {}
    for name in MODELS:
        print(f"== training {name}")
        model, seconds = train_model(name, data_dir, work / name, load_yaml_config(CONFIG_DIR / f"{name}.yaml"),
                                     epochs=args.epochs, batch_size=args.batch_size, seed=args.seed,
                                     verbose=args.verbose)
        result = metrics_of(name, data_dir, "test", predictions(model, data_dir, "test"))
        (work / name / "eval-test.json").write_text(json.dumps(result, indent=2))
        rows.append({**result, "train_seconds": seconds})
        exported[name] = export_saved_model(model, model.spec, args.export_base, name)
        print(f"exported {name} -> {exported[name]}")
    rows.append({"model": "oracle (true p)", **rows[0]["oracle"], "train_seconds": None})
    table = format_table(rows)
    header = (f"dataset {dataset_name(data_dir)}: {rows[0]['n_examples']} test examples, "
              f"{rows[0]['n_users']} users")
    scored = score_a_few_users(exported["dmgin"], data_dir)
    report = f"{header}\n\n{table}\n\nSavedModel {exported['dmgin']} (user_tower -> score):\n{scored}\n"
    (work / "results.md").write_text(report)
    print("\n" + report)
    return rows
