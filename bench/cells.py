"""One benchmark cell (train -> predict the test split -> metrics) and the on-disk cell cache that
makes a grid resumable: an interrupted run picks up where it stopped, a finished cell is never
recomputed. Shared by the bench scripts that train models."""
from __future__ import annotations

import json
import time
from pathlib import Path

from tfrec.benchmark.costs import state_bytes  # noqa: F401  (bench scripts import it from here)


class CellCache:
    """``{key: result}`` kept in a JSON file, rewritten after every finished cell."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.cells = json.loads(self.path.read_text()) if self.path.exists() else {}

    def __contains__(self, key: str) -> bool:
        return key in self.cells

    def __getitem__(self, key: str) -> dict:
        return self.cells[key]

    def put(self, key: str, result: dict) -> None:
        self.cells[key] = result
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(self.cells, indent=2, default=str))

    def items(self):
        return self.cells.items()


def train_and_evaluate(name: str, data_dir: Path, run_dir: Path, config: dict, epochs: int, batch_size: int,
                       seed: int, user_vectors: Path | None = None, min_request_timestamp: int | None = None) -> dict:
    """Trains model ``name`` with the shared pipeline and evaluates AUC / GAUC / logloss on the test split.

    Returns a JSON-able dict: model, seed, train_seconds, total_seconds, config, auc, gauc, logloss,
    n_examples, state_bytes (the cached user state of one user: what the serving cache holds), and
    the oracle's metrics when the data carries ``true_prob``. ``user_vectors``: a ``UserVectors``
    file the model takes as a user feature (CHIME / LEARN), joined in training and test alike;
    ``min_request_timestamp``: train on the later examples only (CHIME's [t1, t2)).
    """
    from pipelines.evaluate import metrics_of, predictions
    from pipelines.train import train_model

    t0 = time.time()
    from tfrec.data.user_vectors import UserVectors

    model, seconds = train_model(name, data_dir, run_dir, config, epochs=epochs, batch_size=batch_size, seed=seed,
                                 verbose=2, user_vectors=user_vectors, min_request_timestamp=min_request_timestamp)
    vectors = UserVectors.load(user_vectors) if user_vectors else None
    result = metrics_of(name, data_dir, "test", predictions(model, data_dir, "test", user_vectors=vectors))
    return {"state_bytes": state_bytes(model), "model": name, "seed": seed, "train_seconds": round(seconds, 1), "total_seconds": round(time.time() - t0, 1),
            "config": config, **{k: result[k] for k in ("auc", "gauc", "logloss", "n_examples")},
            **({"oracle": result["oracle"]} if "oracle" in result else {}),
            **({"data_report": model.data_report} if getattr(model, "data_report", None) else {})}
