"""MLP: the dense tower used by prediction heads and small projections."""
from typing import Sequence

import tensorflow as tf

from tfrec.layers.dice import Dice
from tfrec.registry import register

# Activations that are layers with weights of their own (DIN, Zhou et al. 2018, sec. 5.1).
LAYER_ACTIVATIONS = ("prelu", "dice")


def check_activation(activation):
    """Returns ``activation`` if it is ``"prelu"``, ``"dice"`` or a Keras activation, else raises.

    Args:
      activation: ``"prelu"``, ``"dice"``, a ``tf.keras.activations`` name (``"relu"``,
        ``"sigmoid"``, ...), a callable, or None (linear).

    Raises:
      ValueError: naming the ``activation`` argument and the allowed values.
    """
    if activation in LAYER_ACTIVATIONS:
        return activation
    try:
        tf.keras.activations.get(activation)
    except (ValueError, TypeError):
        raise ValueError(
            "`activation` must be 'relu', 'sigmoid', 'prelu', 'dice' or another tf.keras.activations "
            f"name. Received: activation={activation!r}") from None
    return activation


def activation_layer(name, rank: int = 2) -> tf.keras.layers.Layer:
    """A fresh activation layer for ``name``.

    Args:
      name: ``"prelu"`` (``tf.keras.layers.PReLU``, one alpha per last-axis channel),
        ``"dice"`` (``Dice``), or any Keras activation (``"relu"``, ``"sigmoid"``, ...:
        ``tf.keras.layers.Activation``).
      rank: rank of the inputs the layer will see, batch axis included. Only PReLU needs it:
        its alpha is shared over every axis but the batch and the last one. Default 2.

    Returns:
      An unbuilt layer; Input shape: ``[B, ..., D]``; Output shape: same as input.

    Raises:
      ValueError: for an unknown ``name`` or ``rank < 2``.
    """
    check_activation(name)
    if name == "prelu":
        if rank is None or rank < 2:
            raise ValueError(f"`rank` must be an int >= 2. Received: rank={rank}")
        return tf.keras.layers.PReLU(shared_axes=list(range(1, rank - 1)) or None)
    if name == "dice":
        return Dice()
    return tf.keras.layers.Activation(name)


def build_sublayer(layer: tf.keras.layers.Layer, input_shape) -> None:
    """Builds ``layer`` now, from a parent's ``build``, with the variable names its first call would
    give (``<parent>/<layer>/kernel``): for parents that read a sublayer's weights instead of calling it."""
    with tf.name_scope(layer.name):
        layer.build(tf.TensorShape(input_shape))


def _on_last_axis(fn, x: tf.Tensor, units: int) -> tf.Tensor:
    """``fn`` (a map ``[N, D] -> [N, units]``) over the last axis of ``x`` ``[..., D]`` as one 2-D call."""
    y = fn(tf.reshape(x, [-1, tf.shape(x)[-1]]))
    y = tf.reshape(y, tf.concat([tf.shape(x)[:-1], [units]], 0))
    y.set_shape(x.shape[:-1].concatenate([units]))
    return y


def matmul_last_axis(x: tf.Tensor, kernel: tf.Tensor) -> tf.Tensor:
    """``x @ kernel`` over the last axis of ``x`` ``[..., D]`` (``kernel`` ``[D, H]``) as one 2-D
    matmul: a rank-3 ``tf.matmul`` against a matrix runs as a broadcasting batch matmul, several times
    slower than the 2-D one at serving sizes (``bench/op_profile.py``)."""
    if x.shape.rank is not None and x.shape.rank <= 2:
        return tf.matmul(x, kernel)
    return _on_last_axis(lambda flat: tf.matmul(flat, kernel), x, kernel.shape[-1])


def dense_last_axis(layer: tf.keras.layers.Dense, x: tf.Tensor) -> tf.Tensor:
    """``layer`` on the last axis of ``x`` as one 2-D matmul: Keras' ``tensordot`` path for rank > 2
    adds about ten shape ops per layer, which cost more than the matmul at serving sizes."""
    if x.shape.rank is None or x.shape.rank <= 2 or x.shape[-1] is None:
        return layer(x)
    return _on_last_axis(layer, x, layer.units)


@register
class MLP(tf.keras.layers.Layer):
    """Stack of Dense layers with an activation and optional dropout.

    Args:
      units: hidden sizes, e.g. ``(64, 32)``.
      output_units: size of a final linear layer (no activation), or None for none.
      activation: activation of the hidden layers: a Keras activation (``Dense(u, activation=...)``),
        or ``"prelu"`` / ``"dice"`` (DIN, Zhou et al. 2018, eq. 13-14: ``Dense(u)`` followed by
        ``activation_layer(activation)``, trained with batch statistics for Dice). Default ``"relu"``.
      dropout: dropout rate after each hidden layer. Default 0.

    Input shape: ``[..., D]``; with ``"prelu"``, the rank seen by the first call.
    Output shape: ``[..., output_units or units[-1]]``.
    """

    def __init__(self, units: Sequence[int], output_units=None, activation="relu", dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"`dropout` must be in [0, 1). Received: dropout={dropout}")
        self.units = tuple(int(u) for u in units)
        self.output_units = output_units
        self.activation = check_activation(activation)
        self.dropout = dropout

    def build(self, input_shape):
        input_shape = tf.TensorShape(input_shape)
        if self.activation in LAYER_ACTIVATIONS:
            self._hidden = [tf.keras.layers.Dense(u) for u in self.units]
            self._activations = [activation_layer(self.activation, input_shape.rank) for _ in self.units]
        else:
            # Plain activations stay inside Dense: the weight structure existing checkpoints rely on.
            self._hidden = [tf.keras.layers.Dense(u, activation=self.activation) for u in self.units]
            self._activations = []
        self._dropouts = [tf.keras.layers.Dropout(self.dropout) for _ in self.units]
        self._out = tf.keras.layers.Dense(self.output_units) if self.output_units else None
        # Every weight now, under the names a first call would give them (callers such as DINAttention
        # read the first kernel before calling the MLP).
        shape = input_shape
        for i, dense in enumerate(self._hidden):
            build_sublayer(dense, shape)
            shape = shape[:-1].concatenate([dense.units])
            if self._activations:
                build_sublayer(self._activations[i], shape)
        if self._out is not None:
            build_sublayer(self._out, shape)
        super().build(input_shape)

    @property
    def first_layer(self) -> tf.keras.layers.Dense:
        """The first hidden Dense (built with the MLP): its ``kernel`` / ``bias`` for ``call(linear=True)``."""
        if not self.built or not self._hidden:
            raise ValueError(f"{self.name}.first_layer needs a built MLP with hidden units "
                             f"(units={self.units}, built={self.built})")
        return self._hidden[0]

    def call(self, inputs, training=None, linear=False):
        """The MLP on ``inputs`` ``[..., D]``; with ``linear=True``, ``inputs`` is the first hidden
        layer's pre-activation ``x W_0 + b_0`` ``[..., units[0]]``, computed by the caller in a cheaper
        equivalent form (``DINAttention``), and the MLP goes on from its activation."""
        x = inputs
        for i, (dense, drop) in enumerate(zip(self._hidden, self._dropouts)):
            if i == 0 and linear:
                x = dense.activation(x)
            else:
                x = dense_last_axis(dense, x)
            if self._activations:
                x = self._activations[i](x, training=training)
            x = drop(x, training=training)
        return dense_last_axis(self._out, x) if self._out is not None else x

    def get_config(self):
        return {**super().get_config(), "units": list(self.units), "output_units": self.output_units,
                "activation": self.activation, "dropout": self.dropout}
