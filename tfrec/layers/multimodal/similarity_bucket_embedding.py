"""SimilarityBucketEmbedding: target-aware similarity buckets (SIREN eqs. 4-6)."""
import numpy as np
import tensorflow as tf

from tfrec.layers.id_embedding import IdEmbedding
from tfrec.registry import register


@register
class SimilarityBucketEmbedding(tf.keras.layers.Layer):
    """``e^Sim_{i,t} = Emb^Sim(q_{i,t})``, ``q = floor((s - s_min) / (s_max - s_min) * B)`` (SIREN eqs. 5-6).

    Values below ``s_min`` fall into bucket 0 and values at or above ``s_max`` into bucket B-1
    (clipped, as the paper). ``[s_min, s_max]`` is a non-trainable weight, so the range estimated
    from the training data (``set_range``; SIREN's ``adapt``) lives in checkpoints and in the
    SavedModel; B is a constructor argument. Before ``set_range`` the range is ``[-1, 1]`` (all
    cosines).

    The layer also holds ``e^Sim_t``, the learnable embedding eq. 11 concatenates to the target's
    representation (``target_embedding``): one vector shared by every target (ours: the paper says
    "a learnable embedding associated with the target item"; the target's similarity to itself is
    1 for every item, so a per-item table would add nothing the id embedding does not have).

    Args:
      num_buckets: B.
      dim: the embedding size.

    Input shape: float ``[...]`` cosine similarities.
    Output shape: ``[..., dim]``.
    """

    def __init__(self, num_buckets: int, dim: int, **kwargs):
        super().__init__(**kwargs)
        if num_buckets < 1 or dim < 1:
            raise ValueError(f"num_buckets and dim must be positive. Received: num_buckets={num_buckets}, dim={dim}")
        self.num_buckets = int(num_buckets)
        self.dim = int(dim)
        self.table = IdEmbedding(self.num_buckets, self.dim, name="bucket")

    def build(self, input_shape):
        self.similarity_range = self.add_weight(
            name="similarity_range", shape=[2], trainable=False,
            initializer=tf.keras.initializers.Constant([-1.0, 1.0]))
        self.target_embedding = self.add_weight(
            name="target_embedding", shape=[self.dim], initializer=tf.keras.initializers.RandomUniform(-0.05, 0.05))
        super().build(input_shape)

    def set_range(self, s_min: float, s_max: float) -> None:
        """Sets ``[s_min, s_max]`` (e.g. quantiles of the training data's similarities)."""
        if not (np.isfinite(s_min) and np.isfinite(s_max) and s_max > s_min):
            raise ValueError(f"the similarity range needs finite s_min < s_max. Received: s_min={s_min}, s_max={s_max}")
        if not self.built:
            self.build(None)
        self.similarity_range.assign([float(s_min), float(s_max)])

    def bucketize(self, similarity):
        """int32 bucket ids ``[...]`` in ``[0, B)`` (eq. 5, clipped)."""
        if not self.built:
            self.build(None)
        s_min, s_max = self.similarity_range[0], self.similarity_range[1]
        scaled = (tf.cast(similarity, tf.float32) - s_min) / (s_max - s_min) * float(self.num_buckets)
        # NaN (never produced by a masked cosine) would cast to an arbitrary int: send it to bucket 0
        scaled = tf.where(tf.math.is_nan(scaled), tf.zeros_like(scaled), scaled)
        return tf.cast(tf.clip_by_value(tf.floor(scaled), 0.0, float(self.num_buckets - 1)), tf.int32)

    def call(self, similarity):
        return self.table(self.bucketize(similarity))

    def get_config(self):
        return {**super().get_config(), "num_buckets": self.num_buckets, "dim": self.dim}
