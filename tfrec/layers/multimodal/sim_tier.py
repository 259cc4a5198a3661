"""SimTier: a histogram of target-behavior similarities as features (MUSE, arXiv 2512.07216)."""
import tensorflow as tf

from tfrec.registry import register


@register
class SimTier(tf.keras.layers.Layer):
    """``f_j = log(1 + n_j) · w_j``, ``n_j = #{i valid : tier(s_i) = j}`` (MUSE's SimTier).

    The cosine similarities ``s_i`` of a target to a user's behaviors are counted in
    ``num_bins`` tiers, ``tier(s) = ceil(s · m) + m`` with ``m = (num_bins - 2) / 2`` (MUSE: 22
    tiers, ``m = 10``: tier 0 holds ``s = -1``, tier 10 ``(-0.1, 0]``, tier 20 ``(0.9, 1]``; a
    similarity on a tier edge belongs to the lower tier). Each tier's count is log-compressed and
    scaled by a learned weight ``w_j`` (``dim`` values per tier; MUSE: one, initialised U(0, 1)).

    Differences to MUSE's code (``SimTierLevel``): invalid behaviors (padding, ``mask`` 0) are never
    counted (theirs count padding, cosine 0, in tier 10); similarities are clipped to ``[-1, 1]``
    first, so round-off on an identical item (``1 + 1e-7``) stays in tier ``num_bins - 2`` instead
    of spilling into the last tier, which therefore stays empty (kept for MUSE's layout of 22).

    Args:
      num_bins: the tiers, even and >= 4. Default 22 (MUSE).
      dim: learned values per tier. Default 1 (MUSE).

    Input: dict with ``similarity`` float ``[..., K]`` and ``mask`` bool/float ``[..., K]``.
    Output shape: ``[..., num_bins * dim]``.
    """

    def __init__(self, num_bins: int = 22, dim: int = 1, **kwargs):
        super().__init__(**kwargs)
        if num_bins < 4 or num_bins % 2 or dim < 1:
            raise ValueError(f"SimTier needs an even num_bins >= 4 and dim >= 1. Received: num_bins={num_bins}, "
                             f"dim={dim}")
        self.num_bins = int(num_bins)
        self.dim = int(dim)

    @property
    def output_dim(self) -> int:
        return self.num_bins * self.dim

    def build(self, input_shape):
        self.tier_weights = self.add_weight(
            name="tier_weights", shape=[self.num_bins, self.dim],
            initializer=tf.keras.initializers.RandomUniform(0.0, 1.0))
        super().build(input_shape)

    def tiers(self, similarity) -> tf.Tensor:
        """int32 tier ids ``[..., K]`` in ``[0, num_bins - 2]``."""
        m = float((self.num_bins - 2) // 2)
        s = tf.clip_by_value(tf.cast(similarity, tf.float32), -1.0, 1.0)
        return tf.cast(tf.math.ceil(s * m) + m, tf.int32)

    def counts(self, similarity, mask) -> tf.Tensor:
        """``n_j``: valid behaviors per tier, float32 ``[..., num_bins]``."""
        valid = tf.cast(mask, tf.bool) & tf.math.is_finite(tf.cast(similarity, tf.float32))
        one_hot = tf.one_hot(self.tiers(tf.where(valid, similarity, tf.zeros_like(similarity))), self.num_bins)
        return tf.reduce_sum(one_hot * tf.cast(valid, tf.float32)[..., None], axis=-2)  # [..., K, n] -> [..., n]

    def call(self, inputs):
        counts = self.counts(inputs["similarity"], inputs["mask"])
        features = tf.math.log1p(counts)[..., None] * self.tier_weights  # [..., n, dim]
        return tf.reshape(features, tf.concat([tf.shape(counts)[:-1], [self.output_dim]], 0))

    def get_config(self):
        return {**super().get_config(), "num_bins": self.num_bins, "dim": self.dim}
