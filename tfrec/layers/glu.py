"""GLU: the gated linear unit CHIME uses as its projector (CHIME sec. 4.2, 4.3; Dauphin et al. 2017)."""
from __future__ import annotations

import tensorflow as tf

from tfrec.registry import register


@register
class GLU(tf.keras.layers.Layer):
    """Gated linear unit ``GLU(x) = (x W + b) * sigmoid(x V + c)``.

    CHIME uses three: the projector that maps a frozen multimodal vector into the behavior input
    (Interest Adaptation Module, sec. 4.2), the *user GLU* that maps the (quantized) transformer
    output to the low-dimensional user hidden state ``z_t`` and the *item GLU* that maps the item
    input to ``p_t`` (sec. 4.3). The paper does not give their layout; we use the original GLU
    (one linear value path, one sigmoid gate, no hidden layer).

    Args:
      units: int, output size.

    Input shape: ``[..., D_in]``. Output shape: ``[..., units]``.
    """

    def __init__(self, units: int, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(units, int) or units < 1:
            raise ValueError(f"`units` must be a positive int. Received: units={units!r}")
        self.units = units

    def build(self, input_shape):
        self.value = tf.keras.layers.Dense(self.units, name="value")
        self.gate = tf.keras.layers.Dense(self.units, name="gate")
        self.value.build(input_shape)
        self.gate.build(input_shape)
        super().build(input_shape)

    def call(self, inputs):
        return self.value(inputs) * tf.sigmoid(self.gate(inputs))

    def get_config(self):
        return {**super().get_config(), "units": self.units}
