"""IntraGroupAttention: multi-head self-attention inside each group + masked mean (DMGIN eqs. 2-4)."""
import tensorflow as tf

from tfrec.layers.mlp import build_sublayer
from tfrec.registry import register


def masked_mean(x, mask, axis):
    """Mean of ``x`` over ``axis`` counting only ``mask`` positions (0 where none)."""
    mask = tf.cast(mask, x.dtype)[..., None]
    return tf.reduce_sum(x * mask, axis=axis) / tf.maximum(tf.reduce_sum(mask, axis=axis), 1.0)


@register
class IntraGroupAttention(tf.keras.layers.Layer):
    """Intra-group behavior evolution (DMGIN eqs. 2-4).

    ``head_h = softmax(Q_h K_h^T / sqrt(d_k)) V_h``, ``MHSA = [head_1..head_H] W_O`` over the
    (masked) behaviors of each group, then ``e_i = masked_mean(MHSA(B_i))``.

    Args:
      num_heads: H.
      key_dim: d_k per head.
      output_dim: size of e_i.

    Input: dict with ``behaviors`` ``[B, G, m, D]`` and ``mask`` bool ``[B, G, m]``.
    Output shape: ``[B, G, output_dim]`` (zeros for empty groups).
    """

    def __init__(self, num_heads: int, key_dim: int, output_dim: int, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = int(num_heads)
        self.key_dim = int(key_dim)
        self.output_dim = int(output_dim)

    def build(self, input_shape):
        dim = tf.TensorShape(input_shape["behaviors"])[-1]
        if dim is None:
            raise ValueError(f"{self.name}: `behaviors` needs a static last axis (the token size). "
                             f"Received: behaviors shape {input_shape['behaviors']}")
        # The weights live in a Keras MultiHeadAttention (query / key / value / attention_output
        # EinsumDense kernels, [D, H, d_k] and [H, d_k, out]): the names and checkpoint layout of a
        # plain MHA call. ``call`` computes the same attention with 2-D and batched matmuls.
        self.attention = tf.keras.layers.MultiHeadAttention(
            num_heads=self.num_heads, key_dim=self.key_dim, output_shape=self.output_dim, name="mhsa")
        tokens = tf.TensorShape([None, None, dim])
        with tf.name_scope(self.attention.name):
            self.attention._build_from_signature(query=tokens, value=tokens)
            for dense in (self.attention._query_dense, self.attention._key_dense, self.attention._value_dense):
                build_sublayer(dense, tokens)
            build_sublayer(self.attention._output_dense, [None, None, self.num_heads, self.key_dim])
        self.attention.built = True
        super().build(input_shape)

    def call(self, inputs):
        """Eqs. 2-4 per group, heads unrolled: per head ``[B*G*m, D] x [D, d_k]`` projections and
        ``softmax(Q K^T / sqrt(d_k) + key mask) V`` as batched matmuls over the ``B*G`` groups, then
        the masked mean over the m behaviors moved ahead of ``W_O`` (both are linear:
        ``mean(Z) W_O + b_O = mean(Z W_O + b_O)`` when the group has a behavior, 0 when it has none).
        Same result as ``MultiHeadAttention`` + ``masked_mean`` (tested), no einsum or transpose."""
        x, mask = inputs["behaviors"], tf.cast(inputs["mask"], tf.bool)
        shape = tf.shape(x)
        b, g, m = shape[0], shape[1], shape[2]
        h, dk, dim = self.num_heads, self.key_dim, x.shape[-1]
        mha = self.attention
        tokens = tf.reshape(x, [-1, dim])  # [B*G*m, D]

        def project(dense, i, scale=1.0):  # head i of an EinsumDense [D, H, dk] (+ [H, dk]) -> [B*G, m, dk]
            kernel, bias = dense.kernel[:, i, :], dense.bias[i]
            if scale != 1.0:  # scaled on the [D, dk] weights, not on the [B*G*m, dk] output
                kernel, bias = kernel * scale, bias * scale
            return tf.reshape(tf.matmul(tokens, kernel) + bias, [b * g, m, dk])

        valid = tf.cast(tf.reshape(mask, [b * g, 1, m]), x.dtype)  # [B*G, 1, m]
        # MHA's masked softmax: -1e9 on masked keys (float16's largest negative there, as Keras does)
        key_bias = (1.0 - valid) * (-65504.0 if x.dtype == tf.float16 else -1e9)
        count = tf.reduce_sum(valid, axis=-1, keepdims=True)  # [B*G, 1, 1]
        pool = valid / tf.maximum(count, 1.0)  # masked mean weights over the queries
        heads = []
        for i in range(h):  # separate per-head matmuls: no copy of a [.., 3H, dk] tensor into pieces
            q = project(mha._query_dense, i, scale=1.0 / float(dk) ** 0.5)
            k, v = project(mha._key_dense, i), project(mha._value_dense, i)
            attn = tf.nn.softmax(tf.matmul(q, k, transpose_b=True) + key_bias, axis=-1)  # [B*G, m, m]
            heads.append(tf.matmul(tf.matmul(pool, attn), v)[:, 0, :])  # [B*G, dk]
        pooled = tf.concat(heads, axis=-1) if h > 1 else heads[0]  # [B*G, H dk]
        out = tf.matmul(pooled, tf.reshape(mha._output_dense.kernel, [h * dk, self.output_dim]))
        out += mha._output_dense.bias * tf.minimum(count[:, 0], 1.0)  # no bias for an empty group
        return tf.reshape(out, [b, g, self.output_dim])

    def get_config(self):
        return {**super().get_config(), "num_heads": self.num_heads, "key_dim": self.key_dim,
                "output_dim": self.output_dim}
