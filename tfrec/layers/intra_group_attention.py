"""IntraGroupAttention: multi-head self-attention inside each group + masked mean (DMGIN eqs. 2-4)."""
import tensorflow as tf

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
        self.attention = tf.keras.layers.MultiHeadAttention(
            num_heads=self.num_heads, key_dim=self.key_dim, output_shape=self.output_dim, name="mhsa")
        super().build(input_shape)

    def call(self, inputs):
        x, mask = inputs["behaviors"], tf.cast(inputs["mask"], tf.bool)
        shape = tf.shape(x)
        b, g, m = shape[0], shape[1], shape[2]
        flat = tf.reshape(x, [b * g, m, x.shape[-1]])  # [B, G, m, D] -> [B*G, m, D]
        flat_mask = tf.reshape(mask, [b * g, m])
        attn_mask = flat_mask[:, None, :] & flat_mask[:, :, None]
        out = self.attention(flat, flat, attention_mask=attn_mask)  # [B*G, m, out]
        out = masked_mean(out, flat_mask, axis=1)  # [B*G, out]
        return tf.reshape(out, [b, g, self.output_dim])

    def get_config(self):
        return {**super().get_config(), "num_heads": self.num_heads, "key_dim": self.key_dim,
                "output_dim": self.output_dim}
