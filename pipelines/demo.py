"""Stage `demo`: the main job end to end on embedded defaults.

synthetic data -> write TFRecords -> K-means groups -> train DIN and DMGIN -> evaluate against
the oracle -> export SavedModels -> serve: start `tfrec serve` (TF Serving's gRPC API) in the
background, precompute every user's state through `user_tower` into the embedded user-state cache
(SQLite), score a few users through the client (cache -> `score` over gRPC; one cache miss ->
`user_tower`), check the answers against the SavedModel loaded with plain tf.saved_model.load,
stop the server -> print a result table (also written to <workdir>/results.md).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from pipelines import cluster, synthetic, write_tfrecords
from pipelines.common import SPEC, dataset_name, history_files, load_spec, load_yaml_config, stage_args

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
        cluster.run(stage_args(cluster, ["--data", data_dir, "--seed", seed]))
    else:
        print(f"reusing data in {data_dir} (--regenerate to rebuild)")


def format_table(rows) -> str:
    lines = ["| model | AUC | GAUC | logloss | train s |", "|---|---|---|---|---|"]
    for r in rows:
        secs = f"{r['train_seconds']:.0f}" if r.get("train_seconds") is not None else "-"
        lines.append(f"| {r['model']} | {r['auc']:.4f} | {r['gauc']:.4f} | {r['logloss']:.4f} | {secs} |")
    return "\n".join(lines)


def serve_and_query(export_base: Path, model: str, data_dir: Path, work: Path, n_users: int = 3,
                    n_candidates: int = 5, seed: int = 0) -> str:
    """The serving half of the main job; returns the report lines."""
    import tensorflow as tf

    from tfrec.cache import SQLiteCache
    from tfrec.data.dataset import load_user_histories
    from tfrec.export import list_versions
    from tfrec.serving.client import ServingClient
    from tfrec.serving.precompute import data_now, precompute_user_states
    from tfrec.serving.requests import context_features
    from tfrec.serving.process import ServerProcess

    spec = load_spec(data_dir)
    histories = load_user_histories(history_files(data_dir), spec)
    now = data_now(histories)
    version_dir = Path(export_base) / model / str(list_versions(Path(export_base) / model)[-1])
    reference = tf.saved_model.load(str(version_dir)).signatures["serving_default"]  # what TF Serving loads
    db = work / "user_state.db"
    for path in work.glob("user_state.db*"):
        path.unlink()  # a fresh cache for this run
    rng = np.random.default_rng(seed)
    users = [int(u) for u in histories.user_ids[:n_users]]
    cold_user = int(histories.user_ids.max()) + 1  # no stored history, not precomputed: a cache miss
    lines = []
    print(f"== serving: starting tfrec serve --model-base-path {export_base} (log {work / 'serve.log'})")
    with ServerProcess(["--model-base-path", str(export_base)], log_path=work / "serve.log") as server, \
            ServingClient(server.target, model, SQLiteCache(db), max_history_length=spec.max_history_length,
                          spec=spec) as client:
        summary = precompute_user_states(client, client.cache, histories, now, batch_size=64)
        lines.append(f"tfrec serve at {server.target} (TF Serving gRPC API), model {model} version "
                     f"{summary['version']}; precomputed {summary['users']} user states through user_tower into "
                     f"{summary['cache']} in {summary['seconds']:.1f} s")
        worst = 0.0
        for uid in users + [cold_user]:
            history = histories.history(uid) if uid != cold_user else {}  # its user features ride along
            cands = rng.integers(0, spec.n_items, n_candidates)
            context = {f.name: 0 for f in spec.context_fields()}  # the demo's request context
            probs, (version, source) = client.score_with_source(uid, history, cands, None, now, context)
            feats = client.features(uid, history, None, now)
            ref = reference(**{k: tf.constant(v) for k, v in feats.items()},
                            **{k: tf.constant(v) for k, v in context_features(context, spec).items()},
                            candidate_item_id=tf.constant(cands[None], tf.int64))["probabilities"].numpy()[0]
            worst = max(worst, float(np.abs(probs - ref).max()))
            pairs = ", ".join(f"item {c}: {p:.3f}" for c, p in zip(cands, probs))
            lines.append(f"  user {uid} (history {int(feats['hist_length'][0])}, state from {source}): {pairs}")
        lines.append(f"max |served - SavedModel serving_default| = {worst:.2e}; client stats {client.stats}")
    print("== serving: tfrec serve stopped")
    if worst > 1e-4:
        raise RuntimeError(f"served scores differ from the SavedModel by {worst}")
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
    served = serve_and_query(Path(args.export_base), "dmgin", data_dir, work)
    report = f"{header}\n\n{table}\n\nServing ({exported['dmgin']}):\n{served}\n"
    (work / "results.md").write_text(report)
    print("\n" + report)
    return rows
