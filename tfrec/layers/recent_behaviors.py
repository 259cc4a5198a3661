"""RecentBehaviors: the S most recent valid behaviors of a padded sequence."""
import tensorflow as tf

from tfrec.data.spec import HIST_LENGTH
from tfrec.registry import register


@register
class RecentBehaviors(tf.keras.layers.Layer):
    """Gathers the last ``size`` valid behaviors (oldest -> newest) of right-padded sequences.

    Histories shorter than ``size`` are left-padded; the mask marks real behaviors.

    Args:
      size: S, the number of behaviors kept.

    Input: dict with ``length`` ``[B]`` and ``values``: a dict of ``[B, L, ...]`` tensors.
    Output: dict with the same ``values`` keys at ``[B, S, ...]`` (zeros where padded) and
      ``mask`` float32 ``[B, S]``.
    """

    def __init__(self, size: int, **kwargs):
        super().__init__(**kwargs)
        if size <= 0:
            raise ValueError(f"`size` must be positive. Received: size={size}")
        self.size = int(size)

    def call(self, inputs):
        length = tf.cast(inputs["length"], tf.int32)
        positions = length[:, None] - self.size + tf.range(self.size)[None, :]  # [B, S]
        valid = positions >= 0
        out = {}
        for name, value in inputs["values"].items():
            seq_len = tf.shape(value)[1]
            idx = tf.clip_by_value(positions, 0, tf.maximum(seq_len - 1, 0))
            gathered = tf.gather(value, idx, batch_dims=1)
            mask = tf.reshape(valid, tf.concat([tf.shape(valid), tf.ones([tf.rank(gathered) - 2], tf.int32)], 0))
            out[name] = tf.where(mask, gathered, tf.zeros_like(gathered))
        out["mask"] = tf.cast(valid, tf.float32)
        return out

    def get_config(self):
        return {**super().get_config(), "size": self.size}


def recent_history(hist, size: int):
    """The ``size`` most recent behaviors of a padded history, in the same layout (oldest first,
    right-padded with 0, ``hist_length`` capped at ``size``; at least one column wide).

    ``RecentBehaviors(size)`` gives the same output on the cut history as on the whole one, so an
    input pipeline can hand a short-term branch ``size`` columns instead of L.

    Args:
      hist: dict of ``hist_*`` ``[B, L]`` tensors and ``hist_length`` ``[B]``.
      size: S >= 0.

    Returns:
      The same keys, ``[B, max(S, 1)]``; ``hist_length`` = ``min(hist_length, S)`` int32.
    """
    length = tf.cast(hist[HIST_LENGTH], tf.int32)
    kept = tf.minimum(length, size)
    width = max(int(size), 1)
    positions = (length - kept)[:, None] + tf.range(width)[None, :]  # [B, S]
    valid = tf.range(width)[None, :] < kept[:, None]
    out = {}
    for name, value in hist.items():
        if name == HIST_LENGTH:
            continue
        idx = tf.clip_by_value(positions, 0, tf.maximum(tf.shape(value)[1] - 1, 0))
        gathered = tf.gather(value, idx, batch_dims=1)
        out[name] = tf.where(valid, gathered, tf.zeros_like(gathered))
    out[HIST_LENGTH] = kept
    return out
