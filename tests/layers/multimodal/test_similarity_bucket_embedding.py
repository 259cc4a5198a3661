"""SimilarityBucketEmbedding (SIREN eqs. 5-6): bucket edges by hand, the clipping, the range as a weight."""
import numpy as np
import pytest
import tensorflow as tf

from tfrec.layers.multimodal.similarity_bucket_embedding import (
    SimilarityBucketEmbedding,
)
from tfrec.testing import assert_layer_config_roundtrip

# [s_min, s_max] = [-0.5, 1.5], B = 8: edges every 0.25 (exact in float32), bucket q = [-0.5 + q/4, -0.25 + q/4)
S_MIN, S_MAX, B = -0.5, 1.5, 8
BELOW_S_MAX = float(np.nextafter(np.float32(S_MAX), np.float32(0)))
CASES = [
    (S_MIN, 0),
    (S_MAX, B - 1),  # eq. 5 gives B: clipped
    (BELOW_S_MAX, B - 1),
    (-0.4999, 0),
    (-7.0, 0),  # below s_min
    (42.0, B - 1),  # above s_max
    (-0.25, 1),  # interior edges go to the upper bucket (floor)
    (0.25, 3),
    (1.25, 7),
    (0.2499, 2),
    (1.2499, 6),
    (float("-inf"), 0),
    (float("inf"), B - 1),
    (float("nan"), 0),  # documented: NaN to bucket 0
]


def _layer(num_buckets=B, dim=3, s_range=(S_MIN, S_MAX)):
    layer = SimilarityBucketEmbedding(num_buckets=num_buckets, dim=dim)
    if s_range is not None:
        layer.set_range(*s_range)  # before the first call: builds the layer
    return layer


def test_bucket_edges_by_hand():
    layer = _layer()
    s = np.array([c[0] for c in CASES], np.float32)
    q = layer.bucketize(s)
    assert q.dtype == tf.int32
    np.testing.assert_array_equal(q.numpy(), [c[1] for c in CASES])
    np.testing.assert_array_equal(layer.bucketize(tf.constant(s, tf.float64)).numpy(), [c[1] for c in CASES])


def test_default_range_is_all_cosines():
    layer = SimilarityBucketEmbedding(num_buckets=4, dim=2)
    layer(tf.zeros([1]))  # build
    np.testing.assert_array_equal(layer.similarity_range.numpy(), [-1, 1])
    s = np.array([-1, -0.9, -0.5, -0.01, 0, 0.49, 0.5, 0.999, 1], np.float32)
    np.testing.assert_array_equal(layer.bucketize(s).numpy(), [0, 0, 1, 1, 2, 2, 3, 3, 3])


def test_random_values_against_float64():
    layer = _layer(num_buckets=7, s_range=(0.1, 0.8))
    s = np.random.default_rng(0).uniform(-0.2, 1.1, size=2000)
    exact = (s - 0.1) / 0.7 * 7
    s = s[np.abs(exact - np.round(exact)) > 1e-4]  # away from the edges: no float32 rounding question
    expected = np.clip(np.floor((s - 0.1) / 0.7 * 7), 0, 6)
    np.testing.assert_array_equal(layer.bucketize(s.astype(np.float32)).numpy(), expected)


def test_output_is_the_bucket_row():
    layer = _layer(dim=5)
    s = np.array([[S_MIN, 0.3, 9.0], [-9.0, 1.0, BELOW_S_MAX]], np.float32)  # [2, 3]
    out = layer(s).numpy()
    assert out.shape == (2, 3, 5)
    table = layer.table.embeddings.numpy()
    np.testing.assert_array_equal(out, table[[[0, 3, 7], [0, 6, 7]]])
    assert layer.target_embedding.shape == (5,)


@pytest.mark.parametrize("s_min, s_max", [(0.5, 0.5), (0.5, 0.2), (float("nan"), 1.0), (0.0, float("inf")),
                                          (float("-inf"), 0.0), (0.0, float("nan"))])
def test_set_range_rejects(s_min, s_max):
    layer = _layer()
    with pytest.raises(ValueError, match="finite s_min < s_max"):
        layer.set_range(s_min, s_max)
    np.testing.assert_array_equal(layer.similarity_range.numpy(), [S_MIN, S_MAX])  # unchanged


def _model(layer):
    """Layers have no save_weights: wrap the layer in a one-layer functional model, as the models do."""
    similarity = tf.keras.Input([None])
    return tf.keras.Model(similarity, layer(similarity))


@pytest.mark.parametrize("filename", ["ckpt", "weights.h5"])
def test_range_survives_save_and_load_weights(tmp_path, filename):
    layer = _layer(s_range=(0.1, 0.7))
    s = np.linspace(-0.2, 1.0, 25, dtype=np.float32).reshape(1, 25)
    model = _model(layer)
    out = model(s).numpy()
    assert layer.similarity_range in layer.non_trainable_weights
    assert layer.similarity_range not in layer.trainable_weights
    path = str(tmp_path / filename)
    model.save_weights(path)

    fresh = _layer(s_range=None)
    fresh_model = _model(fresh)  # built with the default range [-1, 1]
    assert not np.array_equal(fresh.bucketize(s).numpy(), layer.bucketize(s).numpy())
    fresh_model.load_weights(path)
    np.testing.assert_allclose(fresh.similarity_range.numpy(), [0.1, 0.7])
    np.testing.assert_array_equal(fresh.bucketize(s).numpy(), layer.bucketize(s).numpy())
    np.testing.assert_array_equal(fresh_model(s).numpy(), out)
    np.testing.assert_array_equal(fresh.target_embedding.numpy(), layer.target_embedding.numpy())


@pytest.mark.parametrize("args", [(0, 3), (4, 0)])
def test_validation(args):
    with pytest.raises(ValueError, match="num_buckets and dim must be positive"):
        SimilarityBucketEmbedding(*args)


def test_config_roundtrip():
    # the range travels with the weights, not the config
    rebuilt, _ = assert_layer_config_roundtrip(_layer(s_range=(0.2, 0.6)), np.array([[0.1, 0.3, 0.59]], np.float32),
                                               expected_shapes=(1, 3, 3))
    np.testing.assert_allclose(rebuilt.similarity_range.numpy(), [0.2, 0.6])
