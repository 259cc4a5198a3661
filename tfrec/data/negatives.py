"""Sampled negative behaviors for next-behavior auxiliary losses (DIEN's L_aux), drawn in tf.data."""
from __future__ import annotations

import tensorflow as tf

from tfrec.data.spec import HIST_LENGTH

HIST_NEGATIVE_ITEM_ID = "hist_negative_item_id"


def with_negative_behaviors(dataset: tf.data.Dataset, n_items: int, seed: int = 0) -> tf.data.Dataset:
    """Adds ``hist_negative_item_id`` ``[B, L]``: one sampled negative item per behavior.

    For each valid behavior ``t`` (``t < hist_length``) an item drawn **uniformly** over the
    ``n_items - 1`` ids of ``[0, n_items)`` other than ``hist_item_id[:, t]`` (never the positive
    itself: a draw from ``[0, n_items - 1)`` shifted past the positive, so no resampling loop).
    Uniform, not by popularity (the DIEN paper says only "sampled from item set"; its public code
    draws uniformly from the training items too). Item id 0 is a real item in tfrec (ids lie in
    ``[0, n_items)``), so it can be drawn. Padding positions (``t >= hist_length``) hold -1: a
    negative is never drawn for padding.

    Deterministic: a per-batch seed comes from ``tf.data.Dataset.random(seed,
    rerandomize_each_iteration=True)`` and the draw is ``tf.random.stateless_uniform`` on it, so a
    pipeline built again with the same ``seed`` (and the same global TensorFlow seed, which
    ``tfrec.training.train`` sets from ``TrainConfig.seed``) replays the same negatives, while each
    pass over the dataset (each epoch of ``model.fit``) draws new ones.

    Args:
      dataset: batched ``tf.data.Dataset`` of ``features`` dicts or ``(features, label, ...)``
        tuples; ``features`` holds ``hist_item_id`` ``[B, L]`` and ``hist_length`` ``[B]``.
      n_items: int, the item vocabulary size (``FeatureSpec.n_items``); at least 2.
      seed: int, the seed of the draws. Default 0.

    Returns:
      The dataset with ``features["hist_negative_item_id"]`` (``hist_item_id``'s dtype) added.

    Raises:
      ValueError: ``n_items < 2`` (no item differs from the positive), or the elements lack the
        history features.
    """
    if n_items < 2:
        raise ValueError(f"sampling negatives needs n_items >= 2. Received: n_items={n_items}")
    spec = dataset.element_spec
    features_spec = spec[0] if isinstance(spec, tuple) else spec
    if not isinstance(features_spec, dict) or not {"hist_item_id", HIST_LENGTH} <= set(features_spec):
        raise ValueError("with_negative_behaviors needs batches of feature dicts (or (features, label) tuples) "
                         f"holding 'hist_item_id' and {HIST_LENGTH!r}. Received element_spec: {spec}")

    def add(element, batch_seed):
        features = element[0] if isinstance(element, tuple) else element
        features = {**features, HIST_NEGATIVE_ITEM_ID: sample_negatives(
            features["hist_item_id"], features[HIST_LENGTH], n_items, tf.stack([tf.cast(seed, tf.int64), batch_seed]))}
        return (features,) + tuple(element[1:]) if isinstance(element, tuple) else features

    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
    return tf.data.Dataset.zip((dataset, seeds)).map(add, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def sample_negatives(hist_item_id: tf.Tensor, hist_length: tf.Tensor, n_items: int, seed: tf.Tensor) -> tf.Tensor:
    """The draw of ``with_negative_behaviors`` for one batch: ``[B, L]`` uniform over the items other
    than the positive at each valid position, -1 at padding. ``seed``: int ``[2]`` (stateless)."""
    positive = tf.cast(hist_item_id, tf.int64)
    draw = tf.random.stateless_uniform(tf.shape(positive), seed, minval=0, maxval=n_items - 1, dtype=tf.int64)
    negative = draw + tf.cast(draw >= positive, tf.int64)  # skips the positive: uniform over the other n - 1
    valid = tf.range(tf.shape(positive)[1])[None, :] < tf.cast(hist_length, tf.int32)[:, None]
    return tf.cast(tf.where(valid, negative, -tf.ones_like(negative)), hist_item_id.dtype)
