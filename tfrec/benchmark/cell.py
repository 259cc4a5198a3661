"""One benchmark cell, run in its own process: ``python -m tfrec.benchmark.cell SPEC.json``.

train (training window, early stopping on the validation window) -> evaluate and predict the test
window -> export the SavedModel -> measure it. Its own process so that the peak memory of training is
the cell's own (``ru_maxrss``) and no graph or memory is carried from one cell into the next.

SPEC (written by ``tfrec.benchmark.grid``): ``dir`` (the cell directory), ``row``, ``model``, ``config``,
``dataset``, ``data`` (data directory), ``seed``, ``learning_rate``, ``budget`` (``Budget`` fields),
``windows`` (``Windows`` fields), ``user_vectors`` (path or null), ``key`` and ``ingredients``.

Writes into ``dir``: ``predictions.csv.gz`` (``user_id,label,prediction``, the test window in file
order), then ``cell.json`` (atomically, last): the metrics (``test``: AUC, GAUC impression-weighted and
unweighted, logloss, counts; ``valid``: the best epoch's; ``valid_by_epoch``; ``oracle`` on synthetic
data), the costs (``cost``: train examples/s, train seconds, peak training RSS, parameters, state
bytes per user, ``user_tower`` / ``score`` ms, SavedModel bytes, and ``other_cpu_cores``: the CPU
the machine's other processes used while the cell ran, in cores, so a figure taken while something
else ran shows) and the key's ingredients. The cell refuses to run when the code on disk is not the
code its key was planned with. On an error it writes ``failed.json`` (the traceback) and exits 1.
"""
from __future__ import annotations

import gzip
import json
import os
import resource
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np


def write_predictions(path: Path, preds: dict) -> None:
    with gzip.open(path, "wt", compresslevel=6) as f:
        f.write("user_id,label,prediction\n")
        for u, y, p in zip(preds["user_id"].tolist(), preds["label"].tolist(), preds["prediction"].tolist()):
            f.write(f"{int(u)},{int(y)},{p:.6g}\n")


def read_predictions(path) -> dict:
    """``{"user_id", "label", "prediction"}`` arrays of a cell's ``predictions.csv.gz``."""
    with gzip.open(path, "rt") as f:
        header = f.readline().strip().split(",")
        rows = np.loadtxt(f, delimiter=",", ndmin=2)
    if header != ["user_id", "label", "prediction"]:
        raise ValueError(f"{path}: unexpected header {header}")
    return {"user_id": rows[:, 0].astype(np.int64), "label": rows[:, 1].astype(np.int64), "prediction": rows[:, 2]}


def metrics(preds: dict, score: str = "prediction") -> dict:
    """``ctr_metrics`` of the predictions, rounded; a model that diverged (NaN or inf predictions) gets
    NaN metrics and ``non_finite`` (how many), which the protocol ranks below every finite result."""
    from tfrec.metrics import ctr_metrics

    values = np.asarray(preds[score], np.float64)
    bad = int(np.sum(~np.isfinite(values)))
    if bad:
        nan = float("nan")
        return {"auc": nan, "gauc": nan, "gauc_unweighted": nan, "logloss": nan, "n_examples": int(values.size),
                "non_finite": bad}
    return {k: (round(v, 6) if isinstance(v, float) else v)
            for k, v in ctr_metrics(preds["user_id"], preds["label"], values).items()}


def _busy_cpu_seconds() -> float:
    """CPU seconds the whole machine has spent busy (``/proc/stat``), or NaN where it cannot be read."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return float("nan")
    busy = sum(fields) - fields[3] - (fields[4] if len(fields) > 4 else 0)  # all but idle and iowait
    return busy / os.sysconf("SC_CLK_TCK")


def _own_cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime


def run_cell(spec: dict) -> dict:
    import tfrec  # noqa: F401  (tf-keras before TensorFlow)
    from pipelines.common import load_spec, make_split_dataset
    from pipelines.train import train_model
    from tfrec.benchmark.costs import serving_costs, state_bytes
    from tfrec.callbacks.early_stopping import ValidationEarlyStopping
    from tfrec.data.dataset import load_user_histories
    from tfrec.data.user_vectors import UserVectors
    from tfrec.export import export_saved_model
    from tfrec.training import predict
    from pipelines.common import history_files

    from tfrec.benchmark.cells import code_version, model_module

    t_start, busy0, own0 = time.time(), _busy_cpu_seconds(), _own_cpu_seconds()
    out = Path(spec["dir"])
    out.mkdir(parents=True, exist_ok=True)
    if code_version(model_module(spec["model"])) != spec["ingredients"]["code"]:
        raise RuntimeError("the code changed after the grid planned this cell (its key would not describe what ran); "
                           "run `tfrec bench` again to plan it with the current code")
    data, budget, windows = spec["data"], spec["budget"], spec["windows"]
    vectors_path = spec.get("user_vectors")
    vectors = UserVectors.load(vectors_path) if vectors_path else None
    data_spec = load_spec(data)
    history = load_user_histories(history_files(data), data_spec)

    def window(split, bounds, spec_=data_spec):
        return make_split_dataset(data, split, spec_, 512, history=history, user_vectors=vectors, **bounds)

    valid_bounds = {"min_request_timestamp": windows["valid_start"], "max_request_timestamp": windows["test_start"]}
    early = ValidationEarlyStopping(lambda model: metrics(predict(model, window("train", valid_bounds, model.spec))),
                                    monitor="auc", patience=budget["patience"])
    run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=out))
    try:
        model, seconds = train_model(
            spec["model"], data, run_dir, spec["config"], epochs=budget["max_epochs"], batch_size=budget["batch_size"],
            learning_rate=spec["learning_rate"], seed=spec["seed"], verbose=2, user_vectors=vectors_path,
            min_request_timestamp=windows["train_start"], max_request_timestamp=windows["valid_start"],
            callbacks=[early])
        peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # (KiB on Linux)
        # training's time (DMGIN's once-per-request stage and the first epoch's tracing included) less the
        # validation passes; "steady": the epochs after the first, less their validation passes
        train_seconds = seconds - early.eval_seconds
        epochs = len(early.history)
        train_examples = windows["n_train"] * epochs
        later = sum(model.throughput["epoch_seconds"][1:]) - sum(e["seconds"] for e in early.history[1:])
        steady = round(windows["n_train"] * (epochs - 1) / later, 1) if epochs > 1 and later > 0 else None
        preds = predict(model, window("test", {"max_request_timestamp": windows["test_end"]}, model.spec))
        tmp = out / f".predictions.{os.getpid()}.tmp"
        write_predictions(tmp, preds)
        os.replace(tmp, out / "predictions.csv.gz")
        test = metrics(preds)
        oracle = metrics(preds, "true_prob") if "true_prob" in preds else None
        export_base = run_dir / "export"
        version = export_saved_model(model, model.spec, export_base, spec["row"], version=1)
        serving = serving_costs(version, model.spec, budget["timing_calls"])
        wall = time.time() - t_start
        others = (_busy_cpu_seconds() - busy0) - (_own_cpu_seconds() - own0)  # other processes' CPU time
        cost = {"train_seconds": round(train_seconds, 2), "train_examples": int(train_examples),
                "train_examples_per_second": round(train_examples / max(train_seconds, 1e-9), 1),
                "train_examples_per_second_steady": steady,
                "peak_train_rss_mb": round(peak_rss_mb, 1), "params": int(model.count_params()),
                "state_bytes": state_bytes(model), **serving,
                "other_cpu_cores": round(max(others, 0.0) / max(wall, 1e-9), 2)}
        cell = {"key": spec["key"], "row": spec["row"], "model": spec["model"], "dataset": spec["dataset"],
                "seed": spec["seed"], "learning_rate": spec["learning_rate"], "budget": budget["name"],
                "test": test, **({"oracle": oracle} if oracle else {}),
                "valid": early.best, "best_epoch": early.best_epoch, "epochs_run": len(early.history),
                "stopped_early": early.stopped_early, "valid_by_epoch": early.history, "cost": cost,
                "windows": windows, "config": spec["config"], "ingredients": spec["ingredients"],
                **({"data_report": model.data_report} if getattr(model, "data_report", None) else {}),
                "wall_seconds": round(time.time() - t_start, 1), "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                                            time.gmtime())}
        from tfrec.benchmark.cells import CELL_FILE, CellStore

        CellStore.write_json(out / CELL_FILE, cell)
        return cell
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    spec = json.loads(Path(argv[0]).read_text())
    try:
        cell = run_cell(spec)
    except BaseException as err:  # noqa: BLE001 (the grid goes on; the error is kept and shown)
        from tfrec.benchmark.cells import FAILED_FILE, CellStore

        Path(spec["dir"]).mkdir(parents=True, exist_ok=True)
        CellStore.write_json(Path(spec["dir"]) / FAILED_FILE, {
            "error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc()[-6000:],
            "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
        print(f"cell failed: {type(err).__name__}: {err}", file=sys.stderr, flush=True)
        return 1
    t = cell["test"]
    print(f"cell done: auc {t['auc']:.4f} gauc {t['gauc']:.4f} logloss {t['logloss']:.4f} "
          f"({cell['wall_seconds']:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
