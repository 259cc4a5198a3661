"""Early stopping on an exact validation metric, keeping the best epoch's weights."""
from __future__ import annotations

import math
import time
from typing import Callable, Dict

import tensorflow as tf


class ValidationEarlyStopping(tf.keras.callbacks.Callback):
    """After every epoch, ``evaluate(model)`` (e.g. AUC / GAUC / logloss on a validation window,
    computed exactly with ``tfrec.metrics``, not Keras' bucketed AUC); training stops once ``patience``
    epochs in a row brought no better ``monitor``, and the best epoch's weights are restored when
    training ends (so the run saves and exports that epoch).

    Keras' ``EarlyStopping`` reads ``val_*`` logs of ``fit(validation_data=...)``, which runs
    ``test_step`` on the training graph's inputs; this callback calls ``evaluate`` instead, so it
    validates models whose training input differs from their serving input (DMGIN's per-request
    grouping stage) the same way as the test split is scored.

    Attributes (after training): ``history`` (one dict per epoch: ``epoch`` (1-based), the metrics,
    ``seconds`` of the evaluation), ``best_epoch`` (1-based), ``best`` (its metrics),
    ``stopped_early`` (True when training stopped before its last epoch), ``eval_seconds`` (total).
    """

    def __init__(self, evaluate: Callable[[tf.keras.Model], Dict[str, float]], monitor: str = "auc",
                 mode: str = "max", patience: int = 1, verbose: int = 1):
        super().__init__()
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min'. Received: {mode!r}")
        if patience < 1:
            raise ValueError(f"patience must be >= 1 (epochs without a better value before stopping). "
                             f"Received: {patience}")
        self.evaluate, self.monitor, self.mode, self.patience, self.verbose = evaluate, monitor, mode, patience, verbose

    def on_train_begin(self, logs=None):
        self.history, self.best, self.best_epoch, self.stopped_early = [], None, 0, False
        self.eval_seconds, self._best_value, self._weights, self._wait = 0.0, None, None, 0

    def _better(self, value: float) -> bool:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return False
        if self._best_value is None:
            return True
        return value > self._best_value if self.mode == "max" else value < self._best_value

    def on_epoch_end(self, epoch, logs=None):
        t0 = time.perf_counter()
        metrics = dict(self.evaluate(self.model))
        seconds = time.perf_counter() - t0
        self.eval_seconds += seconds
        if self.monitor not in metrics:
            raise ValueError(f"ValidationEarlyStopping: evaluate() returned no {self.monitor!r} "
                             f"(it returned {sorted(metrics)})")
        self.history.append({"epoch": epoch + 1, **metrics, "seconds": round(seconds, 2)})
        if self._better(metrics[self.monitor]):
            self._best_value, self.best, self.best_epoch = metrics[self.monitor], metrics, epoch + 1
            self._weights = self.model.get_weights()
            self._wait = 0
        else:
            self._wait += 1
            if self._wait >= self.patience:
                self.model.stop_training = True
                self.stopped_early = epoch + 1 < (self.params or {}).get("epochs", epoch + 2)
        if self.verbose:
            best = "none yet" if self._best_value is None else f"{self._best_value:.4f} at epoch {self.best_epoch}"
            print(f"validation after epoch {epoch + 1}: {self.monitor} {metrics[self.monitor]:.4f} (best {best})",
                  flush=True)

    def on_train_end(self, logs=None):
        if self._weights is not None and self.history and self.best_epoch != self.history[-1]["epoch"]:
            self.model.set_weights(self._weights)
            if self.verbose:
                print(f"restored the weights of epoch {self.best_epoch}", flush=True)
