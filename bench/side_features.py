"""Before / after the feature schema: DIN and DMGIN with item ids only vs with the data set's side features.

  .venv/bin/python bench/side_features.py --dataset synthetic-medium        # seeds 0 1 2, 2 epochs
  .venv/bin/python bench/side_features.py --dataset ml-100k
  .venv/bin/python bench/side_features.py --dataset ml-1m --seeds 0 --epochs 1 --models din
  .venv/bin/python bench/side_features.py --dataset synthetic-medium --models din \\
      --variants schema --set attention_activation=dice --tag dice         # one ablation

Two data directories share one raw/ folder:
- `ids` is the default schema (user_segment only, item ids): what every model saw before schemas;
- `schema` is the data set's raw/schema.yaml:
  - synthetic: item category + brand;
  - MovieLens: user age / gender / occupation, item genres (multi-valued) + release year.

Each (variant, model, seed) cell trains with the shared pipeline (`pipelines.train.train_model`, the
model's YAML config) and evaluates AUC / GAUC / logloss on the test split. Cells are cached in
`WORKDIR/<dataset>/cells.json`: an interrupted run resumes, a finished cell is never recomputed.
Writes bench/results/side-features-<dataset>[-<tag>].md (+ .json).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import tfrec  # noqa: E402,F401  (tf-keras before TensorFlow)
from pipelines import cluster, embed_items, movielens, synthetic, write_tfrecords  # noqa: E402
from pipelines.common import GROUPS, RAW, SPEC, load_yaml_config, stage_args  # noqa: E402
from pipelines.train import parse_overrides  # noqa: E402
from bench.cells import CellCache, train_and_evaluate  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = ROOT / "pipelines" / "configs"
VARIANTS = ("ids", "schema")


def prepare(dataset: str, work: Path, regenerate: bool) -> dict:
    """raw/ + groups.npz once, then one data directory per variant; returns {variant: dir}."""
    base = work / "base"
    if regenerate and work.exists():
        shutil.rmtree(work)
    if not (base / GROUPS).exists():
        if dataset.startswith("synthetic-"):
            # v1: the data these results were measured on (bench/results/side-features-synthetic-*).
            # and k = the generator's topic count, as the cluster stage's default was then.
            synthetic.run(stage_args(synthetic, ["--size", dataset.split("-", 1)[1], "--version", "v1", "--out", base]))
            k = json.loads((base / RAW / "dataset.json").read_text())["truth"]["n_topics"]
            cluster.run(stage_args(cluster, ["--data", base, "--seed", 0, "--k", k]))
        else:
            movielens.run(stage_args(movielens, ["--out", base, "--variant", dataset.split("-", 1)[1]]))
            embed_items.run(stage_args(embed_items, ["--data", base]))
            cluster.run(stage_args(cluster, ["--data", base, "--seed", 0]))
    dirs = {}
    for variant in VARIANTS:
        data = work / variant
        dirs[variant] = data
        if (data / SPEC).exists():
            continue
        data.mkdir(parents=True, exist_ok=True)
        if not (data / RAW).exists():
            os.symlink((base / RAW).resolve(), data / RAW)
        shutil.copy(base / GROUPS, data / GROUPS)
        argv = ["--data", data]
        if variant == "ids":
            meta = json.loads((base / RAW / "dataset.json").read_text())
            ids_schema = work / "ids-schema.yaml"
            ids_schema.write_text("# item ids only: the default schema\nuser:\n  - {name: user_segment, kind: "
                                  f"categorical, vocab_size: {meta.get('n_user_segments', 8)}}}\n")
            argv += ["--schema", ids_schema]
        write_tfrecords.run(stage_args(write_tfrecords, argv))
    return dirs


def mean_std(values) -> str:
    return f"{np.mean(values):.4f} ± {np.std(values):.4f}" if len(values) > 1 else f"{values[0]:.4f} (1 seed)"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="synthetic-medium",
                   choices=["synthetic-small", "synthetic-medium", "synthetic-long", "ml-100k", "ml-1m"])
    p.add_argument("--models", nargs="+", default=["din", "dmgin"])
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="model config override")
    p.add_argument("--tag", default="", help="suffix of the result files and cache keys (for ablations)")
    p.add_argument("--workdir", default="runs/side-features")
    p.add_argument("--regenerate", action="store_true")
    args = p.parse_args(argv)

    work = Path(args.workdir) / args.dataset
    dirs = prepare(args.dataset, work, args.regenerate)
    cells = CellCache(work / "cells.json")
    overrides = parse_overrides(args.set)
    for variant in args.variants:
        for name in args.models:
            for seed in args.seeds:
                key = f"{variant}/{name}/{seed}/{args.epochs}/{args.tag}"
                if key in cells:
                    continue
                config = {**load_yaml_config(CONFIG_DIR / f"{name}.yaml"), **overrides}
                # pipelines/configs/<model>[-variant].yaml (e.g. dmqn-simple.yaml builds a DMQN)
                result = train_and_evaluate(name.split("-")[0], dirs[variant], work / "runs" / key.replace("/", "-"), config,
                                            args.epochs, args.batch_size, seed)
                cells.put(key, {"variant": variant, **result})
                print(f"{key}: auc {result['auc']:.4f} gauc {result['gauc']:.4f} ({result['train_seconds']:.0f}s)",
                      flush=True)

    lines = [f"# Side features on {args.dataset}: item ids only vs the schema" + (f" ({args.tag})" if args.tag else ""),
             "", f"`.venv/bin/python bench/side_features.py {' '.join(sys.argv[1:] if argv is None else argv)}`; "
                 f"{args.epochs} epochs, batch {args.batch_size}, seeds {args.seeds}, test split, mean ± std over seeds.",
             "", "Schema (`raw/schema.yaml`):", "", "```yaml", (dirs["schema"] / RAW / "schema.yaml").read_text().strip(),
             "```", "", "| variant | model | AUC | GAUC | logloss | train s |", "|---|---|---|---|---|---|"]
    rows = []
    # every cached (variant, model) of this epoch budget and tag, whichever run trained it
    cached = [k.split("/") for k, _ in cells.items()]
    names = list(dict.fromkeys([k[1] for k in cached] + args.models))
    for variant in VARIANTS:
        for name in names:
            got = [cells[f"{variant}/{name}/{s}/{args.epochs}/{args.tag}"] for s in args.seeds
                   if f"{variant}/{name}/{s}/{args.epochs}/{args.tag}" in cells]
            if not got:
                continue
            rows.append({"variant": variant, "model": name, "cells": got})
            lines.append(f"| {variant} | {name} | {mean_std([c['auc'] for c in got])} | "
                         f"{mean_std([c['gauc'] for c in got])} | {mean_std([c['logloss'] for c in got])} | "
                         f"{np.mean([c['train_seconds'] for c in got]):.0f} |")
    oracle = next((c["oracle"] for _, c in cells.items() if "oracle" in c), None)
    if oracle:
        lines.append(f"| oracle (true p) | | {oracle['auc']:.4f} | {oracle['gauc']:.4f} | {oracle['logloss']:.4f} | |")
    out = ROOT / "bench" / "results" / f"side-features-{args.dataset}{'-' + args.tag if args.tag else ''}.md"
    out.write_text("\n".join(lines) + "\n")
    out.with_suffix(".json").write_text(json.dumps(rows, indent=2, default=str))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
