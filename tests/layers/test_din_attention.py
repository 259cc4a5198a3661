"""DINAttention (Zhou et al. 2018, eq. 3) against a numpy reference."""
import numpy as np
import pytest

from tfrec.layers.din_attention import DINAttention
from tfrec.testing import assert_layer_config_roundtrip


def _inputs(seed=0):
    rng = np.random.default_rng(seed)
    return {"query": rng.normal(size=(2, 3, 4)).astype(np.float32),
            "keys": rng.normal(size=(2, 5, 4)).astype(np.float32),
            "mask": np.array([[1, 1, 0, 1, 0], [0, 0, 0, 0, 0]], np.float32)}


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def reference(layer, query, keys, mask):
    unit = layer.activation_unit
    out = np.zeros(query.shape)
    for b in range(query.shape[0]):
        for c in range(query.shape[1]):
            weights = []
            for s in range(keys.shape[1]):
                e, v = keys[b, s], query[b, c]
                h = np.concatenate([e, v, e - v, e * v])
                for dense in unit._hidden:
                    kernel, bias = dense.get_weights()
                    h = _sigmoid(h @ kernel + bias)
                kernel, bias = unit._out.get_weights()
                weights.append(float((h @ kernel + bias)[0]))
            weights = np.array(weights)
            valid = mask[b] > 0
            if layer.softmax and valid.any():
                weights = np.where(valid, np.exp(weights - weights[valid].max()), 0.0)
                weights /= weights.sum()
            out[b, c] = (weights * valid) @ keys[b]
    return out


@pytest.mark.parametrize("softmax", [False, True])
def test_matches_reference(softmax):
    inputs = _inputs()
    layer = DINAttention(units=(6, 3), softmax=softmax)
    out = layer(inputs).numpy()
    assert out.shape == (2, 3, 4)
    np.testing.assert_allclose(out, reference(layer, **inputs), atol=1e-5)
    np.testing.assert_array_equal(out[1], 0.0)  # no valid behavior


@pytest.mark.parametrize("softmax", [False, True])
def test_masked_behaviors_are_ignored(softmax):
    inputs = _inputs()
    layer = DINAttention(units=(6,), softmax=softmax)
    out = layer(inputs).numpy()
    keys = inputs["keys"].copy()
    keys[inputs["mask"] == 0] = -7.0
    np.testing.assert_allclose(layer({**inputs, "keys": keys}).numpy(), out, atol=1e-6)


def test_config_roundtrip():
    assert_layer_config_roundtrip(DINAttention(units=(6, 3), softmax=True), _inputs())
