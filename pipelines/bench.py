"""Stage `bench`: the benchmark grid -- every model x every data set x seeds under one protocol
(bench/PROTOCOL.md), each cell cached, tables and plots regenerated from the cached cells.

    tfrec bench                                   # the whole grid (budget `grid`, 400 cells; wall time: PROTOCOL.md)
    tfrec bench --models dmgin din --datasets synthetic-medium --seeds 0
    tfrec bench --models papers --datasets synthetic-medium ml-100k   # the papers' ablation rows
    tfrec bench --budget smoke --datasets synthetic-small            # minutes: the machinery end to end
    tfrec bench --full                            # the same protocol without caps: real hardware
    tfrec bench --tables-only                     # rewrite the tables / plots from the cached cells
    tfrec bench --missing                         # list the cells not run yet

A cell = train (training window, early stopping on the validation window) -> evaluate / predict the
test window -> export the SavedModel -> time its signatures, in its own process. Cells are cached in
RESULTS/cells/ by a key of (model config, data, seed, learning rate, protocol, code version): an
interrupted grid resumes, a finished cell is never recomputed, a cell whose code changed runs again.
--max-hours stops starting new cells after that long (run the same command again to go on).
"""
from __future__ import annotations

import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def add_arguments(p):
    from tfrec.benchmark.datasets import DATASETS
    from tfrec.benchmark.protocol import BUDGETS

    p.add_argument("--models", nargs="+", default=["overall"], metavar="ROW",
                   help="rows to run: labels (tfrec.benchmark.zoo.ROWS), `overall` (the overall table's ~20 models, "
                        "default), `papers` (the rows only the paper tables have), a paper's tables (dmgin-tables, dmqn-tables, "
                        "siren-tables, chime-tables), or all")
    p.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    p.add_argument("--seeds", nargs="+", type=int, default=None,
                   help="model seeds (default: the budget's; the first is the learning-rate tuning seed)")
    p.add_argument("--budget", default="grid", choices=sorted(BUDGETS), help="the protocol's sizes (bench/PROTOCOL.md)")
    p.add_argument("--full", action="store_true", help="= --budget full: no example caps, up to 10 epochs")
    p.add_argument("--max-hours", type=float, default=None, help="start no cell after this many hours")
    p.add_argument("--results", default=None,
                   help="results directory: cells/ + tables + plots (default bench/results/bench-BUDGET)")
    p.add_argument("--workdir", default="runs/bench", help="prepared data sets and compressor outputs")
    p.add_argument("--tables-only", action="store_true", help="only rewrite the tables and plots from the cached cells")
    p.add_argument("--missing", action="store_true", help="only list the cells of the selection not run yet")


def _stop_on_sigterm():
    """SIGTERM ends ``tfrec bench`` like Ctrl-C: the cell in flight is terminated with it (its directory
    keeps no ``cell.json``, so the next run redoes it), never left running."""
    import signal

    def stop(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)


def run(args):
    from tqdm import tqdm

    from tfrec.benchmark import zoo
    from tfrec.benchmark.cells import CellStore
    from tfrec.benchmark.grid import Grid
    from tfrec.benchmark.datasets import LOCK_ROOT
    from tfrec.benchmark.protocol import budget as make_budget

    changes = {"seeds": tuple(args.seeds)} if args.seeds else {}
    plan = make_budget("full" if args.full else args.budget, **changes)
    rows = zoo.select_rows(args.models)
    results = Path(args.results or ROOT / "bench" / "results" / f"bench-{plan.name}")
    store = CellStore(results / "cells")
    work = Path(args.workdir)
    if not args.tables_only:
        grid = Grid(rows, args.datasets, plan, store, work / "data", work / "artifacts", log=tqdm.write,
                    lock_root=LOCK_ROOT)
        if args.missing:
            missing = grid.missing()
            for name, row, seed, lr in missing:
                print(f"{name} {row} seed {seed} " + (f"lr {lr:g}" if lr is not None else
                                                      "(learning rate not chosen yet, or the data set not prepared)"))
            print(f"{len(missing)} of {grid.total()} cells missing")
            return missing
        print(plan.describe(), flush=True)
        print(f"{len(rows)} rows x {len(args.datasets)} data sets: {grid.total()} cells; results in {results}", flush=True)
        deadline = time.time() + args.max_hours * 3600 if args.max_hours else None
        _stop_on_sigterm()
        t0 = time.time()
        with tqdm(total=grid.total(), desc="cells", unit="cell", dynamic_ncols=True) as bar:
            summary = grid.run(deadline=deadline, progress=bar)
        print(f"ran {summary['ran']} cells in {(time.time() - t0) / 3600:.2f} h ({summary['cached']} cached, "
              f"{summary['failed']} failed{'; stopped at --max-hours' if summary['stopped'] else ''})", flush=True)
    from tfrec.benchmark.tables import write_all

    paths = write_all(store.root, results, plan, args.datasets, rows, lock_root=LOCK_ROOT)
    print("wrote " + ", ".join(str(p) for p in paths), flush=True)
    return paths
