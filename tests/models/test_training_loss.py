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

    def auxiliary_losses(self, features, labels):
        return {**super().auxiliary_losses(features, labels), "constant": tf.constant(2.0)}

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
