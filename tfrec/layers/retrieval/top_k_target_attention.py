"""TopKTargetAttention: TWIN's multi-head target attention whose own scores pick the attended behaviors."""
import tensorflow as tf

from tfrec.layers.retrieval.top_k_behaviors import TopKBehaviors
from tfrec.registry import register


@register
class TopKTargetAttention(tf.keras.layers.Layer):
    """TWIN's consistency-preserved GSU and its ESU in one scorer (TWIN, Chang et al., KDD 2023, sec. 3.3).

    Per head h and candidate t, over the whole behavior window (N behaviors):
      ``l^h_i = (W^h_q q_t)·(W^h_k k_i) / sqrt(d_h) + s_i``   (TWIN eq. 6's first term; ``s`` = the
      optional ``score_bias``, e.g. TWIN-V2's cluster-size term ``ln n_i``, which then also decides
      what is retrieved),
      ``R^h_t`` = the K behaviors with the largest ``l^h_i`` (CP-GSU: each head retrieves its own K,
      with the very projections the ESU attends with, so retrieval and attention agree),
      ``alpha^h_i = softmax_{i in R^h_t}(l^h_i + b_i)``  (``b`` = the optional per-behavior
      ``bias`` added after retrieval only: it re-weights the retrieved behaviors but never decides
      what is retrieved; TWIN's own cross-feature term goes in ``score_bias``, see ``TWIN``),
      ``u^h = sum_{i in R^h_t} alpha^h_i W^h_v v_i``, ``u = Concat_h u^h`` (eq. 7).

    Keys are the behaviors' inherent features (cacheable, candidate-independent); values may also
    carry cross features. Padding (``mask`` 0) scores -inf and is never retrieved
    (``TopKBehaviors``: ties to the more recent behavior, fewer than K valid behaviors leave masked
    slots); a candidate with no valid behavior gets ``u^h = 0``. Stock ops only.

    Args:
      num_heads: H.
      key_dim: d_h, the query / key size per head.
      output_dim: output size, split evenly over the heads.
      k: K, behaviors retrieved per head and candidate.

    Input: dict with ``query`` ``[B, C, Dq]``, ``keys`` ``[B, N, Dk]``, ``values`` ``[B, N, Dv]``,
      ``mask`` ``[B, N]``; optionally ``score_bias`` and ``bias``, each ``[B, N]`` (per behavior) or
      ``[B, C, N]`` (per candidate and behavior).
    Output: dict with ``output`` ``[B, C, output_dim]``, ``positions`` int32 ``[B, C, H, K]`` (the
      retrieved behaviors, best first) and ``mask`` float32 ``[B, C, H, K]``.
    """

    def __init__(self, num_heads: int, key_dim: int, output_dim: int, k: int, **kwargs):
        super().__init__(**kwargs)
        if min(num_heads, key_dim, output_dim, k) < 1 or output_dim % num_heads:
            raise ValueError(f"TopKTargetAttention needs positive sizes and output_dim divisible by num_heads. "
                             f"Received: num_heads={num_heads}, key_dim={key_dim}, output_dim={output_dim}, k={k}")
        self.num_heads, self.key_dim, self.output_dim, self.k = int(num_heads), int(key_dim), int(output_dim), int(k)
        self.w_q = tf.keras.layers.Dense(self.num_heads * self.key_dim, use_bias=False, name="w_q")
        self.w_k = tf.keras.layers.Dense(self.num_heads * self.key_dim, use_bias=False, name="w_k")
        self.w_v = tf.keras.layers.Dense(self.output_dim, use_bias=False, name="w_v")
        self.top_k = TopKBehaviors(self.k, name="cp_gsu")

    @staticmethod
    def _per_candidate(x, c):
        """``[B, N]`` or ``[B, C, N]`` -> ``[B, C, N]`` float32."""
        x = tf.cast(x, tf.float32)
        if x.shape.rank == 2:
            x = x[:, None, :]
        shape = tf.shape(x)
        return tf.broadcast_to(x, [shape[0], c, shape[2]])

    def logits(self, query, keys) -> tf.Tensor:
        """``l^h_i`` ``[B, C, H, N]`` without biases."""
        h, dh = self.num_heads, self.key_dim
        q = self.w_q(query)  # [B, C, H*dh]
        k = self.w_k(keys)  # [B, N, H*dh]
        q = tf.reshape(q, tf.concat([tf.shape(q)[:2], [h, dh]], 0))
        k = tf.reshape(k, tf.concat([tf.shape(k)[:2], [h, dh]], 0))
        return tf.einsum("bchd,bnhd->bchn", q, k) / tf.sqrt(float(dh))

    def call(self, inputs):
        h = self.num_heads
        logits = self.logits(inputs["query"], inputs["keys"])  # [B, C, H, N]
        shape = tf.shape(logits)
        b, c, n = shape[0], shape[1], shape[3]
        if "score_bias" in inputs:
            logits += self._per_candidate(inputs["score_bias"], c)[:, :, None, :]
        mask = tf.cast(inputs["mask"], tf.bool)
        mask = tf.broadcast_to(mask[:, None, None, :] if mask.shape.rank == 2 else mask[:, :, None, :], tf.shape(logits))
        picked = self.top_k({"scores": tf.reshape(logits, [b, c * h, n]), "mask": tf.reshape(mask, [b, c * h, n])})
        positions = tf.reshape(picked["positions"], [b, c, h, self.k])
        valid = tf.reshape(picked["mask"], [b, c, h, self.k])
        top = tf.gather(logits, positions, batch_dims=3)  # [B, C, H, K]
        if "bias" in inputs:  # gathered per (candidate, head) from [B, C, N]: no [B, C, H, N] copy
            bias = self._per_candidate(inputs["bias"], c)
            top += tf.reshape(tf.gather(bias, tf.reshape(positions, [b, c, h * self.k]), batch_dims=2),
                              [b, c, h, self.k])
        top = tf.where(valid > 0, top, tf.constant(-1e9, top.dtype))
        alpha = tf.nn.softmax(top, axis=-1) * valid  # all-invalid -> 0
        v = self.w_v(inputs["values"])  # [B, N, out]
        v = tf.reshape(v, [b, n, h, self.output_dim // h])
        v = tf.transpose(v, [0, 2, 1, 3])  # [B, H, N, dv]
        # gather each head's retrieved values: [B, C, H, K, dv]
        idx = tf.transpose(positions, [0, 2, 1, 3])  # [B, H, C, K]
        picked_v = tf.gather(v, tf.reshape(idx, [b, h, c * self.k]), batch_dims=2)  # [B, H, C*K, dv]
        picked_v = tf.reshape(picked_v, [b, h, c, self.k, self.output_dim // h])
        out = tf.einsum("bchk,bhckd->bchd", alpha, picked_v)
        return {"output": tf.reshape(out, [b, c, self.output_dim]), "positions": positions, "mask": valid}

    def get_config(self):
        return {**super().get_config(), "num_heads": self.num_heads, "key_dim": self.key_dim,
                "output_dim": self.output_dim, "k": self.k}
