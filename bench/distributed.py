"""Distributed training on this box (issue 17): scaling, AUC parity, memory per worker, kill/resume.

Every cell is a real ``tfrec train`` (one process) or ``tfrec launch`` (a loopback cluster) run in its
own processes; figures come from the run's model.json (``throughput``), the tasks' logs ("histories:
... MB in memory", "peak RSS") and ``tfrec evaluate``.

    python bench/distributed.py scaling --data DATA4      # examples/s: 1 process, 2 workers, 1 PS + 2 workers
    python bench/distributed.py parity --data DATA4       # test AUC, 1 process vs 2 workers, 3 seeds
    python bench/distributed.py memory --data LONG4 --unsharded LONG   # histories + RSS per worker
    python bench/distributed.py resume --data DATA4       # kill worker 1 mid-training, restart, compare
    python bench/distributed.py models --data DATA4       # every model x mirrored / multi-worker / PS, a few steps

``DATA4`` is a data directory written with ``tfrec write-tfrecords --num-shards 4`` (user shards);
``--unsharded`` the same data in single files. Cells are cached in ``--out``/cells.json (``--fresh``
recomputes); a report goes to ``--report`` (Markdown) and the JSON next to it.

The box has 2 cores. "2 workers, pinned" puts each worker on its own core (``tfrec launch
--pin-cpus``) and compares it with one process pinned to one core (``taskset -c 0``): the scaling a
cluster with one such core per worker would see. Unpinned, the 2 workers share the 2 cores the one
process had alone: that measures the strategy's overhead, not a speedup.
"""
import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
MODELS = {"din": [], "dmgin": ["--set", "hstu_layers=1"]}


def tfrec(args, pin=None, timeout=1800, on_start=None):
    cmd = ([*(["taskset", "-c", str(pin)] if pin is not None else [])] + [PY, "-m", "tfrec.cli", *map(str, args)])
    t0 = time.time()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    if on_start is not None:
        on_start(proc)
    out, _ = proc.communicate(timeout=timeout)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{out[-3000:]}")
    return out, time.time() - t0


def parse_tasks(run: Path, single_output: str = None) -> dict:
    """Per task: histories MB held and peak RSS MB (from the launch logs, or the one process's output)."""
    texts = {"process": single_output} if single_output is not None else {
        p.stem: p.read_text() for p in sorted((run / "launch").glob("*.log"))}
    out = {}
    for name, text in texts.items():
        text = text.split("=== ")[-1] if "=== " in text else text  # the last (re)start
        hist = re.findall(r"histories: ([\d,]+) users, ([\d,]+) behaviors, ([\d.]+) MB in memory", text)
        rss = re.findall(r"peak RSS ([\d,]+) MB", text)
        out[name] = {"history_users": int(hist[-1][0].replace(",", "")) if hist else None,
                     "history_mb": float(hist[-1][2]) if hist else None,
                     "peak_rss_mb": int(rss[-1].replace(",", "")) if rss else None}
    return out


def evaluate(run: Path, data) -> float:
    tfrec(["evaluate", "--run", run, "--data", data])
    return json.loads((run / "eval-test.json").read_text())["auc"]


def train_cell(kind, model, data, run: Path, train_args, seed=0, evaluate_auc=False):
    args = ["train", "--model", model, "--data", data, "--out", run, "--seed", seed, "--verbose", "2",
            *MODELS[model], *train_args]
    pin = None
    if kind == "1 process":
        out, wall = tfrec(args)
    elif kind == "1 process, 1 core":
        out, wall = tfrec(args, pin=0)
    elif kind == "2 workers, pinned":
        out, wall = tfrec(["launch", "--workers", 2, "--pin-cpus", "--", *args])
    elif kind == "2 workers":
        out, wall = tfrec(["launch", "--workers", 2, "--", *args])
    elif kind == "1 PS + 2 workers":
        out, wall = tfrec(["launch", "--workers", 2, "--ps", 1, "--", *args])
    else:
        raise ValueError(kind)
    del pin
    info = json.loads((run / "model.json").read_text())
    cell = {"kind": kind, "model": model, "seed": seed, "wall_seconds": round(wall, 1), **info["throughput"],
            "final_train_auc": info["history"].get("auc", [None])[-1],
            "tasks": parse_tasks(run, out if kind.startswith("1 process") else None)}
    if evaluate_auc:
        cell["test_auc"] = evaluate(run, data)
    return cell


class Cells:
    def __init__(self, path: Path, fresh: bool):
        self.path = path
        self.cells = {} if fresh or not path.exists() else json.loads(path.read_text())

    def get(self, key, compute):
        if key not in self.cells:
            print(f"-- {key}", flush=True)
            self.cells[key] = compute()
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(json.dumps(self.cells, indent=1))
        return self.cells[key]


def scaling(args, cells):
    """Every setup once per round, rounds in turn (``--repeat``): medians, and per round the ratios of
    cells run minutes apart (the box's speed drifts)."""
    import numpy as np

    rows = []
    kinds = ["1 process", "1 process, 1 core", "2 workers, pinned", "2 workers", "1 PS + 2 workers"]
    train_args = ["--epochs", args.epochs, "--steps-per-epoch", args.steps, "--batch-size", args.batch_size]
    for r in range(args.repeat):
        for model in args.models:
            for kind in kinds:
                run = Path(args.out) / "scaling" / model / kind.replace(" ", "_").replace(",", "")
                key = f"scaling|{model}|{kind}|{args.steps}x{args.epochs}|{args.batch_size}" + (f"|r{r}" if r else "")
                rows.append({**cells.get(key, lambda: train_cell(kind, model, args.data, run, train_args)), "round": r})

    def rate(row):
        return row.get("examples_per_second_after_first_epoch") or row["examples_per_second"]

    lines = [f"### Examples/s ({args.epochs} epochs x {args.steps} steps, global batch {args.batch_size}; "
             f"examples/s after the first epoch, which traces; median of {args.repeat} round(s), each round "
             "runs every setup in turn)", "",
             "| model | setup | examples/s (median) | per round | vs 1 process | vs 1 process, 1 core | "
             "peak RSS per task (MB) |", "|---|---|---:|---|---:|---:|---|"]
    for model in args.models:
        med = {k: float(np.median([rate(x) for x in rows if x["model"] == model and x["kind"] == k])) for k in kinds}
        for kind in kinds:
            last = [x for x in rows if x["model"] == model and x["kind"] == kind][-1]
            per = ", ".join(f"{rate(x):,.0f}" for x in rows if x["model"] == model and x["kind"] == kind)
            rss = ", ".join(f"{k} {v['peak_rss_mb']}" for k, v in last["tasks"].items() if v["peak_rss_mb"])
            lines.append(f"| {model} | {kind} | {med[kind]:,.0f} | {per} | {med[kind] / med[kinds[0]]:.2f}x | "
                         f"{med[kind] / med[kinds[1]]:.2f}x | {rss} |")
    lines += ["", "Per round, the same round's cells: s_2 = (2 workers, pinned) / (2 x 1 process, 1 core); "
              "PS = (1 PS + 2 workers) / (1 process).", ""]
    for model in args.models:
        per_round = []
        for r in range(args.repeat):
            by = {x["kind"]: rate(x) for x in rows if x["model"] == model and x["round"] == r}
            per_round.append(f"round {r}: s_2 {by[kinds[2]] / (2 * by[kinds[1]]):.2f}, PS {by[kinds[4]] / by[kinds[0]]:.2f}x")
        lines.append(f"- {model}: " + "; ".join(per_round))
    return rows, lines


def parity(args, cells):
    rows = []
    train_args = ["--epochs", args.epochs, "--batch-size", args.batch_size]
    for model in args.models:
        for kind in ("1 process", "2 workers"):
            for seed in args.seeds:
                run = Path(args.out) / "parity" / model / kind.replace(" ", "_") / f"seed{seed}"
                rows.append(cells.get(f"parity|{model}|{kind}|{seed}|{args.epochs}|{args.batch_size}",
                                      lambda: train_cell(kind, model, args.data, run, train_args, seed, True)))
    import numpy as np

    lines = [f"### Test AUC, 1 process vs 2 workers (multi-worker, same global batch {args.batch_size}, "
             f"{args.epochs} epochs, seeds {args.seeds})", "",
             "| model | setup | test AUC per seed | mean +- std |", "|---|---|---|---|"]
    for model in args.models:
        for kind in ("1 process", "2 workers"):
            aucs = [r["test_auc"] for r in rows if r["model"] == model and r["kind"] == kind]
            lines.append(f"| {model} | {kind} | {', '.join(f'{a:.4f}' for a in aucs)} | "
                         f"{np.mean(aucs):.4f} +- {np.std(aucs, ddof=1) if len(aucs) > 1 else 0:.4f} |")
    return rows, lines


def memory(args, cells):
    rows = []
    train_args = ["--epochs", 1, "--steps-per-epoch", 5, "--batch-size", args.batch_size]
    setups = [("1 process", args.unsharded, "unsharded"), ("2 workers", args.unsharded, "unsharded"),
              ("2 workers", args.data, "user shards")]
    for kind, data, label in setups:
        run = Path(args.out) / "memory" / f"{kind}-{label}".replace(" ", "_")
        rows.append(cells.get(f"memory|{kind}|{label}|{data}",
                              lambda: {**train_cell(kind, "din", data, run, train_args), "data": label}))
    lines = ["### Memory per worker (DIN, a few steps; histories held = the reader's CSR arrays)", "",
             "| setup | data | task | users held | histories held (MB) | peak RSS (MB) |", "|---|---|---|---:|---:|---:|"]
    for r in rows:
        for task, t in r["tasks"].items():
            lines.append(f"| {r['kind']} | {r['data']} | {task} | {t['history_users']} | {t['history_mb']} | "
                         f"{t['peak_rss_mb']} |")
    return rows, lines


def resume(args, cells):
    train_args = ["--epochs", 3, "--steps-per-epoch", 30, "--batch-size", 64, "--backup-every", 5]
    base = Path(args.out) / "resume"

    def run_pair():
        clean = train_cell("2 workers", "din", args.data, base / "clean", train_args, evaluate_auc=True)
        run = base / "killed"
        killed = {}

        def killer(proc):
            deadline = time.time() + 300
            while time.time() < deadline and proc.poll() is None:
                if list((run / "backup").glob("chief/ckpt-*.index")) and (run / "launch" / "tasks.json").exists():
                    time.sleep(1.0)  # mid-epoch, after the first backups
                    pid = json.loads((run / "launch" / "tasks.json").read_text())["tasks"]["worker-1"]["pid"]
                    os.kill(pid, signal.SIGKILL)
                    killed["after_backup"] = sorted(p.name for p in (run / "backup" / "chief").glob("ckpt-*.index"))
                    return
                time.sleep(0.05)

        import threading

        t0 = time.time()
        out, _ = tfrec(["launch", "--workers", 2, "--max-restarts", 1, "--", "train", "--model", "din", "--data",
                        args.data, "--out", run, "--verbose", "2", *train_args],
                       on_start=lambda p: threading.Thread(target=killer, args=(p,), daemon=True).start())
        info = json.loads((run / "model.json").read_text())
        return {"clean": clean, "killed": {"wall_seconds": round(time.time() - t0, 1), **info["throughput"],
                                           "final_train_auc": info["history"]["auc"][-1],
                                           "test_auc": evaluate(run, args.data), "killed": killed,
                                           "launcher": [line for line in out.splitlines() if "[tfrec launch]" in line
                                                        or "resuming" in line]}}

    r = cells.get("resume", run_pair)
    c, k = r["clean"], r["killed"]
    lines = ["### Kill and resume (2 workers, DIN, 3 epochs x 30 steps, batch 64, backup every 5 steps)", "",
             f"- uninterrupted: {c['steps']} steps, test AUC {c['test_auc']:.4f}, final train AUC "
             f"{c['final_train_auc']:.4f}",
             f"- worker 1 killed (SIGKILL) after backups {k['killed'].get('after_backup')}; the restarted job ran "
             f"{k['steps']} steps (the rest of the 90), test AUC {k['test_auc']:.4f}, final train AUC "
             f"{k['final_train_auc']:.4f}; wall {k['wall_seconds']} s vs {c['wall_seconds']} s",
             *[f"  - `{line.strip()}`" for line in k["launcher"]]]
    return [r], lines


def models(args, cells):
    """Every model (its pipelines/configs/<model>.yaml) a few steps under every strategy: does it
    train with no model-specific code?"""
    from tfrec.models import MODELS

    strategies = {"mirrored (2 logical CPUs)": ["train", "--strategy", "mirrored", "--replicas", 2],
                  "multi-worker (2 workers)": ["launch", "--workers", 2, "--", "train"],
                  "parameter-server (1 PS + 2 workers)": ["launch", "--workers", 2, "--ps", 1, "--", "train"]}
    rows = []
    for model in sorted(MODELS):
        config = ROOT / "pipelines" / "configs" / f"{model}.yaml"
        for name, head in strategies.items():
            run = Path(args.out) / "models" / model / name.split()[0]

            def cell():
                cmd = [*head, "--model", model, "--data", args.data, "--out", run, "--epochs", 1,
                       "--steps-per-epoch", 3, "--batch-size", 64, "--verbose", 2,
                       *(["--config", config] if config.exists() else [])]
                try:
                    out, wall = tfrec(cmd, timeout=600)
                except RuntimeError as err:
                    lines = [x for x in str(err).splitlines() if "Error" in x or "error" in x]
                    return {"ok": False, "error": (lines[-1] if lines else str(err)[-300:])[:300]}
                steps = json.loads((run / "model.json").read_text())["throughput"]["steps"]
                return {"ok": True, "steps": steps, "wall_seconds": round(wall, 1)}

            rows.append({"model": model, "strategy": name, **cells.get(f"models|{model}|{name}", cell)})
    names = list(strategies)
    lines = ["### Every model under every strategy (its YAML config, 3 steps of global batch 64)", "",
             "| model | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for model in sorted(MODELS):
        cols = []
        for name in names:
            r = next(x for x in rows if x["model"] == model and x["strategy"] == name)
            cols.append(f"ok ({r['steps']} steps, {r['wall_seconds']} s)" if r["ok"] else f"FAILED: {r['error']}")
        lines.append(f"| {model} | " + " | ".join(cols) + " |")
    return rows, lines


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["scaling", "parity", "memory", "resume", "models"])
    ap.add_argument("--data", required=True, help="data written with --num-shards 4 (user shards)")
    ap.add_argument("--unsharded", help="memory: the same data in single files")
    ap.add_argument("--models", nargs="+", default=["din", "dmgin"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--steps", type=int, default=60, help="scaling: steps per epoch")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=1, help="scaling: rounds (each runs every setup once)")
    ap.add_argument("--out", default="runs/distributed")
    ap.add_argument("--report", default="bench/results/distributed.md")
    ap.add_argument("--fresh", action="store_true")
    args = ap.parse_args()
    cells = Cells(Path(args.out) / "cells.json", args.fresh)
    rows, lines = {"scaling": scaling, "parity": parity, "memory": memory, "resume": resume,
                   "models": models}[args.what](args, cells)
    command = "python bench/distributed.py " + " ".join(sys.argv[1:])
    title = f"{args.what}, batch {args.batch_size}" if args.what == "scaling" else args.what
    section = "\n".join([f"## {title}", "", f"`{command}`", "", *lines, ""])
    print(section)
    report = Path(args.report)
    sections = {}
    if report.exists():
        for block in report.read_text().split("\n## ")[1:]:
            sections[block.split("\n", 1)[0].strip()] = "## " + block.rstrip() + "\n"
    sections[title] = section
    head = "# Distributed training on this box (bench/distributed.py)\n\nThe box: 2 cores, shared VM (docs/performance.md).\n\n"
    report.write_text(head + "\n".join(sections.values()))
    data = json.loads(report.with_suffix(".json").read_text()) if report.with_suffix(".json").exists() else {}
    data[title] = {"command": command, "rows": rows}
    report.with_suffix(".json").write_text(json.dumps(data, indent=1))


if __name__ == "__main__":
    main()
