"""The training loss on tensorflow-recommenders' ``compute_loss`` pattern (``CTRModel``): the CTR loss
plus the auxiliary losses in training only, logged as epoch means, never in ``call``."""
import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs

from tfrec.configs import DINConfig, TrainConfig
from tfrec.data.spec import FeatureSpec
from tfrec.models import DIN
from tfrec.testing import random_features
from tfrec.training import compile_model, train

SPEC = FeatureSpec(n_items=20, max_history_length=6)
CONFIG = DINConfig(embedding_dim=4, recent_length=3, attention_units=(4,), mlp_units=(4,), embedding_l2=0.1)


class _Planted(DIN):
    """DIN with a constant auxiliary loss and a training-data transform that flips every label."""

    def auxiliary_losses(self, features, labels, user_state=None):
        assert user_state is None or "recent_behaviors" in user_state  # compute_loss hands over this step's state
        return {**super().auxiliary_losses(features, labels, user_state), "constant": tf.constant(2.0)}

    def prepare_training_data(self, dataset):
        return dataset.map(lambda f, y: (f, 1.0 - y))


def _data(n=8, seed=0):
    features = random_features(SPEC, n, 6, seed=seed)
    return features, np.random.default_rng(seed).integers(0, 2, n).astype(np.float32)


def test_ctr_models_use_the_tfrs_compute_loss_pattern():
    assert issubclass(DIN, tfrs.models.Model)


def test_auxiliary_losses_enter_the_training_loss_only():
    tf.keras.utils.set_random_seed(0)
    model = compile_model(_Planted(SPEC, CONFIG), 1e-2)
    features, y = _data()
    bce = float(tf.keras.losses.BinaryCrossentropy()(y, model(features)))
    penalty = float(model.embedding_penalty(features))
    assert penalty > 0
    np.testing.assert_allclose(float(model.compute_loss((features, y), training=True)), bce + penalty + 2.0, rtol=1e-5)
    np.testing.assert_allclose(float(model.compute_loss((features, y), training=False)), bce, rtol=1e-5)


def test_logs_are_epoch_means_and_evaluation_reports_the_ctr_loss():
    tf.keras.utils.set_random_seed(0)
    model = compile_model(_Planted(SPEC, CONFIG), 0.0)  # lr 0: every batch sees the same weights
    features, y = _data(16)
    history = model.fit(features, y, batch_size=4, epochs=2, verbose=0, validation_data=(features, y)).history
    bce = [float(tf.keras.losses.BinaryCrossentropy()(y[i:i + 4], model(
        {k: v[i:i + 4] for k, v in features.items()}))) for i in range(0, 16, 4)]
    penalty = float(model.embedding_penalty(features))
    for epoch in range(2):  # the running mean over the epoch's 4 batches, not the last batch
        np.testing.assert_allclose(history["ctr_loss"][epoch], np.mean(bce), rtol=1e-5)
        np.testing.assert_allclose(history["constant"][epoch], 2.0)
        np.testing.assert_allclose(history["loss"][epoch], np.mean(bce) + penalty + 2.0, rtol=1e-5)
        np.testing.assert_allclose(history["val_loss"][epoch], history["val_ctr_loss"][epoch])
    assert "val_constant" not in history and "total_loss" not in history
    assert set(model.evaluate(features, y, verbose=0, return_dict=True)) == {"auc", "logloss", "ctr_loss", "loss"}


def test_train_applies_the_models_training_data_transform(tmp_path):
    tf.keras.utils.set_random_seed(0)
    model = _Planted(SPEC, CONFIG)
    features, _ = _data(32)
    ones = tf.data.Dataset.from_tensor_slices((features, np.ones(32, np.float32))).batch(8)
    train(model, "din", ones, tmp_path, TrainConfig(epochs=3, learning_rate=0.05), verbose=0)
    # trained on the flipped labels (all 0): the model predicts clicks as unlikely
    assert float(tf.reduce_mean(model(features))) < 0.4


def test_logged_losses_are_per_example_means_with_a_partial_batch_and_sample_weights():
    tf.keras.utils.set_random_seed(0)
    model = compile_model(DIN(SPEC, CONFIG), 0.0)
    features, y = _data(10)  # batches of 4, 4, 2
    per_example = tf.keras.losses.binary_crossentropy(y[:, None], model(features)[:, None]).numpy()
    logs = model.evaluate(features, y, batch_size=4, verbose=0, return_dict=True)
    np.testing.assert_allclose(logs["ctr_loss"], per_example.mean(), rtol=1e-5)
    weights = np.linspace(0.0, 2.0, 10).astype(np.float32)
    history = model.fit(features, y, sample_weight=weights, batch_size=10, epochs=1, verbose=0).history
    np.testing.assert_allclose(history["ctr_loss"][0], (per_example * weights).mean(), rtol=1e-5)


_MIRRORED = """
import dataclasses
import numpy as np, tensorflow as tf
cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)
from tests.models.test_training_loss import CONFIG, SPEC, _Planted, _data
from tfrec.training import compile_model
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])


class _Mean(_Planted):  # + a per-example mean: NaN on an empty batch unless the base guards it
    def auxiliary_losses(self, features, labels, user_state=None):
        return {**super().auxiliary_losses(features, labels, user_state), "label_mean": tf.reduce_mean(labels)}


def replica_sum(model, ds):
    per_replica = strategy.run(lambda f, l: model.compute_loss((f, l), training=True),
                               args=next(iter(strategy.experimental_distribute_dataset(ds))))
    return float(strategy.reduce("SUM", per_replica, axis=None))


features, y = _data(16)
ds = tf.data.Dataset.from_tensor_slices((features, y)).batch(8)
for regularization in ("l2", "mba"):
    with strategy.scope():
        model = compile_model(_Planted(SPEC, dataclasses.replace(CONFIG, regularization=regularization)), 0.0)
    model.fit(ds, epochs=1, verbose=0)
    half = [{k: v[i:i + 4] for k, v in features.items()} for i in (0, 4)]  # the replicas' halves of batch 1
    if regularization == "l2":  # one penalty on the whole model
        penalty = float(model.embedding_penalty(features))
    else:  # a sum over each replica's batch: the replicas' sum
        penalty = sum(float(model.embedding_penalty(h)) for h in half)
    bce = float(tf.keras.losses.BinaryCrossentropy()(y[:8], model({k: v[:8] for k, v in features.items()})))
    logs = model.evaluate(ds, verbose=0, return_dict=True)
    print("RESULT", regularization, replica_sum(model, ds), bce + penalty + 2.0, logs["ctr_loss"], logs["logloss"])
features, y = _data(17)  # the last batch has 1 example: one replica gets none
with strategy.scope():
    model = compile_model(_Mean(SPEC, CONFIG), 1e-2)
history = model.fit(tf.data.Dataset.from_tensor_slices((features, y)).batch(8), epochs=1, verbose=0).history
print("FINITE", all(np.isfinite(v[0]) for v in history.values()), history)
"""


def test_losses_under_a_mirrored_strategy_count_each_term_once(tmp_path):
    """Two replicas: the replicas' losses sum to CTR + each auxiliary loss once (Keras divides the compiled
    loss by the replicas; mean auxiliary terms are divided too, the mini-batch aware penalty, a sum over
    each replica's batch, is not), the logs are not halved, and a replica without examples adds no NaN."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root), "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run([sys.executable, "-c", "import tfrec\n" + _MIRRORED], cwd=root, env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    for line in [x for x in out.stdout.splitlines() if x.startswith("RESULT")]:
        _, regularization, summed, expected, ctr_loss, logloss = line.split()
        np.testing.assert_allclose(float(summed), float(expected), rtol=1e-4, err_msg=regularization)
        np.testing.assert_allclose(float(ctr_loss), float(logloss), rtol=1e-4, err_msg=regularization)
    assert out.stdout.count("RESULT") == 2 and "FINITE True" in out.stdout, out.stdout


def test_predict_traces_the_model_once_across_calls():
    """``predict`` keeps one inference function per model: the validation pass of every epoch and the
    test pass do not trace the model again (a new function per call did, every time); a batch of another
    history length relaxes the traced shapes once; the function goes with its model."""
    import gc

    from tfrec import training

    model = DIN(SPEC, CONFIG)
    model(random_features(SPEC, 2, 6))  # built, as a trained model is

    def batches(length, seed):
        features = random_features(SPEC, 8, length, seed=seed)
        return tf.data.Dataset.from_tensor_slices((features, np.zeros(8, np.float32))).batch(4)

    first = training.predict(model, batches(6, 0))
    step = training._predict_step(model)
    traces = step.experimental_get_tracing_count()
    assert traces == 1 and first["prediction"].shape == (8,)
    for seed in (1, 2, 3):  # later passes (the next epochs' validation): no new trace
        again = training.predict(model, batches(6, seed))
    assert step.experimental_get_tracing_count() == 1 and training._predict_step(model) is step
    np.testing.assert_allclose(training.predict(model, batches(6, 0))["prediction"], first["prediction"], rtol=1e-6)
    for length in (4, 5, 3):  # other history lengths: one relaxed trace serves them all
        training.predict(model, batches(length, 7))
    assert step.experimental_get_tracing_count() == 2
    assert np.isfinite(again["prediction"]).all()
    del model, step
    gc.collect()
    assert len(training._PREDICT_STEPS) == 0
