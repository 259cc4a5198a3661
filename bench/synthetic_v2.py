"""DIN, DIN-Full, DMGIN, DMQN and DMQN-simple on the v2 synthetic data, next to the oracle and the shortcut ceilings.

  .venv/bin/python bench/synthetic_v2.py --size medium             # seeds 0 1 2, 2 epochs
  .venv/bin/python bench/synthetic_v2.py --size long --epochs 1
  .venv/bin/python bench/synthetic_v2.py --size medium --out search-baselines-medium \
      --models din dmgin sim sim-soft eta sdim twin     # issue 14's table (two-stage baselines)

The data is generated once (data seed 0) with `tfrec synthetic --report` (the oracle, the oracle
without each planted term, the shortcut ceilings: raw/synthetic_report.json), written with
`write-tfrecords` (the synthetic schema: item category + brand) and grouped with `cluster` at its
data-driven k. Each (model, seed) cell then trains with the shared pipeline and the model's YAML
config (`pipelines/configs/`; DIN-Full = DIN with `recent_length` = the whole history) and is
evaluated on the test split. Cells are cached in `WORKDIR/<size>/cells.json`, so an interrupted run
resumes. Writes bench/results/synthetic-v2-<size>.md (+ .json).
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
from pipelines import cluster, synthetic, write_tfrecords  # noqa: E402
from pipelines.common import GROUPS, RAW, SPEC, load_yaml_config, stage_args  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = ROOT / "pipelines" / "configs"
# label -> (config file stem under pipelines/configs/, overrides); the model is the stem before its first "-"
MODELS = {"din": ("din", {}), "din-full": ("din", {"recent_length": None}), "dmgin": ("dmgin", {}),
          "dmqn": ("dmqn", {}), "dmqn-simple": ("dmqn", {"use_icim": False}),
          "dmqn-restart": ("dmqn", {"dead_code_reset": True}),
          # the two-stage lifelong baselines (issue 14), each from its YAML (window N = 1,024, K = 50)
          "sim": ("sim", {}), "sim-soft": ("sim", {"gsu": "soft"}), "eta": ("eta", {}), "sdim": ("sdim", {}),
          "twin": ("twin", {}), "twinv2": ("twinv2", {}),
          # TWIN-V2 clusters the window in the user tower at every training step (3.7 s per batch of
          # 256 at N = 1,024 on 2 cores): the 256-behavior window keeps a cell within minutes
          "twinv2-n256": ("twinv2", {"history_length": 256}),
          # issue 15: the sequence baselines of DMGIN's Table 2 ...
          "din-middle": ("din-middle", {}), "dien": ("dien", {}), "dsin": ("dsin", {}), "dsin-full": ("dsin-full", {}),
          "dgin": ("dmgin-dgin", {}), "dmgin-paper": ("dmgin-paper", {}),
          # ... DMGIN before issue 15 (k = 16 most recent groups), its match prior off, ...
          "dmgin-k16": ("dmgin", {"top_k_groups": 16}), "dmgin-no-match": ("dmgin", {"match_prior": False}),
          # ... Table 3 (on DMGIN-simple) and Table 4 (HSTU depth; 2 = "dmgin")
          "dmgin-simple": ("dmgin", {"hstu_layers": 0}),
          "dmgin-simple-no-stats": ("dmgin", {"hstu_layers": 0, "statistics": False}),
          "dmgin-simple-no-evolution": ("dmgin", {"hstu_layers": 0, "evolution": False}),
          **{f"dmgin-hstu{n}": ("dmgin", {"hstu_layers": n}) for n in (1, 3, 4, 5, 6)},
          # issue 16: the grouping once per request in the input pipeline (the default since) vs in every
          # train step (the "dmgin" cells trained before issue 16 grouped in the step)
          "dmgin-input-grouping": ("dmgin", {"input_grouping": True}),
          "dmgin-in-graph": ("dmgin", {"input_grouping": False})}


def prepare(size: str, data: Path) -> dict:
    """Synthetic v2 data + report, TFRecords and groups, once; returns the report."""
    report_path = data / RAW / "synthetic_report.json"
    if not report_path.exists():
        synthetic.run(stage_args(synthetic, ["--size", size, "--version", "v2", "--seed", 0, "--out", data,
                                             "--report"]))
    if not (data / SPEC).exists():
        write_tfrecords.run(stage_args(write_tfrecords, ["--data", data, "--schema", data / RAW / "schema.yaml"]))
    if not (data / GROUPS).exists():
        cluster.run(stage_args(cluster, ["--data", data, "--seed", 0, "--no-plot", "--examples", "0"]))
    return json.loads(report_path.read_text())


def codebook_lines(runs: Path, labels, epochs: int) -> list:
    """DMQN cells' codebook health after each epoch (RUN/codebook_health.json, CodebookHealth)."""
    lines = []
    for label in labels:
        for path in sorted(runs.glob(f"{label}-*-{epochs}/codebook_health.json")):
            if path.parent.name.rsplit("-", 2)[0] != label:
                continue
            for rep in json.loads(path.read_text()):
                books = "; ".join(f"{b['hit_ratio']:.2f} / {b['perplexity']:.1f} / {b['dead']} / {b.get('train_dead', '')}"
                                  for b in rep["codebooks"])
                lines.append(f"| {path.parent.name} | {rep['epoch']} | {books} | {rep['restarted']} |")
    if not lines:
        return []
    return ["", "Codebook health (`RUN/codebook_health.json`: inference assignments of the first training "
                "batches after each epoch; per codebook hit ratio / perplexity / dead codewords as served / "
                "codewords that won no training behavior of the epoch at argmax; codewords restarted "
                "before the next epoch):", "",
            "| run | epoch | codebooks | restarted |", "|---|---|---|---|"] + lines


def mean_std(values) -> str:
    return f"{np.mean(values):.4f} ± {np.std(values):.4f}" if len(values) > 1 else f"{values[0]:.4f}"


def main(argv=None) -> int:
    from tfrec.data.synthetic.report import SHORTCUTS

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", default="medium", choices=["small", "medium", "long"])
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--workdir", default="runs/synthetic-v2")
    p.add_argument("--out", default="", help="results name under bench/results/ (default synthetic-v2-SIZE); "
                   "the table lists every model of --models with a cached cell")
    args = p.parse_args(argv)

    work = Path(args.workdir) / args.size
    data = work / "data"
    rep = prepare(args.size, data)
    max_len = json.loads((data / RAW / "dataset.json").read_text())["max_history_length"]
    groups_k = int(np.load(data / GROUPS)["centroids"].shape[0])
    cells = CellCache(work / "cells.json")
    for label in args.models:
        stem, extra = MODELS[label]
        name = stem.split("-")[0]
        for seed in args.seeds:
            key = f"{label}/{seed}/{args.epochs}"
            if key in cells:
                continue
            config = load_yaml_config(CONFIG_DIR / f"{stem}.yaml")
            config.update({k: (max_len if v is None else v) for k, v in extra.items()})
            result = train_and_evaluate(name, data, work / "runs" / key.replace("/", "-"), config, args.epochs,
                                        args.batch_size, seed)
            cells.put(key, {"label": label, **result})
            print(f"{key}: auc {result['auc']:.4f} gauc {result['gauc']:.4f} ({result['train_seconds']:.0f}s)",
                  flush=True)

    oracle = rep["oracle"]
    lines = [f"# Synthetic v2 `{args.size}`: models next to the oracle and the shortcut ceilings", "",
             f"`.venv/bin/python bench/synthetic_v2.py --size {args.size} --epochs {args.epochs} "
             f"{'--out ' + args.out + ' ' if args.out else ''}[--models M ...] "
             f"[--seeds S ...]` (cells cached across runs); data seed 0, test split "
             f"({rep['n_examples']} examples, CTR {rep['ctr']:.3f}); {args.epochs} epochs, batch {args.batch_size}, "
             f"model seeds 0, 1, 2 where run (mean ± std over the seeds shown); schema = item category + brand; K-means k = {groups_k} "
             f"(silhouette sweep). Ceilings = the planted truth restricted to what a model family reads "
             f"(`tfrec synthetic --report`, tfrec/data/synthetic/report.py).", "",
             "Train s/epoch is indicative only: some cells trained while other jobs shared the 2 cores.", "",
             "| row | AUC | GAUC | logloss | train s/epoch | train examples/s | state bytes/user |",
             "|---|---|---|---|---|---|---|",
             f"| oracle (true p) | {oracle['auc']:.4f} | {oracle['gauc']:.4f} | | | | |"]
    for s, m in rep["ceilings"].items():
        lines.append(f"| ceiling: {SHORTCUTS[s]} | {m['auc']:.4f} | {m['gauc']:.4f} | | | | |")
    n_train = json.loads((data / "splits.json").read_text())["train"]["examples"]
    rows = []
    for label in (args.models if args.out else MODELS):  # every cached cell of this epoch budget
        got = [c for key, c in sorted(cells.items()) if key.startswith(f"{label}/") and key.endswith(f"/{args.epochs}")]
        if not got:
            continue
        rows.append({"model": label, "cells": got})
        lines.append(f"| **{label}** ({len(got)} seed{'s' if len(got) > 1 else ''}) | "
                     f"{mean_std([c['auc'] for c in got])} | {mean_std([c['gauc'] for c in got])} | "
                     f"{mean_std([c['logloss'] for c in got])} | "
                     f"{np.mean([c['train_seconds'] for c in got]) / args.epochs:.0f} | "
                     f"{n_train * args.epochs / np.mean([c['train_seconds'] for c in got]):.0f} | "
                     f"{got[0].get('state_bytes', '')} |")
    lines += codebook_lines(work / "runs", [r["model"] for r in rows], args.epochs)
    lines += ["", "Oracle ablation (the oracle's AUC without each planted term):", "",
              "| term | AUC | drop |", "|---|---|---|"]
    lines += [f"| {t} | {m['auc']:.4f} | {m['drop']:+.4f} |" for t, m in rep["ablation"].items()]
    out = ROOT / "bench" / "results" / f"{args.out or 'synthetic-v2-' + args.size}.md"
    out.write_text("\n".join(lines) + "\n")
    out.with_suffix(".json").write_text(json.dumps({"report": rep, "models": rows}, indent=2, default=str))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
