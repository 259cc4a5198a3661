"""CandidateGroupAttention: candidate-aware attention over group vectors (DMGIN eq. 10)."""
import tensorflow as tf

from tfrec.registry import register


@register
class CandidateGroupAttention(tf.keras.layers.Layer):
    """Candidate-Aware Group Attention Module (DMGIN eq. 10).

    ``alpha_i = softmax_i((W_q e_t)^T W_k h_i / sqrt(d))`` over valid groups and
    ``u = sum_i alpha_i W_v h_i``; a user with no valid group gets ``u = 0``.

    Args:
      dim: d, the projection size.

    Input: dict with ``query`` ``[B, C, Dq]`` (candidates), ``keys`` ``[B, G, Dk]`` (groups) and
      ``mask`` ``[B, G]``.
    Output shape: ``[B, C, dim]``.
    """

    def __init__(self, dim: int, **kwargs):
        super().__init__(**kwargs)
        self.dim = int(dim)

    def build(self, input_shape):
        self.w_q = tf.keras.layers.Dense(self.dim, use_bias=False, name="w_q")
        self.w_k = tf.keras.layers.Dense(self.dim, use_bias=False, name="w_k")
        self.w_v = tf.keras.layers.Dense(self.dim, use_bias=False, name="w_v")
        super().build(input_shape)

    def call(self, inputs):
        mask = tf.cast(inputs["mask"], tf.bool)[:, None, :]  # [B, 1, G]
        q = self.w_q(inputs["query"])
        k = self.w_k(inputs["keys"])
        logits = tf.einsum("bcd,bgd->bcg", q, k) / tf.sqrt(float(self.dim))
        logits = tf.where(mask, logits, tf.constant(-1e9, logits.dtype))
        alpha = tf.nn.softmax(logits, axis=-1) * tf.cast(mask, logits.dtype)
        return tf.einsum("bcg,bgd->bcd", alpha, self.w_v(inputs["keys"]))

    def get_config(self):
        return {**super().get_config(), "dim": self.dim}
