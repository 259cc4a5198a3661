"""DINAttention (Zhou et al. 2018, eq. 3) against a numpy reference, with each unit activation."""
import numpy as np
import pytest
import tensorflow as tf

from tfrec.layers.din_attention import DINAttention
from tfrec.testing import assert_layer_config_roundtrip


def _inputs(seed=0):
    rng = np.random.default_rng(seed)
    return {"query": rng.normal(size=(2, 3, 4)).astype(np.float32),
            "keys": rng.normal(size=(2, 5, 4)).astype(np.float32),
            "mask": np.array([[1, 1, 0, 1, 0], [0, 0, 0, 0, 0]], np.float32)}


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _prelu(alpha):
    return lambda h: np.where(h > 0, h, alpha * h)


def _dice(alpha, mean, variance, epsilon):
    def f(h):
        p = _sigmoid((h - mean) / np.sqrt(variance + epsilon))
        return p * h + (1 - p) * alpha * h
    return f


def _hidden_activations(layer):
    """Numpy activations of the unit's hidden layers (Dice in inference: moving statistics)."""
    unit = layer.activation_unit
    if layer.activation == "sigmoid":
        return [_sigmoid] * len(unit._hidden)
    if layer.activation == "prelu":
        return [_prelu(act.alpha.numpy().reshape(-1)) for act in unit._activations]
    return [_dice(act.alpha.numpy(), act.moving_mean.numpy(), act.moving_variance.numpy(), act.epsilon)
            for act in unit._activations]


def _randomize_activation_weights(layer, seed=1):
    """Non-trivial PReLU/Dice weights (alpha, moving statistics) so the reference checks them."""
    rng = np.random.default_rng(seed)
    for act in layer.activation_unit._activations:
        act.set_weights([rng.uniform(0.1, 1.0, size=w.shape).astype(np.float32) for w in act.get_weights()])


def reference(layer, query, keys, mask):
    unit = layer.activation_unit
    activations = _hidden_activations(layer)
    out = np.zeros(query.shape)
    for b in range(query.shape[0]):
        for c in range(query.shape[1]):
            weights = []
            for s in range(keys.shape[1]):
                e, v = keys[b, s], query[b, c]
                h = np.concatenate([e, v, e - v, e * v])
                for dense, act in zip(unit._hidden, activations):
                    kernel, bias = dense.get_weights()
                    h = act(h @ kernel + bias)
                kernel, bias = unit._out.get_weights()
                weights.append(float((h @ kernel + bias)[0]))
            weights = np.array(weights)
            valid = mask[b] > 0
            if layer.softmax and valid.any():
                weights = np.where(valid, np.exp(weights - weights[valid].max()), 0.0)
                weights /= weights.sum()
            out[b, c] = (weights * valid) @ keys[b]
    return out


@pytest.mark.parametrize("activation", ["sigmoid", "prelu", "dice"])
@pytest.mark.parametrize("softmax", [False, True])
def test_matches_reference(softmax, activation):
    inputs = _inputs()
    layer = DINAttention(units=(6, 3), softmax=softmax, activation=activation)
    layer(inputs)
    _randomize_activation_weights(layer)
    out = layer(inputs, training=False).numpy()
    assert out.shape == (2, 3, 4)
    np.testing.assert_allclose(out, reference(layer, **inputs), atol=1e-5)
    np.testing.assert_array_equal(out[1], 0.0)  # no valid behavior


@pytest.mark.parametrize("activation", ["sigmoid", "prelu", "dice"])
@pytest.mark.parametrize("softmax", [False, True])
def test_masked_behaviors_are_ignored(softmax, activation):
    inputs = _inputs()
    layer = DINAttention(units=(6,), softmax=softmax, activation=activation)
    out = layer(inputs).numpy()
    keys = inputs["keys"].copy()
    keys[inputs["mask"] == 0] = -7.0
    np.testing.assert_allclose(layer({**inputs, "keys": keys}).numpy(), out, atol=1e-6)


def test_default_activation_unchanged():
    layer = DINAttention(units=(6,))
    layer(_inputs())
    assert layer.get_config()["activation"] == "sigmoid"
    assert layer.activation_unit._hidden[0].activation is tf.keras.activations.sigmoid
    assert len(layer.weights) == 4


def test_dice_trains_on_batch_statistics():
    inputs = _inputs()
    layer = DINAttention(units=(6, 3), activation="dice")
    inference = layer(inputs, training=False).numpy()
    dice = layer.activation_unit._activations[0]
    np.testing.assert_array_equal(dice.moving_mean.numpy(), 0.0)
    training = layer(inputs, training=True).numpy()  # the flag reaches the unit's Dice layers
    assert training.shape == (2, 3, 4)
    assert not np.allclose(training, inference)
    assert not np.allclose(dice.moving_mean.numpy(), 0.0)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(inputs, training=True))
    grads = tape.gradient(loss, [dice.alpha for dice in layer.activation_unit._activations])
    assert all(np.any(g.numpy() != 0) for g in grads)


@pytest.mark.parametrize("activation", ["sigmoid", "prelu", "dice"])
def test_config_roundtrip(activation):
    rebuilt, _ = assert_layer_config_roundtrip(DINAttention(units=(6, 3), softmax=True, activation=activation),
                                               _inputs(), expected_shapes=(2, 3, 4))
    assert rebuilt.activation == activation


def test_unknown_activation():
    with pytest.raises(ValueError, match=r"`activation` must be .*'prelu', 'dice'.*Received: activation='swishy'"):
        DINAttention(activation="swishy")


@pytest.mark.parametrize("activation", ["sigmoid", "prelu", "dice"])
def test_weights_keep_the_concatenated_form_layout(activation):
    """The decomposed first layer reads the same [4D, H] kernel a concatenated-input Dense would
    own, under the same names and order, so checkpoints written before it still restore."""
    layer = DINAttention(units=(6, 3), activation=activation, name="att")
    tf.function(lambda x: layer(x))(_inputs())  # built inside a trace, as in model.fit / export
    names = [v.name for v in layer.weights]
    assert names[:4] == ["att/activation_unit/dense/kernel:0", "att/activation_unit/dense/bias:0",
                         "att/activation_unit/dense_1/kernel:0", "att/activation_unit/dense_1/bias:0"]
    assert layer.activation_unit.first_layer.kernel.shape == (16, 6)
    suffix = {"sigmoid": [], "prelu": ["p_re_lu/alpha", "p_re_lu_1/alpha"], "dice": ["dice/alpha", "dice_1/alpha"]}
    assert names[4:4 + len(suffix[activation])] == [f"att/activation_unit/{s}:0" for s in suffix[activation]]
    assert names[4 + len(suffix[activation]):][:2] == ["att/activation_unit/dense_2/kernel:0",
                                                        "att/activation_unit/dense_2/bias:0"]


def test_static_key_width_is_required():
    layer = DINAttention(units=(6,))
    fn = tf.function(lambda q, k, m: layer({"query": q, "keys": k, "mask": m}),
                     input_signature=[tf.TensorSpec([None, None, None]), tf.TensorSpec([None, None, None]),
                                      tf.TensorSpec([None, None])])
    with pytest.raises(ValueError, match="`keys` needs a static last axis"):
        fn.get_concrete_function()


def test_activation_unit_needs_a_hidden_layer():
    with pytest.raises(ValueError, match=r"at least one hidden layer .*Received: units=\(\)"):
        DINAttention(units=())


def test_built_layer_traces_with_an_unknown_key_width():
    """Built eagerly, then traced with no static last axis (the kernel knows D)."""
    inputs = _inputs()
    layer = DINAttention(units=(6,))
    eager = layer(inputs).numpy()
    fn = tf.function(lambda q, k, m: layer({"query": q, "keys": k, "mask": m}),
                     input_signature=[tf.TensorSpec([None, None, None]), tf.TensorSpec([None, None, None]),
                                      tf.TensorSpec([None, None])])
    np.testing.assert_allclose(fn(inputs["query"], inputs["keys"], inputs["mask"]).numpy(), eager, atol=1e-6)
