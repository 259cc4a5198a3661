"""DINAttention: the local activation unit of DIN (Zhou et al. 2018, eq. 3)."""
from typing import Sequence

import tensorflow as tf

from tfrec.layers.mlp import MLP, build_sublayer, check_activation, matmul_last_axis
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
        if not self.units or min(self.units) < 1:
            raise ValueError("DINAttention needs at least one hidden layer of positive width in its activation "
                             f"unit (e.g. units=(36,)). Received: units={tuple(units)}")
        self.softmax = bool(softmax)
        self.activation = check_activation(activation)

    def build(self, input_shape):
        dim = tf.TensorShape(input_shape["keys"])[-1]
        if dim is None:
            raise ValueError(f"{self.name}: `keys` needs a static last axis (the embedding size). "
                             f"Received: keys shape {input_shape['keys']}")
        self.activation_unit = MLP(self.units, output_units=1, activation=self.activation,
                                  name="activation_unit")
        build_sublayer(self.activation_unit, [None, None, None, 4 * dim])
        super().build(input_shape)

    def call(self, inputs, training=None):
        q, k = inputs["query"], inputs["keys"]
        mask = tf.cast(inputs["mask"], k.dtype)[:, None, :]  # [B, 1, S]
        w = tf.squeeze(self.activation_unit(self._first_linear(q, k), training=training, linear=True), -1)
        if self.softmax:
            w = tf.nn.softmax(tf.where(mask > 0, w, -1e9), axis=-1)
        w = w * mask  # [B, C, S]
        return tf.matmul(w, k)  # [B, C, D]

    def _first_linear(self, q, k):
        """The unit's first layer ``[e; v; e - v; e * v] W + b`` ``[B, C, S, H]`` without building the
        ``[B, C, S, 4D]`` input: with ``W = [W_1; W_2; W_3; W_4]`` (D rows each) it equals
        ``e (W_1 + W_3) + v (W_2 - W_3) + (e * v) W_4 + b``, where the first term is per behavior, the
        second per candidate and only the third per pair: a quarter of the pair FLOPs, no tiles or
        concat. Same weights and checkpoints as the concatenated form (tested against it)."""
        dense = self.activation_unit.first_layer
        # D from the kernel (built for 4D inputs): a traced call may not know the keys' last axis
        w1, w2, w3, w4 = tf.unstack(tf.reshape(dense.kernel, [4, dense.kernel.shape[0] // 4, dense.units]))
        per_key = matmul_last_axis(k, w1 + w3)[:, None, :, :]  # [B, 1, S, H]
        per_query = (matmul_last_axis(q, w2 - w3) + dense.bias)[:, :, None, :]  # [B, C, 1, H]
        per_pair = matmul_last_axis(q[:, :, None, :] * k[:, None, :, :], w4)  # [B, C, S, D] -> [B, C, S, H]
        return per_pair + per_key + per_query

    def get_config(self):
        return {**super().get_config(), "units": list(self.units), "softmax": self.softmax,
                "activation": self.activation}
