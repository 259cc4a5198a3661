"""FeatureEmbedding: one declared feature (``tfrec.data.schema``) -> a dense vector."""
from __future__ import annotations

import tensorflow as tf

from tfrec.data import schema as schema_lib
from tfrec.registry import register


@register
class FeatureEmbedding(tf.keras.layers.Layer):
    """Embeds one declared feature the same way wherever it appears (target, behaviors, user, context).

    By kind (``FeatureDef.kind``):

    * ``categorical``: table of ``vocab_size`` (or ``hash_buckets``) rows + one OOV row. With a
      vocabulary, any id outside ``[0, vocab_size)`` (an unknown category, the -1 of a missing
      value) takes the OOV row; with hashing, bucket = ``id mod hash_buckets`` (FloorMod, a stock
      op), and -1 (missing) takes the OOV row.
    * ``multi_categorical``: ``[..., max_len]`` ids padded with -1: the mean of the valid ids'
      rows (with a vocabulary every negative id is padding and ids >= vocab_size take the OOV row;
      hashed, only -1 is padding); an empty list embeds as zeros.
    * ``numeric``: the transform (``log1p(max(x, 0))`` or ``(x - mean) / std``; a non-finite
      result -> 0, i.e. a missing value reads as the mean under ``standardize``),
      then with ``boundaries`` a bucket embedding (``len(boundaries) + 1`` rows), else
      ``x * w + b`` (a 1 -> dim projection).
    * ``dense``: ``[..., dim_in]`` -> linear projection to ``dim`` (non-finite -> 0).

    Args:
      feature: the ``FeatureDef`` (or its ``to_dict()``).
      dim: the output size (the feature's ``embedding_dim`` wins when set).

    Input shape: ``[...]`` (categorical, numeric), ``[..., max_len]`` (multi_categorical) or
      ``[..., dim_in]`` (dense).
    Output shape: ``[..., dim]``.
    """

    def __init__(self, feature, dim: int, **kwargs):
        super().__init__(**kwargs)
        self.feature = schema_lib.feature_def(feature)
        if self.feature.needs_statistics:
            raise ValueError(f"feature {self.feature.name!r} is standardized but has no mean/std yet: measure them "
                             "(write-tfrecords records them in spec.json; FeatureSpec.with_statistics)")
        if dim <= 0:
            raise ValueError(f"dim must be positive. Received: dim={dim}")
        self.dim = int(self.feature.embedding_dim or dim)

    def build(self, input_shape):
        fd = self.feature
        init = tf.keras.initializers.RandomUniform(-0.05, 0.05)
        if fd.is_id:
            self.embeddings = self.add_weight(name="embeddings", shape=[fd.n_ids + 1, self.dim], initializer=init)
        elif fd.kind == "numeric" and fd.boundaries:
            self.embeddings = self.add_weight(name="embeddings", shape=[len(fd.boundaries) + 1, self.dim],
                                              initializer=init)
        else:
            fan_in = fd.dim if fd.kind == "dense" else 1
            self.kernel = self.add_weight(name="kernel", shape=[fan_in, self.dim],
                                          initializer=tf.keras.initializers.GlorotUniform())
            self.bias = self.add_weight(name="bias", shape=[self.dim], initializer="zeros")
        super().build(input_shape)

    def _ids(self, ids):
        """Row per id: in-vocabulary ids keep theirs, hashed ids their bucket, the rest the OOV row."""
        fd = self.feature
        ids = tf.cast(ids, tf.int64)
        oov = tf.cast(fd.n_ids, tf.int64)
        if fd.hash_buckets:
            return tf.where(ids == -1, oov, tf.math.floormod(ids, fd.hash_buckets))
        return tf.where((ids >= 0) & (ids < fd.vocab_size), ids, oov)

    def _numeric(self, x):
        fd = self.feature
        x = tf.cast(x, tf.float32)
        if fd.transform == "log1p":
            x = tf.math.log1p(tf.maximum(x, 0.0))
        elif fd.transform == "standardize":
            x = (x - fd.mean) / fd.std
        return tf.where(tf.math.is_finite(x), x, tf.zeros_like(x))

    def call(self, inputs):
        fd = self.feature
        if fd.kind == "categorical":
            return tf.nn.embedding_lookup(self.embeddings, self._ids(inputs))
        if fd.kind == "multi_categorical":
            ids = tf.cast(inputs, tf.int64)
            is_valid = ids != -1 if fd.hash_buckets else ids >= 0
            valid = tf.cast(is_valid, tf.float32)[..., None]  # [..., max_len, 1]
            rows = tf.nn.embedding_lookup(self.embeddings, self._ids(tf.where(is_valid, ids, 0))) * valid  # [..., max_len, dim]
            return tf.reduce_sum(rows, axis=-2) / tf.maximum(tf.reduce_sum(valid, axis=-2), 1.0)
        if fd.kind == "numeric":
            x = self._numeric(inputs)
            if fd.boundaries:
                return tf.nn.embedding_lookup(self.embeddings, tf.raw_ops.Bucketize(input=x, boundaries=list(fd.boundaries)))
            return x[..., None] * self.kernel[0] + self.bias
        x = tf.cast(inputs, tf.float32)
        x = tf.where(tf.math.is_finite(x), x, tf.zeros_like(x))
        return tf.tensordot(x, self.kernel, axes=[[-1], [0]]) + self.bias

    def get_config(self):
        return {**super().get_config(), "feature": self.feature.to_dict(), "dim": self.dim}
