"""CHIME's tables on our data: Table 2 (rankers without / with LEARN / with CHIME), Table 3 (ablations),
Table 5 (codebook hit ratio and perplexity), the Q1 study (random vs pretrained backbone: held-out
holistic loss over training, PNG) and the compression stage's cost.

  .venv/bin/python bench/chime_tables.py --dataset synthetic-medium --seeds 0 1 2
  .venv/bin/python bench/chime_tables.py --dataset synthetic-medium --q1            # the Q1 study only
  .venv/bin/python bench/chime_tables.py --dataset ml-100k --rankers din --seeds 0

Protocol (CHIME sec. 5.1): each compressor trains on every user's behaviors before t1 = the first
training example's request time (`tfrec chime-compress` default), so it never sees a ranking
example's present or future; the rankers train on the training split (all after t1) and are tested
on the test split, reading the vector of the last time slice before each request (one slice, t1).
Compressors run once (seed 0) per data set; rankers over the seeds. Every step is cached under
WORKDIR/<dataset>/: compressions in compress/<config>/, ranker cells in cells.json (an interrupted run
resumes, a finished cell is never recomputed). Writes bench/results/chime-<dataset>.md (+ .json) and,
with --q1, chime-q1-<dataset>.md / .png.
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
from bench.siren_tables import prepare  # noqa: E402
from pipelines.common import load_yaml_config  # noqa: E402
from tfrec.benchmark import papers  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = ROOT / "pipelines" / "configs"
COMPRESSORS = ("chime", "learn", "chime-no-il", "chime-no-icm", "chime-no-iam")
DIAGNOSTIC_COMPRESSORS = ("chime-rope",)  # ours, not in the paper: run with --compressors ... chime-rope
# ranker -> (model, YAML stem): CHIME's Table 2 rankers (DIN, SimSoft, ETA, SDIM, TWIN) + SIREN and MUSE (ours)
RANKERS = {"din": ("din", "din"), "simsoft": ("sim", "sim-soft"), "eta": ("eta", "eta"), "sdim": ("sdim", "sdim"),
           "twin": ("twin", "twin"), "siren": ("siren", "siren"), "muse": ("muse", "muse")}
LABELS = {"din": "DIN", "simsoft": "SimSoft", "eta": "ETA", "sdim": "SDIM", "twin": "TWIN", "siren": "SIREN",
          "muse": "MUSE"}
# CHIME's own numbers (MicroVideo: AUC, GAUC, LogLoss in %; tfrec.benchmark.papers), keyed (ranker, plug-in)
_RANKER = {"din": "din", "simsoft": "sim-soft", "eta": "eta", "sdim": "sdim", "twin": "twin"}
PAPER_T2 = {(r, p): papers.CHIME_T2[(p if p else "din") if r == "din" else (f"{label}+{p}" if p else label)]
            for r, label in _RANKER.items() for p in (None, "learn", "chime")}
PAPER_T3 = papers.CHIME_T3
PAPER_T5 = papers.CHIME_T5
# Q1: (label, overrides) -- MiniLM's width for all, so only the initialisation differs.
Q1 = {f"{init}-L{layers}": {"backbone": init, "layers": layers, "model_dim": 384, "heads": 12, "ffn_dim": 1536}
      for layers in (1, 6) for init in ("random", "minilm")}


def mean_std(values) -> str:
    return f"{np.mean(values):.4f} ± {np.std(values):.4f}" if len(values) > 1 else f"{values[0]:.4f}"


def compress_once(data: Path, work: Path, stem: str, overrides=None, epochs=None, t1=None) -> Path:
    """Runs (or reuses) one compression; returns its output directory."""
    from pipelines import chime_compress
    from tfrec import api

    out = work / "compress" / stem
    if (out / "compressor.json").exists():
        return out
    sets = [f"{k}={json.dumps(v)}" for k, v in (overrides or {}).items()]
    if epochs:
        sets.append(f"epochs={epochs}")
    yaml_path = CONFIG_DIR / "compression" / f"{stem.split('@')[0]}.yaml"
    config = chime_compress.load_config(yaml_path if yaml_path.exists() else CONFIG_DIR / "compression" / "chime.yaml",
                                        sets)
    from tfrec.compression.stage import compress

    summary = compress(api.open_data(data), config, out, t1=t1, verbose=2)
    print(f"compressed {stem}: {summary['train_seconds']} s train, {summary['infer_ms_per_user_slice']} ms/user",
          flush=True)
    return out


def run_q1(data: Path, work: Path, dataset: str, epochs: int, max_length: int, t1=None, table4=False,
           seeds=(0,), ranker_epochs=2) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = {}
    for label, overrides in Q1.items():
        out = compress_once(data, work, f"q1@{label}", {**overrides, "max_length": max_length}, epochs=epochs, t1=t1)
        info = json.loads((out / "compressor.json").read_text())
        curves[label] = ([info["history"]["initial"].get("holistic", np.nan)] + info["history"]["val_holistic"],
                         [info["history"]["initial"].get("loss", np.nan)] + info["history"]["val_loss"],
                         info["train_seconds"])
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, (holistic, _, _) in curves.items():
        ax.plot(range(len(holistic)), holistic, marker="o", linestyle="-" if "minilm" in label else "--", label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel("held-out holistic loss")
    ax.set_title(f"CHIME Q1 on {dataset}: random vs MiniLM init")
    ax.legend()
    fig.tight_layout()
    png = ROOT / "bench" / "results" / f"chime-q1-{dataset}.png"
    fig.savefig(png, dpi=120)
    lines = [f"# CHIME Q1 on `{dataset}`: random vs pretrained (all-MiniLM-L6-v2) initialisation", "",
             f"`.venv/bin/python bench/chime_tables.py --dataset {dataset} --q1 --q1-epochs {epochs} "
             f"--q1-max-length {max_length}{' --table4' if table4 else ''}`: width 384, 12 heads, FFN 1536 for every row (MiniLM's), T = "
             f"{max_length}; new weights at lr 1e-3, pretrained ones at 1e-5; held-out users' holistic loss "
             "before training (epoch 0) and after each epoch. Plot: " + f"`{png.name}`.", "",
             "| backbone | " + " | ".join(f"epoch {i}" for i in range(epochs + 1)) + " | train s |",
             "|---|" + "---|" * (epochs + 2)]
    for label, (holistic, _, seconds) in curves.items():
        lines.append(f"| {label} | " + " | ".join(f"{x:.4f}" for x in holistic) + f" | {seconds:.0f} |")
    if table4:
        cells = CellCache(work / "cells.json")
        lines += ["", "## Table 4: DIN w/ each Q1 compressor's vector", "",
                  "| backbone | AUC | GAUC | logloss |", "|---|---|---|---|"]
        for label in Q1:
            vectors = work / "compress" / f"q1@{label}" / "user_vectors.npz"
            rows = []
            for seed in seeds:
                key = f"din/q1@{label}/{seed}/{ranker_epochs}"
                if key not in cells:
                    config = load_yaml_config(CONFIG_DIR / "din.yaml")
                    cells.put(key, {"ranker": "din", "plugin": f"q1@{label}", **train_and_evaluate(
                        "din", data, work / "runs" / key.replace("/", "-"), config, ranker_epochs, 256, seed,
                        user_vectors=vectors, min_request_timestamp=t1)})
                rows.append(cells[key])
            lines.append(f"| {label} ({len(rows)} seeds) | {mean_std([c['auc'] for c in rows])} | "
                         f"{mean_std([c['gauc'] for c in rows])} | {mean_std([c['logloss'] for c in rows])} |")
    (png.with_suffix(".md")).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="synthetic-medium",
                   choices=["synthetic-small", "synthetic-medium", "synthetic-long", "ml-100k", "ml-1m"])
    p.add_argument("--rankers", nargs="+", default=["din", "siren"], choices=list(RANKERS))
    p.add_argument("--compressors", nargs="+", default=list(COMPRESSORS),
                   choices=list(COMPRESSORS) + list(DIAGNOSTIC_COMPRESSORS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--workdir", default="runs/chime")
    p.add_argument("--t1-quantile", type=float, default=None,
                   help="t1 = this quantile of the training requests; the rankers then train on [t1, t2) only "
                        "(for data whose behaviors do not start before the training examples, e.g. MovieLens)")
    p.add_argument("--q1", action="store_true", help="run the Q1 study (random vs MiniLM backbone) only")
    p.add_argument("--q1-epochs", type=int, default=3)
    p.add_argument("--table4", action="store_true",
                   help="with --q1: also DIN w/ each Q1 compressor's vector over --seeds (CHIME Table 4)")
    p.add_argument("--q1-max-length", type=int, default=128)
    args = p.parse_args(argv)

    data = prepare(args.dataset, ROOT)
    work = Path(args.workdir) / (args.dataset + (f"-t1q{args.t1_quantile:g}" if args.t1_quantile is not None else ""))
    t1 = None
    if args.t1_quantile is not None:
        from tfrec import api
        from tfrec.compression.stage import train_request_times

        t1 = int(np.quantile(train_request_times(api.open_data(data)), args.t1_quantile))
    if args.q1:
        run_q1(data, work, work.name, args.q1_epochs, args.q1_max_length, t1, args.table4, args.seeds, args.epochs)
        return 0
    vectors = {stem: compress_once(data, work, stem, t1=t1) / "user_vectors.npz" for stem in args.compressors}
    cells = CellCache(work / "cells.json")
    plans = [(r, None) for r in args.rankers] + [(r, c) for r in args.rankers for c in ("learn", "chime")
                                                  if c in vectors]
    plans += [("din", c) for c in args.compressors if c.startswith("chime-") and "din" in args.rankers]
    for seed in args.seeds:
        for ranker, plugin in plans:
            key = f"{ranker}/{plugin or 'none'}/{seed}/{args.epochs}"
            if key in cells:
                continue
            name, stem = RANKERS[ranker]
            config = load_yaml_config(CONFIG_DIR / f"{stem}.yaml")
            result = train_and_evaluate(name, data, work / "runs" / key.replace("/", "-"), config, args.epochs,
                                        args.batch_size, seed, user_vectors=vectors[plugin] if plugin else None,
                                        min_request_timestamp=t1)
            cells.put(key, {"ranker": ranker, "plugin": plugin, **result})
            print(f"{key}: auc {result['auc']:.4f} gauc {result['gauc']:.4f} ({result['train_seconds']:.0f}s)",
                  flush=True)
    write_tables(args, data, work, cells, vectors, t1)
    return 0


def write_tables(args, data, work, cells, vectors, t1=None) -> None:
    def got(ranker, plugin):
        return [c for key, c in sorted(cells.items())
                if key.startswith(f"{ranker}/{plugin or 'none'}/") and key.endswith(f"/{args.epochs}")]

    def cell_row(label, rows, paper):
        if not rows:
            return None
        p = " / ".join(f"{x:.2f}" for x in paper) if paper else ""
        return (f"| {label} ({len(rows)} seed{'s' if len(rows) > 1 else ''}) | {mean_std([c['auc'] for c in rows])} | "
                f"{mean_std([c['gauc'] for c in rows])} | {mean_std([c['logloss'] for c in rows])} | "
                f"{rows[0].get('state_bytes', '')} | {p} |")

    header = ["| row | AUC | GAUC | logloss | state bytes/user | paper AUC / GAUC / LogLoss (MicroVideo, %) |",
              "|---|---|---|---|---|---|"]
    lines = [f"# CHIME's tables on `{args.dataset}`", "",
             f"`.venv/bin/python bench/chime_tables.py --dataset {args.dataset} --epochs {args.epochs} "
             f"--rankers {' '.join(args.rankers)} [--seeds ...]` (cached); rankers {args.epochs} epochs, batch "
             f"{args.batch_size}, each with its shipped YAML; test split; mean ± std over the seeds shown. The " +
             ("compressors train once on the behaviors before t1 (the first training request). " if t1 is None else
              f"compressors train once on the behaviors before t1 = the {args.t1_quantile:g} quantile of the training "
              f"requests ({t1}); every ranker trains on the training examples from t1 on "
              f"(`--t1-quantile {args.t1_quantile:g}`). ") + "The paper's numbers "
             "are on MicroVideo: compare orderings, not values. `--compressors` / `--rankers` chosen: "
             f"{' '.join(args.compressors)} / {' '.join(args.rankers)}.", "", "## Table 2: rankers without / with LEARN / "
             "with CHIME", ""] + header
    out_json = {}
    for ranker in args.rankers:
        for plugin in (None, "learn", "chime"):
            rows = got(ranker, plugin)
            label = LABELS[ranker]
            line = cell_row(label + (f" w/ {plugin.upper()}" if plugin else ""), rows, PAPER_T2.get((ranker, plugin)))
            if line:
                lines.append(line)
                out_json[f"{ranker}/{plugin or 'none'}"] = rows
    lines += ["", "## Table 3: ablations (DIN w/ the compressor's vector)", ""] + header
    for stem in ("chime", "chime-no-il", "chime-no-icm", "chime-no-iam"):
        rows = got("din", stem)
        line = cell_row({"chime": "CHIME", "chime-no-il": "CHIME w/o IL", "chime-no-icm": "CHIME w/o ICM",
                         "chime-no-iam": "CHIME w/o IAM"}[stem], rows, PAPER_T3[stem])
        if line:
            lines.append(line)
            out_json[f"din/{stem}"] = rows
    diagnostics = [(stem, got("din", stem)) for stem in DIAGNOSTIC_COMPRESSORS if got("din", stem)]
    if diagnostics:
        lines += ["", "## Diagnostics (ours, not in the paper): DIN w/ other compressor variants", ""] + header
        for stem, rows in diagnostics:
            lines.append(cell_row(f"CHIME variant `{stem}`", rows, None))
            out_json[f"din/{stem}"] = rows
    lines += ["", "## Table 5: codebooks of CHIME's compressor (every position before t1, training users)", "",
              "| codebook | hit ratio | perplexity / size | paper hit ratio | paper perplexity / size |",
              "|---|---|---|---|---|"]
    info = json.loads((vectors["chime"].parent / "compressor.json").read_text()) if "chime" in vectors else None
    if info and info["codebooks"]:
        for level, paper in zip(info["codebooks"]["per_level"], PAPER_T5 + [("", "")] * 8):
            lines.append(f"| {level['level']} | {level['hit_ratio']:.2%} | {level['perplexity']:.2f} / "
                         f"{level['codebook_size']} | {paper[0]} | {paper[1]} |")
    lines += ["", "Codebook use of every compressor with an ICM (same measure):", "",
              "| compressor | " + " | ".join(f"codebook {m + 1} hit ratio, perplexity" for m in range(3)) + " |",
              "|---|---|---|---|"]
    for stem, path in vectors.items():
        c = json.loads((path.parent / "compressor.json").read_text())
        if c["codebooks"]:
            lines.append(f"| {stem} | " + " | ".join(f"{lv['hit_ratio']:.0%}, {lv['perplexity']:.1f} / "
                                                   f"{lv['codebook_size']}" for lv in c["codebooks"]["per_level"]) + " |")
    lines += ["", "## The compression stage's cost", "",
              "| compressor | users | behaviors before t1 | parameters | train s | s/epoch | inference ms/user | "
              "vector | held-out holistic (before → after) |", "|---|---|---|---|---|---|---|---|---|"]
    for stem, path in vectors.items():
        c = json.loads((path.parent / "compressor.json").read_text())
        epochs = c["config"]["epochs"]
        before, after = c["history"]["initial"].get("holistic", float("nan")), c["history"]["val_holistic"][-1]
        lines.append(f"| {stem} | {c['users']} | {c['behaviors_before_t1']:,} | {c['parameters']:,} | "
                     f"{c['train_seconds']:.0f} | {c['train_seconds'] / epochs:.0f} | {c['infer_ms_per_user_slice']:.2f} | "
                     f"{c['vector_dim']} floats | {before:.3f} → {after:.3f} |")
    out = ROOT / "bench" / "results" / f"chime-{work.name}.md"
    out.write_text("\n".join(lines) + "\n")
    out.with_suffix(".json").write_text(json.dumps(out_json, indent=2, default=str))
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
