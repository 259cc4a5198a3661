"""GroupStatistics: per-group interest statistics over the whole history (DMGIN eq. 1)."""
import tensorflow as tf

from tfrec.data.spec import SECONDS_PER_DAY
from tfrec.registry import register


@register
class GroupStatistics(tf.keras.layers.Layer):
    """Interest statistics of each kept group, embedded by a small MLP (DMGIN eq. 1).

    Over *all* behaviors of the group in the history (not only the m kept for attention):
    ``log1p`` of the count per coarse category (strong / weak / negative / payment, ...), of the
    total count, of the mean and max duration, of the mean payment amount (over behaviors with
    amount > 0) and of the days since the group's most recent behavior. Then
    ``s_i = Dense(dim, relu)(stats_i)``.

    Args:
      max_groups: G, group slots (behaviors with slot == G are ignored).
      n_categories: coarse behavior categories.
      dim: output size.

    The statistics have no parameter: ``raw_statistics`` computes them alone (DMGIN's input
    pipeline does, once per request), and ``call`` accepts them precomputed as ``{"raw": ...}``.

    Input: dict with ``slot`` int32 ``[B, L]`` (from BehaviorGrouping), ``category`` int
      ``[B, L]``, ``duration`` ``[B, L]``, ``amount`` ``[B, L]``, ``age_seconds`` ``[B, L]``; or
      with ``raw`` ``[B, G, n_categories + 5]`` only.
    Output: dict with ``raw`` ``[B, G, n_categories + 5]`` (the statistics) and ``embedding``
      ``[B, G, dim]``.
    """

    def __init__(self, max_groups: int, n_categories: int, dim: int, **kwargs):
        super().__init__(**kwargs)
        self.max_groups = int(max_groups)
        self.n_categories = int(n_categories)
        self.dim = int(dim)

    def build(self, input_shape):
        self.project = tf.keras.layers.Dense(self.dim, activation="relu", name="project")
        super().build(input_shape)

    def call(self, inputs):
        raw = inputs["raw"] if "raw" in inputs else self.raw_statistics(inputs)
        return {"raw": raw, "embedding": self.project(raw)}

    def raw_statistics(self, inputs):
        """The parameter-free statistics ``[B, G, n_categories + 5]`` of ``call``'s raw-behavior inputs."""
        slot = tf.cast(inputs["slot"], tf.int32)
        g = self.max_groups
        batch = tf.shape(slot)[0]
        n_seg = batch * (g + 1)
        seg = tf.range(batch)[:, None] * (g + 1) + slot  # [B, L]; slot G = ignored

        def seg_sum(x):  # [B, L, ...] -> [B, G, ...]
            s = tf.math.unsorted_segment_sum(x, seg, n_seg)
            return tf.reshape(s, tf.concat([[batch, g + 1], tf.shape(s)[1:]], 0))[:, :g]

        def seg_max(x):
            s = tf.math.unsorted_segment_max(x, seg, n_seg)
            return tf.reshape(s, [batch, g + 1])[:, :g]

        category = tf.one_hot(tf.cast(inputs["category"], tf.int32), self.n_categories)  # [B, L, C]
        counts = seg_sum(category)  # [B, G, C]
        total = tf.reduce_sum(counts, axis=-1)  # [B, G]
        safe_total = tf.maximum(total, 1.0)
        duration = tf.maximum(tf.cast(inputs["duration"], tf.float32), 0.0)
        amount = tf.maximum(tf.cast(inputs["amount"], tf.float32), 0.0)
        mean_duration = seg_sum(duration) / safe_total
        max_duration = tf.maximum(seg_max(duration), 0.0)  # empty segments give -inf
        n_paid = seg_sum(tf.cast(amount > 0, tf.float32))
        mean_amount = seg_sum(amount) / tf.maximum(n_paid, 1.0)
        age_days = tf.maximum(tf.cast(inputs["age_seconds"], tf.float32), 0.0) / SECONDS_PER_DAY
        recency = -seg_max(-age_days)  # min age = days since the most recent behavior
        recency = tf.where(total > 0, recency, 0.0)
        raw = tf.concat(
            [tf.math.log1p(counts)]
            + [tf.math.log1p(x)[..., None] for x in (total, mean_duration, max_duration, mean_amount, recency)],
            axis=-1)
        return raw

    def get_config(self):
        return {**super().get_config(), "max_groups": self.max_groups, "n_categories": self.n_categories,
                "dim": self.dim}
