"""AUGRU (DIEN sec. 4.2-4.3) against a hand-written numpy step: the GRU, the attention-scaled update
gate (and AGRU / AIGRU), padding carrying the state; config round trip."""
import numpy as np
import pytest
import tensorflow as tf

from tfrec.layers.augru import AUGRU
from tfrec.testing import assert_layer_config_roundtrip


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _inputs(seed=0):
    rng = np.random.default_rng(seed)
    return {"sequence": rng.normal(size=(3, 4, 5)).astype(np.float32),
            # row 0 left-padded, row 1 full, row 2 padding in the middle and at the end
            "mask": np.array([[0, 0, 1, 1], [1, 1, 1, 1], [1, 0, 1, 0]], np.float32),
            "attention": rng.uniform(0.05, 1.0, size=(3, 4)).astype(np.float32)}


def reference(layer, inputs):
    """numpy: one step at a time, gates (u, r, h̃) in the kernels' column blocks."""
    w, uw, bias = (v.numpy() for v in (layer.kernel, layer.recurrent_kernel, layer.bias))
    x, mask, att = inputs["sequence"], inputs["mask"], inputs.get("attention")
    n = layer.units
    out = np.zeros(x.shape[:2] + (n,))
    for b in range(x.shape[0]):
        h = np.zeros(n)
        for t in range(x.shape[1]):
            a = 1.0 if att is None else att[b, t]
            i = x[b, t] * (a if layer.mode == "aigru" else 1.0)
            xw, hu = i @ w + bias, h @ uw
            u = _sigmoid(xw[:n] + hu[:n])
            r = _sigmoid(xw[n:2 * n] + hu[n:2 * n])
            cand = np.tanh(xw[2 * n:] + r * hu[2 * n:])
            if layer.mode == "augru":
                u = a * u  # the paper's ũ_t = a_t · u_t
            elif layer.mode == "agru":
                u = np.full(n, a)
            if mask[b, t]:
                h = (1 - u) * h + u * cand
            out[b, t] = h  # padding: h carried through
    return out


@pytest.mark.parametrize("mode", ["gru", "augru", "agru", "aigru"])
def test_matches_numpy_step(mode):
    inputs = _inputs()
    if mode == "gru":
        inputs.pop("attention")
    layer = AUGRU(3, mode=mode)
    layer(inputs)
    layer.bias.assign(np.random.default_rng(1).normal(size=layer.bias.shape))  # a bias that matters
    got = layer(inputs).numpy()
    np.testing.assert_allclose(got, reference(layer, inputs), atol=1e-5)
    assert got.shape == (3, 4, 3)
    np.testing.assert_array_equal(got[0, :2], 0)  # leading padding: the initial state
    np.testing.assert_array_equal(got[2, 1], got[2, 0])  # padding carries the state
    np.testing.assert_array_equal(got[2, 3], got[2, 2])


def test_attention_scales_the_update_gate():
    """a = 0 freezes the AUGRU state (ũ = 0), a = 1 is the plain GRU with the same weights."""
    inputs = _inputs()
    layer = AUGRU(3, mode="augru")
    gru = AUGRU(3, mode="gru")
    layer(inputs), gru(inputs)
    gru.set_weights(layer.get_weights())
    frozen = layer({**inputs, "attention": np.zeros((3, 4), np.float32)}).numpy()
    np.testing.assert_array_equal(frozen, 0)
    ones = layer({**inputs, "attention": np.ones((3, 4), np.float32)}).numpy()
    np.testing.assert_allclose(ones, gru(inputs).numpy(), atol=1e-6)
    # half the attention moves the state less far than the full update, from the same start
    half = layer({**inputs, "attention": np.full((3, 4), 0.5, np.float32)}).numpy()
    assert np.all(np.abs(half[1, 0]) < np.abs(ones[1, 0]))


def test_config_round_trip_and_errors():
    inputs = _inputs()
    assert_layer_config_roundtrip(AUGRU(3, mode="agru"), inputs, expected_shapes=(3, 4, 3))
    with pytest.raises(ValueError, match="mode"):
        AUGRU(3, mode="lstm")
    with pytest.raises(ValueError, match="units"):
        AUGRU(0)
    with pytest.raises(ValueError, match="attention"):
        AUGRU(3)({"sequence": inputs["sequence"], "mask": inputs["mask"]})


def test_gradients_and_graph_mode():
    inputs = {k: tf.constant(v) for k, v in _inputs().items()}
    layer = AUGRU(3)
    with tf.GradientTape() as tape:
        tape.watch(inputs["attention"])
        out = tf.function(layer)(inputs)
        loss = tf.reduce_sum(out[:, -1])
    grads = tape.gradient(loss, [inputs["attention"]] + layer.trainable_weights)
    assert all(g is not None for g in grads)
    np.testing.assert_array_equal(grads[0].numpy()[0, :2], 0)  # padding's attention never matters
