"""MLP: the dense tower used by prediction heads and small projections."""
from typing import Sequence

import tensorflow as tf

from tfrec.registry import register


@register
class MLP(tf.keras.layers.Layer):
    """Stack of Dense layers with an activation and optional dropout.

    Args:
      units: hidden sizes, e.g. ``(64, 32)``.
      output_units: size of a final linear layer (no activation), or None for none.
      activation: activation of the hidden layers. Default ``"relu"``.
      dropout: dropout rate after each hidden layer. Default 0.

    Input shape: ``[..., D]``.
    Output shape: ``[..., output_units or units[-1]]``.
    """

    def __init__(self, units: Sequence[int], output_units=None, activation="relu", dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"`dropout` must be in [0, 1). Received: dropout={dropout}")
        self.units = tuple(int(u) for u in units)
        self.output_units = output_units
        self.activation = activation
        self.dropout = dropout

    def build(self, input_shape):
        self._hidden = [tf.keras.layers.Dense(u, activation=self.activation) for u in self.units]
        self._dropouts = [tf.keras.layers.Dropout(self.dropout) for _ in self.units]
        self._out = tf.keras.layers.Dense(self.output_units) if self.output_units else None
        super().build(input_shape)

    def call(self, inputs, training=None):
        x = inputs
        for dense, drop in zip(self._hidden, self._dropouts):
            x = drop(dense(x), training=training)
        return self._out(x) if self._out is not None else x

    def get_config(self):
        return {**super().get_config(), "units": list(self.units), "output_units": self.output_units,
                "activation": self.activation, "dropout": self.dropout}
