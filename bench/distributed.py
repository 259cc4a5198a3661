"""Distributed training on this box (issue 17): scaling, AUC parity, memory per worker, kill/resume.

Every cell is a real ``tfrec train`` (one process) or ``tfrec launch`` (a loopback cluster) run in its
own processes; figures come from the run's model.json (``throughput``), the tasks' logs ("histories:
... MB in memory", "peak RSS") and ``tfrec evaluate``.

    python bench/distributed.py scaling --data DATA4      # examples/s: 1 process, 2 workers, 1 PS + 2 workers
    python bench/distributed.py parity --data DATA4       # test AUC, 1 process vs 2 workers, 3 seeds
    python bench/distributed.py memory --data LONG4 --unsharded LONG   # histories + RSS per worker
    python bench/distributed.py resume --data DATA4       # kill worker 1 mid-training, restart, compare

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
    rows = []
    kinds = ["1 process", "1 process, 1 core", "2 workers, pinned", "2 workers", "1 PS + 2 workers"]
    train_args = ["--epochs", args.epochs, "--steps-per-epoch", args.steps, "--batch-size", args.batch_size]
    for model in args.models:
        for kind in kinds:
            run = Path(args.out) / "scaling" / model / kind.replace(" ", "_").replace(",", "")
            rows.append(cells.get(f"scaling|{model}|{kind}|{args.steps}x{args.epochs}|{args.batch_size}",
                                  lambda: train_cell(kind, model, args.data, run, train_args)))
    lines = [f"### Examples/s ({args.epochs} epochs x {args.steps} steps, global batch {args.batch_size}; "
             "examples/s after the first epoch, which traces)", "",
             "| model | setup | examples/s | vs 1 process | vs 1 process, 1 core | peak RSS per task (MB) |",
             "|---|---|---:|---:|---:|---|"]
    for model in args.models:
        by = {r["kind"]: r for r in rows if r["model"] == model}
        base, core = (by[k].get("examples_per_second_after_first_epoch") for k in kinds[:2])
        for kind in kinds:
            r = by[kind]
            x = r.get("examples_per_second_after_first_epoch") or r["examples_per_second"]
            rss = ", ".join(f"{k} {v['peak_rss_mb']}" for k, v in r["tasks"].items() if v["peak_rss_mb"])
            lines.append(f"| {model} | {kind} | {x:,.0f} | {x / base:.2f}x | {x / core:.2f}x | {rss} |")
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


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["scaling", "parity", "memory", "resume"])
    ap.add_argument("--data", required=True, help="data written with --num-shards 4 (user shards)")
    ap.add_argument("--unsharded", help="memory: the same data in single files")
    ap.add_argument("--models", nargs="+", default=["din", "dmgin"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--steps", type=int, default=60, help="scaling: steps per epoch")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--out", default="runs/distributed")
    ap.add_argument("--report", default="bench/results/distributed.md")
    ap.add_argument("--fresh", action="store_true")
    args = ap.parse_args()
    cells = Cells(Path(args.out) / "cells.json", args.fresh)
    rows, lines = {"scaling": scaling, "parity": parity, "memory": memory, "resume": resume}[args.what](args, cells)
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
