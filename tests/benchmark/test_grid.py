"""The grid: cells cached by key, an interrupted run resumes without recomputing a finished cell, the
learning rate chosen on the tuning seed, keys that move with exactly what they should; and one real
cell end to end (train -> predictions -> export -> timing) on a tiny data set."""
import json
from pathlib import Path

import numpy as np
import pytest

from tfrec.benchmark import zoo
from tfrec.benchmark.cells import (CELL_FILE, CellStore, cell_key, code_version, data_fingerprint, model_module,
                                   source_closure, COMMON_ENTRIES)
from tfrec.benchmark.grid import DataSet, Grid, plan_cell
from tfrec.benchmark.protocol import Budget, Windows

BUDGET = Budget("t", train_examples=100, valid_fraction=0.2, test_examples=50, max_epochs=1, patience=1,
                learning_rates=(1e-3, 3e-3), seeds=(0, 1, 2))
WINDOWS = Windows(10, 80, 100, 150, 70, 20, 50)


def fake_dataset(name="toy"):
    return DataSet(name, Path("/nonexistent"), WINDOWS, "f" * 16, 50, 1)


class FakeRunner:
    """Writes a cell.json like the real cell; valid AUC is higher at lr 3e-3 for `din` (and the rows in
    ``best_3e3``), 1e-3 otherwise."""

    def __init__(self, interrupt_after=None, best_3e3=("din",)):
        self.calls, self.interrupt_after, self.best_3e3 = [], interrupt_after, best_3e3

    def __call__(self, spec, log):
        if self.interrupt_after is not None and len(self.calls) == self.interrupt_after:
            raise KeyboardInterrupt  # the grid is killed while this cell runs
        self.calls.append((spec["row"], spec["seed"], spec["learning_rate"]))
        best = 3e-3 if spec["row"] in self.best_3e3 else 1e-3
        valid_auc = 0.7 if spec["learning_rate"] == best else 0.6
        cell = {"key": spec["key"], "row": spec["row"], "model": spec["model"], "dataset": spec["dataset"],
                "seed": spec["seed"], "learning_rate": spec["learning_rate"], "budget": spec["budget"]["name"],
                "valid": {"auc": valid_auc}, "test": {"auc": valid_auc - 0.01 * spec["seed"], "gauc": 0.5},
                "best_epoch": 1, "ingredients": spec["ingredients"], "user_vectors": spec["user_vectors"]}
        CellStore.write_json(Path(spec["dir"]) / CELL_FILE, cell)
        return True


def make_grid(tmp_path, runner, rows=("din", "dmgin")):
    grid = Grid(list(rows), ["toy"], BUDGET, CellStore(tmp_path / "cells"), tmp_path / "data", tmp_path / "art",
                runner=runner, log=lambda *a: None, probe=lambda: {"probe_ms": 5.0, "boot_id": "b"})
    grid._datasets["toy"] = fake_dataset()
    return grid


def test_grid_runs_tuning_then_seeds_at_the_chosen_rate(tmp_path):
    runner = FakeRunner()
    grid = make_grid(tmp_path, runner)
    assert grid.total() == 2 * (2 + 2)
    assert grid.run() == {"ran": 8, "cached": 0, "failed": 0, "stopped": False}
    # tuning: every rate on seed 0 first, then seeds 1, 2 at the best validation AUC's rate
    assert runner.calls[:4] == [("din", 0, 1e-3), ("din", 0, 3e-3), ("dmgin", 0, 1e-3), ("dmgin", 0, 3e-3)]
    assert sorted(runner.calls[4:]) == [("din", 1, 3e-3), ("din", 2, 3e-3), ("dmgin", 1, 1e-3), ("dmgin", 2, 1e-3)]
    assert grid.missing() == []
    # every cell keeps the machine it ran on and its speed probe, for the cost tables
    assert [c["machine"] for c in grid.store.cells()] == [{"probe_ms": 5.0, "boot_id": "b"}] * 8


def test_a_paper_row_runs_every_seed_at_its_base_rows_rate(tmp_path):
    """``dmgin-simple`` (rate_from ``dmgin``): DMGIN's tuning cells run though DMGIN was not asked for, then
    the ablation's three seeds at DMGIN's rate; no tuning cells of its own."""
    runner = FakeRunner(best_3e3=("dmgin",))  # DMGIN's rate: 3e-3 (the grid's first rate is 1e-3)
    grid = make_grid(tmp_path, runner, rows=("dmgin-simple",))
    assert grid.total() == 2 + 3
    assert grid.missing() == [("toy", "dmgin-simple", s, None) for s in (0, 1, 2)] + [
        ("toy", "dmgin", 0, 1e-3), ("toy", "dmgin", 0, 3e-3)]
    assert grid.run()["ran"] == 5
    assert runner.calls == [("dmgin", 0, 1e-3), ("dmgin", 0, 3e-3), ("dmgin-simple", 0, 3e-3),
                            ("dmgin-simple", 1, 3e-3), ("dmgin-simple", 2, 3e-3)]
    assert grid.missing() == []
    both = make_grid(tmp_path, FakeRunner(best_3e3=("dmgin",)), rows=("dmgin", "dmgin-simple"))  # base asked too
    assert both.total() == (2 + 2) + 3 and both.run() == {"ran": 2, "cached": 5, "failed": 0, "stopped": False}


def test_interrupted_grid_resumes_without_recomputing(tmp_path):
    first = FakeRunner(interrupt_after=3)
    with pytest.raises(KeyboardInterrupt):
        make_grid(tmp_path, first).run()
    done = list(first.calls)
    assert len(done) == 3
    second = FakeRunner()
    grid = make_grid(tmp_path, second)
    assert len(grid.missing()) == 5 + 0  # 1 tuning cell + 4 seed cells (their rate is not chosen yet for dmgin)
    summary = grid.run()
    assert summary["cached"] == 3 and summary["ran"] == 5
    assert not set(done) & set(second.calls)  # nothing finished ran again
    third = FakeRunner()
    assert make_grid(tmp_path, third).run()["ran"] == 0 and third.calls == []


def test_a_cell_without_its_result_file_runs_again(tmp_path):
    runner = FakeRunner()
    grid = make_grid(tmp_path, runner, rows=("din",))
    grid.run()
    cell = plan_cell(zoo.ROWS["din"], fake_dataset(), 1, 3e-3, BUDGET)
    path = grid.store.cell_dir("toy", "din", 1, 3e-3, cell.key) / CELL_FILE
    path.unlink()  # e.g. killed before the atomic write
    again = FakeRunner()
    make_grid(tmp_path, again, rows=("din",)).run()
    assert again.calls == [("din", 1, 3e-3)]


def test_failed_cell_is_recorded_and_retried(tmp_path):
    def failing(spec, log):
        CellStore.write_json(Path(spec["dir"]) / "failed.json", {"error": "ValueError: boom"})
        return False

    grid = make_grid(tmp_path, failing, rows=("din",))
    assert grid.run()["failed"] == 2  # both tuning cells; no rate chosen, so no seed cells
    assert len(grid.missing()) == 4
    runner = FakeRunner()
    assert make_grid(tmp_path, runner, rows=("din",)).run()["ran"] == 4


def test_stops_at_the_deadline(tmp_path):
    runner = FakeRunner()
    assert make_grid(tmp_path, runner).run(deadline=0)["stopped"] and runner.calls == []


def test_key_moves_with_its_ingredients():
    ds = fake_dataset()
    base = plan_cell(zoo.ROWS["din"], ds, 0, 1e-3, BUDGET).key
    assert plan_cell(zoo.ROWS["din"], ds, 0, 1e-3, BUDGET).key == base  # deterministic
    assert plan_cell(zoo.ROWS["din"], ds, 1, 1e-3, BUDGET).key != base
    assert plan_cell(zoo.ROWS["din"], ds, 0, 3e-3, BUDGET).key != base
    assert plan_cell(zoo.ROWS["din-full"], ds, 0, 1e-3, BUDGET).key != base
    other_data = DataSet("toy", Path("/x"), WINDOWS, "0" * 16, 50, 1)
    assert plan_cell(zoo.ROWS["din"], other_data, 0, 1e-3, BUDGET).key != base
    import dataclasses
    assert plan_cell(zoo.ROWS["din"], ds, 0, 1e-3, dataclasses.replace(BUDGET, max_epochs=2)).key != base
    # the seed list and the rate grid are not ingredients: adding a seed re-runs nothing
    assert plan_cell(zoo.ROWS["din"], ds, 0, 1e-3, dataclasses.replace(BUDGET, seeds=(0, 1, 2, 3))).key == base
    assert cell_key({"a": 1, "b": 2}) == cell_key({"b": 2, "a": 1})
    # a CHIME / LEARN cell's key holds its user vectors' content digest, and only that of the compressor
    chime = plan_cell(zoo.ROWS["chime"], ds, 0, 1e-3, BUDGET, vectors="a" * 16).key
    assert chime == plan_cell(zoo.ROWS["chime"], ds, 0, 1e-3, BUDGET, vectors="a" * 16).key
    assert chime != plan_cell(zoo.ROWS["chime"], ds, 0, 1e-3, BUDGET, vectors="b" * 16).key
    with pytest.raises(ValueError, match="chime"):
        plan_cell(zoo.ROWS["chime"], ds, 0, 1e-3, BUDGET)  # no vectors: no key


def test_code_version_covers_the_model_and_not_the_others():
    dmgin = source_closure(COMMON_ENTRIES + (model_module("dmgin"),))
    assert "tfrec/models/dmgin.py" in dmgin and "tfrec/training.py" in dmgin and "tfrec/benchmark/cell.py" in dmgin
    assert "tfrec/models/twin.py" not in dmgin and "tfrec/models/__init__.py" not in dmgin
    twin = source_closure(COMMON_ENTRIES + (model_module("twin"),))
    assert "tfrec/models/dmgin.py" not in twin
    assert code_version(model_module("dmgin")) != code_version(model_module("twin"))
    # each model reads its own config module (+ the shared base), not the package's re-exports of all
    assert {f for f in dmgin if f.startswith("tfrec/configs/")} == {"tfrec/configs/base.py", "tfrec/configs/dmgin.py"}
    assert {f for f in twin if f.startswith("tfrec/configs/")} == {"tfrec/configs/base.py", "tfrec/configs/twin.py"}


def test_data_fingerprint_sees_metadata_and_file_sizes(tmp_path):
    (tmp_path / "spec.json").write_text("{}")
    (tmp_path / "train.tfrecord").write_bytes(b"x" * 10)
    first = data_fingerprint(tmp_path)
    (tmp_path / "spec.json").write_text('{"a": 1}')
    second = data_fingerprint(tmp_path)
    (tmp_path / "train.tfrecord").write_bytes(b"x" * 11)
    assert len({first, second, data_fingerprint(tmp_path)}) == 3


def _rewrite_zip_times(path, date_time):
    """Rewrite a zip (an .npz) with every member stamped ``date_time``: what saving it later does."""
    import zipfile
    with zipfile.ZipFile(path) as z:
        members = [(info.filename, z.read(info)) for info in z.infolist()]
    with zipfile.ZipFile(path, "w") as z:
        for name, body in members:
            z.writestr(zipfile.ZipInfo(name, date_time=date_time), body)


def test_data_fingerprint_is_content_not_write_time(tmp_path):
    """A re-prepared data set (another process, another day) keeps its fingerprint: .npz tables are
    hashed by their arrays, a stage's wall time (``seconds``) is left out; any data change still shows."""
    report = {"codebook_size": 64, "seconds": 8.9, "fit": {"seconds": [1.0, 2.0], "mse": 0.01}}
    np.savez(tmp_path / "semantic_ids.npz", codes=np.arange(6, dtype=np.int32).reshape(3, 2),
             report_json=np.array(json.dumps(report)))
    (tmp_path / "semantic_ids.json").write_text(json.dumps(report))
    base = data_fingerprint(tmp_path)
    npz = (tmp_path / "semantic_ids.npz").read_bytes()
    _rewrite_zip_times(tmp_path / "semantic_ids.npz", (2031, 5, 6, 7, 8, 10))
    assert (tmp_path / "semantic_ids.npz").read_bytes() != npz  # the bytes differ ...
    assert data_fingerprint(tmp_path) == base  # ... the content does not
    slower = dict(report, seconds=12.5, fit={"seconds": [3.0, 4.0], "mse": 0.01})
    (tmp_path / "semantic_ids.json").write_text(json.dumps(slower, indent=2))
    np.savez(tmp_path / "semantic_ids.npz", codes=np.arange(6, dtype=np.int32).reshape(3, 2),
             report_json=np.array(json.dumps(slower)))
    assert data_fingerprint(tmp_path) == base
    # the generator's report (no model reads it; its floats differ between machines) is left out
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "synthetic_report.json").write_text(json.dumps({"ceilings": {"last50": 0.7823649}}))
    assert data_fingerprint(tmp_path) == base
    # a changed code, a changed report value, a changed dtype each change the fingerprint
    changed = set()
    for codes, rep in ((np.array([[0, 1], [2, 3], [4, 9]], np.int32), report),
                       (np.arange(6, dtype=np.int32).reshape(3, 2), dict(report, codebook_size=32)),
                       (np.arange(6, dtype=np.int64).reshape(3, 2), report)):
        np.savez(tmp_path / "semantic_ids.npz", codes=codes, report_json=np.array(json.dumps(rep)))
        changed.add(data_fingerprint(tmp_path))
    assert len(changed) == 3 and base not in changed


def test_select_rows():
    assert zoo.select_rows(["overall"]) == zoo.OVERALL and len(zoo.OVERALL) == 20
    assert zoo.select_rows(["dmgin"]) == ["dmgin"]
    assert "dmgin-hstu3" in zoo.select_rows(["dmgin-tables"]) and "din" in zoo.select_rows(["dmgin-tables"])
    assert zoo.select_rows(["din", "din", "dmgin"]) == ["din", "dmgin"]
    with pytest.raises(ValueError, match="unknown row 'nope'"):
        zoo.select_rows(["nope"])
    for label, row in zoo.ROWS.items():  # every row's config resolves
        assert isinstance(zoo.resolve_config(row, 100), dict), label
    sim = zoo.ROWS["sim-hard"]  # MovieLens has no single category: SIM hard matches on the genre list there
    assert zoo.resolve_config(sim, 100, "synthetic-medium")["category_feature"] == "category"
    assert zoo.resolve_config(sim, 100, "ml-1m")["category_feature"] == "genres"


# ---- one real cell, end to end ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    """synthetic-small, prepared by the benchmark's own recipe (RQ-VAE shortened), writing its data lock
    under ``<root>/lock``."""
    from pipelines import semantic_ids
    from pipelines.common import stage_args
    from tfrec.benchmark import datasets

    root = tmp_path_factory.mktemp("bench-data")
    data = root / "synthetic-small"
    original = semantic_ids.run

    def quick(args):
        args.epochs = 3
        return original(args)

    semantic_ids.run = quick
    try:
        datasets.prepare("synthetic-small", root, lock_root=root / "lock")
    finally:
        semantic_ids.run = original
    assert (data / datasets.READY).exists()
    return root


def test_real_cells_end_to_end_and_resume(tiny_data, tmp_path):
    """Two tuning cells and one seed cell of DIN through the real subprocess runner; the cells' metrics
    recompute from their predictions files; the windows never overlap in the data the cell read; a
    second run recomputes nothing."""
    from tfrec.benchmark.cell import metrics, read_predictions
    from tfrec.benchmark.grid import run_in_subprocess

    plan = Budget("e2e", train_examples=1200, valid_fraction=0.25, test_examples=400, max_epochs=2, patience=1,
                  learning_rates=(1e-3, 1e-2), seeds=(0, 1), timing_calls=3)
    calls = []

    def runner(spec, log):
        calls.append(spec["learning_rate"])
        return run_in_subprocess(spec, log)

    grid = Grid(["din"], ["synthetic-small"], plan, CellStore(tmp_path / "cells"), tiny_data, tmp_path / "art",
                runner=runner, log=print)
    assert grid.run() == {"ran": 3, "cached": 0, "failed": 0, "stopped": False}
    cells = grid.store.cells("synthetic-small")
    assert len(cells) == 3
    tuned = [c for c in cells if c["seed"] == 0]
    best = max(tuned, key=lambda c: c["valid"]["auc"])["learning_rate"]
    assert [c["learning_rate"] for c in cells if c["seed"] == 1] == [best]
    w = grid.dataset("synthetic-small").windows
    for c in cells:
        assert c["test"]["n_examples"] == w.n_test and c["valid"]["n_examples"] == w.n_valid
        assert 1 <= c["best_epoch"] <= c["epochs_run"] <= 2
        assert c["cost"]["params"] > 0 and c["cost"]["state_bytes"] > 0
        assert c["cost"]["user_tower_ms"] > 0 and c["cost"]["score_ms"] > 0 and c["cost"]["peak_train_rss_mb"] > 100
        preds = read_predictions(Path(c["dir"]) / "predictions.csv.gz")
        again = metrics(preds)
        assert again["auc"] == pytest.approx(c["test"]["auc"], abs=1e-4)
        assert again["gauc"] == pytest.approx(c["test"]["gauc"], abs=1e-4)
        assert again["gauc_unweighted"] == pytest.approx(c["test"]["gauc_unweighted"], abs=1e-4)
        assert 0 < c["oracle"]["auc"] <= 1  # synthetic: the planted probability on the same window
        assert c["machine"]["probe_ms"] > 0 and c["machine"]["cpus"] >= 1  # the real speed probe
    # the data the windows select: train < validation < test in request time
    from pipelines.common import load_spec, make_split_dataset
    data = tiny_data / "synthetic-small"
    spec = load_spec(data)

    def times(split, **bounds):
        return np.concatenate([f["request_timestamp"].numpy() for f, _ in
                               make_split_dataset(data, split, spec, 256, **bounds)])

    train = times("train", min_request_timestamp=w.train_start, max_request_timestamp=w.valid_start)
    valid = times("train", min_request_timestamp=w.valid_start, max_request_timestamp=w.test_start)
    test = times("test", max_request_timestamp=w.test_end)
    assert (len(train), len(valid), len(test)) == (w.n_train, w.n_valid, w.n_test)
    assert train.max() < valid.min() and valid.max() < test.min()
    calls.clear()
    assert Grid(["din"], ["synthetic-small"], plan, CellStore(tmp_path / "cells"), tiny_data, tmp_path / "art",
                runner=runner, log=print).run()["ran"] == 0 and calls == []
    info = json.loads((tmp_path / "cells" / "synthetic-small" / "dataset-e2e.json").read_text())
    assert info["synthetic_report"]["oracle"]["auc"] > 0.8


def test_data_lock_gives_every_box_the_same_data(tiny_data, tmp_path, monkeypatch):
    """The stages whose floats follow the CPU (the RQ-VAE; MovieLens's text encoder) are taken from the
    data lock: a second preparation runs no RQ-VAE and ends with the same fingerprint, so it reuses the
    cells; a stale stamp runs the stage and rewrites the lock; data that still differs is named."""
    from pipelines import semantic_ids
    from tfrec.benchmark import datasets

    lock_dir = tiny_data / "lock" / "synthetic-small"
    lock = json.loads((lock_dir / datasets.LOCK_FILE).read_text())
    first = data_fingerprint(tiny_data / "synthetic-small")
    assert lock["fingerprint"] == first and set(lock["stamps"]) == {"semantic_ids"}  # synthetic: no item texts
    assert sorted(p.name for p in lock_dir.iterdir()) == ["lock.json", "semantic_ids.json", "semantic_ids.npz"]

    def no_rqvae(args):
        raise AssertionError("the RQ-VAE ran although the lock holds its codes")

    monkeypatch.setattr(semantic_ids, "run", no_rqvae)
    logs = []
    again = datasets.prepare("synthetic-small", tmp_path, lock_root=tiny_data / "lock", log=logs.append)
    assert data_fingerprint(again) == first
    assert [m for m in logs if "taken from the lock" in m] and not [m for m in logs if "differs" in m]
    assert (lock_dir / datasets.LOCK_FILE).read_text() == json.dumps(lock, indent=1, sort_keys=True) + "\n"

    # a ready directory that differs from the lock (here: one code changed) is named, never written into it
    with np.load(again / "semantic_ids.npz") as z:
        arrays = {k: z[k] for k in z.files}
    arrays["codes"][0, 0] += 1
    np.savez(again / "semantic_ids.npz", **arrays)
    before = {f.name: f.read_bytes() for f in lock_dir.iterdir()}
    assert datasets.prepare("synthetic-small", tmp_path, lock_root=tiny_data / "lock", log=logs.append) == again
    assert "differs" in logs[-1] and "files: semantic_ids.npz)" in logs[-1]
    assert {f.name: f.read_bytes() for f in lock_dir.iterdir()} == before

    # the stage's code changed since the lock was written: not restored (the stage runs); a lock is
    # written from the outputs of a preparation that ran the stage
    stale = datasets.DataLock(tmp_path / "lock")
    stale.dir.mkdir()
    for f in lock_dir.iterdir():
        (stale.dir / f.name).write_bytes(f.read_bytes())
    changed = {"semantic_ids": dict(lock["stamps"]["semantic_ids"], code="0" * 16)}
    (stale.dir / datasets.LOCK_FILE).write_text(json.dumps(dict(lock, stamps=changed)))
    assert not stale.restore("semantic_ids", again, log=logs.append)
    assert "the semantic_ids stage's code changed" in logs[-1]
    stale.write(again, log=logs.append)
    assert stale.read()["stamps"] == lock["stamps"] and stale.read()["fingerprint"] == data_fingerprint(again)


def test_cell_lock_is_exclusive_and_stale_locks_are_taken_over(tmp_path):
    from tfrec.benchmark.cells import CellLock

    first, second = CellLock(tmp_path), CellLock(tmp_path)
    assert first.acquire() and not second.acquire()  # this process holds it
    first.release()
    assert second.acquire()
    second.release()
    (tmp_path / CellLock.NAME).write_text("999999999")  # a dead process's lock
    assert CellLock(tmp_path).acquire()


def test_a_cell_held_by_another_process_is_skipped(tmp_path):
    from tfrec.benchmark.cells import CellLock

    runner = FakeRunner()
    grid = make_grid(tmp_path, runner, rows=("din",))
    cell = plan_cell(zoo.ROWS["din"], fake_dataset(), 0, 1e-3, BUDGET)
    held = grid.store.cell_dir("toy", "din", 0, 1e-3, cell.key)
    held.mkdir(parents=True)
    (held / CellLock.NAME).write_text(str(__import__("os").getpid()))  # alive: "another" grid runs it
    summary = grid.run()
    assert summary["skipped"] == 1 and ("din", 0, 1e-3) not in runner.calls


def test_diverged_predictions_rank_last_instead_of_failing():
    from tfrec.benchmark.cell import metrics
    from tfrec.benchmark.protocol import choose_learning_rate

    out = metrics({"user_id": np.array([1, 1, 2]), "label": np.array([1, 0, 1]),
                   "prediction": np.array([0.5, np.nan, 0.2])})
    assert np.isnan(out["auc"]) and out["non_finite"] == 1
    assert choose_learning_rate({1e-3: 0.6, 3e-3: out["auc"]}) == 1e-3
    assert choose_learning_rate({1e-3: 0.6, 3e-3: 0.6}) == 1e-3 and choose_learning_rate({1e-3: 0.5, 3e-3: 0.6}) == 3e-3


def test_code_text_ignores_docstrings_and_comments(tmp_path):
    from tfrec.benchmark.cells import _code_text

    a, b, c = tmp_path / "a.py", tmp_path / "b.py", tmp_path / "c.py"
    a.write_text('"""Module."""\ndef f(x):\n    """Doc."""\n    return x + 1  # one\n')
    b.write_text('"""Reworded."""\n\n\ndef f(x):\n    """Other doc."""\n    # a comment\n    return x + 1\n')
    c.write_text('def f(x):\n    return x + 2\n')
    assert _code_text(a) == _code_text(b) != _code_text(c)


# the cells of a CHIME row without vectors: its tuning cells, and the other seeds at a rate not known yet
CHIME_MISSING = [("toy", "chime", 0, 1e-3), ("toy", "chime", 0, 3e-3), ("toy", "chime", 1, None), ("toy", "chime", 2, None)]


def test_a_failed_compressor_fails_its_rows_only(tmp_path, monkeypatch):
    from tfrec.benchmark import grid as grid_module

    calls = []

    def broken(*args, **kwargs):
        calls.append(args[0])
        raise RuntimeError("tfrec chime-compress (chime on toy) failed with exit code 1")

    monkeypatch.setattr(grid_module, "user_vectors", broken)
    runner = FakeRunner()
    grid = make_grid(tmp_path, runner, rows=("chime", "din"))
    summary = grid.run()
    assert summary["failed"] == 2 and summary["ran"] == 4  # chime's two tuning cells; din's four
    assert calls == ["chime"]  # tried once per grid run, not once per cell
    failed = json.loads((tmp_path / "cells" / "toy" / "compressors" / "chime.failed").read_text())
    assert "chime-compress" in failed["error"]
    assert grid.missing() == CHIME_MISSING


def fake_compressor(monkeypatch, fits: list):
    """``tfrec chime-compress`` replaced by a writer of user vectors whose floats differ at every fit (as
    two CPUs' fits do); ``fits`` collects the configs it was run with."""
    from tfrec.benchmark import grid as grid_module

    def run_child(cmd, log):
        out = Path(cmd[cmd.index("--out") + 1])
        out.mkdir(parents=True)
        fits.append(Path(cmd[cmd.index("--config") + 1]).stem)
        vectors = np.full((3, 1, 2), 0.5 + 1e-7 * len(fits), np.float32)
        np.savez(out / "user_vectors.npz", user_id=np.arange(3), boundaries=np.array([0]), vectors=vectors)
        (out / "compressor.json").write_text(json.dumps({"method": fits[-1], "fit": len(fits)}))
        return 0

    monkeypatch.setattr(grid_module, "_run_child", run_child)


def test_compressor_lock_gives_every_box_the_same_vectors_and_cells(tmp_path, monkeypatch):
    """The first box fits CHIME's compressor and locks its vectors; another box (no artifacts, or a local
    fit to other floats) takes the locked vectors and so finds every committed cell; without the lock a
    refit's other floats give other keys; a compressor whose ingredients changed is refitted and relocked."""
    from tfrec.benchmark.datasets import CompressorLock, vectors_digest

    fits, lock_root, store = [], tmp_path / "lock", CellStore(tmp_path / "cells")
    fake_compressor(monkeypatch, fits)

    def box(name, lock=lock_root, ds=None):
        grid = Grid(["chime"], ["toy"], BUDGET, store, tmp_path / "data", tmp_path / name, runner=FakeRunner(),
                    log=lambda *a: None, probe=None, lock_root=lock)
        grid._datasets["toy"] = ds or fake_dataset()
        return grid

    first = box("a")
    assert first.missing() == CHIME_MISSING and fits == []  # --missing fits nothing
    assert first.run() == {"ran": 4, "cached": 0, "failed": 0, "stopped": False} and fits == ["chime"]
    lock = CompressorLock(lock_root / "toy", "chime")
    stamp = lock.read()
    fitted = next((tmp_path / "a" / "toy").glob("chime-*/user_vectors.npz"))
    assert stamp["vectors"] == vectors_digest(fitted) == vectors_digest(lock.dir / "user_vectors.npz")
    assert fitted.parent.name == f"chime-{stamp['key']}"
    summary = json.loads((store.root / "toy" / "compressors" / "chime.json").read_text())
    assert summary["vectors"] == stamp["vectors"] and summary["fit"] == 1
    assert {c["ingredients"]["user_vectors"]["vectors"] for c in store.cells()} == {stamp["vectors"]}
    assert {c["user_vectors"] for c in store.cells()} == {str(fitted)}  # what the cells trained on

    second = box("b")  # a fresh box: nothing fitted there
    assert second.missing() == [] and second.run()["cached"] == 4 and fits == ["chime"]
    assert vectors_digest(tmp_path / "b" / "toy" / fitted.parent.name / "user_vectors.npz") == stamp["vectors"]

    third = tmp_path / "c" / "toy" / fitted.parent.name  # a box that fitted it earlier, to other floats
    third.mkdir(parents=True)
    np.savez(third / "user_vectors.npz", user_id=np.arange(3), boundaries=np.array([0]),
             vectors=np.full((3, 1, 2), 0.25, np.float32))
    (third / "compressor.json").write_text("{}")
    assert box("c").run()["cached"] == 4 and fits == ["chime"]
    assert vectors_digest(third / "user_vectors.npz") == stamp["vectors"]  # replaced by the locked vectors

    unlocked = box("d", lock=None)  # no lock: the refit's floats differ, so do the keys
    assert unlocked.run()["ran"] == 4 and fits == ["chime", "chime"]
    assert len(store.cells()) == 8 and lock.read() == stamp

    moved = box("e", ds=DataSet("toy", Path("/nonexistent"), WINDOWS, "e" * 16, 50, 1))  # other data: other key
    moved.run()
    assert fits == ["chime"] * 3 and lock.read()["key"] != stamp["key"]
    assert lock.read()["vectors"] == vectors_digest(next((tmp_path / "e" / "toy").glob("chime-*/user_vectors.npz")))


def test_a_broken_compressor_lock_is_replaced_and_never_crashes_missing(tmp_path, monkeypatch):
    """A lock whose vectors no longer match its stamp (a bad merge) or are not a readable file: --missing
    does not crash and fits nothing, the run fits and rewrites the lock, and both then key the cells alike."""
    from tfrec.benchmark.datasets import CompressorLock, vectors_digest

    fits, lock_root, store = [], tmp_path / "lock", CellStore(tmp_path / "cells")
    fake_compressor(monkeypatch, fits)

    def box(name):
        grid = Grid(["chime"], ["toy"], BUDGET, store, tmp_path / "data", tmp_path / name, runner=FakeRunner(),
                    log=lambda *a: None, probe=None, lock_root=lock_root)
        grid._datasets["toy"] = fake_dataset()
        return grid

    box("a").run()
    lock = CompressorLock(lock_root / "toy", "chime")
    locked = lock.dir / "user_vectors.npz"
    locked.write_bytes(b"PK\x03\x04 truncated")  # not a readable .npz
    fresh = box("b")
    assert fresh.missing() == CHIME_MISSING and fits == ["chime"]  # the broken lock names no cells
    assert fresh.run()["ran"] == 4 and fits == ["chime", "chime"]  # refitted (other floats: other cells)
    assert lock.read()["vectors"] == vectors_digest(locked) and fresh.missing() == []
    np.savez(locked, user_id=np.arange(3), boundaries=np.array([0]), vectors=np.zeros((3, 1, 2), np.float32))
    again = box("c")  # readable, but not the vectors of its stamp
    assert again.missing() == CHIME_MISSING
    assert again.run()["ran"] == 4 and fits == ["chime"] * 3 and again.missing() == []
    assert lock.read()["vectors"] == vectors_digest(locked)


def test_committed_compressor_locks_hold_what_their_stamps_say():
    """Every committed compressor lock (``bench/data-lock/<dataset>/compressors/<stem>/``) holds the
    vectors its stamp's digest names (the digest the committed CHIME / LEARN cells' keys hold), and a
    compressor config of ``pipelines/configs/compression``."""
    from tfrec.benchmark import datasets

    stamps = sorted(datasets.LOCK_ROOT.glob(f"*/{datasets.COMPRESSORS}/*/{datasets.STAMP_FILE}"))
    assert {(p.parts[-4], p.parent.name) for p in stamps} >= {(d, c) for d in datasets.DATASETS
                                                               for c in ("chime", "learn")}
    for path in stamps:
        stamp = json.loads(path.read_text())
        assert (zoo.CONFIG_DIR / "compression" / f"{path.parent.name}.yaml").exists(), path
        assert datasets.vectors_digest(path.parent / "user_vectors.npz") == stamp["vectors"], path
        assert json.loads((path.parent / "compressor.json").read_text())["method"], path


def test_repeated_seeds_are_refused():
    from tfrec.benchmark.protocol import budget

    with pytest.raises(ValueError, match="each seed once"):
        budget("grid", seeds=(0, 0))


def test_committed_data_locks_match_the_current_stage_code():
    """Every committed data lock was written by the current code of its stages: a change to the RQ-VAE or
    the text encoder's code makes the next `tfrec bench` run the stage again and rewrite the lock (and
    re-run the cells on the new data); commit that lock with the change, or this fails."""
    from tfrec.benchmark import datasets

    locks = sorted(datasets.LOCK_ROOT.glob(f"*/{datasets.LOCK_FILE}"))
    assert {p.parent.name for p in locks} == set(datasets.DATASETS)
    for path in locks:
        lock = json.loads(path.read_text())
        assert lock["dataset"] == path.parent.name and set(lock["stamps"]) >= {"semantic_ids"}
        assert ("items" in lock["stamps"]) == path.parent.name.startswith("ml-")
        for stage, stamp in lock["stamps"].items():
            assert stamp["code"] == datasets.stage_code(stage), (path, stage)
            for rel in datasets.STAGES[stage]["files"]:
                assert (path.parent / Path(rel).name).exists() and lock["manifest"][rel]
