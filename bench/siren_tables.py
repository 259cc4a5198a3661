"""SIREN's Tables 1 and 2 on our data: SIREN (both GSUs), MUSE, MISS, DIN and the ESU ablations.

  .venv/bin/python bench/siren_tables.py --dataset synthetic-medium --seeds 0 1 2
  .venv/bin/python bench/siren_tables.py --dataset ml-100k --epochs 3
  .venv/bin/python bench/siren_tables.py --dataset ml-1m --rows siren-sim-gsu din --seeds 0

Data: synthetic v2 `medium` (bench/synthetic_v2.py's data directory, + `semantic-ids`), or
MovieLens with the item side-feature schema (bench/side_features.py's `schema` directory, +
`semantic-ids`: RQ-VAE M = 3, K = 64 over the item text embeddings). Every row trains with the shared
pipeline and its YAML config (`pipelines/configs/`), the overrides below, and is evaluated on the
test split. Cells are cached in `WORKDIR/<dataset>/cells.json`: an interrupted run resumes, a
finished cell is never recomputed. Writes bench/results/siren-<dataset>.md (+ .json).
SIM hard / soft and TWIN are Table 1's other rows; ETA and SDIM (the other two-stage baselines, not in
SIREN's table) are listed below them. `--out NAME` writes bench/results/NAME.md instead (a table of the
rows cached in this work directory only).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import tfrec  # noqa: E402,F401  (tf-keras before TensorFlow)
from bench.cells import CellCache, train_and_evaluate  # noqa: E402
from pipelines import semantic_ids  # noqa: E402
from pipelines.common import SEMANTIC_IDS, load_yaml_config, stage_args  # noqa: E402
from tfrec.benchmark import papers  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = ROOT / "pipelines" / "configs"
ABLATION = {"semantic_id": False, "similarity_buckets": False, "target_interaction": False}
# row -> (model, YAML config stem, overrides)
ROWS = {
    "din": ("din", "din", {}),
    "miss": ("miss", "miss", {}),
    "muse": ("muse", "muse", {}),
    "siren-semid-gsu": ("siren", "siren-semid-gsu", {}),
    "sim-hard": ("sim", "sim", {}),
    "sim-soft": ("sim", "sim-soft", {}),
    "twin": ("twin", "twin", {}),
    "eta": ("eta", "eta", {}),
    "sdim": ("sdim", "sdim", {}),
    "twinv2": ("twinv2", "twinv2", {}),
    # TWIN-V2 clusters its window at every training step: 256 behaviors keep a cell within minutes
    "twinv2-n256": ("twinv2", "twinv2", {"history_length": 256}),
    "siren-sim-gsu": ("siren", "siren", {}),
    "ta-base": ("siren", "siren", ABLATION),
    "ta+semid": ("siren", "siren", {**ABLATION, "semantic_id": True}),
    "ta+simbucket": ("siren", "siren", {**ABLATION, "similarity_buckets": True}),
    "ta+simbucket+semid": ("siren", "siren", {**ABLATION, "semantic_id": True, "similarity_buckets": True}),
    # diagnostics (ours): which part of MUSE makes the difference
    "muse-no-simtier": ("muse", "muse", {"simtier": False}),
    "muse-no-sa-ta": ("muse", "muse", {"semantic_aware_attention": False}),
}
DIAGNOSTICS = ("muse-no-simtier", "muse-no-sa-ta")
# SIREN's own numbers (Taobao-MM GAUC, tfrec.benchmark.papers): Table 1 and Table 2, under this script's
# labels ("siren-sim-gsu" = SIREN)
TABLE1 = {("siren-sim-gsu" if k == "siren" else k): v for k, v in papers.SIREN_T1.items()}
# two-stage baselines outside SIREN's Table 1 (no paper number on Taobao-MM)
TABLE1_OTHERS = ("eta", "sdim", "twinv2", "twinv2-n256")
TABLE2 = {("siren-sim-gsu" if k == "siren" else k): v for k, v in papers.SIREN_T2.items()}


def prepare(dataset: str, workdir: Path) -> Path:
    """The data directory (shared with the other bench scripts), with Semantic IDs."""
    if dataset.startswith("synthetic-"):
        from bench.synthetic_v2 import prepare as prepare_synthetic

        data = ROOT / "runs" / "synthetic-v2" / dataset.split("-", 1)[1] / "data"
        prepare_synthetic(dataset.split("-", 1)[1], data)
    else:
        from bench.side_features import prepare as prepare_movielens

        data = prepare_movielens(dataset, ROOT / "runs" / "side-features" / dataset, regenerate=False)["schema"]
    if not (data / SEMANTIC_IDS).exists():
        semantic_ids.run(stage_args(semantic_ids, ["--data", data, "--seed", 0, "--quiet"]))
    return data


def mean_std(values) -> str:
    return f"{np.mean(values):.4f} ± {np.std(values):.4f}" if len(values) > 1 else f"{values[0]:.4f}"


def main(argv=None) -> int:
    from tfrec.models import MODELS

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="synthetic-medium", choices=["synthetic-small", "synthetic-medium",
                                                                      "synthetic-long", "ml-100k", "ml-1m"])
    p.add_argument("--rows", nargs="+", default=[r for r in ROWS if r not in DIAGNOSTICS], choices=list(ROWS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--workdir", default="runs/siren")
    p.add_argument("--out", default="", help="results name under bench/results/ (default siren-DATASET[-N...])")
    p.add_argument("--history-length", type=int, default=0,
                   help="the two-stage models' window N (0 = their config's 1,024; -1 = the data's longest history)")
    args = p.parse_args(argv)

    data = prepare(args.dataset, ROOT)
    work = Path(args.workdir) / args.dataset
    cells = CellCache(work / "cells.json")
    window = args.history_length
    if window < 0:
        window = json.loads((data / "raw" / "dataset.json").read_text())["max_history_length"]
    suffix = f"/N{window}" if window else ""
    for seed in args.seeds:  # seed-major: every row gets seed 0 before any gets seed 1
        for label in args.rows:
            name, stem, overrides = ROWS[label]
            key = f"{label}/{seed}/{args.epochs}{suffix}"
            if key in cells or name not in MODELS:
                continue
            config = {**load_yaml_config(CONFIG_DIR / f"{stem}.yaml"), **overrides}
            if window and "history_length" in config:
                config["history_length"] = window
            result = train_and_evaluate(name, data, work / "runs" / key.replace("/", "-"), config, args.epochs,
                                        args.batch_size, seed)
            cells.put(key, {"label": label, **result})
            print(f"{key}: auc {result['auc']:.4f} gauc {result['gauc']:.4f} ({result['train_seconds']:.0f}s)",
                  flush=True)

    def row(label, paper):
        got = [c for key, c in sorted(cells.items())
               if key.startswith(f"{label}/") and key.split("/", 2)[2] == f"{args.epochs}{suffix}"]
        if not got:
            return None
        return (f"| {label} ({len(got)} seed{'s' if len(got) > 1 else ''}) | {mean_std([c['auc'] for c in got])} | "
                f"{mean_std([c['gauc'] for c in got])} | {mean_std([c['logloss'] for c in got])} | "
                f"{got[0].get('state_bytes', '')} | {np.mean([c['train_seconds'] for c in got]) / args.epochs:.0f} | "
                f"{paper} |"), got

    header = ["| row | AUC | GAUC | logloss | state bytes/user | train s/epoch | paper GAUC (Taobao-MM) |",
              "|---|---|---|---|---|---|---|"]
    lines = [f"# SIREN's tables on `{args.dataset}`", "",
             f"`.venv/bin/python bench/siren_tables.py --dataset {args.dataset} --epochs {args.epochs} "
             f"{'--out ' + args.out + ' ' if args.out else ''}[--rows ...] "
             f"[--seeds ...]{' --history-length ' + str(args.history_length) if args.history_length else ''}` (cells "
             f"cached across runs); {args.epochs} epochs, batch {args.batch_size}, test split; "
             f"mean ± std over the seeds shown. GSU depth K = 50 over the {window or 1024:,} most recent behaviors; "
             "state bytes/user = the cached user state. Train s/epoch is indicative only (other jobs may have "
             "shared the 2 cores). The paper's numbers are on another data set: compare orderings, not values.",
             "", "## Table 1: overall", ""] + header
    rows_json = {}
    for label, paper in TABLE1.items():
        got = row(label, paper)
        if got:
            lines.append(got[0])
            rows_json[label] = got[1]
    for label in TABLE1_OTHERS:
        got = row(label, "—")
        if got:
            lines.append(got[0])
            rows_json[label] = got[1]
    table2 = []
    for label, paper in TABLE2.items():
        got = row(label, paper)
        if got:
            table2.append(got[0].replace("siren-sim-gsu", "SIREN (+SimBucket +SemID +TI)"))
            rows_json[label] = got[1]
    if table2:
        lines += ["", "## Table 2: ESU ablation (soft GSU)", ""] + header + table2
    diagnostics = [got for got in (row(label, "") for label in DIAGNOSTICS) if got]
    if diagnostics:
        lines += ["", "## Diagnostics (ours): MUSE without SimTier / without SA-TA", ""] + header
        for got in diagnostics:
            lines.append(got[0])
            rows_json[got[1][0]["label"]] = got[1]
    out = ROOT / "bench" / "results" / f"{args.out or 'siren-' + args.dataset + suffix.replace('/', '-')}.md"
    out.write_text("\n".join(lines) + "\n")
    out.with_suffix(".json").write_text(json.dumps(rows_json, indent=2, default=str))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
