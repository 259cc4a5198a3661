"""The benchmark grid: rows x data sets x seeds, each cell cached (``tfrec.benchmark.cells``).

Order: for every data set, every row's learning-rate grid on the tuning seed (the budget's first
seed) -- the rate with the best validation AUC becomes the row's rate on that data set -- then the
other seeds at that rate. A paper-table row with a ``rate_from`` base has no tuning cells: it runs
every seed at its base's rate (the base's tuning cells run even when the base row is not asked for).
A cell already in the store is never run again; an interrupted grid resumes where it stopped (the
cell in flight starts over). A failed cell is recorded
(``failed.json``) and the grid goes on; the next run retries it.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from tfrec.benchmark import machine, zoo
from tfrec.benchmark.cells import (CELL_FILE, FAILED_FILE, CellLock, CellStore, cell_key, code_version, data_fingerprint,
                                   model_module, tool_version)
from tfrec.benchmark.protocol import Budget, Windows, budget_ingredients, choose_learning_rate, time_windows

ROOT = Path(__file__).resolve().parents[2]
PROTOCOL_VERSION = 1  # bump when the protocol's meaning changes without a code change the key sees


@dataclass
class DataSet:
    """A prepared data set under the protocol: its directory, windows and fingerprint."""

    name: str
    data: Path
    windows: Windows
    fingerprint: str
    max_history_length: int
    first_train_request: int

    @property
    def t1(self) -> int:
        """CHIME's t1: the start of the training window (the compressor learns from the behaviors before it)."""
        return self.windows.train_start if self.windows.train_start is not None else self.first_train_request


class NotPrepared(Exception):
    """A data set that is not prepared yet (``open_dataset(..., prepare=False)``)."""


def open_dataset(name: str, data_root, budget: Budget, prepare: bool = True, lock_root=None) -> DataSet:
    """Prepares data set ``name`` (``datasets.prepare`` with the data lock under ``lock_root``, None: none;
    with ``prepare=False`` raises ``NotPrepared`` instead) and computes its windows under ``budget``."""
    from pipelines.common import load_spec, tfrecord_files
    from tfrec.benchmark import datasets
    from tfrec.data.tfrecord import read_request_timestamps

    if not prepare and not (Path(data_root) / name / datasets.READY).exists():
        raise NotPrepared(name)
    data = datasets.prepare(name, data_root, lock_root=lock_root)
    spec = load_spec(data)
    train_times, _ = read_request_timestamps(tfrecord_files(data, "train"), spec)
    test_times, _ = read_request_timestamps(tfrecord_files(data, "test"), spec)
    windows = time_windows(train_times, test_times, budget)
    return DataSet(name, data, windows, data_fingerprint(data), spec.max_history_length, int(train_times.min()))


def compressor_ingredients(stem: str, ds: DataSet) -> dict:
    """What a CHIME / LEARN row's user vectors depend on (the compressor config, t1, data, code)."""
    config = (zoo.CONFIG_DIR / "compression" / f"{stem}.yaml").read_text()
    return {"compressor": stem, "config": config, "t1": ds.t1, "data": ds.fingerprint,
            "code": tool_version("pipelines.chime_compress")}


def user_vectors(stem: str, ds: DataSet, artifacts: Path, store: Optional[CellStore] = None,
                 lock_root: Optional[Path] = None, log=print) -> Path:
    """The per-user vectors of compressor ``stem`` on ``ds``, cached under ``artifacts``: taken from the
    compressor lock under ``lock_root`` (``datasets.CompressorLock``) when it holds this compressor's key,
    else fitted by ``tfrec chime-compress`` in its own process (and the lock rewritten from the fit: commit
    it; None: no lock). Its summary (``compressor.json``: codebook hit ratios and perplexities, cost; and the
    vectors' content digest) is copied to ``<store>/<dataset>/compressors/<stem>.json`` for CHIME's Table 5."""
    from tfrec.benchmark.datasets import CompressorLock, vectors_digest

    key = cell_key(compressor_ingredients(stem, ds))
    out = Path(artifacts) / ds.name / f"{stem}-{key}"
    lock = CompressorLock(Path(lock_root) / ds.name, stem) if lock_root is not None else None
    restored = lock is not None and lock.restore(key, out, log)
    if not restored and not (out / "compressor.json").exists():
        # into a temporary directory, renamed when complete: a killed compression leaves no half output
        tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.parent.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "tfrec.cli", "chime-compress", "--data", str(ds.data), "--out", str(tmp),
               "--config", str(zoo.CONFIG_DIR / "compression" / f"{stem}.yaml"), "--t1", str(ds.t1)]
        log(f"compressing {ds.name} with {stem} (t1 = {ds.t1})")
        with open(out.with_name(f"{out.name}.log"), "w") as child_log:
            rc = _run_child(cmd, child_log)
        if rc != 0 or not (tmp / "compressor.json").exists():
            shutil.rmtree(tmp, ignore_errors=True)
            raise RuntimeError(f"tfrec chime-compress ({stem} on {ds.name}) failed with exit code {rc}; its output: "
                               f"{out.with_name(out.name + '.log')}")
        if out.exists():  # (another process finished it meanwhile)
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            os.rename(tmp, out)
    if lock is not None and not restored:  # no lock, one of another key or a broken one: this fit is it
        lock.write(key, out, log)
    if store is not None:
        summary = store.root / ds.name / "compressors" / f"{stem}.json"
        summary.parent.mkdir(parents=True, exist_ok=True)
        CellStore.write_json(summary, {"key": key, "vectors": vectors_digest(out / "user_vectors.npz"),
                                       **json.loads((out / "compressor.json").read_text())})
        summary.with_suffix(COMPRESSOR_FAILED).unlink(missing_ok=True)
    return out / "user_vectors.npz"


def fitted_vectors(stem: str, ds: DataSet, artifacts: Path, lock_root: Optional[Path] = None) -> Optional[tuple]:
    """``(path, content digest)`` of compressor ``stem``'s vectors on ``ds`` if they exist without fitting
    (the lock's, else a readable earlier fit's under ``artifacts``); None otherwise. Reads only:
    ``--missing`` fits nothing."""
    from tfrec.benchmark.datasets import CompressorLock, readable_digest

    key = cell_key(compressor_ingredients(stem, ds))
    if lock_root is not None:
        lock = CompressorLock(Path(lock_root) / ds.name, stem)
        locked = lock.digest(key)
        if locked is not None:
            return lock.dir / "user_vectors.npz", locked
    out = Path(artifacts) / ds.name / f"{stem}-{key}"
    digest = readable_digest(out / "user_vectors.npz") if (out / "compressor.json").exists() else None
    return (out / "user_vectors.npz", digest) if digest is not None else None


COMPRESSOR_FAILED = ".failed"  # <store>/<dataset>/compressors/<stem>.failed: the error of a compressor that failed


def _child_env() -> dict:
    env = dict(os.environ)
    env.setdefault("TF_USE_LEGACY_KERAS", "1")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    return env


@dataclass
class Cell:
    """One planned cell: what to run and its key."""

    row: zoo.Row
    ds: DataSet
    seed: int
    learning_rate: float
    config: dict
    ingredients: dict
    key: str


def plan_cell(row: zoo.Row, ds: DataSet, seed: int, learning_rate: float, budget: Budget,
              vectors: Optional[str] = None) -> Cell:
    """The cell of ``row`` on ``ds`` at ``seed`` and ``learning_rate``; ``vectors``: for a row that reads a
    compressor's user vectors (CHIME / LEARN), their content digest (``datasets.vectors_digest``), which the
    key holds: the key follows the vectors the cell trains on, not what the compressor was asked for."""
    if row.user_vectors and not vectors:
        raise ValueError(f"row {row.label} reads compressor {row.user_vectors}'s user vectors: pass their digest")
    config = zoo.resolve_config(row, ds.max_history_length, ds.name)
    ingredients = {"row": row.label, "model": row.model, "config": config, "dataset": ds.name, "data": ds.fingerprint,
                   "windows": ds.windows.to_dict(), "seed": seed, "learning_rate": learning_rate,
                   "budget": budget_ingredients(budget), "code": code_version(model_module(row.model)),
                   "user_vectors": {"compressor": row.user_vectors, "vectors": vectors} if row.user_vectors else None,
                   "protocol": PROTOCOL_VERSION}
    return Cell(row, ds, seed, learning_rate, config, ingredients, cell_key(ingredients))


def _run_child(cmd, log) -> int:
    """Runs ``cmd`` with its output in ``log``; the child is terminated when this process stops (an
    exception, Ctrl-C, or SIGTERM turned into ``SystemExit`` by ``tfrec bench``), never left running."""
    child = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=_child_env())
    try:
        return child.wait()
    finally:
        if child.poll() is None:
            child.terminate()
            try:
                child.wait(timeout=20)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


def run_in_subprocess(spec: dict, log: Path) -> bool:
    """Runs ``python -m tfrec.benchmark.cell`` on ``spec``; its output goes to ``log``. True on success."""
    spec_path = Path(spec["dir"]) / "spec.json"
    spec_path.parent.mkdir(parents=True, exist_ok=True)
    spec_path.write_text(json.dumps(spec, indent=2, default=str))
    with open(log, "w") as out:
        rc = _run_child([sys.executable, "-m", "tfrec.benchmark.cell", str(spec_path)], out)
    return rc == 0


class Grid:
    """The grid of ``rows`` x ``datasets`` x ``budget.seeds`` (+ the learning-rate grid on the tuning seed)."""

    def __init__(self, rows, datasets, budget: Budget, store: CellStore, data_root, artifacts,
                 runner: Callable[[dict, Path], bool] = run_in_subprocess, log=print,
                 probe: Optional[Callable[[], dict]] = machine.measure, lock_root: Optional[Path] = None):
        self.rows = [zoo.ROWS[r] for r in rows]
        self.dataset_names = list(datasets)
        self.budget, self.store, self.runner, self.log, self.probe = budget, store, runner, log, probe
        self.data_root, self.artifacts = Path(data_root), Path(artifacts)
        self.lock_root = lock_root  # the data lock (datasets.LOCK_ROOT for `tfrec bench`; None: none)
        self._datasets = {}
        self._vectors = {}  # (compressor, data set) -> (path, digest), or the error of a failed fit
        self._peeked = {}  # (compressor, data set) -> fitted_vectors(): what exists without fitting
        self.ran, self.failed, self.cached, self.skipped = [], [], [], []

    @property
    def tuning_seed(self) -> int:
        return self.budget.seeds[0]

    def dataset(self, name: str, prepare: bool = True) -> DataSet:
        """The prepared data set; also writes ``<store>/<name>/dataset-<budget>.json`` (the windows, the
        fingerprint and, on synthetic data, the generator's report: oracle and ceilings) for the tables.
        ``prepare=False``: raise ``NotPrepared`` rather than prepare it."""
        if name not in self._datasets:
            from tfrec.benchmark.datasets import oracle_report

            ds = open_dataset(name, self.data_root, self.budget, prepare=prepare, lock_root=self.lock_root)
            self._datasets[name] = ds
            info = {"name": name, "budget": self.budget.name, "windows": ds.windows.to_dict(),
                    "fingerprint": ds.fingerprint, "max_history_length": ds.max_history_length,
                    "first_train_request": ds.first_train_request, "synthetic_report": oracle_report(ds.data)}
            path = self.store.root / name / f"dataset-{self.budget.name}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            CellStore.write_json(path, info)
        return self._datasets[name]

    def vectors(self, stem: str, ds: DataSet, fit: bool = True) -> Optional[tuple]:
        """``(path, content digest)`` of compressor ``stem``'s user vectors on ``ds``. ``fit``: taken from the
        compressor lock or fitted (``user_vectors``; once per grid run); a failed fit is logged and written to
        ``<store>/<dataset>/compressors/<stem>.failed`` and gives None (the cells reading it fail). Without
        ``fit``: only vectors that exist already (``fitted_vectors``), else None."""
        from tfrec.benchmark.datasets import readable_digest

        got = self._vectors.get((stem, ds.name))
        if isinstance(got, tuple):
            return got
        if not fit:  # (a peek is cached apart: it must not stand in for the fit, which also writes the lock)
            if (stem, ds.name) not in self._peeked:
                self._peeked[(stem, ds.name)] = fitted_vectors(stem, ds, self.artifacts, self.lock_root)
            return self._peeked[(stem, ds.name)]
        if got is not None:  # its fit failed earlier in this run
            return None
        try:
            path = user_vectors(stem, ds, self.artifacts, self.store, self.lock_root, log=self.log)
            digest = readable_digest(path)
            if digest is None:
                raise ValueError(f"{path}: not a readable user-vector file (delete it to fit again)")
            got = (path, digest)
        except (RuntimeError, OSError, ValueError) as err:
            got = f"{type(err).__name__}: {err}"
            self.log(f"{ds.name} / compressor {stem}: FAILED: {got}")
            failed = self.store.root / ds.name / "compressors" / f"{stem}{COMPRESSOR_FAILED}"
            failed.parent.mkdir(parents=True, exist_ok=True)
            CellStore.write_json(failed, {"compressor": stem, "error": got})
        self._vectors[(stem, ds.name)] = got
        return got if isinstance(got, tuple) else None

    def plan(self, row: zoo.Row, ds: DataSet, seed: int, learning_rate: float, fit: bool = True) -> Optional[Cell]:
        """``plan_cell`` with the row's user vectors (``vectors``); None when a row's vectors are unavailable."""
        digest = None
        if row.user_vectors:
            got = self.vectors(row.user_vectors, ds, fit)
            if got is None:
                return None
            digest = got[1]
        return plan_cell(row, ds, seed, learning_rate, self.budget, vectors=digest)

    @property
    def tuned_rows(self) -> list:
        """The rows whose tuning cells run: the asked rows that tune their own rate, then the ``rate_from``
        bases of the others that were not asked for."""
        own = [r for r in self.rows if not r.rate_from]
        bases = [zoo.ROWS[b] for b in dict.fromkeys(r.rate_from for r in self.rows if r.rate_from)]
        return own + [b for b in bases if b not in own]

    def total(self) -> int:
        tuning = len(self.budget.learning_rates) * len(self.tuned_rows)
        seeds = sum(len(self.budget.seeds) - (0 if r.rate_from else 1) for r in self.rows)
        return (tuning + seeds) * len(self.dataset_names)

    def chosen_rate(self, row: zoo.Row, ds: DataSet, fit: bool = False) -> Optional[float]:
        """The row's learning rate on ``ds``: the best validation AUC of its tuning-seed cells (None until
        all of them finished, or while its user vectors are unavailable -- ``fit``: see ``vectors``; ties go
        to the smaller rate); a ``rate_from`` row's: its base's."""
        if row.rate_from:
            return self.chosen_rate(zoo.ROWS[row.rate_from], ds, fit)
        aucs = {}
        for lr in self.budget.learning_rates:
            cell = self.plan(row, ds, self.tuning_seed, lr, fit)
            if cell is None:
                return None
            got = self.store.get(ds.name, row.label, cell.seed, lr, cell.key)
            if got is None:
                return None
            aucs[lr] = (got.get("valid") or {}).get("auc")
        return choose_learning_rate(aucs)

    def planned(self, phase: str):
        """The cells of ``phase`` (``tune``: every learning rate on the tuning seed; ``seeds``: the other
        seeds at the chosen rate, for rows whose rate is known -- every seed for a ``rate_from`` row)."""
        for name in self.dataset_names:
            ds = self.dataset(name)
            if phase == "tune":
                for row in self.tuned_rows:
                    for lr in self.budget.learning_rates:
                        # (a row whose user vectors failed: a cell without a key, counted failed)
                        yield self.plan(row, ds, self.tuning_seed, lr) or Cell(row, ds, self.tuning_seed, lr, {}, {}, "")
                continue
            for row in self.rows:
                lr = self.chosen_rate(row, ds, fit=True)
                if lr is None:
                    continue
                for seed in self.budget.seeds if row.rate_from else self.budget.seeds[1:]:
                    yield self.plan(row, ds, seed, lr) or Cell(row, ds, seed, lr, {}, {}, "")

    def run(self, deadline: Optional[float] = None, progress=None) -> dict:
        """Runs every missing cell (until ``deadline``, a ``time.time()``, if given); returns a summary."""
        for phase in ("tune", "seeds"):
            for cell in self.planned(phase):
                if not cell.key:  # its user vectors' compressor failed (logged)
                    self.failed.append(f"{cell.ds.name}/{cell.row.label}/{cell.seed}/{cell.learning_rate:g}")
                    if progress is not None:
                        progress.update(1)
                    continue
                if self.store.get(cell.ds.name, cell.row.label, cell.seed, cell.learning_rate, cell.key) is not None:
                    self.cached.append(cell.key)
                    if progress is not None:
                        progress.update(1)
                    continue
                if deadline is not None and time.time() > deadline:
                    self.log("time budget reached: stopping before the next cell (run the same command to resume)")
                    return self.summary(stopped=True)
                self.run_cell(cell)
                if progress is not None:
                    progress.update(1)
        return self.summary(stopped=False)

    def run_cell(self, cell: Cell) -> bool:
        out = self.store.cell_dir(cell.ds.name, cell.row.label, cell.seed, cell.learning_rate, cell.key)
        out.mkdir(parents=True, exist_ok=True)
        lock = CellLock(out)
        if not lock.acquire():
            self.log(f"{cell.ds.name} / {cell.row.label} / seed {cell.seed} / lr {cell.learning_rate:g}: another "
                     "tfrec bench process is running it; skipped")
            self.skipped.append(cell.key)
            return False
        try:
            return self._run_locked(cell, out)
        finally:
            lock.release()

    def _run_locked(self, cell: Cell, out: Path) -> bool:
        (out / FAILED_FILE).unlink(missing_ok=True)
        for leftover in out.glob("run-*"):  # an earlier attempt's training directory (killed midway)
            shutil.rmtree(leftover, ignore_errors=True)
        vectors = None
        if cell.row.user_vectors:  # the vectors the key names, still in place (not replaced by another process)
            from tfrec.benchmark.datasets import readable_digest

            vectors, planned = self.vectors(cell.row.user_vectors, cell.ds)
            if readable_digest(vectors) != planned:
                error = f"{vectors} changed since the cell was planned (another tfrec bench process?): run again"
                CellStore.write_json(out / FAILED_FILE, {"error": error})
                self.failed.append(cell.key)
                self.log(f"{cell.ds.name} / {cell.row.label}: FAILED before training: {error}")
                return False
            vectors = str(vectors)
        spec = {"dir": str(out), "row": cell.row.label, "model": cell.row.model, "config": cell.config,
                "dataset": cell.ds.name, "data": str(cell.ds.data), "seed": cell.seed,
                "learning_rate": cell.learning_rate, "budget": dataclasses.asdict(self.budget),
                "windows": cell.ds.windows.to_dict(), "user_vectors": vectors, "key": cell.key,
                "ingredients": cell.ingredients}
        if self.probe is not None:  # the machine and its speed, for the cost tables (machine.py)
            try:
                info = self.probe()
            except Exception as err:  # a probe that cannot run must not stop the grid: no scaling
                info = {"error": f"{type(err).__name__}: {err}"}
            CellStore.write_json(out / machine.MACHINE_FILE, info)
        t0 = time.time()
        self.log(f"{cell.ds.name} / {cell.row.label} / seed {cell.seed} / lr {cell.learning_rate:g}: running "
                 f"(log: {out / 'log.txt'})")
        ok = self.runner(spec, out / "log.txt") and (out / CELL_FILE).exists()
        if ok:
            got = json.loads((out / CELL_FILE).read_text())
            self.ran.append(cell.key)
            self.log(f"  done in {time.time() - t0:.0f} s: test AUC {got['test']['auc']:.4f}, GAUC "
                     f"{got['test']['gauc']:.4f}, best epoch {got['best_epoch']}")
        else:
            self.failed.append(cell.key)
            failure = self.store.failure(cell.ds.name, cell.row.label, cell.seed, cell.learning_rate, cell.key) or {}
            self.log(f"  FAILED after {time.time() - t0:.0f} s: {failure.get('error', 'see ' + str(out / 'log.txt'))}")
        return ok

    def summary(self, stopped: bool) -> dict:
        out = {"ran": len(self.ran), "cached": len(self.cached), "failed": len(self.failed), "stopped": stopped}
        if self.skipped:
            out["skipped"] = len(self.skipped)
        return out

    def missing(self) -> list:
        """``(dataset, row, seed, learning rate or None)`` of every planned cell without a result (the
        tuning cells of a ``rate_from`` base not asked for included); a data set not prepared yet is not
        prepared here: all its cells are missing (learning rate None)."""
        out = []
        extra = [r for r in self.tuned_rows if r not in self.rows]  # bases run for their tuning cells only
        for name in self.dataset_names:
            try:
                ds = self.dataset(name, prepare=False)
            except NotPrepared:
                out += [(name, row.label, seed, None) for row in self.rows for seed in self.budget.seeds]
                out += [(name, row.label, self.tuning_seed, None) for row in extra for _ in self.budget.learning_rates]
                continue
            for row in self.rows + extra:
                lr = self.chosen_rate(row, ds)
                seeds = [self.tuning_seed] if row in extra else self.budget.seeds
                for seed in seeds:
                    rates = self.budget.learning_rates if seed == self.tuning_seed and not row.rate_from else [lr]
                    for rate in rates:
                        if rate is None:
                            out.append((name, row.label, seed, None))
                            continue
                        cell = self.plan(row, ds, seed, rate, fit=False)
                        if cell is None or self.store.get(name, row.label, seed, rate, cell.key) is None:
                            out.append((name, row.label, seed, rate))
        return out

