"""DINAttention: the local activation unit of DIN (Zhou et al. 2018, eq. 3)."""
from typing import Sequence

import tensorflow as tf

from tfrec.layers.mlp import MLP, check_activation
from tfrec.registry import register


@register
class DINAttention(tf.keras.layers.Layer):
    """Target attention with DIN's local activation unit (Zhou et al. 2018, eq. 3).

    ``w_j = a(e_j, v_A)`` with ``a = MLP([e_j; v_A; e_j - v_A; e_j * v_A]) -> 1`` and
    ``v_U(A) = sum_j w_j e_j`` over valid behaviors. Following the paper, weights are not
    softmax-normalized unless ``softmax=True``.

    Args:
      units: hidden sizes of the activation unit. Default ``(36,)``.
      softmax: normalize the weights over behaviors. Default False.
      activation: activation of the unit's hidden layers, as in ``MLP``. Default ``"sigmoid"``;
        the paper uses ``"prelu"`` or ``"dice"`` (sec. 5.1, eq. 13-14). Dice's batch statistics
        in training cover every (query, behavior) pair, masked behaviors included.

    Input: dict with ``query`` ``[B, C, D]``, ``keys`` ``[B, S, D]`` and ``mask`` ``[B, S]``.
    Output shape: ``[B, C, D]``.
    """

    def __init__(self, units: Sequence[int] = (36,), softmax: bool = False, activation="sigmoid", **kwargs):
        super().__init__(**kwargs)
        self.units = tuple(int(u) for u in units)
        self.softmax = bool(softmax)
        self.activation = check_activation(activation)

    def build(self, input_shape):
        self.activation_unit = MLP(self.units, output_units=1, activation=self.activation,
                                  name="activation_unit")
        super().build(input_shape)

    def call(self, inputs, training=None):
        q, k = inputs["query"], inputs["keys"]
        mask = tf.cast(inputs["mask"], k.dtype)[:, None, :]  # [B, 1, S]
        c, s = tf.shape(q)[1], tf.shape(k)[1]
        qe = tf.tile(q[:, :, None, :], [1, 1, s, 1])  # [B, C, S, D]
        ke = tf.tile(k[:, None, :, :], [1, c, 1, 1])
        x = tf.concat([ke, qe, ke - qe, ke * qe], axis=-1)  # [B, C, S, 4D]
        w = tf.squeeze(self.activation_unit(x, training=training), -1)  # [B, C, S]
        if self.softmax:
            w = tf.nn.softmax(tf.where(mask > 0, w, -1e9), axis=-1)
        w = w * mask
        return tf.einsum("bcs,bsd->bcd", w, k)

    def get_config(self):
        return {**super().get_config(), "units": list(self.units), "softmax": self.softmax,
                "activation": self.activation}
