"""IdEmbedding: an embedding table whose out-of-vocabulary ids share one reserved row."""
import tensorflow as tf

from tfrec.registry import register


@register
class IdEmbedding(tf.keras.layers.Layer):
    """Embedding for ids in ``[0, vocab_size)``; any other id (unknown item, bad input) uses row
    ``vocab_size`` instead of failing inside ``tf.gather`` at serving time.

    Args:
      vocab_size: number of known ids.
      dim: embedding size.

    Input shape: any int tensor ``[...]``.
    Output shape: ``[..., dim]``.
    """

    def __init__(self, vocab_size: int, dim: int, **kwargs):
        super().__init__(**kwargs)
        if vocab_size <= 0 or dim <= 0:
            raise ValueError(f"vocab_size and dim must be positive. Received: vocab_size={vocab_size}, dim={dim}")
        self.vocab_size = int(vocab_size)
        self.dim = int(dim)

    def build(self, input_shape):
        self.embeddings = self.add_weight(
            name="embeddings", shape=[self.vocab_size + 1, self.dim],
            initializer=tf.keras.initializers.RandomUniform(-0.05, 0.05))
        super().build(input_shape)

    def call(self, ids):
        ids = tf.cast(ids, tf.int64)
        ids = tf.where((ids >= 0) & (ids < self.vocab_size), ids, tf.cast(self.vocab_size, tf.int64))
        return tf.nn.embedding_lookup(self.embeddings, ids)  # shard-aware under a variable partitioner

    def get_config(self):
        return {**super().get_config(), "vocab_size": self.vocab_size, "dim": self.dim}
