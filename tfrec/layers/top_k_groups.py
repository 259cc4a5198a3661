"""TopKGroups: keep the k groups with the most recent behavior, ordered oldest -> newest (DMGIN eq. 6)."""
import tensorflow as tf

from tfrec.registry import register


@register
class TopKGroups(tf.keras.layers.Layer):
    """Top-k index search by maximum timestamp (DMGIN eq. 6).

    Selects the ``k`` valid groups with the largest max timestamp and orders them oldest ->
    newest, empty slots first (left padding), so the newest group is always at position k-1.

    Args:
      k: groups kept.

    Input: dict with ``max_timestamp`` int64 ``[B, G]``, ``mask`` bool ``[B, G]`` and
      ``values``: a dict of ``[B, G, ...]`` tensors.
    Output: dict with each value at ``[B, k, ...]``, ``max_timestamp`` ``[B, k]`` and
      ``mask`` bool ``[B, k]``. Requires ``k <= G``.
    """

    def __init__(self, k: int, **kwargs):
        super().__init__(**kwargs)
        if k <= 0:
            raise ValueError(f"`k` must be positive. Received: k={k}")
        self.k = int(k)

    def call(self, inputs):
        mask = tf.cast(inputs["mask"], tf.bool)
        if mask.shape[-1] is not None and mask.shape[-1] < self.k:
            raise ValueError(f"TopKGroups needs at least k={self.k} group slots. Received: {mask.shape[-1]}")
        key = tf.where(mask, tf.cast(inputs["max_timestamp"], tf.int64), tf.constant(-1, tf.int64))
        top, idx = tf.math.top_k(key, k=self.k, sorted=True)  # newest first
        top, idx = tf.reverse(top, axis=[1]), tf.reverse(idx, axis=[1])  # oldest -> newest
        out = {name: tf.gather(v, idx, batch_dims=1) for name, v in inputs["values"].items()}
        out["max_timestamp"] = top
        out["mask"] = top >= 0
        return out

    def get_config(self):
        return {**super().get_config(), "k": self.k}
