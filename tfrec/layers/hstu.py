"""HSTU: stacked Hierarchical Sequential Transduction Units (Zhai et al. 2024; DMGIN eqs. 7-9)."""
from typing import Sequence

import tensorflow as tf

from tfrec.data.spec import SECONDS_PER_DAY
from tfrec.layers.mlp import dense_last_axis
from tfrec.registry import register


@register
class HSTU(tf.keras.layers.Layer):
    """The Temporal Group Evolution Transformer: ``num_layers`` stacked HSTU blocks.

    Per block (DMGIN eqs. 7-9 as reconstructed in DESIGN.md; input LayerNorm as in the HSTU
    reference implementation)::

      U, V, Q, K = split(SiLU(W1 LayerNorm(x) + b1))                        (7)
      AV = SiLU(Q K^T + rab(pos, dt)) V / n     (pointwise, no softmax)       (8)
      y  = x + W2 (LayerNorm(AV) * U) + b2                                    (9)

    ``rab`` is a learned per-head relative bias: one table over relative positions ``i - j``
    and one over buckets of ``|t_i - t_j|`` (days). Keys outside ``mask`` get zero weight and
    ``n`` is the number of valid keys of each row; padded outputs are zeroed.

    Args:
      num_layers: number of stacked blocks (paper: 1 -> 6, monotone gains).
      num_heads: heads per block.
      head_dim: size of Q/K/V/U per head.
      max_length: longest sequence (relative positions are clipped beyond it).
      time_bucket_days: increasing boundaries (days) of the relative-time buckets.
      causal: if True, position i attends only to j <= i.
      dropout: dropout on the attention output.
      identity_init: start each block's output projection ``W2`` at zero, so that every block starts as
        the identity (as ReZero / Fixup do) and its update grows in training. For small inputs: with
        Glorot ``W2`` the first update, ``W2 (LayerNorm(AV) * U)``, does not scale with the input, and
        drowns one of ~0.03 per element (DMQN's pooled codewords: 0.028 in, 0.228 out at two blocks).

    Input: dict with ``x`` ``[B, n, d]``, ``mask`` bool ``[B, n]``, ``timestamp`` int64 ``[B, n]``.
    Output shape: ``[B, n, d]``.
    """

    def __init__(self, num_layers: int, num_heads: int, head_dim: int, max_length: int,
                 time_bucket_days: Sequence[float], causal: bool = False, dropout: float = 0.0,
                 identity_init: bool = False, **kwargs):
        super().__init__(**kwargs)
        if num_layers < 1 or num_heads < 1 or head_dim < 1 or max_length < 1:
            raise ValueError(
                "num_layers, num_heads, head_dim and max_length must be positive. Received: "
                f"num_layers={num_layers}, num_heads={num_heads}, head_dim={head_dim}, max_length={max_length}")
        self.num_layers = int(num_layers)
        self.num_heads = int(num_heads)
        self.head_dim = int(head_dim)
        self.max_length = int(max_length)
        self.time_bucket_days = tuple(float(b) for b in time_bucket_days)
        self.causal = bool(causal)
        self.dropout = float(dropout)
        self.identity_init = bool(identity_init)

    def build(self, input_shape):
        d = int(input_shape["x"][-1])
        hd = self.num_heads * self.head_dim
        self.blocks = []
        for i in range(self.num_layers):
            self.blocks.append({
                "norm_in": tf.keras.layers.LayerNormalization(name=f"block{i}_norm_in"),
                "uvqk": tf.keras.layers.Dense(4 * hd, name=f"block{i}_uvqk"),
                "norm_av": tf.keras.layers.LayerNormalization(name=f"block{i}_norm_av"),
                "out": tf.keras.layers.Dense(d, kernel_initializer="zeros" if self.identity_init else "glorot_uniform",
                                             name=f"block{i}_out"),
                "drop": tf.keras.layers.Dropout(self.dropout),
                "pos_bias": self.add_weight(name=f"block{i}_pos_bias", shape=[2 * self.max_length - 1, self.num_heads],
                                            initializer="zeros"),
                "time_bias": self.add_weight(name=f"block{i}_time_bias",
                                             shape=[len(self.time_bucket_days) + 1, self.num_heads],
                                             initializer="zeros"),
            })
        super().build(input_shape)

    def call(self, inputs, training=None):
        x = inputs["x"]
        mask = tf.cast(inputs["mask"], x.dtype)  # [B, n]
        ts = tf.cast(inputs["timestamp"], tf.int64)
        n = tf.shape(x)[1]
        idx = tf.range(n)
        rel = tf.clip_by_value(idx[:, None] - idx[None, :], 1 - self.max_length, self.max_length - 1)
        rel = rel + self.max_length - 1  # [n, n]
        # Difference in int64, then float: epoch seconds (~1.7e9) are not exact in float32.
        dt_days = tf.cast(tf.abs(ts[:, :, None] - ts[:, None, :]), tf.float32) / SECONDS_PER_DAY
        time_bucket = tf.raw_ops.Bucketize(input=dt_days, boundaries=list(self.time_bucket_days))  # [B, n, n]
        pair_mask = mask[:, None, :] * tf.ones_like(mask)[:, :, None]  # [B, n(query), n(key)]
        if self.causal:
            pair_mask *= tf.linalg.band_part(tf.ones([n, n], x.dtype), -1, 0)[None]
        n_valid = tf.maximum(tf.reduce_sum(pair_mask, axis=-1, keepdims=True), 1.0)  # [B, n, 1]
        scale = pair_mask / n_valid  # [B, n, n]

        h = self.num_heads
        for blk in self.blocks:
            uvqk = tf.nn.silu(dense_last_axis(blk["uvqk"], blk["norm_in"](x)))
            u, v, q, k = tf.split(uvqk, 4, axis=-1)  # each [B, n, H*dh]
            # Heads unrolled (H is small): per-head [B, n, dh] slices and batched matmuls, no transposes.
            qs, ks, vs = (self._heads(t) for t in (q, k, v))
            av = []
            for i in range(h):
                rab = tf.gather(blk["pos_bias"][:, i], rel) + tf.gather(blk["time_bias"][:, i], time_bucket)  # [B, n, n]
                attn = tf.nn.silu(tf.matmul(qs[i], ks[i], transpose_b=True) + rab) * scale
                av.append(tf.matmul(attn, vs[i]))  # [B, n, dh]
            av = tf.concat(av, axis=-1) if h > 1 else av[0]  # [B, n, H*dh], head-major
            x = x + blk["drop"](dense_last_axis(blk["out"], blk["norm_av"](av) * u), training=training)
            x = x * mask[..., None]
        return x

    def _heads(self, t):
        """``[B, n, H*dh]`` -> H tensors ``[B, n, dh]``."""
        if self.num_heads == 1:
            return [t]
        b, n = tf.shape(t)[0], tf.shape(t)[1]
        return tf.unstack(tf.reshape(t, [b, n, self.num_heads, self.head_dim]), axis=2)

    def get_config(self):
        return {**super().get_config(), "num_layers": self.num_layers, "num_heads": self.num_heads,
                "head_dim": self.head_dim, "max_length": self.max_length,
                "time_bucket_days": list(self.time_bucket_days), "causal": self.causal, "dropout": self.dropout,
                "identity_init": self.identity_init}
