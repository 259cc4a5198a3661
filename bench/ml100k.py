"""ml-100k results: real MovieLens-100K through the whole pipeline, DIN and DMGIN over several seeds.

  .venv/bin/python bench/ml100k.py                       # seeds 0 1 2, 2 epochs, runs/ml100k
  .venv/bin/python bench/ml100k.py --seeds 0 --epochs 1  # quick

Stages (each is also a `tfrec` command): movielens (ratings from the recbole wheel; click =
rating >= 4; time split) -> embed-items (all-MiniLM-L6-v2 over title + genres, in TensorFlow) ->
cluster (K-means + balance check + t-SNE) -> semantic-ids (RQ-VAE, M=3, K=64) -> write-tfrecords
(with the codes) -> train + evaluate DIN and DMGIN per seed. Prints and writes
bench/results/ml100k.md (+ .json): AUC / GAUC / logloss as mean ± std over seeds, the per-user
sequence length before and after grouping, the codebook report (CHIME Table 5's hit ratio and
perplexity) and what SIREN's hard GSU (same Semantic ID prefix as the target) keeps of the test
histories.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import tfrec  # noqa: E402,F401  (tf-keras before TensorFlow)
from pipelines import cluster, embed_items, movielens, semantic_ids, write_tfrecords  # noqa: E402
from pipelines.common import (  # noqa: E402
    GROUPS,
    SEMANTIC_IDS,
    SPEC,
    history_files,
    load_spec,
    load_yaml_config,
    make_split_dataset,
    stage_args,
)

CONFIG_DIR = Path(__file__).resolve().parents[1] / "pipelines" / "configs"


def prepare(data: Path, regenerate: bool, ties: str = "strict") -> None:
    if (data / SPEC).exists() and not regenerate:
        print(f"reusing {data} (--regenerate to rebuild)")
        return
    movielens.run(stage_args(movielens, ["--out", data, "--ties", ties]))
    embed_items.run(stage_args(embed_items, ["--data", data]))
    cluster.run(stage_args(cluster, ["--data", data, "--seed", 0]))
    semantic_ids.run(stage_args(semantic_ids, ["--data", data, "--seed", 0, "--quiet"]))
    write_tfrecords.run(stage_args(write_tfrecords, ["--data", data]))


def sequence_stats(data: Path) -> dict:
    from tfrec.data.dataset import load_user_histories
    from tfrec.grouping import load_group_table
    from tfrec.grouping.stats import grouping_stats

    histories = load_user_histories(history_files(data), load_spec(data))
    table = load_group_table(data / GROUPS).table
    return grouping_stats(histories.row_splits, histories.sequences["hist_item_id"], table)


def semantic_id_section(data: Path) -> tuple[list[str], dict]:
    """The codebook report and the hard-GSU statistics of the test split, as Markdown lines."""
    from tfrec.grouping import format_codebook_report, load_semantic_ids
    from tfrec.grouping.stats import hard_gsu_stats

    spec = load_spec(data)
    if not spec.semantic_id_levels:
        return [], {}
    report = load_semantic_ids(data / SEMANTIC_IDS).report
    test = [features for features, _ in make_split_dataset(data, "test", spec, batch_size=2048)]
    gsu = {m: hard_gsu_stats(test, levels=m) for m in range(1, spec.semantic_id_levels + 1)}
    lines = ["", f"## Semantic IDs (RQ-VAE over the item text embeddings, `tfrec semantic-ids`)", "", "```",
             format_codebook_report(report), "```", "",
             "Hard GSU on the test histories (SIREN: keep the behaviors whose Semantic ID prefix equals the "
             "target's):", "", "| prefix levels | history mean | kept mean | kept p99 | kept fraction | "
             "examples keeping none |", "|---|---|---|---|---|---|"]
    for m, g in gsu.items():
        lines.append(f"| {m} | {g['history_length']['mean']} | {g['kept']['mean']} | {g['kept']['p99']:g} | "
                     f"{g['kept_fraction']:.2%} | {g['empty_fraction']:.1%} |")
    return lines, {"codebook": report, "hard_gsu": gsu}


def mean_std(values) -> str:
    return f"{np.mean(values):.4f} ± {np.std(values):.4f}"


def main(argv=None) -> int:
    from pipelines.evaluate import metrics_of, predictions
    from pipelines.train import train_model
    from tfrec.grouping.stats import format_grouping_stats

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--workdir", default="runs/ml100k")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--models", nargs="+", default=["din", "dmgin"])
    p.add_argument("--regenerate", action="store_true")
    p.add_argument("--ties", choices=["strict", "order"], default="strict",
                   help="same-second ratings (tfrec movielens --ties); applied when the data is (re)generated")
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "ml100k.md"))
    args = p.parse_args(argv)
    work = Path(args.workdir)
    data = work / "data"
    prepare(data, args.regenerate, args.ties)
    stats = sequence_stats(data)
    rows = {}
    for name in args.models:
        for seed in args.seeds:
            started = time.time()
            model, seconds = train_model(name, data, work / f"{name}-seed{seed}", load_yaml_config(CONFIG_DIR / f"{name}.yaml"),
                                         epochs=args.epochs, batch_size=args.batch_size, seed=seed, verbose=0)
            result = metrics_of(name, data, "test", predictions(model, data, "test"))
            result["train_seconds"] = seconds
            rows.setdefault(name, []).append(result)
            print(f"{name} seed {seed}: AUC {result['auc']:.4f} GAUC {result['gauc']:.4f} "
                  f"logloss {result['logloss']:.4f} ({time.time() - started:.0f}s)", flush=True)
    first = next(iter(rows.values()))[0]
    ties = json.loads((data / "raw" / "dataset.json").read_text()).get("ties", "strict")
    lines = [f"# ml-100k (MovieLens-100K, click = rating >= 4, time split, same-second ties: {ties})", "",
             f"{first['n_examples']} test examples, {first['n_users']} users; {len(args.seeds)} seeds "
             f"({' '.join(map(str, args.seeds))}), {args.epochs} epochs, batch {args.batch_size}; "
             f"`.venv/bin/python bench/ml100k.py {' '.join(argv or sys.argv[1:])}`", "",
             "| model | AUC | GAUC | logloss | train s |", "|---|---|---|---|---|"]
    for name, results in rows.items():
        lines.append(f"| {name} | {mean_std([r['auc'] for r in results])} | {mean_std([r['gauc'] for r in results])} | "
                     f"{mean_std([r['logloss'] for r in results])} | {np.mean([r['train_seconds'] for r in results]):.0f} |")
    lines += ["", "## Sequence length per user before and after grouping (all ratings, K-means groups)", "",
              format_grouping_stats(stats)]
    semid_lines, semid = semantic_id_section(data)
    lines += semid_lines + [""]
    report = "\n".join(lines)
    print("\n" + report)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report)
    out.with_suffix(".json").write_text(json.dumps({"results": rows, "sequence_stats": stats, "semantic_ids": semid}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
