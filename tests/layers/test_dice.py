"""Dice (Zhou et al. 2018, eq. 13-14) against hand-computed numpy values."""
import numpy as np
import pytest
import tensorflow as tf

from tfrec.layers.dice import Dice
from tfrec.testing import assert_layer_config_roundtrip

EPS = 1e-8


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def dice_reference(x, alpha, mean, variance, eps=EPS):
    """Eq. 13-14 in numpy: ``p = sigmoid((s - mean) / sqrt(var + eps))``, ``f = p s + (1 - p) alpha s``."""
    p = _sigmoid((x - mean) / np.sqrt(variance + eps))
    return p * x + (1 - p) * alpha * x, p


# [B=2, S=2, D=2]: channel 0 holds {-1, 1, -1, 1} (mean 0, variance 1), channel 1 {0, 2, 4, 6}
# (mean 3, variance 5).
X = np.array([[[-1, 0], [1, 2]], [[-1, 4], [1, 6]]], np.float32)
ALPHA = np.array([0.25, -0.5], np.float32)


def _layer(momentum=0.99):
    layer = Dice(momentum=momentum)
    layer.build(X.shape)
    layer.alpha.assign(ALPHA)
    return layer


def test_training_uses_batch_statistics():
    layer = _layer()
    out = layer(X, training=True).numpy()
    # Hand check of one entry: s = -1 in channel 0, p = sigmoid(-1) = 0.268941,
    # f = 0.268941 * -1 + 0.731059 * 0.25 * -1 = -0.451706.
    np.testing.assert_allclose(out[0, 0, 0], -0.451706, atol=1e-6)
    expected, _ = dice_reference(X, ALPHA, mean=np.array([0.0, 3.0]), variance=np.array([1.0, 5.0]))
    np.testing.assert_allclose(out, expected, atol=1e-6)
    # Moving averages after one step: m = 0.99 * m0 + 0.01 * batch, with m0 = (0, 1).
    np.testing.assert_allclose(layer.moving_mean.numpy(), [0.0, 0.03], atol=1e-7)
    np.testing.assert_allclose(layer.moving_variance.numpy(), [1.0, 1.04], atol=1e-7)


def test_inference_uses_moving_statistics_after_a_training_step():
    layer = _layer(momentum=0.5)
    layer(X, training=True)
    mean, variance = np.array([0.0, 1.5]), np.array([1.0, 3.0])  # 0.5 * (0, 1) + 0.5 * (0, 3) / (1, 5)
    np.testing.assert_allclose(layer.moving_mean.numpy(), mean, atol=1e-7)
    np.testing.assert_allclose(layer.moving_variance.numpy(), variance, atol=1e-7)
    x = np.array([[0.5, -2.0], [3.0, 1.5]], np.float32)
    # Hand check: s = 3 in channel 0, p = sigmoid(3) = 0.952574, f = 2.857722 + 0.047426 * 0.25 * 3.
    for training in (False, None):
        out = layer(x, training=training).numpy()
        np.testing.assert_allclose(out[1, 0], 2.893292, atol=1e-6)
        np.testing.assert_allclose(out, dice_reference(x, ALPHA, mean, variance)[0], atol=1e-6)
    # Inference leaves the statistics alone and is per position (no batch dependence).
    np.testing.assert_allclose(layer.moving_mean.numpy(), mean, atol=1e-7)
    np.testing.assert_allclose(layer(x[:1], training=False).numpy(), out[:1], atol=1e-7)


def test_alpha_learns():
    layer = _layer()
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(X, training=True))
    grad = tape.gradient(loss, layer.alpha).numpy()
    # d loss / d alpha_d = sum over positions of (1 - p) s.
    _, p = dice_reference(X, ALPHA, mean=np.array([0.0, 3.0]), variance=np.array([1.0, 5.0]))
    np.testing.assert_allclose(grad, ((1 - p) * X).sum(axis=(0, 1)), atol=1e-5)
    assert np.all(np.abs(grad) > 1e-3)
    assert [v.name for v in layer.trainable_weights] == [layer.alpha.name]
    assert {v.name for v in layer.non_trainable_weights} == {layer.moving_mean.name, layer.moving_variance.name}
    tf.keras.optimizers.SGD(0.1).apply_gradients([(tf.constant(grad), layer.alpha)])
    assert not np.allclose(layer.alpha.numpy(), ALPHA)


@pytest.mark.parametrize("shape", [(5, 3), (2, 3, 4, 3)])
def test_any_rank_padded_positions_included(shape):
    x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    layer = Dice()
    out = layer(x, training=True).numpy()
    assert out.shape == shape
    assert layer.alpha.shape == (3,)
    # Statistics over every axis but the last, padded (here: all) positions included.
    axes = tuple(range(len(shape) - 1))
    expected, _ = dice_reference(x, 0.0, x.mean(axis=axes), x.var(axis=axes))
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_tensor_training_flag():
    layer = _layer()
    step = tf.function(lambda x, training: layer(x, training=training))
    np.testing.assert_allclose(step(X, tf.constant(True)).numpy(), layer(X, training=True).numpy(), atol=1e-6)
    np.testing.assert_allclose(step(X, tf.constant(False)).numpy(), layer(X, training=False).numpy(), atol=1e-6)


def test_validation():
    with pytest.raises(ValueError, match="epsilon"):
        Dice(epsilon=0.0)
    with pytest.raises(ValueError, match="momentum"):
        Dice(momentum=1.0)
    with pytest.raises(ValueError, match="rank >= 2"):
        Dice()(np.ones((3,), np.float32))


@pytest.mark.parametrize("training", [False, True])
def test_config_roundtrip(training):
    layer = Dice(epsilon=1e-5, momentum=0.9)
    assert layer.get_config()["epsilon"] == 1e-5 and layer.get_config()["momentum"] == 0.9
    assert_layer_config_roundtrip(layer, X, atol=1e-6, expected_shapes=X.shape, training=training)
