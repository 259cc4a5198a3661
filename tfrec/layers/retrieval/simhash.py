"""SimHash: random-hyperplane signatures of embeddings (ETA's and SDIM's locality-sensitive hashing)."""
import numpy as np
import tensorflow as tf

from tfrec.registry import register


@register
class SimHash(tf.keras.layers.Layer):
    """Sign-random-projection hashing (Charikar, 2002) as ETA (sec. 3.2) and SDIM (sec. 3.2) use it.

    ``bits(x)_{h,j} = 1[x · r_{h,j} > 0]`` for ``num_hashes`` hash functions of ``bits_per_hash``
    random hyperplanes each. Two vectors at angle theta agree on a bit with probability
    ``1 - theta / pi``, so the Hamming distance of their signatures estimates the angle (ETA's GSU)
    and equal buckets (all of a hash's bits equal) collide with probability ``(1 - theta/pi)^tau``
    (SDIM's sampling).

    The projection ``R`` ``[d, num_hashes * bits_per_hash]`` is drawn once, from a standard normal
    with numpy's ``default_rng(seed)``, and stored as a **non-trainable weight**: it is saved in
    checkpoints and SavedModels and never redrawn, so inference is deterministic (a public ETA
    benchmark config redraws it on every forward pass). The signature carries no gradient (the
    sign is piecewise constant): the embeddings are trained through the model's other paths.

    A zero vector (e.g. an unknown item's embedding) has all bits 0, i.e. bucket 0 of every hash:
    callers must mask padding themselves.

    Args:
      num_hashes: m, the hash functions.
      bits_per_hash: tau, bits (hyperplanes) per hash function; bucket ids lie in ``[0, 2^tau)``.
      seed: the projection's seed.

    Input: float ``[..., d]``.
    Output: float32 ``[..., m, tau]`` in {0, 1} (``call``); ``buckets`` gives int32 ``[..., m]``.
    """

    def __init__(self, num_hashes: int, bits_per_hash: int, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        if num_hashes < 1 or not 1 <= bits_per_hash <= 24:
            raise ValueError(f"SimHash needs num_hashes >= 1 and 1 <= bits_per_hash <= 24 (bucket ids are exact "
                             f"in float32). "
                             f"Received: num_hashes={num_hashes}, bits_per_hash={bits_per_hash}")
        self.num_hashes, self.bits_per_hash, self.seed = int(num_hashes), int(bits_per_hash), int(seed)

    def build(self, input_shape):
        d = int(input_shape[-1])
        values = np.random.default_rng(self.seed).standard_normal((d, self.num_hashes * self.bits_per_hash))
        self.projection = self.add_weight(name="projection", shape=values.shape, trainable=False,
                                          initializer=tf.keras.initializers.Constant(values.astype(np.float32)))
        super().build(input_shape)

    def call(self, x):
        x = tf.stop_gradient(tf.cast(x, tf.float32))
        proj = tf.tensordot(x, self.projection, axes=[[-1], [0]])
        bits = tf.cast(proj > 0, tf.float32)
        return tf.reshape(bits, tf.concat([tf.shape(x)[:-1], [self.num_hashes, self.bits_per_hash]], 0))

    def buckets(self, x) -> tf.Tensor:
        """Bucket id of every hash, ``sum_j bits_j 2^j``: int32 ``[..., m]``."""
        weights = tf.constant([2.0 ** j for j in range(self.bits_per_hash)], tf.float32)
        return tf.cast(tf.reduce_sum(self(x) * weights, -1), tf.int32)

    def get_config(self):
        return {**super().get_config(), "num_hashes": self.num_hashes, "bits_per_hash": self.bits_per_hash,
                "seed": self.seed}
