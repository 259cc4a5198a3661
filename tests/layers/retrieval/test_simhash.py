"""SimHash (ETA's and SDIM's hashing): bits and buckets against numpy, a fixed projection, no gradient."""
import numpy as np
import pytest
import tensorflow as tf

from tfrec.layers.retrieval.simhash import SimHash
from tfrec.testing import assert_layer_config_roundtrip


def test_bits_and_buckets_match_numpy_and_never_change():
    x = np.random.default_rng(1).normal(size=(3, 5, 8)).astype(np.float32)
    layer = SimHash(num_hashes=6, bits_per_hash=3, seed=7)
    bits = layer(x).numpy()
    r = np.random.default_rng(7).standard_normal((8, 18)).astype(np.float32)
    expected = (x @ r > 0).astype(np.float32).reshape(3, 5, 6, 3)
    np.testing.assert_array_equal(bits, expected)
    np.testing.assert_array_equal(layer.buckets(x).numpy(), expected @ np.array([1, 2, 4], np.float32))
    assert layer.buckets(x).dtype == tf.int32 and layer.buckets(x).shape == (3, 5, 6)
    # the projection is one non-trainable weight, drawn once: the same input always hashes alike
    assert layer.trainable_weights == [] and len(layer.non_trainable_weights) == 1
    np.testing.assert_array_equal(layer(x).numpy(), bits)
    # another layer with the same seed draws the same projection (models rebuilt from config agree)
    np.testing.assert_array_equal(SimHash(6, 3, seed=7)(x).numpy(), bits)
    assert not np.array_equal(SimHash(6, 3, seed=8)(x).numpy(), bits)


def test_zero_vector_is_bucket_zero_and_no_gradient_flows():
    layer = SimHash(4, 4, seed=0)
    np.testing.assert_array_equal(layer.buckets(np.zeros((1, 8), np.float32)).numpy(), [[0, 0, 0, 0]])
    x = tf.Variable(np.random.default_rng(0).normal(size=(2, 8)).astype(np.float32))
    with tf.GradientTape() as tape:
        y = tf.reduce_sum(layer(x))
    assert tape.gradient(y, x) is None


def test_similar_vectors_share_more_bits():
    """Sign random projections: agreement ~ 1 - angle / pi."""
    rng = np.random.default_rng(2)
    a = rng.normal(size=(1, 64)).astype(np.float32)
    near = a + 0.1 * rng.normal(size=(1, 64)).astype(np.float32)
    far = rng.normal(size=(1, 64)).astype(np.float32)
    layer = SimHash(256, 1, seed=3)
    bits = [layer(v).numpy().ravel() for v in (a, near, far)]
    assert (bits[0] == bits[1]).mean() > 0.9 and 0.3 < (bits[0] == bits[2]).mean() < 0.7


def test_config_and_errors():
    assert_layer_config_roundtrip(SimHash(3, 2, seed=5), np.ones((2, 4), np.float32))
    with pytest.raises(ValueError, match="bits_per_hash"):
        SimHash(3, 25)
    with pytest.raises(ValueError, match="num_hashes"):
        SimHash(0, 2)
