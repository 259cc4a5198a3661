"""MultiHeadTargetAttention: multi-head attention of a candidate over its retrieved behaviors (ESU)."""
import tensorflow as tf

from tfrec.registry import register


@register
class MultiHeadTargetAttention(tf.keras.layers.Layer):
    """The Exact Search Unit's target attention (SIREN eqs. 10-11; the ESU of SIM, TWIN, MUSE, MISS).

    Per head h: ``alpha^h_i = softmax_i(l^h_i + bias_i)`` over the valid behaviors with
    ``l^h_i = (W^h_q q)^T (W^h_k k_i) / sqrt(d_h)``, and ``u = Concat_h(sum_i alpha^h_i W^h_v v_i)``.
    Keys and values are per candidate (each candidate attends to its own retrieved behaviors).
    SIREN eq. 11 writes ``u = sum_i alpha_i h_i`` with one attention; with several heads we give
    each head its value projection (standard multi-head attention), output size ``output_dim``
    (SIREN: the size of ``h_t``, so that ``u ⊙ h_t`` (eq. 12) is defined). ``bias`` (optional,
    ``[B, C, K]``) is added to every head's logits (e.g. TWIN's behavior-cross features).

    ``semantic_aware=True`` is MUSE's semantic-aware target attention (SA-TA, MUSE arXiv 2512.07216; their
    ``MultiHeadAttV2`` with ``attn_score_cross``): the behavior's target similarity ``s_i`` (content
    cosine) enters every head's logit as
    ``l'^h_i = b^h_1 l^h_i + b^h_2 s_i / a^h + b^h_3 l^h_i s_i / a^h``
    with learned per-head scalars: the temperature ``a^h`` (``similarity_temperature``, initialised
    0.1 as MUSE's code) and the mix ``b^h_1..3`` (``similarity_mix``, initialised 1). Differences to
    MUSE's code: ``l`` here is the scaled dot product of bias-free linear projections (theirs: the
    unscaled dot of SiLU(linear + bias) projections), and invalid behaviors are masked after the
    mix (their ESU is called without a mask, so padding, cosine 0, is attended).

    A candidate with no valid behavior gets ``u = 0``; invalid behaviors get logit -inf (exactly
    zero weight).

    Args:
      num_heads: H.
      key_dim: d_h, the query / key size per head.
      output_dim: the output size (split evenly over the heads: must be divisible by H).
      semantic_aware: bool, default False. MUSE's SA-TA: takes ``similarity`` and learns ``a``, ``b``.

    Input: dict with ``query`` ``[B, C, Dq]``, ``keys`` ``[B, C, K, Dk]``, ``values``
      ``[B, C, K, Dv]``, ``mask`` ``[B, C, K]``, optionally ``bias`` ``[B, C, K]``, and
      ``similarity`` ``[B, C, K]`` (required with ``semantic_aware``, rejected without).
    Output shape: ``[B, C, output_dim]``.
    """

    def __init__(self, num_heads: int, key_dim: int, output_dim: int, semantic_aware: bool = False, **kwargs):
        super().__init__(**kwargs)
        if num_heads < 1 or key_dim < 1 or output_dim < 1 or output_dim % num_heads:
            raise ValueError(f"MultiHeadTargetAttention needs positive sizes and output_dim divisible by num_heads. "
                             f"Received: num_heads={num_heads}, key_dim={key_dim}, output_dim={output_dim}")
        self.num_heads = int(num_heads)
        self.key_dim = int(key_dim)
        self.output_dim = int(output_dim)
        self.semantic_aware = bool(semantic_aware)
        self.w_q = tf.keras.layers.Dense(self.num_heads * self.key_dim, use_bias=False, name="w_q")
        self.w_k = tf.keras.layers.Dense(self.num_heads * self.key_dim, use_bias=False, name="w_k")
        self.w_v = tf.keras.layers.Dense(self.output_dim, use_bias=False, name="w_v")

    def build(self, input_shape):
        if self.semantic_aware:
            self.similarity_temperature = self.add_weight(
                name="similarity_temperature", shape=[self.num_heads],
                initializer=tf.keras.initializers.Constant(0.1))
            self.similarity_mix = self.add_weight(
                name="similarity_mix", shape=[3, self.num_heads], initializer=tf.keras.initializers.Ones())
        super().build(input_shape)

    def logits(self, query, keys) -> tf.Tensor:
        """Per-head logits ``l^h_i`` ``[B, C, H, K]`` of ``query`` ``[B, C, Dq]`` over ``keys`` ``[B, C, K, Dk]``."""
        h, dh = self.num_heads, self.key_dim
        q = self.w_q(query)  # [B, C, H*dh]
        k = self.w_k(keys)  # [B, C, K, H*dh]
        shape = tf.shape(k)
        q = tf.reshape(q, [shape[0], shape[1], h, dh])
        k = tf.reshape(k, [shape[0], shape[1], shape[2], h, dh])
        return tf.einsum("bchd,bckhd->bchk", q, k) / tf.sqrt(float(dh))

    def relevance(self, query, keys) -> tf.Tensor:
        """The head-averaged logit of every (candidate, behavior) pair, ``[B, C, L]``, for a query
        ``[B, C, Dq]`` against one shared key set ``[B, L, Dk]``: a GSU scored with the ESU's own
        projections (TWIN's consistency; MISS's ID GSU). Unmasked: the caller masks."""
        with tf.name_scope(self.name):  # called outside __call__: keep the weights under this layer's name
            q = self.w_q(query)  # [B, C, H*dh]
            k = self.w_k(keys)  # [B, L, H*dh]
        return tf.einsum("bcd,bld->bcl", q, k) / (tf.sqrt(float(self.key_dim)) * float(self.num_heads))

    def call(self, inputs):
        if self.semantic_aware != ("similarity" in inputs):
            raise ValueError(f"MultiHeadTargetAttention(semantic_aware={self.semantic_aware}) "
                             f"{'needs a' if self.semantic_aware else 'takes no'} `similarity` input. "
                             f"Received: {sorted(inputs)}")
        h = self.num_heads
        logits = self.logits(inputs["query"], inputs["keys"])  # [B, C, H, K]
        v = self.w_v(inputs["values"])  # [B, C, K, out]
        shape = tf.shape(v)
        v = tf.reshape(v, [shape[0], shape[1], shape[2], h, self.output_dim // h])
        if self.semantic_aware:  # MUSE's SA-TA: l' = b1 l + b2 s/a + b3 l s/a
            s = tf.cast(inputs["similarity"], logits.dtype)[:, :, None, :] / self.similarity_temperature[:, None]
            b1, b2, b3 = (self.similarity_mix[j][:, None] for j in range(3))  # [H, 1] each
            logits = b1 * logits + b2 * s + b3 * logits * s
        if "bias" in inputs:
            logits += tf.cast(inputs["bias"], logits.dtype)[:, :, None, :]
        mask = tf.cast(inputs["mask"], tf.bool)[:, :, None, :]
        logits = tf.where(mask, logits, tf.constant(-1e9, logits.dtype))
        alpha = tf.nn.softmax(logits, axis=-1) * tf.cast(mask, logits.dtype)  # all-invalid row -> 0
        out = tf.einsum("bchk,bckhd->bchd", alpha, v)
        return tf.reshape(out, [shape[0], shape[1], self.output_dim])

    def get_config(self):
        return {**super().get_config(), "num_heads": self.num_heads, "key_dim": self.key_dim,
                "output_dim": self.output_dim, "semantic_aware": self.semantic_aware}
