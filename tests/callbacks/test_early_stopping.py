"""ValidationEarlyStopping: stops after `patience` epochs without a better value, restores the best epoch."""
import numpy as np
import pytest

import tfrec  # noqa: F401
import tensorflow as tf

from tfrec.callbacks.early_stopping import ValidationEarlyStopping


def test_stops_and_restores_the_best_epoch():
    tf.keras.utils.set_random_seed(0)
    model = tf.keras.Sequential([tf.keras.layers.Dense(1, input_shape=(2,))])
    model.compile(optimizer=tf.keras.optimizers.SGD(0.1), loss="mse")
    x, y = np.random.default_rng(0).normal(size=(64, 2)).astype("float32"), np.ones((64, 1), "float32")
    scripted = iter([0.60, 0.70, 0.65, 0.64, 0.99])
    weights_seen = []

    def evaluate(m):
        weights_seen.append([w.copy() for w in m.get_weights()])
        return {"auc": next(scripted)}

    early = ValidationEarlyStopping(evaluate, patience=2, verbose=0)
    history = model.fit(x, y, epochs=5, batch_size=16, verbose=0, callbacks=[early])
    assert len(history.history["loss"]) == 4  # epochs 3 and 4 brought nothing better: stop before 5
    assert early.best_epoch == 2 and early.best == {"auc": 0.70} and early.stopped_early
    assert [e["auc"] for e in early.history] == [0.60, 0.70, 0.65, 0.64]
    for restored, best in zip(model.get_weights(), weights_seen[1]):
        np.testing.assert_array_equal(restored, best)


def test_nan_never_counts_as_better_and_bad_arguments_are_named():
    model = tf.keras.Sequential([tf.keras.layers.Dense(1, input_shape=(2,))])
    model.compile(optimizer="sgd", loss="mse")
    scripted = iter([0.5, 0.55, float("nan")])
    early = ValidationEarlyStopping(lambda m: {"auc": next(scripted)}, patience=1, verbose=0)
    model.fit(np.zeros((8, 2)), np.zeros((8, 1)), epochs=3, verbose=0, callbacks=[early])
    assert early.best_epoch == 2 and not early.stopped_early  # NaN is no better; the last epoch: not "early"
    diverged = ValidationEarlyStopping(lambda m: {"auc": float("nan")}, patience=1, verbose=0)
    history = model.fit(np.zeros((8, 2)), np.zeros((8, 1)), epochs=3, verbose=0, callbacks=[diverged])
    assert len(history.history["loss"]) == 1 and diverged.best is None and diverged.stopped_early
    with pytest.raises(ValueError, match="patience"):
        ValidationEarlyStopping(lambda m: {}, patience=0)
    with pytest.raises(ValueError, match="mode"):
        ValidationEarlyStopping(lambda m: {}, mode="up")
