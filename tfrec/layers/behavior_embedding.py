"""BehaviorEmbedding: b_j = [E_time(bucket(t_req - t_j)); E_type(a_j)] (DESIGN.md, DMGIN behaviors)."""
from typing import Sequence

import tensorflow as tf

from tfrec.layers.id_embedding import IdEmbedding
from tfrec.data.spec import SECONDS_PER_DAY
from tfrec.registry import register


@register
class BehaviorEmbedding(tf.keras.layers.Layer):
    """Embeds one behavior from its type and its age at request time (DMGIN, intra-group
    behavior representation; DESIGN.md: ``b_j = [E_time(bucket(t_req - t_j)); E_loc(l_j);
    E_type(a_j)]``; the location and any other declared behavior feature are embedded by
    ``FeatureEmbedding`` and concatenated to this output by the model).

    Args:
      n_behavior_types: fine-grained behavior types.
      dim: size of each of the two embeddings.
      time_bucket_days: increasing bucket boundaries (days) of the behavior age.

    Input: dict with ``behavior_type`` int ``[...]`` and ``age_seconds`` float32 ``[...]``
      (``t_req - t_j``; negative ages fall in the first bucket).
    Output shape: ``[..., 2 * dim]``.
    """

    def __init__(self, n_behavior_types: int, dim: int, time_bucket_days: Sequence[float], **kwargs):
        super().__init__(**kwargs)
        bounds = [float(b) for b in time_bucket_days]
        if any(b2 <= b1 for b1, b2 in zip(bounds, bounds[1:])):
            raise ValueError(f"`time_bucket_days` must be increasing. Received: {bounds}")
        self.n_behavior_types = int(n_behavior_types)
        self.dim = int(dim)
        self.time_bucket_days = tuple(bounds)

    def build(self, input_shape):
        self.type_embedding = IdEmbedding(self.n_behavior_types, self.dim, name="type_embedding")
        self.time_embedding = IdEmbedding(len(self.time_bucket_days) + 1, self.dim, name="time_embedding")
        super().build(input_shape)

    def call(self, inputs):
        age_days = tf.cast(inputs["age_seconds"], tf.float32) / SECONDS_PER_DAY
        bucket = tf.raw_ops.Bucketize(input=age_days, boundaries=list(self.time_bucket_days))
        return tf.concat([self.time_embedding(bucket), self.type_embedding(inputs["behavior_type"])], axis=-1)

    def get_config(self):
        return {**super().get_config(), "n_behavior_types": self.n_behavior_types, "dim": self.dim,
                "time_bucket_days": list(self.time_bucket_days)}
