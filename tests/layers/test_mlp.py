"""MLP: exact outputs for set weights; dropout only in training; PReLU / Dice activations."""
import numpy as np
import pytest
import tensorflow as tf

from tfrec.layers.dice import Dice
from tfrec.layers.mlp import MLP, activation_layer
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


def test_plain_activations_keep_the_dense_structure():
    layer = MLP(units=(2,), output_units=1, activation="sigmoid")
    layer(np.zeros((1, 3), np.float32))
    assert layer._hidden[0].activation is tf.keras.activations.sigmoid
    assert len(layer.weights) == 4 and not layer._activations


def test_prelu_golden():
    layer = MLP(units=(2,), output_units=1, activation="prelu")
    layer(np.zeros((1, 3), np.float32))
    assert layer._hidden[0].activation is tf.keras.activations.linear
    layer._hidden[0].set_weights([np.array([[1, -1], [0, 2], [1, 0]], np.float32), np.array([0.5, -1], np.float32)])
    layer._activations[0].set_weights([np.array([0.1, 0.2], np.float32)])
    layer._out.set_weights([np.array([[2], [3]], np.float32), np.array([0.25], np.float32)])
    # x = [1, 2, 3]: pre-activation [4.5, 2] (positive) -> 15.25 as with relu.
    # x = [0, 0, -1]: pre-activation [-0.5, -1] -> prelu [-0.05, -0.2] -> 2*-0.05 + 3*-0.2 + 0.25 = -0.45
    out = layer(np.array([[1, 2, 3], [0, 0, -1]], np.float32)).numpy()
    np.testing.assert_allclose(out, [[15.25], [-0.45]], atol=1e-6)


@pytest.mark.parametrize("activation", ["prelu", "dice"])
@pytest.mark.parametrize("shape", [(6, 5), (2, 3, 4, 5)])
def test_layer_activations_any_rank(activation, shape):
    layer = MLP(units=(4, 3), output_units=2, activation=activation)
    x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    assert layer(x, training=True).shape == shape[:-1] + (2,)
    # One alpha per last-axis channel of each hidden layer.
    assert [int(np.prod(a.alpha.shape)) for a in layer._activations] == [4, 3]
    assert [type(a) for a in layer._activations] == [Dice if activation == "dice" else tf.keras.layers.PReLU] * 2


@pytest.mark.parametrize("activation", ["prelu", "dice"])
def test_layer_activations_config_roundtrip(activation):
    x = np.random.default_rng(1).normal(size=(2, 3, 5)).astype(np.float32)
    rebuilt, _ = assert_layer_config_roundtrip(MLP(units=(4, 3), output_units=2, activation=activation), x,
                                               expected_shapes=(2, 3, 2))
    assert rebuilt.get_config()["activation"] == activation


def test_activation_layer():
    assert isinstance(activation_layer("relu"), tf.keras.layers.Activation)
    assert isinstance(activation_layer("sigmoid"), tf.keras.layers.Activation)
    assert isinstance(activation_layer("dice"), Dice)
    prelu = activation_layer("prelu", rank=4)
    assert isinstance(prelu, tf.keras.layers.PReLU) and prelu.shared_axes == [1, 2]
    assert activation_layer("prelu").shared_axes is None  # rank 2: [B, D], alpha per channel
    assert activation_layer("dice") is not activation_layer("dice")  # fresh layers
    np.testing.assert_allclose(activation_layer("gelu")(np.array([0.0], np.float32)).numpy(), [0.0])


def test_unknown_activation():
    for make in (lambda: MLP(units=(2,), activation="swishy"), lambda: activation_layer("swishy")):
        with pytest.raises(ValueError, match=r"`activation` must be 'relu', 'sigmoid', 'prelu', 'dice'.*"
                                             r"Received: activation='swishy'"):
            make()
    with pytest.raises(ValueError, match="rank"):
        activation_layer("prelu", rank=1)


def test_dice_inference_is_deterministic_in_tf_function():
    layer = MLP(units=(8, 4), output_units=1, activation="dice", dropout=0.5)
    rng = np.random.default_rng(0)
    for _ in range(3):  # move the statistics away from their initial values
        layer(rng.normal(size=(16, 5)).astype(np.float32), training=True)
    stats = [w.numpy() for w in layer.non_trainable_weights]
    serve = tf.function(lambda x: layer(x, training=False))
    x = rng.normal(size=(16, 5)).astype(np.float32)
    first = serve(x).numpy()
    np.testing.assert_array_equal(serve(x).numpy(), first)
    np.testing.assert_allclose(layer(x, training=False).numpy(), first, atol=1e-6)
    np.testing.assert_allclose(serve(x[:3]).numpy(), first[:3], atol=1e-6)  # no batch statistics
    for before, after in zip(stats, layer.non_trainable_weights):
        np.testing.assert_array_equal(after.numpy(), before)


@pytest.mark.parametrize("activation", ["relu", "prelu", "dice"])
def test_linear_entry_matches_the_full_call(activation):
    """``call(z, linear=True)`` on the first layer's pre-activation gives the plain call's output."""
    mlp = MLP((5, 3), output_units=2, activation=activation)
    x = tf.random.stateless_normal([2, 4, 6], seed=[1, 2])
    out = mlp(x, training=False)
    first = mlp.first_layer
    z = tf.einsum("bsd,dh->bsh", x, first.kernel) + first.bias
    np.testing.assert_allclose(mlp(z, training=False, linear=True).numpy(), out.numpy(), atol=1e-6)
    assert out.shape == (2, 4, 2)


def test_first_layer_needs_a_built_mlp_with_hidden_units():
    with pytest.raises(ValueError, match="first_layer needs a built MLP"):
        MLP((4,)).first_layer
    mlp = MLP((), output_units=1)
    mlp(tf.zeros([2, 3]))
    with pytest.raises(ValueError, match="first_layer needs a built MLP"):
        mlp.first_layer
