"""MLP: exact outputs for set weights; dropout only in training."""
import numpy as np
import pytest

from tfrec.layers.mlp import MLP
from tfrec.testing import assert_layer_config_roundtrip


def test_golden():
    layer = MLP(units=(2,), output_units=1)
    layer(np.zeros((1, 3), np.float32))  # build the Dense sublayers
    layer.set_weights([np.array([[1, -1], [0, 2], [1, 0]], np.float32), np.array([0.5, -1], np.float32),
                       np.array([[2], [3]], np.float32), np.array([0.25], np.float32)])
    # x = [1, 2, 3]: hidden = relu([1 + 3 + 0.5, -1 + 4 - 1]) = [4.5, 2] -> 2*4.5 + 3*2 + 0.25 = 15.25
    # x = [0, 0, -1]: hidden = relu([-0.5, -1]) = [0, 0] -> 0.25
    out = layer(np.array([[1, 2, 3], [0, 0, -1]], np.float32)).numpy()
    np.testing.assert_allclose(out, [[15.25], [0.25]])


def test_no_output_layer_and_dropout():
    layer = MLP(units=(8, 4), dropout=0.5)
    x = np.ones((64, 3), np.float32)
    assert layer(x).shape == (64, 4)
    np.testing.assert_array_equal(layer(x).numpy(), layer(x, training=False).numpy())
    assert not np.allclose(layer(x, training=True).numpy(), layer(x).numpy())


def test_validation():
    with pytest.raises(ValueError, match="dropout"):
        MLP(units=(2,), dropout=1.0)


def test_config_roundtrip():
    assert_layer_config_roundtrip(MLP(units=(4, 3), output_units=2, activation="tanh", dropout=0.1),
                                  np.ones((2, 5), np.float32))
