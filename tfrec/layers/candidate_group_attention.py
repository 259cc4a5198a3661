"""CandidateGroupAttention: candidate-aware attention over group vectors (DMGIN eq. 10)."""
import tensorflow as tf

from tfrec.layers.mlp import build_sublayer, matmul_last_axis
from tfrec.registry import register


@register
class CandidateGroupAttention(tf.keras.layers.Layer):
    """Candidate-Aware Group Attention Module (DMGIN eq. 10).

    ``alpha_i = softmax_i((W_q e_t)^T W_k h_i / sqrt(d) + b * [g_i == g_t])`` over valid groups
    and ``u = sum_i alpha_i W_v h_i``; a user with no valid group gets ``u = 0``.

    The learned scalar ``b`` on the exact group match (the candidate's own group among the
    user's groups) is our addition to eq. 10: a hard-search prior in the spirit of SIM/TWIN
    that makes the candidate find its group from thousands, not billions, of examples. Omit
    ``match`` from the inputs to get the paper's eq. 10 exactly; ``match_prior=False`` also
    drops the weight ``b`` (for models with no group ids to match, e.g. DMQN's codewords).

    Args:
      dim: d, the projection size.
      match_prior: whether the layer has the match bias ``b`` (and accepts ``match``).

    Input: dict with ``query`` ``[B, C, Dq]`` (candidates), ``keys`` ``[B, G, Dk]`` (groups),
      ``mask`` ``[B, G]`` and optionally ``match`` ``[B, C, G]`` (1 where group i is the
      candidate's group).
    Output shape: ``[B, C, dim]``.
    """

    def __init__(self, dim: int, match_prior: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.dim = int(dim)
        self.match_prior = bool(match_prior)

    def build(self, input_shape):
        self.w_q = tf.keras.layers.Dense(self.dim, use_bias=False, name="w_q")
        self.w_k = tf.keras.layers.Dense(self.dim, use_bias=False, name="w_k")
        self.w_v = tf.keras.layers.Dense(self.dim, use_bias=False, name="w_v")
        for dense, key in ((self.w_q, "query"), (self.w_k, "keys"), (self.w_v, "keys")):
            build_sublayer(dense, input_shape[key])  # call reads their kernels (bias-free 2-D matmuls)
        if self.match_prior:
            self.match_bias = self.add_weight(name="match_bias", shape=[],
                                              initializer=tf.keras.initializers.Constant(2.0))
        super().build(input_shape)

    def call(self, inputs):
        mask = tf.cast(inputs["mask"], tf.bool)[:, None, :]  # [B, 1, G]
        q = matmul_last_axis(inputs["query"], self.w_q.kernel)  # [B, C, d]
        keys = inputs["keys"]
        k = matmul_last_axis(keys, self.w_k.kernel)  # [B, G, d]
        logits = tf.matmul(q, k, transpose_b=True) / tf.sqrt(float(self.dim))  # [B, C, G]
        if "match" in inputs and not self.match_prior:
            raise ValueError(f"{self.name} was built with match_prior=False: it takes no `match` input")
        if "match" in inputs:
            logits += self.match_bias * tf.cast(inputs["match"], logits.dtype)
        logits = tf.where(mask, logits, tf.constant(-1e9, logits.dtype))
        alpha = tf.nn.softmax(logits, axis=-1) * tf.cast(mask, logits.dtype)
        return tf.matmul(alpha, matmul_last_axis(keys, self.w_v.kernel))

    def get_config(self):
        return {**super().get_config(), "dim": self.dim, "match_prior": self.match_prior}
