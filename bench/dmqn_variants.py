"""DMQN variants next to DIN and DMGIN on synthetic v2 (one seed): which of our switches matter.

  .venv/bin/python bench/dmqn_variants.py --size small              # every variant, seed 0, 2 epochs
  .venv/bin/python bench/dmqn_variants.py --size small --variants dmqn dmqn-softmax

Variants are the shipped YAML configs plus one DMQNConfig switch each: the Gumbel noise
(`estimator: softmax`), the behavior age in the tokens (`behavior_age`), the codeword size in the
pooled codeword (`codeword_count`). Cells are cached in `WORKDIR/<size>/variants.json`.
Writes bench/results/dmqn-variants-<size>.md.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import tfrec  # noqa: E402,F401  (tf-keras before TensorFlow)
from bench.cells import CellCache, train_and_evaluate  # noqa: E402
from bench.synthetic_v2 import prepare  # noqa: E402
from pipelines.common import load_yaml_config  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "pipelines" / "configs"
SWITCHES = {"dmqn": {}, "dmqn-softmax": {"estimator": "softmax"}, "dmqn+age": {"behavior_age": True},
            "dmqn+count": {"codeword_count": True}, "dmqn+age+count": {"behavior_age": True, "codeword_count": True}}


def variant(label):
    if label in ("din", "dmgin"):
        return label, load_yaml_config(CONFIGS / f"{label}.yaml")
    return "dmqn", {**load_yaml_config(CONFIGS / "dmqn.yaml"), **SWITCHES[label]}


def main(argv=None) -> int:
    labels = ["din", "dmgin", *SWITCHES]
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", default="small", choices=["small", "medium", "long"])
    p.add_argument("--variants", nargs="+", default=labels, choices=labels)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--workdir", default="runs/synthetic-v2")
    args = p.parse_args(argv)
    work = Path(args.workdir) / args.size
    rep = prepare(args.size, work / "data")
    cells = CellCache(work / "variants.json")
    for label in args.variants:
        key = f"{label}/{args.seed}/{args.epochs}"
        if key not in cells:
            name, config = variant(label)
            cells.put(key, train_and_evaluate(name, work / "data", work / "variant-runs" / label, config, args.epochs,
                                              256, args.seed))
    lines = [f"# DMQN variants on synthetic v2 `{args.size}` (seed {args.seed}, {args.epochs} epochs)", "",
             f"`.venv/bin/python bench/dmqn_variants.py --size {args.size}`; one seed, so differences under "
             "~0.01 AUC are noise; train seconds are indicative (other jobs shared the 2 cores).", "",
             "Restarted = dead codewords restarted between epochs (RUN/codebook_health.json).", "",
             "| variant | AUC | GAUC | logloss | train s | restarted |", "|---|---|---|---|---|---|",
             f"| oracle (true p) | {rep['oracle']['auc']:.4f} | {rep['oracle']['gauc']:.4f} | | | |"]
    for label in labels:
        c = cells.cells.get(f"{label}/{args.seed}/{args.epochs}")
        if c:
            health = work / "variant-runs" / label / "codebook_health.json"
            restarted = sum(r["restarted"] for r in json.loads(health.read_text())) if health.exists() else ""
            lines.append(f"| {label} | {c['auc']:.4f} | {c['gauc']:.4f} | {c['logloss']:.4f} | "
                         f"{c['train_seconds']:.0f} | {restarted} |")
    out = ROOT / "bench" / "results" / f"dmqn-variants-{args.size}.md"
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
