"""Training throughput vs history length L, through the real input pipeline (issue 16).

For each L (default 1,000, 5,000 and 10,000 raw behaviors per user) it writes, once, users with exactly
L behaviors each and requests after them (TFRecords, the user-history join of ``make_dataset``), then
trains every variant for ``--steps`` steps (after ``--warmup``) with ``model.fit`` on the shuffled,
repeated pipeline, each in its own process, and prints examples/s, the peak RSS of that process and
the ratios the issue asks for:

* ``DIN (50)``: DIN on the 50 most recent behaviors, reading only those (a spec of length 50);
* ``DIN-Full``: DIN attending over all L;
* ``DMGIN k=<k> (in-graph)``: grouping in the train step, every step (``input_grouping: false``);
* ``DMGIN k=<k> (per batch)``: the same grouping mapped over the batches in tf.data (``prepare_training_data``);
* ``DMGIN k=<k> (once)``: grouped once per request (``RequestStates``, what ``tfrec train`` does; its
  one-off cost is printed apart), the step reads k x m tensors and the 20 most recent behaviors;
* ``DMQN``, ``DMQN-simple``: the quantizer is trainable, so its grouping runs in the step (every L);
* ``DMGIN k=<k> no evolution (once)``: the same without intra-group attention (DMGIN Table 3's
  "-Behavior Evolution", ``evolution: false``), the grouped step's largest block;
* ``TWIN (N=L)``, ``ETA (N=L)``, ``SIM soft (N=L)``: two-stage baselines whose GSU searches the whole
  history (``history_length`` = L; their YAMLs search the 1,024 most recent), for the GSU's cost against L.

    python bench/train_throughput.py                       # all variants, L = 1k, 5k, 10k
    python bench/train_throughput.py --lengths 10000 --variants "DIN (50)" "DMGIN k=16 (once)"

Cells are cached in ``--out``/cells.json (delete it, or pass ``--fresh``, after a code change). Run it
alone. On a shared VM the box's speed drifts by tens of percent over minutes (steal time): compare
variants with ``--repeat 3`` (round-robin rounds; tables give medians, ratios also per round).
"""
import argparse
import dataclasses
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

N_ITEMS, N_GROUPS, T0 = 20_000, 100, 1_600_000_000


def variants(k_values):
    out = {
        "DIN (50)": ("din", "din", {"recent_length": 50}, "50"),
        "DIN-Full": ("din", "din-full", {"recent_length": "L"}, "L"),
    }
    for k in k_values:
        base = {"top_k_groups": k}
        out[f"DMGIN k={k} (in-graph)"] = ("dmgin", "dmgin", {**base, "input_grouping": False}, "L")
        out[f"DMGIN k={k} (per batch)"] = ("dmgin", "dmgin", base, "L")
        out[f"DMGIN k={k} (once)"] = ("dmgin", "dmgin", base, "once")
        # DMGIN Table 3's "-Behavior Evolution": no intra-group attention (the step's largest block)
        out[f"DMGIN k={k} no evolution (once)"] = ("dmgin", "dmgin", {**base, "evolution": False}, "once")
    out.update({
        "DMQN": ("dmqn", "dmqn", {}, "L"),
        "DMQN-simple": ("dmqn", "dmqn-simple", {}, "L"),
        "TWIN (N=L)": ("twin", "twin", {"history_length": "L"}, "L"),
        "ETA (N=L)": ("eta", "eta", {"history_length": "L"}, "L"),
        "SIM soft (N=L)": ("sim", "sim-soft", {"history_length": "L"}, "L"),
    })
    return out


def write_data(root: Path, length: int, users: int, per_user: int):
    """``users`` histories of exactly ``length`` behaviors, ``per_user`` requests after each; once per L."""
    from tfrec.data.spec import FeatureSpec
    from tfrec.data.tfrecord import write_examples, write_user_histories

    spec = FeatureSpec(n_items=N_ITEMS, max_history_length=length)
    if (root / "done").exists():
        return spec
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(length)
    # items drawn from a few "interests" per user, so groups repeat as in real histories
    table = rng.integers(1, N_GROUPS + 1, N_ITEMS)
    order = np.argsort(table, kind="stable")  # items sorted by group
    starts = np.searchsorted(table[order], np.arange(N_GROUPS + 2))
    hists, examples = [], []
    for u in range(users):
        interests = rng.choice(np.arange(1, N_GROUPS + 1), 30, replace=False)
        groups = rng.choice(interests, length, p=rng.dirichlet(np.ones(30)))
        sizes = starts[groups + 1] - starts[groups]
        items = order[starts[groups] + (rng.random(length) * sizes).astype(np.int64)]  # uniform within the group
        ts = np.sort(rng.integers(T0, T0 + 86400 * 365 * 3, length))
        hists.append(dict(user_id=u, user_segment=int(rng.integers(0, spec.n_user_segments)), hist_item_id=items,
                          hist_behavior_type=rng.integers(0, 6, length), hist_timestamp=ts,
                          hist_duration=rng.gamma(2.0, 30.0, length), hist_amount=rng.gamma(2.0, 10.0, length)))
        for j in range(per_user):
            examples.append(dict(user_id=u, item_id=int(rng.integers(0, N_ITEMS)), request_timestamp=int(ts[-1]) + 60 * (j + 1),
                                 label=int(rng.random() < 0.3)))
    write_user_histories(root / "hist.tfrecord", spec, hists)
    write_examples(root / "train.tfrecord", spec, examples)
    np.save(root / "groups.npy", table)
    (root / "done").write_text("")
    return spec


def run_cell(root: Path, length: int, name: str, args) -> dict:
    """One variant in this process: returns examples/s, peak RSS and the one-off cost (``once``)."""
    import tfrec  # noqa: F401
    import tensorflow as tf
    import yaml

    from tfrec.data.dataset import load_user_histories, make_dataset
    from tfrec.data.request_states import RequestStates
    from tfrec.grouping import GroupTable
    from tfrec.training import build_model, compile_model

    model_type, stem, overrides, mode = variants(args.k)[name]
    spec = write_data(root, length, args.users, args.per_user)
    config = yaml.safe_load((Path(__file__).resolve().parents[1] / "pipelines/configs" / f"{stem}.yaml").read_text())
    config.update({k: (length if v == "L" else v) for k, v in overrides.items()})
    table = np.load(root / "groups.npy")
    groups = (GroupTable(table=table.astype(np.int32), centroids=np.zeros((N_GROUPS, 1), np.float32), n_groups=N_GROUPS + 1,
                         report={}) if model_type == "dmgin" else None)
    history = load_user_histories(root / "hist.tfrecord", spec)
    history_bytes = sum(v.nbytes for v in history.sequences.values())
    tf.keras.utils.set_random_seed(0)
    model = build_model(model_type, spec, config, groups=groups)
    compile_model(model, 1e-3)
    if args.optimizer == "legacy-adam":  # the fused ResourceApplyAdam: one op per dense variable
        model.compile(optimizer=tf.keras.optimizers.legacy.Adam(1e-3), loss=model.loss,
                      weighted_metrics=model.compiled_metrics._user_weighted_metrics)

    def reader(length_kept):
        return make_dataset(root / "train.tfrecord", dataclasses.replace(spec, max_history_length=length_kept),
                            history=history, batch_size=args.batch, shuffle=True, repeat=True, drop_remainder=True)

    once_seconds = None
    if mode == "once":
        fn, kept = model.request_stage()
        raw = make_dataset(root / "train.tfrecord", spec, history=history, batch_size=args.batch)
        states = RequestStates.compute(raw, fn)
        once_seconds = states.seconds
        ds = states.join_dataset(reader(max(kept, 1)))
    else:
        ds = model.prepare_training_data(reader(50 if mode == "50" else length))
    model.fit(ds, steps_per_epoch=args.warmup, epochs=1, verbose=0)
    t0 = time.perf_counter()
    model.fit(ds, steps_per_epoch=args.steps, epochs=1, verbose=0)
    seconds = time.perf_counter() - t0
    cell = {"examples_per_s": args.steps * args.batch / seconds, "ms_per_step": 1000 * seconds / args.steps,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "history_bytes_per_behavior": history_bytes / max(history.n_behaviors, 1),
            "n_requests": args.users * args.per_user}
    if once_seconds is not None:
        cell.update(once_seconds=once_seconds, once_us_per_request=1e6 * once_seconds / len(states),
                    state_bytes_per_request=states.nbytes / len(states))
    return cell


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lengths", type=int, nargs="+", default=[1_000, 5_000, 10_000])
    p.add_argument("--variants", nargs="+", default=None)
    p.add_argument("--k", type=int, nargs="+", default=[16, 64], help="DMGIN top_k_groups values")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--users", type=int, default=64)
    p.add_argument("--per-user", type=int, default=8)
    p.add_argument("--out", default="runs/throughput")
    p.add_argument("--fresh", action="store_true")
    p.add_argument("--repeat", type=int, default=1,
                   help="rounds over all cells (round-robin); the tables give each variant's median")
    p.add_argument("--optimizer", choices=["adam", "legacy-adam"], default="adam",
                   help="tfrec's Adam (tf.keras.optimizers.Adam: ~10 ops per variable) or the legacy fused one")
    p.add_argument("--cell", nargs=2, metavar=("L", "VARIANT"), help=argparse.SUPPRESS)
    args = p.parse_args()
    out = Path(args.out)
    if args.cell:
        length, name = int(args.cell[0]), args.cell[1]
        print("CELL " + json.dumps(run_cell(out / f"L{length}", length, name, args)), flush=True)
        return
    names = args.variants or list(variants(args.k))
    cache = out / "cells.json"
    cells = {} if args.fresh or not cache.exists() else json.loads(cache.read_text())
    passthrough = ["--k", *map(str, args.k), "--batch", str(args.batch), "--steps", str(args.steps), "--warmup",
                   str(args.warmup), "--optimizer", args.optimizer, "--users", str(args.users), "--per-user", str(args.per_user), "--out", str(out)]
    suffix = "" if args.optimizer == "adam" else f"|{args.optimizer}"
    runs = {}  # (name, length) -> [cells], one per round
    for rep in range(args.repeat):  # round-robin, so a slow spell of the box hits every variant alike
        for length in args.lengths:
            for name in names:
                key = f"{name}|{length}|{args.batch}{suffix}" + (f"|r{rep}" if rep else "")
                if key not in cells:
                    proc = subprocess.run([sys.executable, __file__, "--cell", str(length), name, *passthrough],
                                          capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
                    line = [x for x in proc.stdout.splitlines() if x.startswith("CELL ")]
                    if proc.returncode or not line:
                        print(proc.stdout[-2000:], proc.stderr[-4000:], file=sys.stderr)
                        raise SystemExit(f"cell {name} at L={length} failed")
                    cells[key] = json.loads(line[0][5:])
                    out.mkdir(parents=True, exist_ok=True)
                    cache.write_text(json.dumps(cells, indent=1))
                c = cells[key]
                runs.setdefault((name, length), []).append(c)
                extra = (f"  once: {c['once_seconds']:.1f} s ({c['once_us_per_request']:.0f} us/request, "
                         f"{c['state_bytes_per_request'] / 1024:.1f} KB/request)" if "once_seconds" in c else "")
                print(f"L={length:6d} {name:34s} {c['examples_per_s']:8.0f} ex/s {c['ms_per_step']:8.1f} ms/step "
                      f"{c['peak_rss_mb']:7.0f} MB peak{extra}" + (f"  (round {rep + 1})" if args.repeat > 1 else ""),
                      flush=True)

    def median(name, n, field="examples_per_s"):
        values = [c[field] for c in runs.get((name, n), [])]
        return float(np.median(values)) if values else None

    def best(name, n):
        values = [c["examples_per_s"] for c in runs.get((name, n), [])]
        return max(values) if values else None

    rounds = f", median of {args.repeat} rounds" if args.repeat > 1 else ", one run per cell"
    print(f"\ntraining examples/s through the input pipeline, batch {args.batch}, {args.steps} steps{rounds}")
    best_col = args.repeat > 1
    print("| variant | " + " | ".join(f"L={n:,}" for n in args.lengths) + " | peak RSS at L=" + f"{args.lengths[-1]:,} |"
          + (f" best round at L={args.lengths[-1]:,} |" if best_col else ""))
    print("|---|" + "---:|" * (len(args.lengths) + 1 + best_col))
    for name in names:
        row = [median(name, n) for n in args.lengths]
        rss = median(name, args.lengths[-1], "peak_rss_mb")
        top = best(name, args.lengths[-1])
        print(f"| {name} | " + " | ".join(f"{v:.0f}" if v else "-" for v in row) + (f" | {rss:.0f} MB |" if rss else " | - |")
              + (f" {top:.0f} |" if best_col and top else (" - |" if best_col else "")))
    for n in args.lengths:
        din50, full = median("DIN (50)", n), median("DIN-Full", n)
        for name in names:
            if not name.startswith("DMGIN") or not median(name, n):
                continue
            parts = []
            for ref, label in ((full, "DIN-Full"), (din50, "DIN (50)")):
                if not ref:
                    continue
                per_round = [a["examples_per_s"] / b["examples_per_s"]
                             for a, b in zip(runs[(name, n)], runs.get((label, n), []))]
                spread = f" (rounds: {', '.join(f'{r:.2f}' for r in per_round)})" if len(per_round) > 1 else ""
                parts.append(f"{median(name, n) / ref:.2f}x {label}{spread}")
            if args.repeat > 1 and din50:
                parts.append(f"best rounds: {best(name, n) / best('DIN (50)', n):.2f}x DIN (50)"
                             + (f", {best(name, n) / best('DIN-Full', n):.1f}x DIN-Full" if full else ""))
            if parts:
                print(f"L={n}: {name}: " + ", ".join(parts))


if __name__ == "__main__":
    main()
