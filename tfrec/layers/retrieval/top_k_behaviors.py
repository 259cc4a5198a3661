"""TopKBehaviors: the General Search Unit's selection of the K best-scored behaviors per candidate."""
import tensorflow as tf

from tfrec.registry import register


@register
class TopKBehaviors(tf.keras.layers.Layer):
    """Top-K retrieval over a user's behaviors, per candidate (SIREN eqs. 7-8; SIM's GSU).

    Scores come from the model's search rule: cosine of content vectors (SIREN soft GSU, eq. 7),
    or the behavior's position among those sharing the target's level-1 Semantic ID (hard GSU,
    eq. 8, the K most recent kept), a category match (SIM hard), ... This layer only selects.

    Behaviors outside ``mask`` get the score -inf before ``top_k``, so padding never beats a real
    behavior with a negative score (public SIM code multiplies the scores by the mask, which lets a
    padded 0 outrank them). Fewer than K eligible behaviors: the remaining slots are marked invalid in
    the output mask (their positions point at some behavior and must not be read unmasked). Ties go
    to the more recent behavior (the larger position; histories are stored oldest first). Results
    are ordered best first. Scores of eligible behaviors must be finite (a -inf score ties with
    the padding, a NaN one is never selected): express "no match" through ``mask``. Stock ops only (``top_k``, ``gather``), so it runs inside SavedModels.

    Args:
      k: K, behaviors kept per candidate.

    Input: dict with ``scores`` float ``[B, C, L]`` and ``mask`` bool/float ``[B, C, L]`` (or
      ``[B, 1, L]``, broadcast over the candidates).
    Output: dict with ``positions`` int32 ``[B, C, K]`` (indices into L), ``mask`` float32
      ``[B, C, K]`` and ``scores`` ``[B, C, K]`` (0 where invalid).
    """

    def __init__(self, k: int, **kwargs):
        super().__init__(**kwargs)
        if k < 1:
            raise ValueError(f"`k` must be positive. Received: k={k}")
        self.k = int(k)

    def call(self, inputs):
        scores = tf.cast(inputs["scores"], tf.float32)
        mask = tf.cast(inputs["mask"], tf.bool)
        mask = tf.broadcast_to(mask, tf.shape(scores))
        length = tf.shape(scores)[-1]
        pad = tf.maximum(self.k - length, 0)  # fewer behaviors than K: pad with ineligible slots
        neg_inf = tf.constant(float("-inf"), tf.float32)
        keyed = tf.pad(tf.where(mask, scores, neg_inf), [[0, 0], [0, 0], [0, pad]], constant_values=float("-inf"))
        eligible = tf.pad(mask, [[0, 0], [0, 0], [0, pad]])
        # top_k breaks ties toward the lower index: reverse so that the more recent behavior wins
        top, idx = tf.math.top_k(tf.reverse(keyed, axis=[-1]), k=self.k, sorted=True)
        positions = tf.shape(keyed)[-1] - 1 - idx  # [B, C, K] into the padded axis
        valid = tf.gather(eligible, positions, batch_dims=2)
        positions = tf.where(valid, positions, tf.zeros_like(positions))
        valid_f = tf.cast(valid, tf.float32)
        return {"positions": positions, "mask": valid_f, "scores": tf.where(valid, top, tf.zeros_like(top))}

    def get_config(self):
        return {**super().get_config(), "k": self.k}
